"""Events from the risk engine (a sign-up, a credit application, a payment, a login, a card bound)
turned into the data contract's rows by the loader's own code, for screening and for recording.

An event is one account's moment: its identifiers at time ``at``, and perhaps a payment. Each
part becomes the contract row the files would carry (``account_devices``, ``account_phones``,
``account_identifiers``, ``payments``, and ``accounts`` for an account the graph does not hold),
is checked and normalised by :func:`ingest.normalise.normalise` and reduced by
:mod:`ingest.aggregate`, exactly as a file's rows are. So a phone typed ``159 1040 5939`` in an
event is the ``+8615910405939`` node the files made, and what screening adds to the graph in
memory is, row for row, what :func:`record_events` then writes (through the ingest Cypher and
its ledger guard).

An invalid value (an unparseable phone, a 600-character card number) is refused with the field
that held it (``phones[1]``) and the contract's reason, and the rest of the event still counts.
An event whose ``eventId``, ``accountId`` or ``at`` is invalid cannot be placed at all:
:class:`EventError` names the field.

Recording is idempotent by event id: each recorded event leaves an ``(:IngestBatch
{id: "event:<eventId>"})`` ledger entry in the same transaction as its rows, and an event whose
entry exists is reported as a duplicate and not written again. Two clients recording the same
event at once collide on that entry's uniqueness constraint; the loser finds it and reports a
duplicate.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import neo4j
import numpy as np
import pyarrow as pa

from ringscope.errors import RingScopeError
from ringscope.graph import cypher
from ringscope.graph.connection import Graph
from ringscope.ingest.aggregate import (
    _aggregate_links,
    _aggregate_payments,
    _dedupe_payments,
    _link_keys,
    _reduce,
    _sorted,
)
from ringscope.ingest.contract import (
    ACCOUNT_DEVICES,
    ACCOUNT_IDENTIFIERS,
    ACCOUNT_PHONES,
    ACCOUNTS,
    AMOUNT_SCALE,
    DEVICES,
    KYC_LEVELS,
    PAYMENTS,
    PHONES,
    ROUND_UNIT,
    Reason,
    Table,
)
from ringscope.ingest.normalise import (
    NO_CURRENCY,
    TS,
    Context,
    is_plain,
    normalise,
    plain_amount,
    plain_identifier,
    plain_key,
    plain_phone,
    plain_timestamp_ms,
)
from ringscope.ingest.writer import _dicts_of, _param_rows
from ringscope.kinds import IDENTIFIER_KINDS, KINDS, PAYEE

__all__ = [
    "DETAIL_FIELDS",
    "EVENT_FIELDS",
    "EVENT_TYPES",
    "MAX_EVENT_VALUES",
    "Event",
    "EventError",
    "InvalidField",
    "Prepared",
    "RecordOutcome",
    "prepare_events",
    "record_events",
]

EVENT_TYPES = ("SIGNUP", "APPLICATION", "PAYMENT", "LOGIN", "BIND_CARD")


def _camel(name: str) -> str:
    """A snake_case name as the API spells it (``id_document`` -> ``idDocument``)."""
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def _camel_plural(name: str) -> str:
    return _camel(name) + "s"


# The event's list field of each identifier kind but payees (an event pays at most one payee,
# its `payee` field): devices, phones, ips, emails, idDocuments, bankCards. From the kinds table.
EVENT_FIELDS: dict[str, str] = {
    k.name: _camel_plural(k.name) for k in IDENTIFIER_KINDS if k is not PAYEE
}
# The contract table each kind's rows of an event go to (accounts, payments, the two tables of
# their own, and account_identifiers for the rest).
_OWN_TABLE: dict[str, Table] = {"account": ACCOUNTS, PAYEE.name: PAYMENTS,
                                "device": ACCOUNT_DEVICES, "phone": ACCOUNT_PHONES}  # fmt: skip


def _table_of(kind: str) -> Table:
    return _OWN_TABLE.get(kind, ACCOUNT_IDENTIFIERS)


@dataclass(frozen=True)
class Detail:
    """What an event may say about one kind of identifier it used, beyond its value: a row of
    the kind's entity table of the data contract, as the files would carry it."""

    table: Table  # the contract's entity table (its key column first)
    field: str  # the event's list of such rows (``deviceDetails``)
    flag: str  # the boolean column the account model reads (the kinds table's ``flag``)


