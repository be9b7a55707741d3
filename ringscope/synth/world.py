"""The world under construction: its clock, the typology and benign-group codes, per-region
conventions, and the per-account arrays, entity pools and edge lists that every stage adds to."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ringscope.synth.arrays import Arr, ArrLike, _rng
from ringscope.synth.params import WorldParams
from ringscope.synth.schema import ID_KINDS

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
_ROUND_CENTS = np.array([500, 1000, 2000, 3000, 5000], dtype=np.int64) * 100


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
    def __init__(
        self,
        n: int,
        seed: int,
        region: str,
        years: float,
        tz_hours: int,
        params: WorldParams | None = None,
    ) -> None:
        self.n = n
        self.seed = seed
        self.p = params or WorldParams()  # the world's mechanics
        self._streams: dict[str, np.random.Generator] = {}
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
        # Sleeper rings that woke together inside the data (``rings._wake``); the others leave
        # only their chain of shared identifiers, and the evaluation reports the two apart.
        self.woke: set[int] = set()
        # Ring members that opened after their ring struck, on its identifiers (rings._return).
        self.returned = np.zeros(n, dtype=bool)
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
        # households, for the stage that ties families (and fraudsters' own families) together:
        # members, household index per member, each household's IP, whether the household uses it
        self.hh_members = np.zeros(0, dtype=np.int64)
        self.hh_index = np.zeros(0, dtype=np.int64)
        self.hh_ip = np.zeros(0, dtype=np.int64)
        self.hh_shares_ip = np.zeros(0, dtype=bool)

    def stream(self, name: str) -> np.random.Generator:
        """A named random stream of this world's seed, kept across calls. Mechanics added after
        the default world was fixed draw only from these, and only when switched on, so the
        default world's streams (and bytes) stay exactly as they were."""
        if name not in self._streams:
            self._streams[name] = _rng(self.seed, name)
        return self._streams[name]

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

    def _edge_lists(self) -> tuple[_Edges, ...]:
        return (self.e_dev, self.e_phone, *(self.e_id[k] for k in ID_KINDS))

    def row_marks(self) -> tuple[int, ...]:
        """How many row chunks each edge list and the payments hold now (for :meth:`delay`)."""
        return (*(len(e.t) for e in self._edge_lists()), len(self.pay_t))

    def delay(self, since: tuple[int, ...], delta: Arr) -> None:
        """The rows added after ``since`` (:meth:`row_marks`) moved ``delta[account]`` seconds
        later, at most to the world's end: an account's life so far, lived later."""
        for e, start in zip(self._edge_lists(), since[:-1], strict=True):
            for i in range(start, len(e.t)):
                e.t[i] = np.minimum(e.t[i] + delta[e.acc[i]], self.t_end)
        for i in range(since[-1], len(self.pay_t)):
            self.pay_t[i] = np.minimum(self.pay_t[i] + delta[self.pay_acc[i]], self.t_end)

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
