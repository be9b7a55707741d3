"""screen(event) and recordEvents(events)'s types: the risk engine's events, the screening answer
with its reasons, and what recording did. Values of personal kinds are masked by role here, as
everywhere (``api.context.Masker``), and every entity an answer names is audited with the event.
"""

from __future__ import annotations

import enum
import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

import strawberry

from ringscope.api.context import RequestContext
from ringscope.api.schema.enums import EntityKind
from ringscope.api.service import MAX_SCREEN_REASONS
from ringscope.ingest.events import (
    DETAIL_FIELDS,
    EVENT_FIELDS,
    Event,
    InvalidField,
    RecordOutcome,
)
from ringscope.kinds import BY_NAME
from ringscope.models.screen import ScreenRecord


@strawberry.enum(description="What happened at the moment the event describes.")
class ScreenEventType(enum.Enum):
    SIGNUP = "SIGNUP"
    APPLICATION = "APPLICATION"
    PAYMENT = "PAYMENT"
    LOGIN = "LOGIN"
    BIND_CARD = "BIND_CARD"


# What each detail is and what its flag means, in the schema's words.
_DETAIL_WORDS: dict[str, tuple[str, str, str]] = {
    "device": ("DeviceDetails", "device fingerprint", "An emulator or a farm's virtual device."),
    "phone": ("PhoneDetails", "phone number lookup", "A virtual (VoIP or rented) number."),
}


def _detail_input(kind: str) -> type:
    """One detail's input type, from its contract table (``ingest.events.DETAIL_FIELDS``): the
    key column, required, then the table's other columns, optional (the flag a boolean)."""
    d = DETAIL_FIELDS[kind]
    name, source, flag_words = _DETAIL_WORDS[kind]
    key, *rest = d.table.columns
    notes: dict[str, Any] = {key: str}
    fields: dict[str, Any] = {
        key: strawberry.field(description=f"One of the event's {BY_NAME[kind].words[1]}.")
    }
    for c in rest:
        notes[c] = bool | None if c == d.flag else str | None
        fields[c] = strawberry.field(default=None, description=flag_words if c == d.flag else None)
    cls = type(name, (), {"__annotations__": notes, **fields})
    return strawberry.input(
        cls,
        description=f"What the caller's {source} says of one of the event's "
        f"{BY_NAME[kind].words[1]}: a row of the data contract's {d.table.name} table, written "
        "to it when the event is recorded.",
    )


# The event's detail lists, each a contract table's row type.
_DETAIL_INPUTS: dict[str, type] = {kind: _detail_input(kind) for kind in DETAIL_FIELDS}


def _snake(camel: str) -> str:
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), camel)


def _screen_event() -> type:
    """``ScreenEvent``, with one list per identifier kind but payees, derived from the kinds
    table (``ingest.events.EVENT_FIELDS``): a new kind is in the input without an edit here."""
    fields: dict[str, Any] = {}
    notes: dict[str, Any] = {
        "event_id": strawberry.ID,
        "account_id": strawberry.ID,
        "at": datetime,
        "type": ScreenEventType,
    }
    fields["account_id"] = strawberry.field(description="A new or an existing account.")
    for kind, name in EVENT_FIELDS.items():
        notes[_snake(name)] = list[str]
        fields[_snake(name)] = strawberry.field(
            default_factory=list, description=f"The {BY_NAME[kind].words[1]} the event used."
        )
    for kind, d in DETAIL_FIELDS.items():
        notes[_snake(d.field)] = list[_DETAIL_INPUTS[kind]]  # type: ignore[valid-type]
        fields[_snake(d.field)] = strawberry.field(
            default_factory=list,
            description=f"What the caller knows of the event's {BY_NAME[kind].words[1]}.",
        )
    notes.update(payee=str | None, amount=str | None, currency=str | None, kyc_level=int | None)
    fields.update(
        payee=None,
        amount=strawberry.field(default=None, description="A decimal string."),
        currency=None,
        kyc_level=strawberry.field(
            default=None, description="0-3; used only when the event opens the account."
        ),
    )
    cls = type("ScreenEvent", (), {"__annotations__": notes, **fields})
    return strawberry.input(
        cls,
        description="An application, payment, sign-up, login or card binding, with the "
        "identifiers it used. Values are normalised as ingest normalises them (phones to "
        "E.164, emails lower-cased); an invalid value is refused by name and the rest counts.",
    )