# The caller's device fingerprint (an emulator?) and phone lookup (a virtual number?): what a
# risk engine knows at the moment of a sign-up, and what the model weighs most among the
# identifiers' own attributes. One per kind with a flag (cypher.EVENT_DETAIL_KINDS writes
# them); a detail names one of the event's own identifiers of its kind.
_ENTITY_TABLE: dict[str, Table] = {"device": DEVICES, "phone": PHONES}
DETAIL_FIELDS: dict[str, Detail] = {
    k.name: Detail(_ENTITY_TABLE[k.name], _camel(k.name) + "Details", k.flag)
    for k in cypher.EVENT_DETAIL_KINDS
    if k.flag is not None
}
NOT_THE_EVENTS = "not one of the event's {}"


# The most values one list of one event may carry (a device farm's sign-up names one device).
MAX_EVENT_VALUES = 20
EVENT_LEDGER_PREFIX = "event:"


class EventError(RingScopeError):
    """An event that cannot be placed at all: its id, account or time is invalid."""

    def __init__(self, event_id: str, field_name: str, reason: str) -> None:
        super().__init__(f"event {event_id[:64]!r}: {field_name}: {reason}")
        self.event_id = event_id
        self.field = field_name
        self.reason = reason


@dataclass(frozen=True)
class Event:
    """One event as the risk engine sends it (values as given, not yet normalised)."""

    event_id: str
    account_id: str
    at: datetime
    type: str
    identifiers: Mapping[str, Sequence[str]] = field(default_factory=dict)  # kind -> values
    payee: str | None = None
    amount: str | None = None  # a decimal string
    currency: str | None = None
    kyc_level: int | None = None  # only used when the event opens the account
    # kind -> rows of the kind's entity table (DETAIL_FIELDS), values as given: a device's
    # {"device_id", "os", "is_emulator"}, a phone's {"phone", "carrier", "is_virtual"}.
    details: Mapping[str, Sequence[Mapping[str, str | bool | None]]] = field(default_factory=dict)


@dataclass(frozen=True)
class InvalidField:
    """One refused value: the event, the field that held it (``phones[1]``), and why."""

    event_id: str
    field: str
    reason: str


