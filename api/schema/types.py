"""The schema's object types: builds, verdicts and notes, entities, clusters and their pages.

Resolvers only translate: they read through the request's DataLoaders, mask personal data for
roles that may not see it, and record every entity they return in the request's audit buffer.
"""

from __future__ import annotations

from datetime import datetime

import strawberry

from ringscope.api import cost, service
from ringscope.api.context import RequestContext
from ringscope.api.schema.enums import Capability, EntityKind, VerdictValue
from ringscope.api.schema.fields import Ctx, typed_field
from ringscope.api.schema.permissions import CanReadCases
from ringscope.kinds import ACCOUNT
from ringscope.models.builds import ClusterInfo

# --- builds, verdicts and notes ----------------------------------------------------------------


@strawberry.type(description="How many neighbours of one kind an entity has.")
class Degree:
    kind: EntityKind
    count: int


@strawberry.type
class Feature:
    name: str
    value: float


@strawberry.type(description="A complete ring-detection build.")
class Build:
    id: strawberry.ID
    status: str
    started_at: datetime | None
    finished_at: datetime | None
    model_version: str | None
    previous_build: str | None


@strawberry.type(description="A ring in one build.")
class RingSnapshot:
    build_id: str
    finished_at: datetime | None
    size: int
    score: float


@strawberry.type(description="An investigator's verdict on an account or a ring; append-only.")
class Verdict:
    id: strawberry.ID
    target_kind: str
    target_id: str
    verdict: VerdictValue
    note: str
    author: str
    created_at: datetime | None
    build_id: str | None

    @classmethod
    def of(cls, v: service.VerdictRecord) -> Verdict:
        return cls(
            id=strawberry.ID(v.id),
            target_kind=v.target_kind,
            target_id=v.target_id,
            verdict=VerdictValue(v.verdict),
            note=v.note,
            author=v.author,
            created_at=v.created_at,
            build_id=v.build_id,
        )


@strawberry.type(description="A case note on a ring, kept across builds.")
class CaseNote:
    id: strawberry.ID
    ring_id: str
    text: str
    author: str
    created_at: datetime | None
    build_id: str | None

    @classmethod
    def of(cls, n: service.NoteRecord) -> CaseNote:
        return cls(
            id=strawberry.ID(n.id),
            ring_id=n.ring_id,
            text=n.text,
            author=n.author,
            created_at=n.created_at,
            build_id=n.build_id,
        )


# --- entities and clusters --------------------------------------------------------------------