if TYPE_CHECKING:

    class ScreenEvent:
        """One list attribute per kind of ``EVENT_FIELDS`` (``devices``, ``phones``, ...)."""

        event_id: strawberry.ID
        account_id: strawberry.ID
        at: datetime
        type: ScreenEventType
        payee: str | None
        amount: str | None
        currency: str | None
        kyc_level: int | None

else:
    ScreenEvent = _screen_event()


def to_event(e: ScreenEvent) -> Event:
    return Event(
        event_id=str(e.event_id),
        account_id=str(e.account_id),
        at=e.at,
        type=e.type.value,
        identifiers={k: list(getattr(e, _snake(f))) for k, f in EVENT_FIELDS.items()},
        payee=e.payee,
        amount=e.amount,
        currency=e.currency,
        kyc_level=e.kyc_level,
        details={
            k: [
                {c: getattr(row, c) for c in d.table.columns} for row in getattr(e, _snake(d.field))
            ]
            for k, d in DETAIL_FIELDS.items()
        },
    )


@strawberry.type(
    description="An identifier (or the account itself) through which a ring is reached."
)
class RingVia:
    kind: EntityKind
    id: strawberry.ID = strawberry.field(description="Masked for roles without raw PII.")
    masked: bool
    members: int = strawberry.field(description="The ring's members on it.")


@strawberry.type(description="A flagged ring of the current build that the event reaches.")
class LinkedRing:
    ring_id: strawberry.ID
    cluster_id: strawberry.ID
    score: float
    via: list[RingVia]
    hops: int = strawberry.field(
        description=(
            "1: through the event's own identifiers, or the account is a member. 2: through one "
            "of its personal identifiers (ID document, bank card, email; listed first in via, "
            "with no members) held by another account, which uses an identifier the ring holds "
            "(more than half of its accounts are members)."
        )
    )


@strawberry.type(
    description="An identifier too common to link rings (a carrier IP, a big merchant)."
)
class HubIgnored:
    kind: EntityKind
    id: strawberry.ID
    masked: bool
    degree: int = strawberry.field(description="Accounts on it, the event's included.")


@strawberry.type(description="How many accounts first used one of the event's identifiers lately.")
class IdentifierVelocity:
    kind: EntityKind
    id: strawberry.ID
    masked: bool
    accounts: int
    last_hour: int
    last_day: int
    last_week: int


@strawberry.type(description="A value of an event that was refused, and why; the rest counted.")
class InvalidEventField:
    event_id: strawberry.ID
    field: str = strawberry.field(description="The input field, e.g. phones[1].")
    reason: str


@strawberry.type(description="The answer to screen(event): nothing was written.")
class ScreenResult:
    event_id: strawberry.ID
    account_id: strawberry.ID
    known_account: bool = strawberry.field(description="Whether the graph holds the account.")
    score: float = strawberry.field(
        description="Calibrated probability that the event's account is fraud, 0..1: the "
        "current model's score for it as if the event were ingested."
    )
    build_id: str | None
    model_version: str | None
    model: str = strawberry.field(description="tree, gnn or blend")
    flag_threshold: float
    reasons: list[str]
    linked_rings: list[LinkedRing]
    hubs_ignored: list[HubIgnored]
    velocity: list[IdentifierVelocity]
    invalid_fields: list[InvalidEventField]
    accounts_read: int


@strawberry.type(description="What recordEvents wrote.")
class RecordEventsResult:
    recorded: list[strawberry.ID] = strawberry.field(description="Event ids written now.")
    duplicates: list[strawberry.ID] = strawberry.field(
        description="Event ids recorded before: nothing written again."
    )
    invalid_fields: list[InvalidEventField]
    rows_written: int


def _invalid(items: tuple[InvalidField, ...]) -> list[InvalidEventField]:
    return [InvalidEventField(event_id=strawberry.ID(i.event_id), field=i.field, reason=i.reason)
            for i in items]  # fmt: skip


def to_record_result(r: RecordOutcome) -> RecordEventsResult:
    return RecordEventsResult(
        recorded=[strawberry.ID(e) for e in r.recorded],
        duplicates=[strawberry.ID(e) for e in r.duplicates],
        invalid_fields=_invalid(r.invalid),
        rows_written=r.rows_written,
    )


def _words(kind: str, n: int = 1) -> str:
    k = BY_NAME.get(kind)
    if k is None:
        return kind
    return k.words[0] if n == 1 else k.words[1]