@dataclass
class Prepared:
    """Events as contract rows, normalised and reduced: per table the rows the loader would
    write (``account_identifiers`` keeps its ``kind`` column), and what was refused.

    ``values`` holds each event's normalised identifiers (kind -> ids, in the order given,
    without repeats), which screening looks up in the graph.

    The vectorised path gives Arrow tables (``tables``); the plain path (one plain event) gives
    the same rows as Python dicts (``plain``: each table's columns, timestamps as epoch
    milliseconds). Each form is built once from the other when asked for (:attr:`rows`,
    :meth:`_dicts`); a screen and a record read the dicts (:meth:`rows_of`, :meth:`kyc_of`,
    :meth:`writer_rows`), so the plain path never builds a table: building and reading back
    four one-row tables cost more than preparing the event.
    """

    events: list[Event]
    tables: dict[str, pa.Table] | None
    values: list[dict[str, list[str]]]
    invalid: list[InvalidField]
    at_ms: list[int]
    region: str
    plain: dict[str, list[dict[str, Any]]] | None = None

    @property
    def rows(self) -> dict[str, pa.Table]:
        """Per table, the rows as Arrow tables (built once from ``plain`` where needed)."""
        if self.tables is None:
            assert self.plain is not None
            self.tables = {
                name: pa.Table.from_pylist(rows, schema=_SCHEMAS[name])
                for name, rows in self.plain.items()
            }
        return self.tables

    def _dicts(self) -> dict[str, list[dict[str, Any]]]:
        """Per table, the rows as dicts (timestamps as epoch milliseconds): the plain path's
        own, or read once from the tables."""
        if self.plain is None:
            assert self.tables is not None
            self.plain = {name: _dicts_of(t)[0] for name, t in self.tables.items()}
        return self.plain

    def writer_rows(self, table: Table, kind: str | None = None) -> list[dict[str, Any]]:
        """One table's rows as the loader's Cypher takes them (``ingest.writer._rows_for``);
        for ``account_identifiers``, one ``kind``'s, without the column."""
        rows = self._dicts().get(table.name, [])
        if kind is not None:
            rows = [{c: v for c, v in r.items() if c != "kind"} for r in rows if r["kind"] == kind]
        ts = [f.name for f in _SCHEMAS[table.name] if pa.types.is_timestamp(f.type)]
        return _param_rows(table, list(rows), ts)

    def rows_of(self, account_id: str) -> list[dict[str, Any]]:
        """One account's reduced link and payment rows, as plain values: ``kind``, ``target``,
        ``count``, ``first``/``last`` (epoch seconds, -1 unknown, as Neo4j's epochSeconds), and
        for payments ``currency``, ``round_count`` and ``total_e4``."""
        out: list[dict[str, Any]] = []
        for name, rows in self._dicts().items():
            if name == ACCOUNTS.name or name in _DETAIL_TABLES:
                continue
            for row in rows:
                if row["account"] != account_id:
                    continue
                out.append({
                    "kind": _KIND_OF_TABLE.get(name) or row["kind"], "target": row["target"],
                    "count": row["count"], "first": _seconds(row["first_seen"]),
                    "last": _seconds(row["last_seen"]), "currency": row.get("currency"),
                    "round_count": row.get("round_count", 0), "total_e4": row.get("total_e4", 0),
                })  # fmt: skip
        return out

    def flags(self) -> dict[tuple[str, str], bool]:
        """The flags the events' details state (:data:`DETAIL_FIELDS`): (kind, normalised
        id) -> emulator device, virtual phone. A detail that leaves the flag out states none."""
        out: dict[tuple[str, str], bool] = {}
        for kind, d in DETAIL_FIELDS.items():
            for row in self._dicts().get(d.table.name, []):
                if row[d.flag] is not None:
                    out[(kind, str(row["id"]))] = bool(row[d.flag])
        return out

    def kyc_of(self, account_id: str) -> int:
        """The KYC level the event gives a new account (-1 unknown)."""
        for row in self._dicts()[ACCOUNTS.name]:
            if row["id"] == account_id and row["kyc_level"] is not None:
                return int(row["kyc_level"])
        return -1


# The entity tables an event's details go to.
_DETAIL_TABLES = frozenset(d.table.name for d in DETAIL_FIELDS.values())
# The kind of each link table's rows (account_identifiers rows carry their own).
_KIND_OF_TABLE = {"account_devices": "device", "account_phones": "phone", "payments": PAYEE.name}


def _seconds(ms: int | None) -> int:
    """Epoch milliseconds as Neo4j's ``epochSeconds`` gives them (floored), -1 when unknown."""
    return -1 if ms is None else ms // 1000


@dataclass(frozen=True)
class RecordOutcome:
    recorded: tuple[str, ...]  # event ids written now
    duplicates: tuple[str, ...]  # event ids recorded before (nothing written)
    invalid: tuple[InvalidField, ...]
    rows_written: int  # contract rows the recorded events became (after the loader's reduce)


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _at_text(at: datetime) -> str:
    return (at if at.tzinfo is not None else at.replace(tzinfo=UTC)).isoformat()