@strawberry.type(description="An account or identifier. PII values are masked for some roles.")
class Entity:
    kind: EntityKind
    id: strawberry.ID
    masked: bool = strawberry.field(description="True when `id` is a masked PII value.")
    raw_id: strawberry.Private[str]
    build_id: strawberry.Private[str | None]  # whose scores apply; None: the current build
    record: strawberry.Private[service.EntityRecord | None] = None

    @classmethod
    def make(
        cls,
        ctx: RequestContext,
        kind: str,
        raw_id: str,
        field_name: str,
        build_id: str | None = None,
        record: service.EntityRecord | None = None,
    ) -> Entity:
        ctx.returned(kind, raw_id, field_name)
        shown, masked = ctx.masker.display(kind, raw_id, ctx.principal)
        return cls(
            kind=EntityKind(kind),
            id=strawberry.ID(shown),
            masked=masked,
            raw_id=raw_id,
            build_id=build_id,
            record=record,
        )

    def audit_target(self) -> tuple[str, str]:
        return self.kind.value, self.raw_id

    async def _record(self, info: Ctx) -> service.EntityRecord | None:
        if self.record is None:
            self.record = await info.context.loaders.entity.load((self.kind.value, self.raw_id))
        return self.record

    async def _build(self, info: Ctx) -> str | None:
        """The build this entity's build-dependent fields read: the one it was reached
        through (a cluster's members), else the request's current build."""
        return self.build_id or await info.context.current_build_id()

    async def _clusters(self, info: Ctx) -> list[ClusterInfo]:
        bid = await self._build(info)
        if bid is None:
            return []
        return await info.context.loaders.clusters.load((bid, self.kind.value, self.raw_id))

    @typed_field(description="Account: its score in the build; identifier: riskiest ring.")
    async def risk_score(self, info: Ctx) -> float | None:
        if self.kind.value == ACCOUNT.name:
            bid = await self._build(info)
            return None if bid is None else await info.context.loaders.risk.load((bid, self.raw_id))
        return max((c.score for c in await self._clusters(info)), default=None)

    @typed_field(description="The known label from the data (accounts): fraud or legit.")
    async def label(self, info: Ctx) -> str | None:
        rec = await self._record(info)
        return None if rec is None else rec.props.get("label")

    @strawberry.field
    async def created_at(self, info: Ctx) -> datetime | None:
        rec = await self._record(info)
        value = None if rec is None else rec.props.get("created_at")
        return value if isinstance(value, datetime) else None

    @strawberry.field
    async def kyc_level(self, info: Ctx) -> int | None:
        rec = await self._record(info)
        value = None if rec is None else rec.props.get("kyc_level")
        return None if value is None else int(value)

    @typed_field(description="Neighbours in total.")
    async def degree(self, info: Ctx) -> int:
        rec = await self._record(info)
        return 0 if rec is None else sum(rec.degrees.values())

    @typed_field(description="Neighbours per kind (identifiers: accounts using them).")
    async def degrees(self, info: Ctx) -> list[Degree]:
        rec = await self._record(info)
        if rec is None:
            return []
        return [Degree(kind=EntityKind(k), count=n) for k, n in rec.degrees.items()]

    @typed_field(
        description="Clusters it is in or ties together, riskiest first, of the build it was "
        "reached through (a cluster's members) or else the current build: "
        f"the first `first` ({cost.ENTITY_CLUSTERS.default} by default, at most "
        f"{cost.ENTITY_CLUSTERS.max})."
    )
    async def clusters(self, info: Ctx, first: int = cost.ENTITY_CLUSTERS.default) -> list[Cluster]:
        cost.ENTITY_CLUSTERS.check(first, "clusters")
        found = await self._clusters(info)
        return [Cluster.make(info.context, c, "clusters") for c in found[:first]]

    @typed_field(
        permission_classes=[CanReadCases],
        description="Verdicts (accounts), oldest first: the latest `last` "
        f"({cost.VERDICTS.default} by default, at most {cost.VERDICTS.max}).",
    )
    async def verdicts(self, info: Ctx, last: int = cost.VERDICTS.default) -> list[Verdict]:
        cost.VERDICTS.check(last, "verdicts", "last")
        if self.kind.value != ACCOUNT.name:
            return []
        found = await info.context.loaders.account_verdicts.load(self.raw_id)
        return [Verdict.of(v) for v in found[-last:]]


@strawberry.type(description="An identifier shared by members of a cluster.")
class SharedIdentifier:
    kind: EntityKind
    id: strawberry.ID
    masked: bool
    members: int = strawberry.field(description="Members of the cluster that use it.")


