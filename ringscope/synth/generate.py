"""Synthetic data generator: a bank's worth of accounts, identifiers and payments, with known rings.

Why it matters: RingScope has no access to a real bank's data, so this generator is how detection
quality is measured. Every precision/recall number the team reports is computed against the ground
truth written here, so the data must be hard in the ways real data is hard. Fraud rings of five
typologies hide among benign sharing that looks just like them (households, offices, campuses,
internet cafes, carrier NAT IPs, recycled phone numbers), ring members camouflage themselves with
normal activity, popular merchants are supernodes, and the labels a model may learn from are
partial and noisy, as a real bank's chargeback and review labels are. A generator that is too easy
makes every detector look good; one that is wrong in a systematic way (an id that leaks fraud, a
timestamp out of order) makes the numbers meaningless. See ``docs/generator.md``.

It writes the data contract v1 (nine tables, Parquet or CSV) into ``out`` and the ground truth
(CSV plus ``manifest.json``) into ``truth``. Output is a pure function of the arguments: the same
arguments give byte-identical files. Everything is vectorised with numpy; Python loops run per
ring or per ring link, never per row, so a million accounts take a couple of minutes on two cores.

Internally every entity is an integer index; strings (ids, phone numbers, IPs, emails, document
and card numbers) are only built when a table is written, with pyarrow ``take`` on small lookup
arrays. Account ids are assigned in creation order and device and payee ids in first-seen order,
so ids carry no information about who is a fraudster beyond what real sequential ids carry.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from phonenumbers import carrier as pn_carrier

__all__ = [
    "BENIGN_KINDS",
    "CONTRACT_VERSION",
    "SCHEMAS",
    "TABLES",
    "TYPOLOGIES",
    "generate",
]

Arr = npt.NDArray[Any]
ArrLike = Arr | int  # an array, or a scalar broadcast to one

CONTRACT_VERSION = "v1"
DAY = 86_400
HOUR_S = 3_600
YEAR = 365 * DAY
# The end of the simulated world (2025-06-30T00:00:00Z): fixed, never "now", for determinism.
T_END = 1_751_241_600

TYPOLOGIES: tuple[str, ...] = ("cash_out", "mule", "synthetic", "ato", "sleeper")
# Codes in the per-account typology array: 0 legit, 1..5 the ring typologies, 6 lone fraudster.
_TYPO_NAMES: tuple[str, ...] = ("", *TYPOLOGIES, "lone")
LONE = 6
BENIGN_KINDS: tuple[str, ...] = (
    "household",
    "office",
    "campus",
    "cafe",
    "carrier_nat",
    "recycled_phone",
)
_BK = {k: i for i, k in enumerate(BENIGN_KINDS)}

_TS = pa.timestamp("us", tz="UTC")
_AMOUNT = pa.decimal128(18, 2)
SCHEMAS: dict[str, pa.Schema] = {
    "accounts": pa.schema(
        [
            ("account_id", pa.string()),
            ("created_at", _TS),
            ("kyc_level", pa.int8()),
            ("country", pa.string()),
        ]
    ),
    "devices": pa.schema(
        [("device_id", pa.string()), ("os", pa.string()), ("is_emulator", pa.bool_())]
    ),
    "phones": pa.schema(
        [("phone", pa.string()), ("carrier", pa.string()), ("is_virtual", pa.bool_())]
    ),
    "payees": pa.schema([("payee_id", pa.string()), ("kind", pa.string()), ("name", pa.string())]),
    "account_devices": pa.schema(
        [("account_id", pa.string()), ("device_id", pa.string()), ("seen_at", _TS)]
    ),
    "account_phones": pa.schema(
        [("account_id", pa.string()), ("phone", pa.string()), ("seen_at", _TS)]
    ),
    "payments": pa.schema(
        [
            ("payment_id", pa.string()),
            ("account_id", pa.string()),
            ("payee_id", pa.string()),
            ("amount", _AMOUNT),
            ("currency", pa.string()),
            ("paid_at", _TS),
        ]
    ),
    "account_identifiers": pa.schema(
        [
            ("account_id", pa.string()),
            ("kind", pa.string()),
            ("value", pa.string()),
            ("seen_at", _TS),
        ]
    ),
    "labels": pa.schema(
        [("account_id", pa.string()), ("label", pa.string()), ("labelled_at", _TS)]
    ),
}
TABLES: tuple[str, ...] = tuple(SCHEMAS)
ID_KINDS: tuple[str, ...] = ("ip", "email", "id_document", "bank_card")

_OS = ("android", "ios", "windows", "macos")
_ANDROID, _IOS, _WINDOWS, _MACOS = range(4)
_UTC_OFFSET_H = {"CN": 8, "HK": 8, "SG": 8, "TW": 8, "JP": 9, "KR": 9, "IN": 5, "GB": 0,
                 "DE": 1, "FR": 1, "US": -5, "CA": -5, "AU": 10}  # fmt: skip
_CURRENCY = {"CN": "CNY", "HK": "HKD", "SG": "SGD", "TW": "TWD", "JP": "JPY", "KR": "KRW",
             "IN": "INR", "GB": "GBP", "DE": "EUR", "FR": "EUR", "US": "USD", "CA": "CAD",
             "AU": "AUD"}  # fmt: skip
_FOREIGN = ("HK", "US", "SG", "GB", "JP", "CN", "AU")
# Activity by local hour of day (relative weights), for timestamps that look like people.
_HOURS = np.array(
    [2, 1, 1, 1, 1, 1, 2, 4, 6, 7, 8, 8, 9, 8, 7, 7, 7, 8, 9, 10, 10, 9, 7, 4], dtype=np.float64
)
_WORK_HOURS = np.array([0] * 8 + [6, 10, 10, 9, 6, 9, 10, 10, 9, 7] + [1] * 6, dtype=np.float64)

# fmt: off
_SURNAMES = (
    "wang", "li", "zhang", "liu", "chen", "yang", "huang", "zhao", "wu", "zhou", "xu", "sun",
    "ma", "zhu", "hu", "guo", "he", "gao", "lin", "luo", "zheng", "liang", "xie", "song", "tang",
    "han", "feng", "deng", "cao", "peng", "zeng", "xiao", "tian", "dong", "pan", "yuan",
)
_GIVEN = (
    "wei", "fang", "na", "min", "jing", "li", "qiang", "lei", "jun", "yang", "yong", "yan",
    "jie", "tao", "ming", "chao", "xiu", "xia", "hui", "ping", "gang", "hua", "fei", "bin",
    "ying", "hong", "lan", "jian", "bo", "yu", "xin", "hao", "yi", "ting", "kai",
)
_BRANDS = (
    "Golden Dragon", "Jade", "Lucky Star", "Harmony", "Sunrise", "Panda", "Red Lantern",
    "Silk Road", "Bamboo", "Pearl River", "Blue Sky", "Evergreen", "Phoenix", "Great Wall",
    "Lotus", "Peony", "Summit", "Orient", "Mingyue", "Fortune",
)
_CATEGORIES = (
    "Supermarket", "Coffee", "Noodle House", "Electronics", "Pharmacy", "Mobile Top-up",
    "Cinema", "Bookstore", "Fashion", "Hotpot", "Bakery", "Fuel", "Taxi", "Food Delivery",
    "Games", "Travel", "Convenience Store", "Hotel", "Tea House", "Home Goods",
)
# fmt: on
_EMAIL_DOMAINS = (
    "qq.com",
    "163.com",
    "126.com",
    "gmail.com",
    "outlook.com",
    "sina.com",
    "foxmail.com",
    "hotmail.com",
)  # fmt: skip
_EMAIL_DOMAIN_P = (0.35, 0.2, 0.1, 0.1, 0.08, 0.07, 0.06, 0.04)
_ID_REGIONS = (110101, 110105, 310104, 310115, 440106, 440305, 510107, 330106, 320102, 420106,
               610113, 500103, 120101, 370202, 350203, 210102)  # fmt: skip
_CARD_BINS = (2100, 2148, 2260, 2284, 2580, 2662, 2700, 2880)
_ROUND_CENTS = np.array([500, 1000, 2000, 3000, 5000], dtype=np.int64) * 100


# --------------------------------------------------------------------------------------------
# Small vectorised helpers
# --------------------------------------------------------------------------------------------


def _rng(seed: int, name: str) -> np.random.Generator:
    """An independent, stable random stream per component, so changing one part of the
    generator does not reshuffle every other part."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def _is_prime(n: int) -> bool:
    if n < 2:
        return False
    i = 2
    while i * i <= n:
        if n % i == 0:
            return False
        i += 1
    return True