def prepare_events(events: Sequence[Event], region: str) -> Prepared:
    """Check and normalise events into contract rows (see the module doc).

    Raises :class:`EventError` for the first event whose id, account id or time is invalid, or
    whose type is unknown; any other refused value is listed in ``invalid``.

    One event whose values are all plain and valid (the risk engine's usual call) takes
    :func:`_prepare_plain`, the same rules one value at a time; anything else, and any event
    with a value to refuse, the vectorised path, which says why.
    """
    if len(events) == 1:
        plain = _prepare_plain(events[0], region)
        if plain is not None:
            return plain
    return _prepare_vectorised(events, region)


_LINK_SCHEMA = [("account", pa.string()), ("target", pa.string()), ("count", pa.int64()),
                ("first_seen", TS), ("last_seen", TS)]  # fmt: skip
# The schemas the vectorised path's normalise and reduce give each table's rows.
_SCHEMAS: dict[str, pa.Schema] = {
    ACCOUNTS.name: pa.schema(
        [
            ("id", pa.string()),
            ("created_at", TS),
            ("kyc_level", pa.int64()),
            ("country", pa.string()),
        ]
    ),
    ACCOUNT_DEVICES.name: pa.schema(_LINK_SCHEMA),
    ACCOUNT_PHONES.name: pa.schema(_LINK_SCHEMA),
    ACCOUNT_IDENTIFIERS.name: pa.schema([("kind", pa.string()), *_LINK_SCHEMA]),
    DEVICES.name: pa.schema(
        [("id", pa.string()), ("os", pa.string()), ("is_emulator", pa.bool_())]
    ),
    PHONES.name: pa.schema(
        [("id", pa.string()), ("carrier", pa.string()), ("is_virtual", pa.bool_())]
    ),
    PAYMENTS.name: pa.schema(
        [
            ("account", pa.string()),
            ("target", pa.string()),
            ("currency", pa.string()),
            *[(c, pa.int64()) for c in ("count", "total_e4", "max_e4", "round_count")],
            ("first_seen", TS),
            ("last_seen", TS),
        ]
    ),
}
_ROUND = ROUND_UNIT * 10**AMOUNT_SCALE