@strawberry.type(description="A detected ring in one build.")
class Cluster:
    id: strawberry.ID = strawberry.field(description="<build id>/<ring id>")
    ring_id: strawberry.ID = strawberry.field(description="Stable across builds.")
    build_id: str
    score: float
    size: int
    density: float
    reasons: list[str]
    first_seen_build: str
    first_seen_at: datetime | None
    info_: strawberry.Private[ClusterInfo]

    @classmethod
    def make(cls, ctx: RequestContext, c: ClusterInfo, field_name: str) -> Cluster:
        ctx.returned("cluster", c.id, field_name)
        return cls(
            id=strawberry.ID(c.id),
            ring_id=strawberry.ID(c.ring_id),
            build_id=c.build_id,
            score=c.score,
            size=c.size,
            density=c.density,
            reasons=ctx.masker.reasons(c.reasons, ctx.principal),
            first_seen_build=c.first_seen_build,
            first_seen_at=c.first_seen_at,
            info_=c,
        )

    def audit_target(self) -> tuple[str, str]:
        return "cluster", str(self.id)

    @typed_field(
        description="Member accounts; riskScore is their score in this build. The first "
        f"`first` ({cost.MEMBERS.default} by default, at most {cost.MEMBERS.max}); `size` "
        "says how many there are."
    )
    def members(self, info: Ctx, first: int = cost.MEMBERS.default) -> list[Entity]:
        cost.MEMBERS.check(first, "members")
        return [
            Entity.make(info.context, "account", m, "members", build_id=self.build_id)
            for m in self.info_.members[:first]
        ]

    @typed_field(
        description="The identifiers that tie the cluster together, most shared first: the "
        f"first `first` ({cost.SHARED.default} by default, at most {cost.SHARED.max})."
    )
    def shared_identifiers(
        self, info: Ctx, first: int = cost.SHARED.default
    ) -> list[SharedIdentifier]:
        cost.SHARED.check(first, "sharedIdentifiers")
        ctx = info.context
        out = []
        for kind, value, n in self.info_.key_identifiers[:first]:
            ctx.returned(kind, value, "sharedIdentifiers")
            shown, masked = ctx.masker.display(kind, value, ctx.principal)
            out.append(
                SharedIdentifier(
                    kind=EntityKind(kind), id=strawberry.ID(shown), masked=masked, members=n
                )
            )
        return out

    @strawberry.field
    def features(self) -> list[Feature]:
        return [Feature(name=k, value=v) for k, v in sorted(self.info_.features.items())]

    @typed_field(
        description="The ring in every stored build, oldest first: the latest `last` "
        f"({cost.HISTORY.default} by default, at most {cost.HISTORY.max})."
    )
    async def history(self, info: Ctx, last: int = cost.HISTORY.default) -> list[RingSnapshot]:
        cost.HISTORY.check(last, "history", "last")
        found = await info.context.loaders.history.load(self.info_.ring_id)
        return [
            RingSnapshot(build_id=s.build_id, finished_at=s.finished_at, size=s.size, score=s.score)
            for s in found[-last:]
        ]

    @typed_field(
        permission_classes=[CanReadCases],
        description="Verdicts on the ring, oldest first: the latest `last` "
        f"({cost.VERDICTS.default} by default, at most {cost.VERDICTS.max}).",
    )
    async def labels(self, info: Ctx, last: int = cost.VERDICTS.default) -> list[Verdict]:
        cost.VERDICTS.check(last, "labels", "last")
        found = await info.context.loaders.ring_verdicts.load(self.info_.ring_id)
        return [Verdict.of(v) for v in found[-last:]]

    @typed_field(
        permission_classes=[CanReadCases],
        description="Case notes on the ring, oldest first: the latest `last` "
        f"({cost.NOTES.default} by default, at most {cost.NOTES.max}).",
    )
    async def notes(self, info: Ctx, last: int = cost.NOTES.default) -> list[CaseNote]:
        cost.NOTES.check(last, "notes", "last")
        found = await info.context.loaders.notes.load(self.info_.ring_id)
        return [CaseNote.of(n) for n in found[-last:]]


@strawberry.type
class ClusterEdge:
    cursor: str
    node: Cluster


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type(description="One page of one build's clusters, by score descending.")
class ClusterConnection:
    build_id: str
    total_count: int
    edges: list[ClusterEdge]
    page_info: PageInfo


@strawberry.type
class AccountRisk:
    id: strawberry.ID
    risk_score: float | None
    build_id: str


@strawberry.type(description="The API key making the request: who it is and what its role may do.")
class Viewer:
    key_id: strawberry.ID
    role: str
    name: str
    capabilities: list[Capability]


@strawberry.type
class ApiKeyInfo:
    id: strawberry.ID
    role: str
    name: str
    created_at: datetime | None
    revoked_at: datetime | None
