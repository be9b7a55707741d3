"""Validating and normalising one batch of a contract table, vectorised with pyarrow.

Each ``normalise`` call takes a contract-shaped batch of strings and returns the typed rows that
passed every check plus, for each refused row, the first field that failed and why.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

import numpy as np
import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc

from ringscope.ingest.contract import (
    AMOUNT_SCALE,
    CONTROL_CHARACTERS,
    IDENTIFIER_KINDS,
    KYC_LEVELS,
    LABEL_VALUES,
    MAX_KEY_CHARS,
    PAYEE_KINDS,
    TIMESTAMP_MAX,
    TIMESTAMP_MIN,
    Reason,
    Table,
)

TS = pa.timestamp("ms", tz="UTC")
NO_CURRENCY = "XXX"  # ISO 4217 "no currency": payments whose currency is not given
_TRUE = ["true", "t", "1", "yes", "y"]
_FALSE = ["false", "f", "0", "no", "n"]
_PROPERTY_NAME = re.compile(r"[^0-9A-Za-z_]+")

Mask = np.ndarray[Any, np.dtype[np.bool_]]


@dataclass
class Context:
    """What normalisation depends on besides the row: the phone region, an optional strptime
    format, and a function telling which account ids exist (in this data set or the graph)."""

    region: str
    timestamp_format: str | None
    known_accounts: Callable[[pa.Array], Mask]
    phone_cache: dict[str, str | None] = field(default_factory=dict)


@dataclass
class Refused:
    index: int  # position in the batch
    field: str
    reason: Reason


@dataclass
class Result:
    good: pa.Table
    index: np.ndarray[Any, np.dtype[np.int64]]  # batch position of each good row
    refused: list[Refused]


def _np(mask: pa.Array | pa.ChunkedArray) -> Mask:
    if mask.null_count:  # a null is "no" (skipping the fill when there is none saves a kernel)
        mask = pc.fill_null(mask, False)
    return np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool)


def text(batch: pa.RecordBatch, name: str) -> pa.Array:
    """A column trimmed of whitespace, with empty strings as null; all-null when absent."""
    if name not in batch.schema.names:
        return pa.nulls(batch.num_rows, pa.string())
    col = pc.utf8_trim_whitespace(batch.column(name))
    return pc.if_else(pc.equal(col, ""), pa.scalar(None, pa.string()), col)


class _Flags:
    def __init__(self, n: int) -> None:
        self.bad = np.zeros(n, dtype=bool)
        self.reason = np.empty(n, dtype=object)
        self.field = np.empty(n, dtype=object)

    def flag(self, mask: Mask, name: str, reason: Reason) -> None:
        if not mask.any():  # the usual case: nothing to mark
            return
        m = mask & ~self.bad
        self.reason[m] = reason
        self.field[m] = name
        self.bad |= m

    def missing(self, values: pa.Array, name: str, reason: Reason) -> None:
        self.flag(_np(pc.is_null(values)), name, reason)

    def key(self, values: pa.Array, name: str) -> None:
        """A key must be given, at most MAX_KEY_CHARS long and free of control characters."""
        self.missing(values, name, Reason.MISSING_KEY)
        self.flag(_np(pc.greater(pc.utf8_length(values), MAX_KEY_CHARS)), name,
                  Reason.KEY_TOO_LONG)  # fmt: skip
        self.flag(_np(pc.match_substring_regex(values, CONTROL_CHARACTERS)), name,
                  Reason.CONTROL_CHARACTER)  # fmt: skip

    def refused(self) -> list[Refused]:
        return [
            Refused(int(i), str(self.field[i]), Reason(self.reason[i]))
            for i in np.flatnonzero(self.bad)
        ]


# --- values -----------------------------------------------------------------------------------


def _py_timestamp(value: str, fmt: str | None) -> tuple[datetime | None, bool]:
    """One timestamp the slow way; returns it (or None) and whether it parsed but cannot be
    converted to UTC at all (``9999-12-31T23:59:59-01:00`` is past year 9999 in UTC)."""
    try:
        ts = datetime.strptime(value, fmt) if fmt else datetime.fromisoformat(value)
    except ValueError:
        return None, False
    try:
        return (ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)), False
    except OverflowError:
        return None, True


_TS_MIN = pa.scalar(datetime.fromisoformat(TIMESTAMP_MIN), TS)
_TS_MAX = pa.scalar(datetime.fromisoformat(TIMESTAMP_MAX), TS)


def timestamps(values: pa.Array, fmt: str | None) -> tuple[pa.Array, Mask, Mask]:
    """ISO-8601 (or ``fmt``) text -> UTC timestamps; naive ones are taken as UTC. Returns the
    timestamps (null where refused), the mask of non-empty values that did not parse, and the
    mask of those that parsed but lie outside [TIMESTAMP_MIN, TIMESTAMP_MAX) (contract.py)."""
    parsed: pa.Array | None = None
    overflow = np.zeros(len(values), dtype=bool)
    if fmt is None:
        # Parse at ns so that any sub-second precision is accepted (the fast, vectorised path),
        # then truncate to the stored precision. Out-of-ns-range values take the Python path.
        for target in (pa.timestamp("ns", tz="UTC"), pa.timestamp("ns")):
            try:
                parsed = pc.cast(values, target).cast(TS, safe=False)
                break
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                continue
    if parsed is None:
        slow = [(None, False) if v is None else _py_timestamp(v, fmt) for v in values.to_pylist()]
        parsed = pa.array([ts for ts, _ in slow], TS)
        overflow = np.array([o for _, o in slow], dtype=bool)
    outside = overflow | _np(pc.or_(pc.less(parsed, _TS_MIN), pc.greater_equal(parsed, _TS_MAX)))
    unparsed = ~overflow & _np(pc.and_(pc.is_valid(values), pc.is_null(parsed)))
    if outside.any():
        parsed = pc.if_else(pa.array(outside), pa.scalar(None, TS), parsed)
    return parsed, unparsed, outside


def _py_amount(value: str) -> int | None:
    try:
        d = Decimal(value)
    except InvalidOperation:
        return None
    if not d.is_finite():
        return None
    scaled = d.scaleb(AMOUNT_SCALE)
    if scaled != scaled.to_integral_value() or abs(scaled) >= 2**63:
        return None
    return int(scaled)


def amounts(values: pa.Array) -> tuple[pa.Array, Mask]:
    """Decimal text -> int64 count of 1/10^AMOUNT_SCALE units, exactly (never via floats).
    Returns the amounts and the mask of non-empty values that did not parse."""
    try:
        dec = pc.cast(values, pa.decimal128(38, AMOUNT_SCALE))
        digits = pc.replace_substring(pc.cast(dec, pa.string()), ".", "")
        parsed = pc.cast(digits, pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        parsed = pa.array(
            [None if v is None else _py_amount(v) for v in values.to_pylist()], pa.int64()
        )
    return parsed, _np(pc.and_(pc.is_valid(values), pc.is_null(parsed)))


def _e164(raw: str, region: str) -> str | None:
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


_PLAIN_PHONE = r"^\+?[0-9][0-9 \-]*$"  # digits, with spaces or hyphens between groups


def phones(values: pa.Array, ctx: Context) -> tuple[pa.Array, Mask]:
    """Phone text -> E.164, parsing each DISTINCT number once (cached across batches). Spaces and
    hyphens between digits do not change a number, so "159 1040 5939", "159-1040-5939" and
    "15910405939" are parsed once (``phonenumbers`` costs ~30 us a call)."""
    plain = pc.fill_null(pc.match_substring_regex(values, _PLAIN_PHONE), False)
    values = pc.if_else(plain, pc.replace_substring_regex(values, r"[ \-]", ""), values)
    uniques = pc.unique(values.drop_null())
    cache = ctx.phone_cache
    if len(cache) > 2_000_000:  # bounded (~0.3 GiB): memory must not grow with the input
        cache.clear()
    out: list[str | None] = []
    for raw in uniques.to_pylist():
        if raw not in cache:
            cache[raw] = _e164(raw, ctx.region)
        out.append(cache[raw])
    normal = pc.take(pa.array(out, pa.string()), pc.index_in(values, value_set=uniques))
    return normal, _np(pc.and_(pc.is_valid(values), pc.is_null(normal)))


def booleans(values: pa.Array) -> tuple[pa.Array, Mask]:
    lower = pc.utf8_lower(values)
    is_true = pc.is_in(lower, value_set=pa.array(_TRUE))
    is_false = pc.is_in(lower, value_set=pa.array(_FALSE))
    parsed = pc.if_else(is_true, True, pc.if_else(is_false, False, pa.scalar(None, pa.bool_())))
    return parsed, _np(pc.and_(pc.is_valid(values), pc.is_null(parsed)))


def _as_given(values: pa.Array) -> pa.Array:
    return values


def _lower(values: pa.Array) -> pa.Array:
    return pc.utf8_lower(values)


# Each kind that arrives as account_identifiers rows, and how its value is normalised so that one
# real identifier is one node. tests/test_kinds.py checks that every such kind in the kinds table
# (ringscope.kinds) has an entry here.
VALUE_NORMALISERS: dict[str, Callable[[pa.Array], pa.Array]] = {
    "ip": _as_given,
    "email": _lower,  # case-insensitive in practice: one mailbox, one node
    "id_document": _as_given,
    "bank_card": _as_given,
}


# --- one plain value ---------------------------------------------------------------------------
#
# The rules above, for one value that is plain: ASCII letters, digits, punctuation and spaces,
# where trimming, case and the control-character check mean the same in Python as in Arrow's
# kernels. Each returns the value as ``normalise`` would keep it, or None where ``normalise``
# would refuse it or could differ (a value that is not plain, an amount with an exponent): the
# caller then takes the vectorised path, which says why. They exist for one event at decision
# time (ingest.events), where Arrow's per-kernel cost on one-row arrays was most of the work;
# tests/test_events.py holds them equal to ``normalise`` on generated events.


def is_plain(value: str) -> bool:
    return value.isascii() and value.isprintable()


def plain_key(value: str) -> str | None:
    """``text`` then ``_Flags.key``: trimmed, given, at most MAX_KEY_CHARS (a plain value has
    no control character)."""
    if not is_plain(value):
        return None
    value = value.strip(" ")
    return value if value and len(value) <= MAX_KEY_CHARS else None


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_TS_RANGE = (datetime.fromisoformat(TIMESTAMP_MIN), datetime.fromisoformat(TIMESTAMP_MAX))


def plain_timestamp_ms(at: datetime) -> int | None:
    """``timestamps`` of a datetime's ISO text (naive is UTC): epoch milliseconds, truncated,
    inside [TIMESTAMP_MIN, TIMESTAMP_MAX)."""
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at
    if not _TS_RANGE[0] <= at < _TS_RANGE[1]:
        return None
    return int((at - _EPOCH) // _MS)


_PLAIN_AMOUNT = re.compile(rf"[0-9]{{1,14}}(\.[0-9]{{1,{AMOUNT_SCALE}}})?")


def plain_amount(value: str) -> int | None:
    """``amounts`` of a non-negative plain decimal (no sign, no exponent, at most
    AMOUNT_SCALE decimals): the count of 1/10^AMOUNT_SCALE units."""
    value = value.strip(" ")
    if not value.isascii() or _PLAIN_AMOUNT.fullmatch(value) is None:
        return None
    whole, _, frac = value.partition(".")
    scale: int = 10**AMOUNT_SCALE
    return int(whole) * scale + int(frac.ljust(AMOUNT_SCALE, "0"))


_PLAIN_PHONE_RE = re.compile(_PLAIN_PHONE)


@lru_cache(maxsize=65_536)
def _e164_cached(raw: str, region: str) -> str | None:
    return _e164(raw, region)


def plain_phone(value: str, region: str) -> str | None:
    """``phones`` of a plain key: spaces and hyphens between digits dropped, then E.164."""
    key = plain_key(value)
    if key is None:
        return None
    if _PLAIN_PHONE_RE.fullmatch(key) is not None:
        key = re.sub(r"[ \-]", "", key)
    return _e164_cached(key, region)


# Each vectorised value normaliser's meaning for one plain value.
_PLAIN_OF: dict[Callable[[pa.Array], pa.Array], Callable[[str], str]] = {
    _as_given: lambda v: v,
    _lower: str.lower,
}


def plain_identifier(kind: str, value: str) -> str | None:
    """An ``account_identifiers`` value of ``kind`` (trimmed, checked as a key and normalised
    by the kind's entry in VALUE_NORMALISERS); None also for a kind whose normaliser has no
    plain meaning here."""
    key = plain_key(value)
    if key is None:
        return None
    one = _PLAIN_OF.get(VALUE_NORMALISERS.get(kind, _as_given))
    return None if one is None else one(key)


def property_name(column: str) -> str:
    """An extra column's name as a node property: letters, digits and underscores only."""
    return _PROPERTY_NAME.sub("_", column.strip()).strip("_") or "column"


# --- tables -----------------------------------------------------------------------------------


def normalise(table: Table, batch: pa.RecordBatch, ctx: Context) -> Result:
    """Check and normalise one batch of ``table``; see the module doc."""
    flags = _Flags(batch.num_rows)
    cols: dict[str, pa.Array] = {}
    check_accounts: pa.Array | None = None

    def ts(name: str, out: str) -> None:
        cols[out], bad, outside = timestamps(text(batch, name), ctx.timestamp_format)
        flags.flag(bad, name, Reason.UNPARSEABLE_TIMESTAMP)
        flags.flag(outside, name, Reason.TIMESTAMP_OUT_OF_RANGE)

    def key(name: str, out: str) -> pa.Array:
        values = text(batch, name)
        flags.key(values, name)
        cols[out] = values
        return values

    def phone_key(out: str) -> None:
        raw = text(batch, "phone")
        flags.key(raw, "phone")
        # Refused spellings are not parsed (nor cached): a 5 MB "phone" stays out of the cache.
        cols[out], bad = phones(pc.if_else(pa.array(flags.bad), pa.scalar(None, pa.string()),
                                           raw), ctx)  # fmt: skip
        flags.flag(bad, "phone", Reason.UNPARSEABLE_PHONE)

    def one_of(name: str, allowed: tuple[str, ...], reason: Reason, out: str) -> None:
        values = pc.utf8_lower(text(batch, name))
        ok = pc.is_in(values, value_set=pa.array(allowed))
        flags.flag(_np(pc.and_(pc.is_valid(values), pc.invert(ok))), name, reason)
        cols[out] = values

    name = table.name
    if name == "accounts":
        key("account_id", "id")
        ts("created_at", "created_at")
        kyc = text(batch, "kyc_level")
        ok = pc.is_in(kyc, value_set=pa.array([str(k) for k in KYC_LEVELS]))
        flags.flag(_np(pc.and_(pc.is_valid(kyc), pc.invert(ok))), "kyc_level", Reason.INVALID_VALUE)
        cols["kyc_level"] = pc.cast(pc.if_else(ok, kyc, pa.scalar(None, pa.string())), pa.int64())
        cols["country"] = pc.utf8_upper(text(batch, "country"))
    elif name == "devices":
        key("device_id", "id")
        cols["os"] = text(batch, "os")
        cols["is_emulator"], bad = booleans(text(batch, "is_emulator"))
        flags.flag(bad, "is_emulator", Reason.INVALID_VALUE)
    elif name == "phones":
        phone_key("id")
        cols["carrier"] = text(batch, "carrier")
        cols["is_virtual"], bad = booleans(text(batch, "is_virtual"))
        flags.flag(bad, "is_virtual", Reason.INVALID_VALUE)
    elif name == "payees":
        key("payee_id", "id")
        one_of("kind", PAYEE_KINDS, Reason.UNKNOWN_KIND, "kind")
        cols["name"] = text(batch, "name")
    elif name == "labels":
        check_accounts = key("account_id", "account")
        label = text(batch, "label")
        flags.missing(label, "label", Reason.MISSING_VALUE)
        one_of("label", LABEL_VALUES, Reason.UNKNOWN_LABEL, "label")
        ts("labelled_at", "labelled_at")
    elif name in ("account_devices", "account_phones"):
        check_accounts = key("account_id", "account")
        if name == "account_devices":
            key("device_id", "target")
        else:
            phone_key("target")
        ts("seen_at", "seen_at")
    elif name == "payments":
        key("payment_id", "payment_id")
        check_accounts = key("account_id", "account")
        key("payee_id", "target")
        raw_amount = text(batch, "amount")
        flags.missing(raw_amount, "amount", Reason.MISSING_VALUE)
        amount, bad = amounts(raw_amount)
        flags.flag(bad, "amount", Reason.UNPARSEABLE_AMOUNT)
        flags.flag(_np(pc.less(amount, 0)), "amount", Reason.NEGATIVE_AMOUNT)
        cols["amount"] = amount
        cols["currency"] = pc.fill_null(pc.utf8_upper(text(batch, "currency")), NO_CURRENCY)
        ts("paid_at", "paid_at")
    elif name == "account_identifiers":
        check_accounts = key("account_id", "account")
        kind = text(batch, "kind")
        flags.missing(kind, "kind", Reason.MISSING_VALUE)
        one_of("kind", IDENTIFIER_KINDS, Reason.UNKNOWN_KIND, "kind")
        value = key("value", "target")
        target = value
        for kind_name, normaliser in VALUE_NORMALISERS.items():
            if normaliser is not _as_given:
                is_kind = pa.array(_np(pc.equal(cols["kind"], kind_name)))
                target = pc.if_else(is_kind, normaliser(value), target)
        cols["target"] = target
        ts("seen_at", "seen_at")
    else:  # pragma: no cover - TABLES is closed
        raise AssertionError(name)

    if table.entity:
        for extra in batch.schema.names:
            if extra not in table.columns:
                prop = property_name(extra)
                if prop not in cols and prop != "id":
                    cols[prop] = text(batch, extra)

    if check_accounts is not None:
        pending = ~flags.bad
        if pending.any():
            ids = check_accounts.filter(pa.array(pending))
            unknown = np.zeros(batch.num_rows, dtype=bool)
            unknown[np.flatnonzero(pending)] = ~ctx.known_accounts(ids)
            flags.flag(unknown, "account_id", Reason.UNKNOWN_ACCOUNT)

    index = np.flatnonzero(~flags.bad).astype(np.int64)
    good = pa.table(cols)
    if flags.bad.any():
        good = good.take(pa.array(index))
    return Result(good, index, flags.refused())