def _prepare_plain(ev: Event, region: str) -> Prepared | None:
    """One event through the plain-value rules of :mod:`ingest.normalise`, reduced as
    ``_aggregate_links`` and ``_aggregate_payments`` reduce one partial: each (kind, target)
    once with how often the event named it, first and last seen at the event's time. None
    when a value is not plain or would be refused (the vectorised path then says why);
    tests/test_events.py holds the two paths equal."""
    lists = [*ev.identifiers.values(), *ev.details.values()]
    if ev.type not in EVENT_TYPES or any(len(v) > MAX_EVENT_VALUES for v in lists):
        return None
    if any(kind not in DETAIL_FIELDS for kind in ev.details):
        return None
    if ev.kyc_level is not None and (type(ev.kyc_level) is not int
                                     or ev.kyc_level not in KYC_LEVELS):  # fmt: skip
        return None
    if not ev.event_id.strip():
        return None
    account = plain_key(ev.account_id)
    ms = plain_timestamp_ms(ev.at)
    if account is None or ms is None:
        return None
    values: dict[str, list[str]] = {}
    counts: dict[str, dict[str, int]] = {}  # kind -> target -> times named
    for kind in EVENT_FIELDS:  # the kinds table's order, as the vectorised path's tables
        given = ev.identifiers.get(kind, ())
        if not given:
            continue
        for v in given:
            if not isinstance(v, str):
                return None
            if kind == "phone":
                target = plain_phone(v, region)
            else:
                target = plain_key(v) if kind == "device" else plain_identifier(kind, v)
            if target is None:
                return None
            named = counts.setdefault(kind, {})
            named[target] = named.get(target, 0) + 1
        values[kind] = list(counts[kind])
    plain: dict[str, list[dict[str, Any]]] = {}
    for table in (ACCOUNT_DEVICES, ACCOUNT_PHONES, ACCOUNT_IDENTIFIERS):
        pairs = sorted((kind, target, n) for kind, named in counts.items()
                       if _table_of(kind) is table for target, n in named.items())  # fmt: skip
        if pairs:
            plain[table.name] = [
                {**({"kind": kind} if table is ACCOUNT_IDENTIFIERS else {}), "account": account,
                 "target": target, "count": n, "first_seen": ms, "last_seen": ms}
                for kind, target, n in pairs
            ]  # fmt: skip
    if ev.payee is not None or ev.amount is not None or ev.currency is not None:
        if plain_key(ev.event_id) is None:  # the payment's id
            return None
        payee = None if ev.payee is None else plain_key(ev.payee)
        amount = None if ev.amount is None or not is_plain(ev.amount) else plain_amount(ev.amount)
        if payee is None or amount is None:
            return None
        currency = NO_CURRENCY
        if ev.currency is not None:
            if not is_plain(ev.currency):
                return None
            currency = ev.currency.strip(" ").upper() or NO_CURRENCY
        plain[PAYMENTS.name] = [
            {"account": account, "target": payee, "currency": currency, "count": 1,
             "total_e4": amount, "max_e4": amount,
             "round_count": int(amount > 0 and amount % _ROUND == 0),
             "first_seen": ms, "last_seen": ms}
        ]  # fmt: skip
        values[PAYEE.name] = [payee]
    for kind, d in DETAIL_FIELDS.items():
        described = _plain_details(kind, d, ev.details.get(kind, ()), counts.get(kind, {}), region)
        if described is None:
            return None
        if described:
            plain[d.table.name] = [described[k] for k in sorted(described)]
    plain[ACCOUNTS.name] = [
        {"id": account, "created_at": ms, "kyc_level": ev.kyc_level, "country": None}
    ]
    return Prepared([ev], None, [values], [], [ms], region, plain)


def _plain_details(
    kind: str,
    d: Detail,
    given: Sequence[Mapping[str, str | bool | None]],
    used: Mapping[str, int],
    region: str,
) -> dict[str, dict[str, Any]] | None:
    """One kind's details by the entity table's rules, one value at a time: the key as the
    event's list normalises it, text trimmed (empty is none), the flag a boolean or none; the
    last detail of an identifier wins. None when a value is not plain or would be refused."""
    out: dict[str, dict[str, Any]] = {}
    key, text_col = d.table.columns[0], d.table.columns[1]
    for row in given:
        raw, note, flag = row.get(key), row.get(text_col), row.get(d.flag)
        if not isinstance(raw, str) or not (flag is None or isinstance(flag, bool)):
            return None
        target = plain_phone(raw, region) if kind == "phone" else plain_key(raw)
        if target is None or target not in used:
            return None
        if note is not None:
            if not isinstance(note, str) or not is_plain(note):
                return None
            note = note.strip(" ") or None
        out[target] = {"id": target, text_col: note, d.flag: flag}
    return out


