"""One event's plain path (``ingest.events._prepare_plain``, the normaliser's rules one value at a
time) against the vectorised path every batch takes: on generated events, plain or not, valid or
not, the plain path either declines or gives exactly what the vectorised path gives."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import hypothesis
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ringscope.ingest import events as ev_mod
from ringscope.ingest.contract import ACCOUNT_IDENTIFIERS
from ringscope.ingest.events import (
    DETAIL_FIELDS,
    EVENT_FIELDS,
    EVENT_TYPES,
    Event,
    Prepared,
    prepare_events,
)
from ringscope.ingest.normalise import is_plain, plain_amount
from ringscope.kinds import KINDS

REGION = "CN"

# Values near the edges of the rules: spaces to trim, case, long keys, control and non-ASCII
# characters, phone spellings, amounts with signs, exponents and too many decimals.
_PLAIN = st.text(st.sampled_from("abAB09 -.@_"), min_size=1, max_size=6)
_TEXT = st.one_of(
    _PLAIN,
    _PLAIN,
    st.sampled_from(["d1", " d1 ", "D1", "a@X.com", " A@x.COM", "", "  ", "x" * 512, "x" * 513,
                     "\u00e9t\u00e9", "tab\there", "\x7f", "1.2.3.4", "card-1"]),
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=8),
    st.text(max_size=6),
)  # fmt: skip
_PHONE = st.one_of(
    st.sampled_from(["159 1040 5939", "159-1040-5939", "13800138000", "+86 138 0013 8000",
                     "159 1040 5939", "159-1040-5939", "+8615910405939", "15910405939",
                     "(159) 1040 5939", "12", "not a phone", " 13800138000 ", "+44 20 7946 0958"]),
    _TEXT,
)  # fmt: skip
_AMOUNT = st.one_of(
    st.sampled_from(["12.5", "12.50", "0", "100", "100.0000", "100.00001", "-3", "1e3", " 7 ",
                     "007.1", "99999999999999.9999", "999999999999999", ".5", "5.", "+5", ""]),
    st.decimals(allow_nan=False, allow_infinity=False, places=4,
                min_value=-1000, max_value=10**6).map(str),
    st.decimals(allow_nan=False, allow_infinity=False, places=2,
                min_value=0, max_value=10**4).map(str),
    _TEXT,
)  # fmt: skip
_AT = st.one_of(
    st.datetimes(min_value=datetime(1960, 1, 1), max_value=datetime(2120, 1, 1),
                 timezones=st.sampled_from([UTC, timezone(timedelta(hours=8)),
                                            timezone(timedelta(hours=-5, minutes=-30))])),
    st.datetimes(min_value=datetime(1969, 12, 31), max_value=datetime(2100, 1, 2)),
)  # fmt: skip


@st.composite
def _events(draw: st.DrawFn) -> Event:
    kinds = draw(st.lists(st.sampled_from(list(EVENT_FIELDS)), unique=True, max_size=6))
    identifiers = {
        k: draw(st.lists(_PHONE if k == "phone" else _TEXT, min_size=0, max_size=3)) for k in kinds
    }
    pays = draw(st.booleans())
    details: dict[str, list[dict[str, str | bool | None]]] = {}
    for kind, d in DETAIL_FIELDS.items():
        key, note, flag = d.table.columns
        used = identifiers.get(kind, [])
        picks = st.one_of(st.sampled_from(used), _TEXT) if used else _TEXT
        details[kind] = draw(st.lists(st.fixed_dictionaries({
            key: picks,
            note: st.one_of(st.none(), _TEXT),
            flag: st.one_of(st.none(), st.booleans(), st.sampled_from(["true", "no", "maybe"])),
        }), max_size=2))  # fmt: skip
    return Event(
        event_id=draw(st.one_of(st.just("e-1"), _PLAIN, _TEXT)),
        account_id=draw(st.one_of(st.just("acc-1"), _PLAIN, _TEXT)),
        at=draw(_AT),
        type=draw(st.sampled_from([*EVENT_TYPES, *EVENT_TYPES, "REFUND"])),
        identifiers=identifiers,
        payee=draw(st.one_of(st.none(), st.just("payee-9"), _PLAIN, _TEXT)) if pays else None,
        amount=draw(st.one_of(st.none(), _AMOUNT)) if pays else None,
        currency=draw(st.one_of(st.none(), st.sampled_from(["cny", " usd ", "", "\u00e9ur"]))),
        kyc_level=draw(st.one_of(st.none(), st.sampled_from([0, 1, 3, 4, -1]))),
        details={k: v for k, v in details.items() if v},
    )


def _same(plain: Prepared, vectorised: Prepared) -> None:
    plain = replace(plain)  # a copy: its tables are built here, from its dicts, for this check
    assert plain.tables is None and plain.plain is not None
    assert plain.events == vectorised.events
    assert plain.values == vectorised.values
    assert plain.invalid == vectorised.invalid == []
    assert plain.at_ms == vectorised.at_ms
    assert plain.region == vectorised.region
    assert sorted(plain.rows) == sorted(vectorised.rows)
    for name, table in vectorised.rows.items():
        assert plain.rows[name].schema == table.schema, name
        assert plain.rows[name].to_pylist() == table.to_pylist(), name
    # What a record writes and what a screen applies, read from the plain path's dicts.
    for kind in KINDS:
        table = ev_mod._table_of(kind.name)
        of = kind.name if table is ACCOUNT_IDENTIFIERS else None
        assert plain.writer_rows(table, of) == vectorised.writer_rows(table, of), kind.name
    for d in DETAIL_FIELDS.values():
        assert plain.writer_rows(d.table) == vectorised.writer_rows(d.table), d.table.name
    assert plain.flags() == vectorised.flags()
    account = vectorised.events[0].account_id.strip()
    assert plain.rows_of(account) == vectorised.rows_of(account)
    assert plain.kyc_of(account) == vectorised.kyc_of(account)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_events())
def test_the_plain_path_declines_or_agrees_with_the_vectorised_one(event: Event) -> None:
    plain = ev_mod._prepare_plain(event, REGION)
    try:
        vectorised = ev_mod._prepare_vectorised([event], REGION)
    except ev_mod.EventError:
        assert plain is None  # an event that cannot be placed is never the plain path's
        return
    if plain is not None:
        hypothesis.event("plain")
        _same(plain, vectorised)
    elif not vectorised.invalid:
        # Declining is allowed only where a value is not plain or the rules could differ.
        pays = (event.payee, event.amount, event.currency) != (None, None, None)
        values = [event.account_id, event.payee or "", event.amount or "", event.currency or "",
                  *([event.event_id] if pays else []),
                  *(v for vs in event.identifiers.values() for v in vs),
                  *(v for rows in event.details.values() for row in rows
                    for v in row.values() if isinstance(v, str))]  # fmt: skip
        declined_for_a_reason = (
            not all(is_plain(v) for v in values)
            or (event.amount is not None and plain_amount(event.amount) is None)
            or (event.payee is None and (event.amount or event.currency) is not None)
            or any(
                isinstance(row.get(DETAIL_FIELDS[k].flag), str)  # a flag spelt as text
                for k, rows in event.details.items()
                for row in rows
            )
        )
        assert declined_for_a_reason, event


def test_a_usual_event_takes_the_plain_path_and_keeps_its_rows() -> None:
    """The risk engine's usual event: devices repeated, a phone spelt with spaces, a mixed-case
    email, a payment. The plain path answers (not the vectorised one), and what it answers is
    the rows the loader would write."""
    event = Event("e-7", "acc-7", datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC), "PAYMENT",
                  {"device": ["dev-1", "dev-1", " dev-2"], "phone": ["159 1040 5939"],
                   "email": ["Ann@Example.com"], "ip": ["10.0.0.1"]},
                  payee="shop-3", amount="200.00", currency="cny", kyc_level=2)  # fmt: skip
    plain = ev_mod._prepare_plain(event, REGION)
    assert plain is not None
    assert prepare_events([event], REGION).plain is not None  # the path prepare_events takes
    _same(plain, ev_mod._prepare_vectorised([event], REGION))
    assert plain.values == [{"device": ["dev-1", "dev-2"], "phone": ["+8615910405939"],
                             "ip": ["10.0.0.1"], "email": ["ann@example.com"],
                             "payee": ["shop-3"]}]  # fmt: skip
    devices = plain.rows["account_devices"].to_pylist()
    assert [(r["target"], r["count"]) for r in devices] == [("dev-1", 2), ("dev-2", 1)]
    pay = plain.rows["payments"].to_pylist()[0]
    assert (pay["currency"], pay["total_e4"], pay["round_count"]) == ("CNY", 2_000_000, 1)
    assert plain.at_ms == [1772366400123]
    assert isinstance(plain.rows["accounts"], pa.Table)


def test_a_value_to_refuse_takes_the_vectorised_path_and_is_named() -> None:
    event = Event("e-8", "acc-8", datetime(2026, 3, 1, tzinfo=UTC), "SIGNUP",
                  {"phone": ["not a phone"], "device": ["dev-1"]})  # fmt: skip
    assert ev_mod._prepare_plain(event, REGION) is None
    prepared = prepare_events([event], REGION)
    assert [(i.field, i.reason) for i in prepared.invalid] == [("phones[0]", "unparseable phone")]
    assert prepared.values == [{"device": ["dev-1"]}]


def test_details_are_the_contract_rows_of_the_events_own_identifiers() -> None:
    """A device fingerprint and a phone lookup (``deviceDetails``, ``phoneDetails``): each names
    one of the event's identifiers, spelt as the event spells it or not (a phone with spaces, a
    device with a space), and becomes the contract row a devices or phones file would carry,
    which recording writes and screening applies (``flags``). A detail of an identifier the
    event did not use, or with a value the contract refuses, is named; the rest counts."""
    event = Event("e-9", "acc-9", datetime(2026, 3, 1, tzinfo=UTC), "SIGNUP",
                  {"device": ["dev-1", "dev-2"], "phone": ["159 1040 5939"]},
                  details={
                      "device": [{"device_id": " dev-1", "os": " android ", "is_emulator": True},
                                 {"device_id": "dev-3", "is_emulator": True},
                                 {"device_id": "dev-2", "is_emulator": "maybe"}],
                      "phone": [{"phone": "+86 159-1040-5939", "is_virtual": True}]})  # fmt: skip
    prepared = prepare_events([event], REGION)
    assert [(i.field, i.reason) for i in prepared.invalid] == [
        ("deviceDetails[2].isEmulator", "invalid value"),
        ("deviceDetails[1].deviceId", "not one of the event's devices"),
    ]
    assert prepared.flags() == {("device", "dev-1"): True, ("phone", "+8615910405939"): True}
    assert prepared.writer_rows(ev_mod.DEVICES) == [
        {"id": "dev-1", "props": {"os": "android", "is_emulator": True}, "ts": {}}
    ]
    assert prepared.values == [{"device": ["dev-1", "dev-2"], "phone": ["+8615910405939"]}]
    # The usual case, every value valid and plain, is the plain path's, with the same rows.
    ok = replace(event, details={"device": [event.details["device"][0]],
                                 "phone": event.details["phone"]})  # fmt: skip
    plain = ev_mod._prepare_plain(ok, REGION)
    assert plain is not None
    _same(plain, ev_mod._prepare_vectorised([ok], REGION))
    assert plain.flags() == prepared.flags()