def to_screen_result(
    ctx: RequestContext, r: ScreenRecord, invalid: tuple[InvalidField, ...]
) -> ScreenResult:
    """The answer, masked for the caller, with its reasons; each entity named is audited."""
    p = ctx.principal
    audit = ctx.audit
    audit.add("event", r.event_id, "screened", "screen", event_id=r.event_id)
    audit.add("account", r.account_id, "returned", "screen", event_id=r.event_id)

    def show(kind: str, value: str) -> tuple[str, bool]:
        audit.add(kind, value, "returned", "screen", event_id=r.event_id)
        return ctx.masker.display(kind, value, p)

    rings: list[LinkedRing] = []
    reasons: list[str] = []
    for ring in r.linked_rings:
        via: list[RingVia] = []
        said: list[str] = []
        first: list[str] = []
        for kind, value, members in ring.via:
            shown, masked = show(kind, value) if kind != "account" else (value, False)
            via.append(RingVia(kind=EntityKind(kind), id=strawberry.ID(shown), masked=masked,
                               members=members))  # fmt: skip
            if ring.hops == 2 and members == 0:
                first.append(f"{_words(kind)} {shown}")
                continue
            said.append(
                "the account is a member"
                if kind == "account"
                else f"{_words(kind)} {shown} is used by {members} of its "
                + ("member" if members == 1 else "members")
            )
        rings.append(LinkedRing(ring_id=strawberry.ID(ring.ring_id),
                                cluster_id=strawberry.ID(ring.cluster_id),
                                score=ring.score, via=via, hops=ring.hops))  # fmt: skip
        if ring.hops == 2:
            reasons.append(
                f"Reaches flagged ring {ring.ring_id} (score {ring.score:.2f}) in two hops: "
                f"{' and '.join(first)} also used by an account that shares with the ring "
                + "; ".join(said)
            )
        else:
            reasons.append(
                f"Reaches flagged ring {ring.ring_id} (score {ring.score:.2f}): " + "; ".join(said)
            )
    hubs: list[HubIgnored] = []
    for kind, value, degree in r.hubs_ignored:
        shown, masked = show(kind, value)
        hubs.append(HubIgnored(kind=EntityKind(kind), id=strawberry.ID(shown), masked=masked,
                               degree=degree))  # fmt: skip
    velocity: list[IdentifierVelocity] = []
    for v in r.velocity:
        shown, masked = show(v.kind, v.id)
        velocity.append(IdentifierVelocity(
            kind=EntityKind(v.kind), id=strawberry.ID(shown), masked=masked, accounts=v.accounts,
            last_hour=v.hour, last_day=v.day, last_week=v.week,
        ))  # fmt: skip
        if v.day >= 2:
            reasons.append(
                f"{v.hour} accounts first used {_words(v.kind)} {shown} in the hour up to this "
                f"event, {v.day} in the day, {v.week} in the week"
            )
    verdict = "at or above" if r.score >= r.flag_threshold else "below"
    why = ", ".join(words for _, _, _, words in r.top_features)
    reasons.insert(
        0,
        f"The account model ({r.model}) scores the account {r.score:.2f}, {verdict} the flag "
        f"point {r.flag_threshold:.2f}" + (f"; most raised by: {why}" if why else ""),
    )
    reasons.insert(
        1, "A known account" if r.known_account else "A new account: this event opens it"
    )
    if hubs:
        reasons.append(
            f"{len(hubs)} " + ("identifier is" if len(hubs) == 1 else "identifiers are")
            + " too common to link rings and left out: "
            + ", ".join(f"{_words(h.kind.value)} {h.id} ({h.degree} accounts)" for h in hubs[:3])
        )  # fmt: skip
    for i in invalid:
        reasons.append(f"{i.field} was refused ({i.reason}) and left out")
    return ScreenResult(
        event_id=strawberry.ID(r.event_id),
        account_id=strawberry.ID(r.account_id),
        known_account=r.known_account,
        score=r.score,
        build_id=r.build_id,
        model_version=r.model_version,
        model=r.model,
        flag_threshold=r.flag_threshold,
        reasons=reasons[:MAX_SCREEN_REASONS],
        linked_rings=rings,
        hubs_ignored=hubs,
        velocity=velocity,
        invalid_fields=_invalid(invalid),
        accounts_read=r.accounts_read,
    )