def _prepare_vectorised(events: Sequence[Event], region: str) -> Prepared:
    """:func:`prepare_events` through ``normalise`` on a batch of each table."""
    ctx = Context(region, None, lambda ids: np.ones(len(ids), dtype=bool))
    for ev in events:
        if not ev.event_id.strip():
            raise EventError(ev.event_id, "eventId", "missing key")
        if ev.type not in EVENT_TYPES:
            raise EventError(ev.event_id, "type", f"unknown type (one of {', '.join(EVENT_TYPES)})")
        for kind, given in ev.identifiers.items():
            if len(given) > MAX_EVENT_VALUES:
                raise EventError(
                    ev.event_id, EVENT_FIELDS.get(kind, kind),
                    f"at most {MAX_EVENT_VALUES} values per list",
                )  # fmt: skip
        for kind, described in ev.details.items():
            if kind not in DETAIL_FIELDS:
                raise EventError(ev.event_id, kind, "no details of this kind")
            if len(described) > MAX_EVENT_VALUES:
                raise EventError(ev.event_id, DETAIL_FIELDS[kind].field,
                                 f"at most {MAX_EVENT_VALUES} values per list")  # fmt: skip
    invalid: list[InvalidField] = []
    kyc: list[str | None] = []
    for ev in events:
        if ev.kyc_level is not None and ev.kyc_level not in KYC_LEVELS:
            invalid.append(InvalidField(ev.event_id, "kycLevel", Reason.INVALID_VALUE.value))
            kyc.append(None)
        else:
            kyc.append(_text(ev.kyc_level))
    # The account row places the event: its id and time must be valid, or nothing can be.
    acc = normalise(ACCOUNTS, pa.RecordBatch.from_pylist(
        [{"account_id": ev.account_id, "created_at": _at_text(ev.at), "kyc_level": k}
         for ev, k in zip(events, kyc, strict=True)],
        schema=pa.schema([(c, pa.string()) for c in ("account_id", "created_at", "kyc_level")]),
    ), ctx)  # fmt: skip
    names = {"account_id": "accountId", "created_at": "at", "kyc_level": "kycLevel"}
    for r in acc.refused:
        raise EventError(events[r.index].event_id, names[r.field], r.reason.value)
    accounts = acc.good
    at_ms = accounts.column("created_at").cast(pa.int64()).to_pylist()
    ids: list[str] = accounts.column("id").to_pylist()

    values: list[dict[str, list[str]]] = [{} for _ in events]
    rows: dict[str, pa.Table] = {}

    def table_rows(table: Table, raw: list[dict[str, Any]], where: list[tuple[int, str, str]],
                   columns: tuple[str, ...]) -> pa.Table:  # fmt: skip
        """Normalise ``raw`` rows of ``table``; ``where`` says each row's (event, field, kind)."""
        batch = pa.RecordBatch.from_pylist(
            raw, schema=pa.schema([(c, pa.string()) for c in columns])
        )
        res = normalise(table, batch, ctx)
        for r in res.refused:
            i, name, _ = where[r.index]
            invalid.append(InvalidField(events[i].event_id, name, r.reason.value))
        target = "target" if "target" in res.good.column_names else None
        if target is not None:
            for pos, value in zip(res.index.tolist(), res.good.column(target).to_pylist(),
                                  strict=True):  # fmt: skip
                i, _, kind = where[pos]
                seen = values[i].setdefault(kind, [])
                if value not in seen:
                    seen.append(value)
        return res.good

    # Observations: one contract row per value, kinds in the kinds table's order.
    for table in (ACCOUNT_DEVICES, ACCOUNT_PHONES, ACCOUNT_IDENTIFIERS):
        raw: list[dict[str, Any]] = []
        where: list[tuple[int, str, str]] = []
        for i, ev in enumerate(events):
            for kind, list_field in EVENT_FIELDS.items():
                if _table_of(kind) is not table:
                    continue
                for j, v in enumerate(ev.identifiers.get(kind, ())):
                    row = {"account_id": ids[i], "seen_at": _at_text(ev.at)}
                    if table is ACCOUNT_DEVICES:
                        row["device_id"] = v
                    elif table is ACCOUNT_PHONES:
                        row["phone"] = v
                    else:
                        row.update(kind=kind, value=v)
                    raw.append(row)
                    where.append((i, f"{list_field}[{j}]", kind))
        if raw:
            good = table_rows(table, raw, where, table.columns)
            if good.num_rows:
                # One batch is one partial: aggregated once, it is the loader's reduction
                # (each pair once, the same columns), sorted as _reduce sorts.
                keys = _link_keys(table)
                rows[table.name] = _sorted(_aggregate_links(good, keys, partial=True), keys)
    # Details: rows of the kinds' entity tables, each naming one of its event's identifiers.
    for kind, d in DETAIL_FIELDS.items():
        raw = [{c: _detail_text(row.get(c)) for c in d.table.columns}
               for ev in events for row in ev.details.get(kind, ())]  # fmt: skip
        spots = [
            (i, j) for i, ev in enumerate(events) for j in range(len(ev.details.get(kind, ())))
        ]
        if raw:
            rows.update(_details(kind, d, raw, spots, events, values, ctx, invalid))
    # Payments: the event's own id is the payment id (a re-sent event is one payment).
    raw, where = [], []
    for i, ev in enumerate(events):
        if ev.payee is None and ev.amount is None and ev.currency is None:
            continue
        raw.append({"payment_id": ev.event_id, "account_id": ids[i], "payee_id": ev.payee,
                    "amount": ev.amount, "currency": ev.currency,
                    "paid_at": _at_text(ev.at)})  # fmt: skip
        where.append((i, "payee", PAYEE.name))
    if raw:
        batch = pa.RecordBatch.from_pylist(
            raw, schema=pa.schema([(c, pa.string()) for c in PAYMENTS.columns])
        )
        res = normalise(PAYMENTS, batch, ctx)
        fields = {"payee_id": "payee", "amount": "amount", "currency": "currency",
                  "paid_at": "at", "payment_id": "eventId"}  # fmt: skip
        for r in res.refused:
            invalid.append(InvalidField(events[where[r.index][0]].event_id,
                                        fields.get(r.field, r.field), r.reason.value))  # fmt: skip
        if res.good.num_rows:
            good = res.good.append_column("_row", pa.array(res.index, pa.int64()))
            kept, _ = _dedupe_payments(good)
            rows[PAYMENTS.name] = _aggregate_payments(kept)
            for pos, value in zip(res.index.tolist(), res.good.column("target").to_pylist(),
                                  strict=True):  # fmt: skip
                values[where[pos][0]].setdefault(PAYEE.name, [value])
    # The account row, for accounts the graph may not hold (written ON CREATE only).
    rows[ACCOUNTS.name] = _reduce(
        ACCOUNTS, accounts.append_column("_row", pa.array(np.arange(accounts.num_rows)))
    )
    return Prepared(list(events), rows, values, invalid, [int(t) for t in at_ms], region)