@lru_cache(maxsize=64)
def _multiplier(space: int) -> int:
    """A prime multiplier coprime with ``space`` such that ``space * m`` fits in int64."""
    m = min((2**62) // max(space, 1), 2_654_435_761)
    m = max(m, 3)
    while not (_is_prime(m) and math.gcd(m, space) == 1 and m < 2**62 // max(space, 1) + 2):
        m -= 1
    return m


def _scramble(j: Arr, space: int, salt: int) -> Arr:
    """A bijection of [0, space): distinct indices give distinct, unordered-looking values."""
    j = np.asarray(j, dtype=np.int64)
    if j.size and int(j.max()) >= space:
        raise ValueError(f"index space exhausted ({int(j.max())} >= {space})")
    return (j * _multiplier(space) + salt % space) % space


def _digits(values: Arr, width: int) -> Arr:
    """ASCII digits of non-negative integers, zero padded: uint8 matrix (n, width)."""
    v = np.asarray(values, dtype=np.int64)
    pows = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    return ((v[:, None] // pows[None, :]) % 10 + 48).astype(np.uint8)


def _const(s: str, n: int) -> Arr:
    return np.broadcast_to(np.frombuffer(s.encode(), dtype=np.uint8), (n, len(s)))


def _fixed(parts: Sequence[Arr]) -> pa.Array:
    """A string array from equal-width ASCII byte matrices placed side by side."""
    mat = np.ascontiguousarray(np.concatenate(parts, axis=1), dtype=np.uint8)
    n, w = mat.shape
    offsets = np.arange(0, n * w + 1, w, dtype=np.int64)
    return pa.Array.from_buffers(
        pa.large_string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(mat)]
    ).cast(pa.string())


def _ids(prefix: str, n: int, width: int) -> pa.Array:
    """``prefix`` followed by 1..n zero padded to ``width`` digits."""
    w = max(width, len(str(n)))
    return _fixed([_const(prefix, n), _digits(np.arange(1, n + 1), w)])


def _int_str(values: Arr) -> pa.Array:
    return pc.cast(pa.array(np.asarray(values, dtype=np.int64)), pa.string())


def _join(*parts: Any) -> pa.Array:
    return pc.binary_join_element_wise(*parts, "")


def _counts(rng: np.random.Generator, lam: Arr, base: int = 1) -> Arr:
    return base + rng.poisson(np.maximum(lam, 0.0))


def _power_sizes(rng: np.random.Generator, lo: int, hi: int, alpha: float, n: int) -> Arr:
    sizes = np.arange(lo, hi + 1)
    p = sizes.astype(np.float64) ** -alpha
    return rng.choice(sizes, size=n, p=p / p.sum())


def _sizes_to_cover(
    rng: np.random.Generator, total: int, lo: int, hi: int, alpha: float
) -> list[int]:
    """Heavy-tailed group sizes in [lo, hi] summing to about ``total`` (the last one trimmed)."""
    out: list[int] = []
    left = total
    while left >= lo:
        batch = _power_sizes(rng, lo, hi, alpha, max(8, left // max(lo, 1)))
        for s in batch.tolist():
            if left < lo:
                break
            s = min(int(s), left)
            if left - s < lo:
                s = left if left <= hi else s
            out.append(s)
            left -= s
    return out


def _distinct(values: Arr) -> Arr:
    """Sorted distinct values (sort-based: faster than np.unique's hashing on big int arrays)."""
    v = np.sort(values)
    keep: Arr = v[np.r_[True, v[1:] != v[:-1]]] if len(v) else v
    return keep


def _decimal(cents: Arr) -> pa.Array:
    c = np.asarray(cents, dtype=np.int64)
    buf = np.ascontiguousarray(np.stack([c, c >> 63], axis=1))
    return pa.Array.from_buffers(_AMOUNT, len(c), [None, pa.py_buffer(buf)])


def _ts(seconds: Arr) -> pa.Array:
    return pa.array(np.asarray(seconds, dtype=np.int64) * 1_000_000, type=_TS)


# --------------------------------------------------------------------------------------------
# Phone numbers of a region
# --------------------------------------------------------------------------------------------

_CN_REGULAR = [130, 131, 132, 133, 134, 135, 136, 137, 138, 139, 150, 151, 152, 153, 155, 156,
               157, 158, 159, 180, 181, 182, 183, 184, 185, 186, 187, 188, 189, 191, 193, 195,
               196, 197, 198, 199]  # fmt: skip
_CN_VIRTUAL = [170, 171, 162, 165, 167]


@dataclass(frozen=True)
class _PhonePlan:
    cc: str
    length: int  # national significant number length
    plen: int  # prefix length
    regular: tuple[int, ...]  # prefixes of ordinary mobile numbers
    virtual: tuple[int, ...]  # prefixes of virtual-operator numbers
    carriers: dict[int, str]
    national_prefix: str
    groups: tuple[int, ...]  # digit groups of national format (over national_prefix + nsn)
    intl_groups: tuple[int, ...]  # digit groups of international format (over nsn)
    idd: str  # international dialling prefix, or "" when the region has none that is plain


def _groups(formatted: str) -> tuple[int, ...]:
    out: list[int] = []
    run = 0
    for ch in formatted:
        if ch.isdigit():
            run += 1
        elif run:
            out.append(run)
            run = 0
    if run:
        out.append(run)
    return tuple(out)


@lru_cache(maxsize=16)
def _phone_plan(region: str) -> _PhonePlan:
    """How to make valid mobile numbers of ``region``, found from phonenumbers' own metadata."""
    pn = phonenumbers
    region = region.upper()
    example = pn.example_number_for_type(region, pn.PhoneNumberType.MOBILE)
    meta = pn.PhoneMetadata.metadata_for_region(region)
    if example is None or meta is None:
        raise ValueError(f"no mobile numbering plan known for region {region!r}")
    nsn = pn.national_significant_number(example)
    length = len(nsn)
    if length < 7:
        raise ValueError(f"mobile numbers of {region!r} are too short to generate")
    national = pn.format_number(example, pn.PhoneNumberFormat.NATIONAL)
    national_digits = "".join(c for c in national if c.isdigit())
    national_prefix = national_digits[: len(national_digits) - len(nsn)]
    intl = pn.format_number(example, pn.PhoneNumberFormat.INTERNATIONAL)
    intl_groups = _groups(intl)[1:]
    idd = meta.preferred_international_prefix or meta.international_prefix or ""
    if not idd.isdigit():
        idd = ""

    def valid(prefix: int, plen: int) -> bool:
        rng = np.random.default_rng(prefix)
        for rest in rng.integers(0, 10 ** (length - plen), 40).tolist():
            num = pn.parse(f"{prefix}{rest:0{length - plen}d}", region)
            if not pn.is_valid_number(num) or pn.number_type(num) not in (
                pn.PhoneNumberType.MOBILE,
                pn.PhoneNumberType.FIXED_LINE_OR_MOBILE,
            ):
                return False
        return True

    if region == "CN":
        plen = 3
        regular, virtual = tuple(_CN_REGULAR), tuple(_CN_VIRTUAL)
    else:
        first = int(nsn[0])
        # the shortest prefixes (3 or 4 digits) all of whose sampled completions are valid
        plen = 3
        found = [p for p in range(first * 100, first * 100 + 100) if valid(p, 3)]
        if len(found) < 2:
            plen, lead = 4, int(nsn[:2])
            found = [p for p in range(lead * 100, lead * 100 + 100) if valid(p, 4)]
        if not found:
            raise ValueError(f"could not find valid mobile prefixes for region {region!r}")
        cut = max(1, len(found) // 5) if len(found) > 1 else 0
        regular = tuple(found[: len(found) - cut]) if cut else tuple(found)
        virtual = tuple(found[len(found) - cut :]) if cut else tuple(found)
    carriers: dict[int, str] = {}
    for p in (*regular, *virtual):
        num = pn.parse(f"{p}{'0' * (length - plen)}", region)
        name = pn_carrier.name_for_number(num, "en") or "Unknown Carrier"
        carriers[p] = f"{name} MVNO" if p in virtual and p not in regular else name
    groups = _groups(national)
    if sum(groups) != len(national_prefix) + length:
        groups = (len(national_prefix) + 3, length - 3)
    if sum(intl_groups) != length:
        intl_groups = (3, length - 3)
    return _PhonePlan(
        cc=str(example.country_code),
        length=length,
        plen=plen,
        regular=regular,
        virtual=virtual,
        carriers=carriers,
        national_prefix=national_prefix,
        groups=groups,
        intl_groups=intl_groups,
        idd=idd,
    )


# Spellings of one number: 0 E.164, 1 national grouped by spaces, 2 national plain digits,
# 3 national grouped by dashes, 4 international grouped by spaces, 5 IDD prefix (0086...).
_PHONE_TABLE_P = (0.7, 0.1, 0.1, 0.04, 0.04, 0.02)
_PHONE_ROW_P = (0.35, 0.2, 0.2, 0.1, 0.1, 0.05)


def _phone_strings(plan: _PhonePlan, nsn: Arr) -> list[pa.Array]:
    """The six spellings of each number (``nsn`` is an ASCII digit matrix)."""
    n = nsn.shape[0]
    nat = np.concatenate([_const(plan.national_prefix, n), nsn], axis=1)

    def grouped(mat: Arr, groups: Sequence[int], sep: str) -> list[Arr]:
        parts: list[Arr] = []
        pos = 0
        for i, g in enumerate(groups):
            if i:
                parts.append(_const(sep, n))
            parts.append(mat[:, pos : pos + g])
            pos += g
        return parts

    e164 = _fixed([_const("+" + plan.cc, n), nsn])
    idd = _fixed([_const(plan.idd + plan.cc, n), nsn]) if plan.idd else e164
    return [
        e164,
        _fixed(grouped(nat, plan.groups, " ")),
        _fixed([nat]),
        _fixed(grouped(nat, plan.groups, "-")),
        _fixed([_const("+" + plan.cc + " ", n), *grouped(nsn, plan.intl_groups, " ")]),
        idd,
    ]


# --------------------------------------------------------------------------------------------
# The world under construction
# --------------------------------------------------------------------------------------------


@dataclass
class _Edges:
    """Rows of one account-to-entity table, as parallel integer arrays (chunks until used)."""

    acc: list[Arr] = field(default_factory=list)
    ent: list[Arr] = field(default_factory=list)
    t: list[Arr] = field(default_factory=list)

    def add(self, acc: Arr, ent: Arr, t: Arr) -> None:
        n = len(t)
        self.acc.append(np.broadcast_to(np.asarray(acc, dtype=np.int64), n).astype(np.int32))
        self.ent.append(np.broadcast_to(np.asarray(ent, dtype=np.int64), n).astype(np.int32))
        self.t.append(np.asarray(t, dtype=np.int64))

    def arrays(self) -> tuple[Arr, Arr, Arr]:
        if not self.t:
            e = np.zeros(0, dtype=np.int32)
            return e, e, np.zeros(0, dtype=np.int64)
        return np.concatenate(self.acc), np.concatenate(self.ent), np.concatenate(self.t)


@dataclass
class _Pool:
    """An allocator of entity indices with per-entity integer attributes."""

    n: int = 0
    attrs: dict[str, list[Arr]] = field(default_factory=dict)

    def new(self, k: int, **attrs: Any) -> Arr:
        start = self.n
        self.n += k
        for name, value in attrs.items():
            self.attrs.setdefault(name, []).append(np.broadcast_to(np.asarray(value), k).copy())
        return np.arange(start, start + k, dtype=np.int64)

    def attr(self, name: str) -> Arr:
        return np.concatenate(self.attrs[name]) if name in self.attrs else np.zeros(0)


class _World:
    def __init__(self, n: int, seed: int, region: str, years: float, tz_hours: int) -> None:
        self.n = n
        self.seed = seed
        self.region = region
        self.t_end = T_END
        self.span = int(years * YEAR)
        self.t0 = T_END - self.span
        self.tz = tz_hours * 3600
        # per account
        self.created = np.zeros(n, dtype=np.int64)
        self.kyc = np.zeros(n, dtype=np.int8)
        self.typology = np.zeros(n, dtype=np.int8)
        self.ring = np.full(n, -1, dtype=np.int32)
        self.fraud_t = np.zeros(n, dtype=np.int64)
        # what the "normal life" pass gives each account (fraud roles switch parts off)
        self.n_dev = np.zeros(n, dtype=np.int8)
        self.own_phone = np.ones(n, dtype=bool)
        self.own_home = np.ones(n, dtype=bool)
        self.own_doc = np.ones(n, dtype=bool)
        self.own_card = np.ones(n, dtype=bool)
        self.friends = np.ones(n, dtype=bool)
        self.pay_scale = np.ones(n, dtype=np.float64)
        # entities
        self.dev = _Pool()  # os, emu
        self.phone = _Pool()  # virtual
        self.ip = _Pool()
        self.email = _Pool()
        self.doc = _Pool()
        self.card = _Pool()
        self.payee = _Pool()  # individual (bool), cur (currency code 0 home / 1 foreign)
        # rows
        self.e_dev = _Edges()
        self.e_phone = _Edges()
        self.e_id = {k: _Edges() for k in ID_KINDS}
        self.pay_acc: list[Arr] = []
        self.pay_payee: list[Arr] = []
        self.pay_t: list[Arr] = []
        self.pay_cents: list[Arr] = []
        # truth
        self.rings: list[tuple[int, Arr]] = []  # (typology code, members)
        self.groups_kind: list[int] = []
        self.group_rows: list[tuple[Arr, Arr]] = []  # (group index per row, account)
        self.n_groups = 0
        # merchants: index 0..n_merchants-1 are the popular (Zipf) ones
        self.n_merchants = 0
        self.merchant_p = np.zeros(0)
        self.merchant_median = np.zeros(0)
        self.individual_pool = np.zeros(0, dtype=np.int64)
        # recycled phone numbers: benign pairs (old owner, new owner) and the old accounts whose
        # abandoned numbers synthetic identities pick up
        self.recycled_a = np.zeros(0, dtype=np.int64)
        self.recycled_b = np.zeros(0, dtype=np.int64)
        self.prev_pool = np.zeros(0, dtype=np.int64)
        self.prev_i = 0

    def prev_owners(self, k: int) -> Arr:
        """Old legitimate accounts whose abandoned numbers a synthetic ring picks up."""
        if len(self.prev_pool) == 0:
            raise ValueError("too few accounts to generate recycled phone numbers")
        idx = np.arange(self.prev_i, self.prev_i + k) % len(self.prev_pool)
        self.prev_i += k
        return self.prev_pool[idx]

    # ---- time helpers ------------------------------------------------------------------------

    def times(
        self,
        rng: np.random.Generator,
        lo: ArrLike,
        hi: ArrLike,
        profile: Arr = _HOURS,
        weekdays: bool = False,
    ) -> Arr:
        """Random times in [lo, hi] (per row), moved to a plausible local hour of the same day."""
        lo = np.asarray(lo, dtype=np.int64)
        hi = np.minimum(np.maximum(np.asarray(hi, dtype=np.int64), lo), self.t_end)
        lo = np.minimum(lo, hi)
        n = max(lo.size, hi.size)
        t = lo + (rng.random(n) * (hi - lo + 1)).astype(np.int64)
        local = t + self.tz
        day = local // DAY
        if weekdays:
            dow = (day + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
            day = day - np.where(dow >= 5, dow - 4, 0)
        hour = rng.choice(24, size=n, p=profile / profile.sum())
        moved = day * DAY + hour * 3600 + rng.integers(0, 3600, n) - self.tz
        out: Arr = np.where((moved >= lo) & (moved <= hi), moved, t)
        return out

    def sight(
        self,
        edges: _Edges,
        rng: np.random.Generator,
        acc: ArrLike,
        ent: ArrLike,
        lo: ArrLike,
        hi: ArrLike,
        k: ArrLike,
        **kw: Any,
    ) -> None:
        """Add ``k`` sightings of each (account, entity) pair at random times in [lo, hi]."""
        m = len(np.atleast_1d(acc))
        k = np.broadcast_to(np.asarray(k, dtype=np.int64), m)

        def rep(x: ArrLike) -> Arr:
            return np.repeat(np.broadcast_to(np.asarray(x, dtype=np.int64), m), k)

        a, e, lo_r, hi_r = rep(acc), rep(ent), rep(lo), rep(hi)
        edges.add(a, e, self.times(rng, lo_r, hi_r, **kw))

    def pay(self, acc: Arr, payee: Arr, t: Arr, cents: Arr) -> None:
        n = len(t)
        self.pay_acc.append(np.broadcast_to(np.asarray(acc, dtype=np.int64), n).astype(np.int32))
        self.pay_payee.append(
            np.broadcast_to(np.asarray(payee, dtype=np.int64), n).astype(np.int32)
        )
        self.pay_t.append(np.asarray(t, dtype=np.int64))
        self.pay_cents.append(np.maximum(np.asarray(cents, dtype=np.int64), 1))

    def zipf_merchants(self, rng: np.random.Generator, n: int) -> Arr:
        return rng.choice(self.n_merchants, size=n, p=self.merchant_p).astype(np.int64)

    def group(self, kind: str, members: Arr) -> None:
        self.groups_kind.append(_BK[kind])
        self.group_rows.append(
            (np.full(len(members), self.n_groups, dtype=np.int32), np.asarray(members))
        )
        self.n_groups += 1

    def groups(self, kind: str, sizes: Arr, members: Arr) -> Arr:
        """Register many groups of one kind at once; returns the group index of each member."""
        g = np.repeat(np.arange(len(sizes)), sizes)
        self.groups_kind.extend([_BK[kind]] * len(sizes))
        self.group_rows.append((g.astype(np.int32) + self.n_groups, np.asarray(members)))
        self.n_groups += len(sizes)
        return g


# --------------------------------------------------------------------------------------------
# Stages
# --------------------------------------------------------------------------------------------


def _accounts(w: _World, rng: np.random.Generator, foreign_share: float) -> Arr:
    """Creation times (exponential growth over the span), KYC levels, countries."""
    g = 1.0
    x = np.log1p(rng.random(w.n) * math.expm1(g)) / g
    w.created[:] = w.t0 + (x * (w.span - 2 * DAY)).astype(np.int64)
    w.created[:] = w.times(rng, w.created, w.created + DAY)
    w.kyc[:] = rng.choice(4, size=w.n, p=[0.05, 0.3, 0.45, 0.2])
    w.n_dev[:] = np.where(rng.random(w.n) < 0.35, 2, 1)
    foreign = [c for c in _FOREIGN if c != w.region]
    return np.where(
        rng.random(w.n) < foreign_share, rng.integers(0, len(foreign), w.n) + 1, 0
    ).astype(np.int8)


def _merchants(w: _World, rng: np.random.Generator) -> None:
    m = max(50, w.n // 100)
    w.n_merchants = m
    ranks = np.arange(m, dtype=np.float64)
    p = 1.0 / (ranks + 2.0) ** 1.05
    w.merchant_p = p / p.sum()
    w.merchant_median = np.exp(rng.normal(math.log(60.0), 1.0, m)) * 100
    foreign = rng.random(m) < 0.03
    w.payee.new(m, individual=False, cur=foreign.astype(np.int8))
    w.individual_pool = w.payee.new(max(20, w.n // 3), individual=True, cur=0)


def _choose_fraud(
    w: _World, rng: np.random.Generator, fraud_rate: float, ring_share: float
) -> tuple[list[tuple[int, Arr]], Arr]:
    """Pick ring members (with typologies) and lone fraudsters. ATO members are old accounts."""
    n_fraud = round(w.n * fraud_rate)
    budget = round(n_fraud * ring_share)
    sizes: list[int] = []
    while budget - sum(sizes) >= 3:
        s = int(_power_sizes(rng, 3, 60, 1.9, 1)[0])
        sizes.append(min(s, budget - sum(sizes)))
    while len(sizes) < min(len(TYPOLOGIES), budget // 3) and max(sizes) >= 6:
        big = sizes.pop(sizes.index(max(sizes)))  # split a big ring so every typology shows
        sizes += [big // 2, big - big // 2]
    typos = list(rng.permutation(len(TYPOLOGIES)) + 1)[: len(sizes)]
    weights = np.array([0.25, 0.25, 0.2, 0.15, 0.15])
    typos += list(rng.choice(len(TYPOLOGIES), size=max(0, len(sizes) - len(typos)), p=weights) + 1)
    old_cut = w.t_end - 2 * YEAR
    perm = rng.permutation(w.n)
    old = perm[w.created[perm] < old_cut]
    young = perm[w.created[perm] >= old_cut]
    # half the old accounts may be ATO victims; fraudsters' own accounts come from the rest
    # (their creation times are rewritten anyway)
    old_for_ato = old[: len(old) // 2]
    fresh = np.concatenate([young, old[len(old) // 2 :]])
    ia = ifr = 0
    rings: list[tuple[int, Arr]] = []
    for s, ty in zip(sizes, typos, strict=True):
        if ty == 4 and ia + s <= len(old_for_ato):
            members = old_for_ato[ia : ia + s]
            ia += s
        else:
            if ty == 4:
                ty = 1
            members = fresh[ifr : ifr + s]
            ifr += s
        rings.append((int(ty), members))
        w.typology[members] = ty
    lone = fresh[ifr : ifr + max(0, n_fraud - sum(sizes))]
    w.typology[lone] = LONE
    return rings, lone


def _ring(w: _World, rng: np.random.Generator, ty: int, m: Arr) -> None:
    s = len(m)
    rid = len(w.rings)
    w.rings.append((ty, m))
    w.typology[m] = ty
    w.ring[m] = rid
    name = TYPOLOGIES[ty - 1]
    if name == "cash_out":
        _cash_out(w, rng, m, s)
    elif name == "mule":
        _mule(w, rng, m, s)
    elif name == "synthetic":
        _synthetic(w, rng, m, s)
    elif name == "ato":
        _ato(w, rng, m, s)
    else:
        _sleeper(w, rng, m, s)


def _cash_out(w: _World, rng: np.random.Generator, m: Arr, s: int) -> None:
    """New low-KYC accounts, a few emulators, virtual phones, round payments to one merchant."""
    t0 = int(rng.integers(w.t0 + w.span // 3, w.t_end - 45 * DAY))
    c = t0 + rng.integers(0, int(rng.integers(2, 21)) * DAY, s)
    w.created[m] = c
    w.kyc[m] = rng.choice(2, size=s)
    w.own_phone[m] = False
    w.n_dev[m] = rng.random(s) < 0.3  # camouflage: some keep a personal phone too
    w.own_home[m] = rng.random(s) < 0.3
    w.own_doc[m] = False
    w.friends[m] = False
    w.pay_scale[m] = 0.3
    end = c + 30 * DAY
    nd = max(1, math.ceil(s / int(rng.integers(4, 11))))
    devs = w.dev.new(nd, os=_ANDROID, emu=True)
    k = rng.integers(1, 3, s)
    acc = np.repeat(m, k)
    w.sight(
        w.e_dev, rng, acc, devs[rng.integers(0, nd, len(acc))], np.repeat(c, k),
        np.repeat(end, k), rng.integers(2, 7, len(acc)),
    )  # fmt: skip
    nph = max(1, math.ceil(s * rng.uniform(0.3, 1.0)))
    phones = w.phone.new(nph, virtual=True)
    w.sight(w.e_phone, rng, m, phones[rng.permutation(s) % nph], c, end, rng.integers(1, 3, s))
    ips = w.ip.new(int(rng.integers(1, 4)))
    w.sight(w.e_id["ip"], rng, m, ips[rng.integers(0, len(ips), s)], c, end, rng.integers(1, 4, s))
    merchant = w.payee.new(1, individual=False, cur=0)
    k = rng.integers(1, 4, s)
    t = np.repeat(c, k) + rng.integers(HOUR_S, 7 * DAY, int(k.sum()))
    t = np.minimum(t, w.t_end)
    w.pay(np.repeat(m, k), merchant, t, rng.choice(_ROUND_CENTS, size=len(t)))
    w.fraud_t[m] = c + 7 * DAY


def _mule(w: _World, rng: np.random.Generator, m: Arr, s: int) -> None:
    """A burst of openings sharing bank cards and/or ID documents, paying shared collectors."""
    t0 = int(rng.integers(w.t0 + w.span // 3, w.t_end - 90 * DAY))
    burst = int(rng.integers(1, 6)) * DAY
    late = rng.random(s) < 0.2
    c = t0 + np.where(late, rng.integers(0, 60 * DAY, s), rng.integers(0, burst, s))
    w.created[m] = c
    mode = int(rng.choice(3, p=[0.4, 0.3, 0.3]))  # 0 cards, 1 documents, 2 both
    w.kyc[m] = rng.choice([1, 2], size=s, p=[0.3, 0.7])
    w.n_dev[m] = 1
    w.own_home[m] = rng.random(s) < 0.6
    w.friends[m] = False
    w.pay_scale[m] = 0.5
    if mode in (1, 2):
        nd = max(1, s // int(rng.integers(3, 9)))
        docs = w.doc.new(nd)
        w.kyc[m] = np.maximum(w.kyc[m], 2)
        w.own_doc[m] = False
        w.sight(w.e_id["id_document"], rng, m, docs[rng.permutation(s) % nd], c, c + 3 * DAY,
                rng.integers(1, 3, s))  # fmt: skip
    if mode in (0, 2):
        nc = max(1, s // int(rng.integers(2, 7)))
        cards = w.card.new(nc)
        w.own_card[m] = rng.random(s) < 0.3
        w.sight(w.e_id["bank_card"], rng, m, cards[rng.permutation(s) % nc], c, c + 60 * DAY,
                rng.integers(1, 4, s))  # fmt: skip
    if rng.random() < 0.5:
        handlers = w.dev.new(int(rng.integers(1, 3)), os=_ANDROID, emu=False)
        sub = m[rng.random(s) < rng.uniform(0.3, 0.6)]
        if len(sub):
            cs = w.created[sub]
            w.sight(w.e_dev, rng, sub, handlers[rng.integers(0, len(handlers), len(sub))], cs,
                    cs + 60 * DAY, rng.integers(1, 5, len(sub)))  # fmt: skip
    collectors = w.payee.new(int(rng.integers(1, 4)), individual=True, cur=0)
    k = rng.integers(2, 9, s)
    cr = np.repeat(c, k)
    t = w.times(rng, cr + 3 * DAY, cr + 60 * DAY)
    cents = np.exp(rng.normal(math.log(3000.0), 0.6, len(t))) * 100
    w.pay(np.repeat(m, k), collectors[rng.integers(0, len(collectors), len(t))], t, cents)
    w.fraud_t[m] = np.minimum(c + 45 * DAY, w.t_end)


def _synthetic(w: _World, rng: np.random.Generator, m: Arr, s: int) -> None:
    """Reused ID documents, recycled or virtual phones, a device farm, then a bust-out."""
    t0 = int(rng.integers(w.t0 + int(0.6 * w.span), w.t_end - 150 * DAY))
    c = t0 + rng.integers(0, int(rng.integers(30, 121)) * DAY, s)
    w.created[m] = c
    w.kyc[m] = rng.choice([2, 3], size=s, p=[0.7, 0.3])
    w.own_doc[m] = False
    w.own_phone[m] = False
    w.n_dev[m] = 0
    w.own_home[m] = False
    w.friends[m] = False
    w.pay_scale[m] = 0.6
    bust = np.minimum(c + rng.integers(90, 300, s) * DAY, w.t_end)
    nd = max(1, s // int(rng.integers(3, 7)))
    docs = w.doc.new(nd)
    w.sight(w.e_id["id_document"], rng, m, docs[rng.permutation(s) % nd], c, c + 2 * DAY,
            rng.integers(1, 3, s))  # fmt: skip
    recycled = rng.random(s) < 0.5
    mr, mv = m[recycled], m[~recycled]
    if len(mr):
        phones = w.phone.new(len(mr), virtual=False)
        cr = w.created[mr]
        w.sight(w.e_phone, rng, mr, phones, cr, bust[recycled], rng.integers(1, 4, len(mr)))
        prev = w.prev_owners(len(mr))
        pc_ = w.created[prev]
        hi = np.minimum(pc_ + 180 * DAY, cr - YEAR)
        w.sight(w.e_phone, rng, prev, phones, pc_, hi, rng.integers(1, 4, len(mr)))
    if len(mv):
        nv = max(1, len(mv) // int(rng.integers(1, 4)))
        vphones = w.phone.new(nv, virtual=True)
        w.sight(w.e_phone, rng, mv, vphones[rng.permutation(len(mv)) % nv], w.created[mv],
                bust[~recycled], rng.integers(1, 4, len(mv)))  # fmt: skip
    nf = max(1, s // int(rng.integers(3, 9)))
    emu = bool(rng.random() < 0.7)
    farm = w.dev.new(nf, os=_ANDROID, emu=emu)
    k = rng.integers(1, 3, s)
    acc = np.repeat(m, k)
    years = (bust - c) / YEAR
    w.sight(w.e_dev, rng, acc, farm[rng.integers(0, nf, len(acc))], np.repeat(c, k),
            np.repeat(bust, k), _counts(rng, np.repeat(3 * years, k)))  # fmt: skip
    ips = w.ip.new(int(rng.integers(1, 3)))
    w.sight(w.e_id["ip"], rng, m, ips[rng.integers(0, len(ips), s)], c, bust,
            _counts(rng, 4 * years))  # fmt: skip
    k = rng.integers(1, 4, s)
    br = np.repeat(bust, k)
    t = w.times(rng, br - 3 * DAY, br)
    cents = np.exp(rng.normal(math.log(8000.0), 0.5, len(t))) * 100
    w.pay(np.repeat(m, k), w.zipf_merchants(rng, len(t)), t, cents)
    w.fraud_t[m] = bust


def _ato(w: _World, rng: np.random.Generator, m: Arr, s: int) -> None:
    """Old accounts suddenly seen on a shared set of new devices and IPs, then drained."""
    t0 = int(rng.integers(w.t_end - YEAR, w.t_end - 3 * DAY))
    t1 = min(t0 + int(rng.integers(1, 4)) * DAY, w.t_end)
    nd = max(1, math.ceil(s / int(rng.integers(4, 11))))
    devs = w.dev.new(nd, os=rng.choice([_ANDROID, _WINDOWS], size=nd), emu=rng.random(nd) < 0.3)
    k = rng.integers(1, 3, s)
    acc = np.repeat(m, k)
    w.sight(w.e_dev, rng, acc, devs[rng.integers(0, nd, len(acc))], t0, t1,
            rng.integers(1, 4, len(acc)))  # fmt: skip
    ips = w.ip.new(int(rng.integers(1, 4)))
    w.sight(w.e_id["ip"], rng, m, ips[rng.integers(0, len(ips), s)], t0, t1,
            rng.integers(1, 3, s))  # fmt: skip
    swapped = m[rng.random(s) < 0.4]
    if len(swapped):
        nv = max(1, len(swapped) // int(rng.integers(2, 5)))
        vph = w.phone.new(nv, virtual=True)
        w.sight(w.e_phone, rng, swapped, vph[rng.integers(0, nv, len(swapped))], t0, t1, 1)
    drains = w.payee.new(int(rng.integers(1, 4)), individual=True, cur=0)
    k = rng.integers(1, 4, s)
    t = w.times(rng, np.full(int(k.sum()), t0), np.full(int(k.sum()), t1))
    cents = np.exp(rng.normal(math.log(5000.0), 0.6, len(t))) * 100
    w.pay(np.repeat(m, k), drains[rng.integers(0, len(drains), len(t))], t, cents)
    w.fraud_t[m] = t0


_SLEEPER_LINKS = ("device", "phone", "ip", "email", "bank_card", "id_document", "payee")
_SLEEPER_P = np.array([0.2, 0.15, 0.2, 0.1, 0.15, 0.1, 0.1])


def _sleeper(w: _World, rng: np.random.Generator, m: Arr, s: int) -> None:
    """A chain: each member shares exactly one identifier with its one or two neighbours."""
    t0 = int(rng.integers(w.t0 + w.span // 5, w.t_end - 200 * DAY))
    c = np.minimum(t0 + rng.integers(0, int(rng.integers(100, 501)) * DAY, s), w.t_end - 30 * DAY)
    w.created[m] = c
    w.kyc[m] = rng.choice([1, 2], size=s)
    w.n_dev[m] = 1
    w.friends[m] = False
    w.pay_scale[m] = 0.3
    has_doc_link = np.zeros(s, dtype=bool)
    for i in range(s - 1):
        a, b = m[i], m[i + 1]
        p = _SLEEPER_P.copy()
        if has_doc_link[i] or has_doc_link[i + 1]:
            p[_SLEEPER_LINKS.index("id_document")] = 0.0
        kind = _SLEEPER_LINKS[int(rng.choice(len(p), p=p / p.sum()))]
        pair = np.array([a, b])
        lo = np.full(2, max(int(c[i]), int(c[i + 1])))
        hi = np.full(2, w.t_end)
        k = rng.integers(1, 3, 2)
        if kind == "device":
            w.sight(w.e_dev, rng, pair, w.dev.new(1, os=_ANDROID, emu=False), lo, hi, k)
        elif kind == "phone":
            w.sight(w.e_phone, rng, pair, w.phone.new(1, virtual=False), lo, hi, k)
        elif kind == "payee":
            friend = w.payee.new(1, individual=True, cur=0)
            kr = np.repeat(pair, k)
            t = w.times(rng, np.repeat(lo, k), np.repeat(hi, k))
            w.pay(kr, friend, t, np.exp(rng.normal(math.log(800.0), 0.7, len(t))) * 100)
        else:
            if kind == "id_document":
                has_doc_link[i] = has_doc_link[i + 1] = True
                w.kyc[pair] = np.maximum(w.kyc[pair], 2)
                w.own_doc[pair] = False
            pool = {"ip": w.ip, "email": w.email, "bank_card": w.card, "id_document": w.doc}[kind]
            w.sight(w.e_id[kind], rng, pair, pool.new(1), lo, hi, k)
    w.fraud_t[m] = np.minimum(c + rng.integers(100, 300, s) * DAY, w.t_end)


def _lone(w: _World, rng: np.random.Generator, m: Arr) -> None:
    """Fraudsters acting alone: new account, often an emulator or a virtual phone, round cash."""
    s = len(m)
    if not s:
        return
    w.typology[m] = LONE
    c = rng.integers(w.t_end - 2 * YEAR, w.t_end - 14 * DAY, s)
    w.created[m] = c
    w.kyc[m] = rng.choice(3, size=s, p=[0.4, 0.4, 0.2])
    w.friends[m] = False
    w.pay_scale[m] = 0.4
    emu = rng.random(s) < 0.5
    w.n_dev[m] = np.where(emu, 0, 1)
    if emu.any():
        me = m[emu]
        devs = w.dev.new(len(me), os=_ANDROID, emu=True)
        w.sight(w.e_dev, rng, me, devs, w.created[me], w.t_end, _counts(rng, np.full(len(me), 3.0)))
    virt = rng.random(s) < 0.5
    if virt.any():
        mv = m[virt]
        w.own_phone[mv] = False
        ph = w.phone.new(len(mv), virtual=True)
        w.sight(
            w.e_phone,
            rng,
            mv,
            ph,
            w.created[mv],
            w.created[mv] + 60 * DAY,
            rng.integers(1, 3, len(mv)),
        )
    k = rng.integers(1, 5, s)
    cr = np.repeat(c, k)
    t = w.times(rng, cr, cr + 14 * DAY)
    w.pay(np.repeat(m, k), w.zipf_merchants(rng, len(t)), t, rng.choice(_ROUND_CENTS, size=len(t)))
    w.fraud_t[m] = c + 7 * DAY


def _benign(
    w: _World,
    rng: np.random.Generator,
    household_share: float,
    office_share: float,
    campus_share: float,
    cafe_share: float,
) -> None:
    """Hard negatives: groups of legitimate accounts that share devices, IPs or phones."""
    legit = np.flatnonzero((w.typology == 0) | (w.typology == TYPOLOGIES.index("ato") + 1))
    years_left = (w.t_end - w.created) / YEAR

    # households: a tablet, the home IP, sometimes a family phone
    perm = rng.permutation(legit)
    sizes = np.array(
        _sizes_to_cover(rng, int(len(legit) * household_share), 2, 5, 1.6), dtype=np.int64
    )
    if len(sizes):
        mem = perm[: sizes.sum()]
        g = w.groups("household", sizes, mem)
        nh = len(sizes)
        cr = w.created[mem]
        tablet = rng.random(nh) < 0.7
        dev = w.dev.new(nh, os=rng.choice([_ANDROID, _IOS], size=nh, p=[0.5, 0.5]), emu=False)
        sel = tablet[g]
        w.sight(w.e_dev, rng, mem[sel], dev[g[sel]], cr[sel], w.t_end,
                _counts(rng, 2 * years_left[mem[sel]]))  # fmt: skip
        shared_ip = rng.random(nh) < 0.95
        ips = w.ip.new(nh)
        sel = shared_ip[g]
        w.own_home[mem[sel]] = False
        w.sight(w.e_id["ip"], rng, mem[sel], ips[g[sel]], cr[sel], w.t_end,
                _counts(rng, 3 * years_left[mem[sel]]))  # fmt: skip
        fam = rng.random(nh) < 0.25
        phones = w.phone.new(nh, virtual=False)
        sel = fam[g]
        w.sight(w.e_phone, rng, mem[sel], phones[g[sel]], cr[sel], w.t_end,
                rng.integers(1, 3, int(sel.sum())))  # fmt: skip

    # offices (weekday working hours) and campuses: one public IP shared by 10-200 accounts
    for kind, share, lo, alpha in (
        ("office", office_share, 10, 1.5),
        ("campus", campus_share, 30, 1.2),
    ):
        perm = rng.permutation(legit)
        sizes = np.array(
            _sizes_to_cover(rng, int(len(legit) * share), lo, 200, alpha), dtype=np.int64
        )
        if not len(sizes):
            continue
        mem = perm[: sizes.sum()]
        g = w.groups(kind, sizes, mem)
        ips = w.ip.new(len(sizes))
        w.sight(w.e_id["ip"], rng, mem, ips[g], w.created[mem], w.t_end,
                _counts(rng, 4 * years_left[mem], base=2), profile=_WORK_HOURS,
                weekdays=kind == "office")  # fmt: skip

    # internet cafes: a handful of PCs used by dozens of unrelated people, one IP
    perm = rng.permutation(legit)
    sizes = np.array(
        _sizes_to_cover(rng, int(len(legit) * cafe_share), 15, 80, 1.0), dtype=np.int64
    )
    if len(sizes):
        mem = perm[: sizes.sum()]
        g = w.groups("cafe", sizes, mem)
        npc = rng.integers(3, 13, len(sizes))
        first = np.concatenate([[0], np.cumsum(npc)[:-1]])
        pcs = w.dev.new(int(npc.sum()), os=_WINDOWS, emu=False)
        k = rng.integers(1, 5, len(mem))
        acc = np.repeat(mem, k)
        gr = np.repeat(g, k)
        dev = pcs[first[gr] + (rng.random(len(acc)) * npc[gr]).astype(np.int64)]
        t = w.times(rng, w.created[acc], np.full(len(acc), w.t_end))
        w.e_dev.add(acc, dev, t)
        w.e_id["ip"].add(acc, w.ip.new(len(sizes))[gr], t)

    # recycled phones: an old account's number, dropped, reissued to a new customer years later
    a, b = w.recycled_a, w.recycled_b
    n_pairs = len(a)
    if n_pairs:
        w.groups("recycled_phone", np.full(n_pairs, 2), np.stack([a, b], axis=1).ravel())
        recycled = w.phone.new(n_pairs, virtual=False)
        later = w.phone.new(n_pairs, virtual=False)
        ca = w.created[a]
        drop = ca + rng.integers(60, 240, n_pairs) * DAY
        w.sight(w.e_phone, rng, a, recycled, ca, drop, rng.integers(1, 4, n_pairs))
        w.sight(w.e_phone, rng, a, later, drop + 30 * DAY, w.t_end,
                _counts(rng, (w.t_end - drop) / YEAR))  # fmt: skip
        w.sight(w.e_phone, rng, b, recycled, w.created[b], w.t_end,
                _counts(rng, years_left[b]))  # fmt: skip


def _recycled_setup(w: _World, rng: np.random.Generator, recycled_phone_share: float) -> None:
    """Choose the benign recycled-number pairs and the pool of former owners for synthetics."""
    pure = np.flatnonzero(w.typology == 0)
    old = rng.permutation(pure[w.created[pure] < w.t0 + w.span // 4])
    new = rng.permutation(pure[w.created[pure] > w.t0 + int(0.8 * w.span)])
    n_pairs = min(int(w.n * recycled_phone_share / 2), len(old) // 2, len(new))
    w.recycled_a, w.recycled_b = old[:n_pairs], new[:n_pairs]
    w.own_phone[w.recycled_a] = False
    w.own_phone[w.recycled_b] = False
    w.prev_pool = old[n_pairs:]


def _normal(w: _World, rng: np.random.Generator, payments_per_year: float) -> None:
    """Everyday life for every account (fraud roles have switched parts of it off)."""
    n = w.n
    acc = np.arange(n, dtype=np.int64)
    years = (w.t_end - w.created) / YEAR
    end = np.full(n, w.t_end)

    # personal devices: one or two; with two, half the time the second replaces the first
    nd = w.n_dev.astype(np.int64)
    owner = np.repeat(acc, nd)
    second = np.zeros(len(owner), dtype=bool)
    second[1:] = owner[1:] == owner[:-1]
    os_ = rng.choice(4, size=len(owner), p=[0.6, 0.32, 0.05, 0.03])
    emu = (os_ == _ANDROID) & (rng.random(len(owner)) < 0.004)  # developers, gamers
    devs = w.dev.new(len(owner), os=os_, emu=emu)
    co = w.created[owner]
    switch = co + ((w.t_end - co) * rng.uniform(0.2, 0.8, n)[owner]).astype(np.int64)
    upgrade = (rng.random(n) < 0.5)[owner] & (nd[owner] == 2)
    first_of_upgrade = upgrade & ~second
    lo = np.where(upgrade & second, switch, co)
    hi = np.where(first_of_upgrade, switch, w.t_end)
    w.sight(w.e_dev, rng, owner, devs, lo, hi, _counts(rng, 4 * (hi - lo) / YEAR))

    # own phone (a few have a second one), seen at sign-up and now and then
    has = w.own_phone
    k2 = (rng.random(n) < 0.08) & has
    owners = np.concatenate([acc[has], acc[k2]])
    phones = w.phone.new(len(owners), virtual=False)
    w.sight(w.e_phone, rng, owners, phones, w.created[owners], w.t_end,
            _counts(rng, 1.0 * years[owners]))  # fmt: skip

    # email: one each
    emails = w.email.new(n)
    w.sight(w.e_id["email"], rng, acc, emails, w.created, end, _counts(rng, 0.5 * years))

    # home IP (household members use the household's)
    h = acc[w.own_home]
    w.sight(w.e_id["ip"], rng, h, w.ip.new(len(h)), w.created[h], w.t_end,
            _counts(rng, 3 * years[h]))  # fmt: skip

    # carrier NAT: a few hundred mobile IPs each shared by thousands of accounts
    n_nat = max(2, round(n * 1.6 / 3000))
    nat = w.ip.new(n_nat)
    p = 1.0 / (np.arange(n_nat) + 3.0)
    p /= p.sum()
    mobile = acc[rng.random(n) < 0.85]
    k = rng.integers(1, 4, len(mobile))
    a = np.repeat(mobile, k)
    ip = rng.choice(n_nat, size=len(a), p=p)
    pair = _distinct(a * n_nat + ip)
    a, ip = pair // n_nat, pair % n_nat
    w.sight(w.e_id["ip"], rng, a, nat[ip], w.created[a], w.t_end, rng.integers(1, 5, len(a)))
    order = np.argsort(ip, kind="stable")
    sizes = np.bincount(ip, minlength=n_nat)
    keep = sizes > 0
    w.groups("carrier_nat", sizes[keep], a[order])

    # ID document for ID-verified accounts, seen at verification
    d = acc[(w.kyc >= 2) & w.own_doc]
    w.sight(w.e_id["id_document"], rng, d, w.doc.new(len(d)), w.created[d],
            w.created[d] + 3 * DAY, rng.integers(1, 3, len(d)))  # fmt: skip

    # bank cards: one, sometimes two
    cc = w.own_card
    owners = np.concatenate([acc[cc], acc[cc & (rng.random(n) < 0.15)]])
    w.sight(w.e_id["bank_card"], rng, owners, w.card.new(len(owners)), w.created[owners],
            w.t_end, _counts(rng, 1.0 * years[owners]))  # fmt: skip

    # merchant payments: heavy-tailed activity, Zipf popularity, so a few payees are supernodes
    activity = np.exp(rng.normal(0.0, 0.8, n)) * payments_per_year * w.pay_scale / math.exp(0.32)
    k = rng.poisson(activity * np.maximum(years, 7 / 365))
    a = np.repeat(acc, k)
    merchant = w.zipf_merchants(rng, len(a))
    t = w.times(rng, w.created[a], np.full(len(a), w.t_end))
    cents = w.merchant_median[merchant] * np.exp(rng.normal(0.0, 0.8, len(a)))
    round_ = rng.random(len(a)) < 0.04
    cents = np.where(round_, rng.choice(_ROUND_CENTS[:3] // 5, size=len(a)), cents)
    w.pay(a, merchant, t, cents)

    # friends and family: a few individual payees each
    f = acc[w.friends & (rng.random(n) < 0.6)]
    nf = rng.integers(1, 4, len(f))
    a = np.repeat(f, nf)
    friend = w.individual_pool[rng.integers(0, len(w.individual_pool), len(a))]
    kk = rng.integers(1, 4, len(a))
    a2 = np.repeat(a, kk)
    t = w.times(rng, w.created[a2], np.full(len(a2), w.t_end))
    cents = np.where(
        rng.random(len(a2)) < 0.5,
        rng.choice(np.array([5000, 10000, 20000, 52000, 100000, 131400]), size=len(a2)),
        np.exp(rng.normal(math.log(300.0), 1.0, len(a2))) * 100,
    )
    w.pay(a2, np.repeat(friend, kk), t, cents)


def _labels(
    w: _World, rng: np.random.Generator, fraud_label_rate: float, legit_label_rate: float,
    label_noise: float,
) -> tuple[Arr, Arr, Arr]:  # fmt: skip
    """Partial, delayed, noisy labels: chargebacks for some fraud, reviews for a little legit."""
    base = np.array([0.0, 0.5, 0.4, 0.3, 0.55, 0.1, 0.35])  # by typology code
    fraud = w.typology > 0
    p = base[w.typology]
    if fraud.any():
        p = np.clip(p * fraud_label_rate / p[fraud].mean(), 0.0, 1.0)
    fl = fraud & (rng.random(w.n) < p)
    ft = w.fraud_t + rng.integers(14, 120, w.n) * DAY
    fl &= ft <= w.t_end
    ll = ~fraud & (rng.random(w.n) < legit_label_rate) & (w.created + DAY < w.t_end)
    lt = w.created + DAY + (rng.random(w.n) * (w.t_end - w.created - DAY)).astype(np.int64)
    who = np.flatnonzero(fl | ll)
    label = fl[who].copy()  # True = fraud
    when = np.where(fl[who], ft[who], lt[who])
    when = np.maximum(when, w.created[who] + 3600)
    flip = rng.random(len(who)) < label_noise
    label ^= flip
    return who, label, when


# --------------------------------------------------------------------------------------------
# Strings
# --------------------------------------------------------------------------------------------


def _ip_strings(n: int, salt: int) -> pa.Array:
    allowed = np.array([o for o in range(1, 224) if o not in (10, 100, 127, 169, 172, 192, 198)])
    v = _scramble(np.arange(n), len(allowed) << 24, salt)
    octets = [allowed[v >> 24], (v >> 16) & 255, (v >> 8) & 255, v & 255]
    return pc.binary_join_element_wise(*[_int_str(o) for o in octets], ".")


def _email_strings(rng: np.random.Generator, n: int, salt: int) -> pa.Array:
    space = max(10**7, 10 ** len(str(2 * n)))
    num = _scramble(np.arange(n), space, salt)
    domain = rng.choice(len(_EMAIL_DOMAINS), size=n, p=_EMAIL_DOMAIN_P)
    sur = pa.array(_SURNAMES).take(pa.array(rng.integers(0, len(_SURNAMES), n)))
    given = pa.array(_GIVEN).take(pa.array(rng.integers(0, len(_GIVEN), n)))
    sep = pa.array(["", ".", "_", ""]).take(pa.array(rng.integers(0, 4, n)))
    name = _join(given, sep, sur)
    qq = domain == 0
    local = pc.if_else(pa.array(qq), _int_str(num + 10**8 + space), _join(name, _int_str(num)))
    return _join(local, "@", pa.array(_EMAIL_DOMAINS).take(pa.array(domain)))


def _doc_strings(n: int, salt: int) -> pa.Array:
    """18-character resident identity numbers with a valid ISO 7064 check character."""
    n_days = 52 * 365  # born 1955..2006
    space = len(_ID_REGIONS) * n_days * 1000
    v = _scramble(np.arange(n), space, salt)
    region = np.array(_ID_REGIONS)[v // (n_days * 1000)]
    day = (v // 1000) % n_days
    seq = v % 1000
    date = np.datetime64("1955-01-01") + day.astype("timedelta64[D]")
    y = date.astype("datetime64[Y]").astype(np.int64) + 1970
    mo = date.astype("datetime64[M]").astype(np.int64) % 12 + 1
    d = (date - date.astype("datetime64[M]")).astype(np.int64) + 1
    body = np.concatenate(
        [_digits(region, 6), _digits(y, 4), _digits(mo, 2), _digits(d, 2), _digits(seq, 3)], axis=1
    )
    weights = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2])
    check = np.frombuffer(b"10X98765432", dtype=np.uint8)[((body - 48) @ weights) % 11]
    return _fixed([body, check[:, None]])


def _card_strings(n: int, salt: int) -> pa.Array:
    """16-digit UnionPay-style card numbers with a valid Luhn check digit."""
    v = _scramble(np.arange(n), len(_CARD_BINS) * 10**9, salt)
    bins = np.array(_CARD_BINS)[v // 10**9]
    body = np.concatenate([_const("62", n), _digits(bins, 4), _digits(v % 10**9, 9)], axis=1)
    dig = (body - 48).astype(np.int64)
    doubled = dig[:, ::-1][:, ::2] * 2  # rightmost payload digit and every second one leftwards
    total = (doubled - 9 * (doubled > 9)).sum(axis=1) + dig[:, ::-1][:, 1::2].sum(axis=1)
    check = (10 - total % 10) % 10
    return _fixed([body, _digits(check, 1)])


def _first_seen_rank(n: int, ent: Arr, t: Arr) -> Arr:
    """New index for each entity: by first sighting time, never-seen ones last (by index)."""
    first = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    if len(ent):
        order = np.lexsort((t, ent))
        e_sorted = ent[order]
        starts = np.flatnonzero(np.r_[True, e_sorted[1:] != e_sorted[:-1]])
        first[e_sorted[starts]] = t[order][starts]
    by = np.lexsort((np.arange(n), first))
    rank = np.empty(n, dtype=np.int64)
    rank[by] = np.arange(n)
    return rank


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


# No quoting: the generator never writes a comma, quote or newline inside a value.
_CSV = pacsv.WriteOptions(quoting_style="none", quoting_header="none")
_CHUNK = 1 << 21


def _csv_column(col: Any) -> Any:
    if pa.types.is_timestamp(col.type):
        return pc.strftime(col.cast(pa.timestamp("s", tz="UTC")), format="%Y-%m-%dT%H:%M:%S+00:00")
    if pa.types.is_decimal(col.type):
        return col.cast(pa.string())
    return col


def _write(
    out: Path, name: str, fmt: str, n: int, build: Callable[[int, int], dict[str, Any]]
) -> int:
    """Write table ``name`` of ``n`` rows, built ``_CHUNK`` rows at a time by ``build(lo, hi)``
    so that the strings of a 15M-row table never all exist at once."""
    schema = SCHEMAS[name]
    writer: Any
    if fmt == "parquet":
        writer = pq.ParquetWriter(out / f"{name}.parquet", schema, compression="zstd")
    else:
        plain = [pa.types.is_timestamp(f.type) or pa.types.is_decimal(f.type) for f in schema]
        csv_schema = pa.schema(
            [
                pa.field(f.name, pa.string() if p else f.type)
                for f, p in zip(schema, plain, strict=True)
            ]
        )
        writer = pacsv.CSVWriter(out / f"{name}.csv", csv_schema, write_options=_CSV)
    try:
        for lo in range(0, max(n, 1), _CHUNK):
            hi = min(n, lo + _CHUNK)
            table = pa.table(build(lo, hi)).select(schema.names).cast(schema)
            if fmt == "csv":
                table = pa.table([_csv_column(c) for c in table.columns], schema=csv_schema)
            writer.write_table(table)
    finally:
        writer.close()
    return n


def _write_truth(path: Path, columns: dict[str, Any]) -> None:
    pacsv.write_csv(pa.table(columns), path, write_options=_CSV)


def _take(values: pa.Array, idx: Arr) -> pa.Array:
    return values.take(pa.array(np.asarray(idx, dtype=np.int64)))


def _emit_devices(w: _World, o: _Out) -> None:
    # devices, numbered in order of first login
    _, e, t = w.e_dev.arrays()
    drank = _first_seen_rank(w.dev.n, e, t)
    n_seen = int(np.count_nonzero(np.bincount(e, minlength=w.dev.n)))  # unseen ones are left out
    dorder = np.argsort(drank)
    dev_ids = _ids("D", n_seen, 8)
    oses = pa.array(list(_OS))
    dev_os, dev_emu = w.dev.attr("os"), w.dev.attr("emu").astype(bool)
    o.write("devices", n_seen, lambda lo, hi: {
        "device_id": dev_ids.slice(lo, hi - lo),
        "os": _take(oses, dev_os[dorder[lo:hi]]),
        "is_emulator": pa.array(dev_emu[dorder[lo:hi]]),
    })  # fmt: skip
    del e, t
    o.edges(w.e_dev, drank, dev_ids, "device_id", "account_devices")


def _emit_phones(w: _World, o: _Out, plan: _PhonePlan) -> None:
    seed = w.seed
    # phones: numbers from the region's plan, spelt one of six ways (per row)
    virtual = w.phone.attr("virtual").astype(bool)
    nph = w.phone.n
    nsn = np.zeros((nph, plan.length), dtype=np.uint8)
    prefix = np.zeros(nph, dtype=np.int64)
    rest = plan.length - plan.plen
    for flag, prefixes, salt in ((False, plan.regular, 11), (True, plan.virtual, 13)):
        sel = np.flatnonzero(virtual == flag)
        v = _scramble(np.arange(len(sel)), len(prefixes) * 10**rest, seed * 7919 + salt)
        prefix[sel] = np.array(prefixes)[v // 10**rest]
        nsn[sel] = np.concatenate(
            [_digits(prefix[sel], plan.plen), _digits(v % 10**rest, rest)], axis=1
        )
    spellings = pa.concat_arrays(_phone_strings(plan, nsn))
    del nsn
    _, e, t = w.e_phone.arrays()
    porder = np.argsort(_first_seen_rank(nph, e, t))  # the phones table in first-seen order
    n_seen = int(np.count_nonzero(np.bincount(e, minlength=nph)))  # unused ones are left out
    del e, t
    table_fmt = o.srng.choice(6, size=nph, p=_PHONE_TABLE_P)
    carriers = sorted(set(plan.carriers.values()))
    cmap = np.zeros(10**plan.plen, dtype=np.int64)
    for pfx, cname in plan.carriers.items():
        cmap[pfx] = carriers.index(cname)
    carrier_names = pa.array(carriers)
    o.write("phones", n_seen, lambda lo, hi: {
        "phone": _take(spellings, table_fmt[porder[lo:hi]] * nph + porder[lo:hi]),
        "carrier": _take(carrier_names, cmap[prefix[porder[lo:hi]]]),
        "is_virtual": pa.array(virtual[porder[lo:hi]]),
    })  # fmt: skip
    o.edges(w.e_phone, np.arange(nph), spellings, "phone", "account_phones", nph, _PHONE_ROW_P)


def _emit_payees_payments(w: _World, o: _Out, region: str) -> Arr:
    """Returns the number of distinct accounts that paid each payee."""
    seed = w.seed
    # payees: popular merchants, colluding merchants, individuals; numbered by first payment
    p_acc = np.concatenate(w.pay_acc)
    p_payee = np.concatenate(w.pay_payee)
    p_t = np.concatenate(w.pay_t)
    p_cents = np.round(np.concatenate(w.pay_cents)).astype(np.int64)
    w.pay_acc, w.pay_payee, w.pay_t, w.pay_cents = [], [], [], []
    individual = w.payee.attr("individual").astype(bool)
    cur = w.payee.attr("cur").astype(np.int64)
    npay = w.payee.n
    n_merch = int((~individual).sum())
    prank = np.empty(npay, dtype=np.int64)
    for flag, offset in ((False, 0), (True, n_merch)):
        sel = np.flatnonzero(individual == flag)
        local = np.full(npay, -1, dtype=np.int64)
        local[sel] = np.arange(len(sel))
        mask = individual[p_payee] == flag
        prank[sel] = _first_seen_rank(len(sel), local[p_payee[mask]], p_t[mask]) + offset
    payee_ids = pa.concat_arrays([_ids("P", n_merch, 7), _ids("U", npay - n_merch, 7)])
    porder = np.argsort(prank)
    nr = _rng(seed, "payee-names")

    def pick(words: Sequence[str]) -> pa.Array:
        return _take(pa.array(list(words)), nr.integers(0, len(words), npay))

    shop = _join(pick(_BRANDS), " ", pick(_CATEGORIES))
    person = _join(pick([x.title() for x in _SURNAMES]), " ", pick([x.title() for x in _GIVEN]))
    names = pc.if_else(pa.array(individual), person, shop)
    kinds = pa.array(["merchant", "individual"])
    o.write("payees", npay, lambda lo, hi: {
        "payee_id": payee_ids.slice(lo, hi - lo),
        "kind": _take(kinds, individual[porder[lo:hi]]),
        "name": _take(names, porder[lo:hi]),
    })  # fmt: skip
    home_cur = _CURRENCY.get(region, "USD")
    currencies = pa.array([home_cur, "USD" if home_cur != "USD" else "EUR"])
    s = np.argsort(p_t, kind="stable")
    p_acc, p_payee, p_t, p_cents = o.arank[p_acc[s]], p_payee[s], p_t[s], p_cents[s]
    del s
    pay_ids = _ids("T", len(p_t), 9)
    o.write("payments", len(p_t), lambda lo, hi: {
        "payment_id": pay_ids.slice(lo, hi - lo),
        "account_id": _take(o.acc_ids, p_acc[lo:hi]),
        "payee_id": _take(payee_ids, prank[p_payee[lo:hi]]),
        "amount": _decimal(p_cents[lo:hi]),
        "currency": _take(currencies, cur[p_payee[lo:hi]]),
        "paid_at": _ts(p_t[lo:hi]),
    })  # fmt: skip
    pairs = _distinct(p_payee.astype(np.int64) * w.n + p_acc)
    payee_accounts = np.bincount(pairs // w.n, minlength=npay)
    return payee_accounts


def _emit_identifiers(w: _World, o: _Out) -> None:
    seed = w.seed
    # account identifiers: ip, email (spelt with stray case and spaces), id_document, bank_card
    emails = _email_strings(_rng(seed, "emails"), w.email.n, seed * 31 + 2)
    values = {
        "ip": _ip_strings(w.ip.n, seed * 31 + 1),
        "email": pa.concat_arrays([
            emails,
            pc.utf8_capitalize(emails),
            pc.utf8_upper(emails),
            _join(" ", emails, " "),
            _join(emails, " "),
        ]),
        "id_document": _doc_strings(w.doc.n, seed * 31 + 3),
        "bank_card": _card_strings(w.card.n, seed * 31 + 4),
    }  # fmt: skip
    del emails
    ids_a, ids_k, ids_v, ids_t = [], [], [], []
    base = 0
    for ki, kind in enumerate(ID_KINDS):
        a, e, t = w.e_id[kind].arrays()
        w.e_id[kind] = _Edges()
        v = e.astype(np.int64)
        if kind == "email":
            v += o.srng.choice(5, size=len(v), p=[0.82, 0.08, 0.04, 0.03, 0.03]) * w.email.n
        ids_a.append(a)
        ids_k.append(np.full(len(a), ki, dtype=np.int8))
        ids_v.append(v + base)
        ids_t.append(t)
        base += len(values[kind])
    all_values = pa.concat_arrays([values[k] for k in ID_KINDS])
    del values
    t = np.concatenate(ids_t)
    s = np.argsort(t, kind="stable")
    t = t[s]
    a = o.arank[np.concatenate(ids_a)[s]]
    k = np.concatenate(ids_k)[s]
    v = np.concatenate(ids_v)[s]
    del s, ids_a, ids_k, ids_v, ids_t
    id_kinds = pa.array(list(ID_KINDS))
    o.write("account_identifiers", len(t), lambda lo, hi: {
        "account_id": _take(o.acc_ids, a[lo:hi]),
        "kind": _take(id_kinds, k[lo:hi]),
        "value": _take(all_values, v[lo:hi]),
        "seen_at": _ts(t[lo:hi]),
    })  # fmt: skip


@dataclass
class _Out:
    """Where and how tables are written, and what every table needs: account ids by rank."""

    out: Path
    fmt: str
    srng: np.random.Generator
    arank: Arr
    acc_ids: pa.Array
    counts: dict[str, int] = field(default_factory=dict)

    def write(self, name: str, n: int, build: Callable[[int, int], dict[str, Any]]) -> None:
        self.counts[name] = _write(self.out, name, self.fmt, n, build)

    def edges(
        self,
        e: _Edges,
        rank: Arr,
        values: pa.Array,
        col: str,
        name: str,
        stride: int = 0,
        variants: Sequence[float] = (1.0,),
    ) -> None:
        """Write one account-to-entity table in time order; with ``variants``, each row picks
        one of several spellings of its entity (spelling i of entity j is values[i*stride+j])."""
        a, ent, t = e.arrays()
        e.acc, e.ent, e.t = [], [], []
        o = np.argsort(t, kind="stable")
        a, ent, t = self.arank[a[o]], rank[ent[o]], t[o]
        if len(variants) > 1:
            ent = ent + self.srng.choice(len(variants), size=len(t), p=variants) * stride
        self.write(name, len(t), lambda lo, hi: {
            "account_id": _take(self.acc_ids, a[lo:hi]),
            col: _take(values, ent[lo:hi]),
            "seen_at": _ts(t[lo:hi]),
        })  # fmt: skip


def generate(
    out: Path,
    truth: Path,
    accounts: int,
    seed: int,
    fmt: str = "parquet",
    default_region: str = "CN",
    *,
    years: float = 3.0,
    fraud_rate: float = 0.02,
    ring_share: float = 0.7,
    household_share: float = 0.3,
    office_share: float = 0.08,
    campus_share: float = 0.05,
    cafe_share: float = 0.03,
    recycled_phone_share: float = 0.01,
    foreign_share: float = 0.02,
    payments_per_year: float = 6.0,
    fraud_label_rate: float = 0.35,
    legit_label_rate: float = 0.03,
    label_noise: float = 0.015,
) -> dict[str, int]:
    """Write a synthetic bank (contract v1) into ``out`` and its ground truth into ``truth``.

    ``fmt`` is ``"parquet"`` or ``"csv"``; ``default_region`` is the ISO region whose mobile
    numbers, currency and time zone the bank uses. The keyword-only knobs set the mix: the
    fraud share of accounts, the share of fraud in rings (the rest are lone fraudsters), the
    share of legitimate accounts in each kind of benign group, activity and labelling rates.
    Returns the number of rows written per table plus ``truth_*`` counts.
    """
    if fmt not in ("parquet", "csv"):
        raise ValueError(f"fmt must be 'parquet' or 'csv', not {fmt!r}")
    if accounts < 1:
        raise ValueError("accounts must be at least 1")
    region = default_region.upper()
    plan = _phone_plan(region)
    out, truth = Path(out), Path(truth)
    out.mkdir(parents=True, exist_ok=True)
    truth.mkdir(parents=True, exist_ok=True)

    w = _World(accounts, seed, region, years, _UTC_OFFSET_H.get(region, 0))
    country = _accounts(w, _rng(seed, "accounts"), foreign_share)
    _merchants(w, _rng(seed, "merchants"))
    rings, lone = _choose_fraud(w, _rng(seed, "fraud"), fraud_rate, ring_share)
    _recycled_setup(w, _rng(seed, "recycled"), recycled_phone_share)
    rr = _rng(seed, "rings")
    for ty, members in rings:
        _ring(w, rr, ty, members)
    _lone(w, _rng(seed, "lone"), lone)
    _benign(w, _rng(seed, "benign"), household_share, office_share, campus_share, cafe_share)
    _normal(w, _rng(seed, "normal"), payments_per_year)
    lab_who, lab_fraud, lab_when = _labels(
        w, _rng(seed, "labels"), fraud_label_rate, legit_label_rate, label_noise
    )

    srng = _rng(seed, "strings")
    # accounts, numbered in order of creation
    order = np.argsort(w.created, kind="stable")
    arank = np.empty(w.n, dtype=np.int64)
    arank[order] = np.arange(w.n)
    acc_ids = _ids("A", w.n, 7)
    o = _Out(out, fmt, srng, arank, acc_ids)
    countries = pa.array([region, *[c for c in _FOREIGN if c != region]])
    o.write("accounts", w.n, lambda lo, hi: {
        "account_id": acc_ids.slice(lo, hi - lo),
        "created_at": _ts(w.created[order[lo:hi]]),
        "kyc_level": pa.array(w.kyc[order[lo:hi]]),
        "country": _take(countries, country[order[lo:hi]]),
    })  # fmt: skip
    _emit_devices(w, o)
    _emit_phones(w, o, plan)
    payee_accounts = _emit_payees_payments(w, o, region)
    _emit_identifiers(w, o)
    counts = o.counts

    lo_ = np.argsort(lab_when, kind="stable")
    lab_acc, lab_f, lab_t = arank[lab_who[lo_]], lab_fraud[lo_], lab_when[lo_]
    label_names = pa.array(["legit", "fraud"])
    o.write("labels", len(lab_t), lambda lo, hi: {
        "account_id": _take(acc_ids, lab_acc[lo:hi]),
        "label": _take(label_names, lab_f[lo:hi]),
        "labelled_at": _ts(lab_t[lo:hi]),
    })  # fmt: skip

    # ground truth
    typ_names = pa.array(list(_TYPO_NAMES))
    ring_ids = _ids("R", max(1, len(w.rings)), 4)
    typology = w.typology[order]
    is_fraud = typology > 0
    ring_o = w.ring[order]
    none = pa.scalar(None, pa.string())
    _write_truth(truth / "accounts.csv", {
        "account_id": acc_ids,
        "is_fraud": pa.array(is_fraud),
        "ring_id": pc.if_else(pa.array(ring_o >= 0), _take(ring_ids, np.maximum(ring_o, 0)), none),
        "typology": pc.if_else(pa.array(is_fraud), _take(typ_names, typology), none),
    })  # fmt: skip
    r_members = [np.sort(arank[m]) for _, m in w.rings]
    r_idx = np.repeat(np.arange(len(w.rings)), [len(m) for m in r_members]).astype(np.int64)
    r_acc = np.concatenate(r_members) if r_members else np.zeros(0, dtype=np.int64)
    r_ty = np.array([ty for ty, _ in w.rings], dtype=np.int64)
    _write_truth(truth / "rings.csv", {
        "ring_id": _take(ring_ids, r_idx),
        "typology": _take(typ_names, r_ty[r_idx] if len(r_idx) else r_idx),
        "account_id": _take(acc_ids, r_acc),
    })  # fmt: skip
    g_idx = np.concatenate([g for g, _ in w.group_rows]).astype(np.int64)
    g_acc = arank[np.concatenate([m for _, m in w.group_rows]).astype(np.int64)]
    go = np.lexsort((g_acc, g_idx))
    g_kind = np.array(w.groups_kind, dtype=np.int64)
    group_ids = _ids("G", max(1, w.n_groups), 7)
    _write_truth(truth / "benign_groups.csv", {
        "group_id": _take(group_ids, g_idx[go]),
        "kind": _take(pa.array(list(BENIGN_KINDS)), g_kind[g_idx[go]]),
        "account_id": _take(acc_ids, g_acc[go]),
    })  # fmt: skip

    counts["truth_fraud_accounts"] = int(is_fraud.sum())
    counts["truth_ring_accounts"] = len(r_acc)
    counts["truth_lone_accounts"] = int((typology == LONE).sum())
    counts["truth_rings"] = len(w.rings)
    for i, name in enumerate(TYPOLOGIES):
        counts[f"truth_rings_{name}"] = sum(1 for ty, _ in w.rings if ty == i + 1)
    counts["truth_benign_groups"] = w.n_groups
    counts["truth_benign_rows"] = len(g_idx)
    for i, name in enumerate(BENIGN_KINDS):
        counts[f"truth_benign_groups_{name}"] = int((g_kind == i).sum())
    counts["truth_labels_fraud"] = int(lab_fraud.sum())
    counts["truth_labels_legit"] = int((~lab_fraud).sum())
    counts["truth_top_payee_accounts"] = int(payee_accounts.max()) if len(payee_accounts) else 0
    params = {
        "accounts": accounts, "seed": seed, "fmt": fmt, "default_region": region,
        "years": years, "fraud_rate": fraud_rate, "ring_share": ring_share,
        "household_share": household_share, "office_share": office_share,
        "campus_share": campus_share, "cafe_share": cafe_share,
        "recycled_phone_share": recycled_phone_share, "foreign_share": foreign_share,
        "payments_per_year": payments_per_year, "fraud_label_rate": fraud_label_rate,
        "legit_label_rate": legit_label_rate, "label_noise": label_noise,
    }  # fmt: skip
    manifest = {
        "contract": CONTRACT_VERSION,
        "generator": "ringscope.synth.generate",
        "world_end": "2025-06-30T00:00:00+00:00",
        "parameters": params,
        "counts": counts,
    }
    (truth / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return counts
