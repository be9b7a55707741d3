"""Phone numbers of a region: valid mobile prefixes and formats found from phonenumbers' own
metadata, and the six ways one number is spelt."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import phonenumbers
import pyarrow as pa
from phonenumbers import carrier as pn_carrier

from ringscope.synth.arrays import Arr, _const, _fixed

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