def _detail_text(value: object) -> str | None:
    """A detail's value as a file's cell: booleans spelt as the files spell them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return _text(value)


def _details(
    kind: str,
    d: Detail,
    raw: list[dict[str, str | None]],
    spots: list[tuple[int, int]],
    events: Sequence[Event],
    values: list[dict[str, list[str]]],
    ctx: Context,
    invalid: list[InvalidField],
) -> dict[str, pa.Table]:
    """One kind's details (``raw``, each at ``spots``: event, position) through the entity
    table's normaliser; a refused value, or a detail of an identifier its event did not use, is
    named (``deviceDetails[0].isEmulator``) and the detail left out. The rest reduced as the
    loader reduces an entity table (the last row of a key wins)."""
    batch = pa.RecordBatch.from_pylist(
        raw, schema=pa.schema([(c, pa.string()) for c in d.table.columns])
    )
    res = normalise(d.table, batch, ctx)
    for r in res.refused:
        i, j = spots[r.index]
        invalid.append(InvalidField(events[i].event_id, f"{d.field}[{j}].{_camel(r.field)}",
                                    r.reason.value))  # fmt: skip
    keep = []
    for pos, value in zip(res.index.tolist(), res.good.column("id").to_pylist(), strict=True):
        i, j = spots[pos]
        used = value in values[i].get(kind, ())
        keep.append(used)
        if not used:
            name = f"{d.field}[{j}].{_camel(d.table.keys[0])}"
            reason = NOT_THE_EVENTS.format(EVENT_FIELDS[kind])
            invalid.append(InvalidField(events[i].event_id, name, reason))
    good = res.good.append_column("_row", pa.array(res.index, pa.int64()))
    good = good.filter(pa.array(keep, pa.bool_()))
    if not good.num_rows:
        return {}
    return {d.table.name: _reduce(d.table, good).select(_SCHEMAS[d.table.name].names)}


def _ledger_id(event_id: str) -> str:
    return EVENT_LEDGER_PREFIX + event_id


def _write(tx: neo4j.ManagedTransaction, prepared: Prepared, digest: str) -> int:
    """Every event of ``prepared`` (none recorded before): its ledger entries and its rows, table
    by table through the loader's Cypher and ledger guard, in one statement
    (``cypher.EVENT_WRITE``: a part per kind, accounts first). Returns the contract rows
    written."""
    params: dict[str, Any] = {
        "ids": [_ledger_id(e.event_id) for e in prepared.events],
        "file_id": "events",
        "batch_no": 0,
    }
    written = 0
    for k in KINDS:
        table = _table_of(k.name)
        rows = prepared.writer_rows(table, k.name if table is ACCOUNT_IDENTIFIERS else None)
        name = table.name + (f":{k.name}" if table is ACCOUNT_IDENTIFIERS else "")
        params[f"rows_{k.name}"] = rows
        params[f"batch_id_{k.name}"] = f"events:{digest}:{name}"
        written += len(rows)
    for k in cypher.EVENT_DETAIL_KINDS:
        rows = prepared.writer_rows(DETAIL_FIELDS[k.name].table)
        params[f"rows_node_{k.name}"] = rows
        params[f"batch_id_node_{k.name}"] = f"events:{digest}:{k.name}s"
        written += len(rows)
    tx.run(cypher.EVENT_WRITE, params).consume()
    return written


def _record(tx: neo4j.ManagedTransaction, prepared: Prepared) -> RecordOutcome:
    """Inside one write transaction: which events the ledger holds already, then the rest
    written (:func:`_write`). Read and write in one transaction: one round trip of begin and
    commit fewer on the risk engine's path than a read before the write."""
    events = prepared.events
    ids = [_ledger_id(e.event_id) for e in events]
    done = {str(r["id"]) for r in tx.run(cypher.EVENT_DONE, {"ids": ids})}
    new = [i for i, e in enumerate(events) if _ledger_id(e.event_id) not in done]
    # An event id repeated within one call is one event: its first occurrence counts.
    first: dict[str, int] = {}
    for i in new:
        first.setdefault(events[i].event_id, i)
    new = sorted(first.values())
    dups = tuple(e.event_id for i, e in enumerate(events) if i not in set(new))
    if not new:
        return RecordOutcome((), dups, tuple(prepared.invalid), 0)
    digest = hashlib.sha256(
        "\n".join(sorted(events[i].event_id for i in new)).encode()
    ).hexdigest()[:24]
    # Rows are reduced per (account, identifier) across events: a duplicate's observations
    # must not be counted into a new event's row, so the new events are prepared alone.
    sub = (
        prepared
        if len(new) == len(events)
        else prepare_events([events[i] for i in new], prepared.region)
    )
    written = _write(tx, sub, digest)
    return RecordOutcome(
        tuple(events[i].event_id for i in new), dups, tuple(prepared.invalid), written
    )


def record_events(graph: Graph, prepared: Prepared) -> RecordOutcome:
    """Write the prepared events not recorded before, in one transaction (see the module doc).

    Every event in ``prepared`` must belong to one call: rows are filtered per account, so two
    events of one account in one call are written together or not at all.
    """
    for _ in range(3):
        try:
            return graph.write_tx(lambda tx: _record(tx, prepared))
        except neo4j.exceptions.ConstraintError:
            continue  # another client recorded one of these events first: look again
    raise RingScopeError("events could not be recorded: their ledger entries kept changing")
