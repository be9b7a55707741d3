"""The GraphQL schema: thin Strawberry types over :mod:`api.service`, per-field permissions.

Resolvers only translate: they call the service layer (through the request's DataLoaders for
anything per-item), mask personal data for roles that may not see it, and record every entity
they return or refuse in the request's audit buffer. ``docs/api.md`` documents the schema;
``api/schema.graphql`` is its committed SDL.
"""

from __future__ import annotations

import enum
import logging
import math
from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any, ClassVar, TypeVar, cast

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    AddValidationRules,
    DisableIntrospection,
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    SchemaExtension,
    ValidationCache,
)
from strawberry.permission import BasePermission
from strawberry.scalars import JSON
from strawberry.types import ExecutionContext, Info

from ringscope.api import service
from ringscope.api.auth import Capability, list_keys
from ringscope.api.context import RequestContext
from ringscope.api.execution import LeafObjectExecutionContext
from ringscope.errors import RingScopeError
from ringscope.models import builds
from ringscope.models.builds import ClusterInfo
from ringscope.settings import Settings

log = logging.getLogger("ringscope.api")

MAX_PAGE = 500
DEFAULT_PAGE = 50

Ctx = Info[RequestContext, None]
F = TypeVar("F", bound=Callable[..., Any])


def _field(**kwargs: Any) -> Callable[[F], F]:
    """``strawberry.field`` as a typed decorator (its keyword form is untyped for mypy)."""
    return cast("Callable[[F], F]", strawberry.field(**kwargs))


def _mutation(**kwargs: Any) -> Callable[[F], F]:
    return cast("Callable[[F], F]", strawberry.mutation(**kwargs))


# --- permissions ------------------------------------------------------------------------------


def _target(source: Any, info: Ctx, kwargs: dict[str, Any]) -> tuple[str, str]:
    """What a refused field was about, for the audit log."""
    if "account_id" in kwargs:
        return "account", str(kwargs["account_id"])
    if "cluster_id" in kwargs:
        return "cluster", str(kwargs["cluster_id"])
    if "id" in kwargs and "kind" in kwargs:
        return str(kwargs["kind"].value), str(kwargs["id"])
    if isinstance(source, Cluster):
        return "cluster", str(source.id)
    if isinstance(source, Entity):
        return source.kind.value, source.raw_id
    return "field", info.field_name


class _Requires(BasePermission):
    capability: ClassVar[Capability]

    def has_permission(self, source: Any, info: Ctx, **kwargs: Any) -> bool:
        ctx = info.context
        if ctx.principal.can(self.capability):
            return True
        kind, eid = _target(source, info, kwargs)
        ctx.audit_denied(kind, eid, info.field_name)
        return False


class CanReadScores(_Requires):
    capability = Capability.READ_SCORES
    message = "Forbidden: this API key's role may not read scores, clusters or builds."


class CanReadEntities(_Requires):
    capability = Capability.READ_ENTITIES
    message = "Forbidden: this API key's role may not read entities or neighbourhoods."


class CanReadCases(_Requires):
    capability = Capability.READ_CASES
    message = "Forbidden: this API key's role may not read verdicts or case notes."


class CanWriteLabels(_Requires):
    capability = Capability.WRITE_LABELS
    message = "Forbidden: this API key's role may not write verdicts or case notes."


class CanManageKeys(_Requires):
    capability = Capability.MANAGE_KEYS
    message = "Forbidden: only the admin role may manage API keys."


# --- enums and small types --------------------------------------------------------------------


@strawberry.enum(description="The kind of an entity (graph/model.py).")
class EntityKind(enum.Enum):
    ACCOUNT = "account"
    DEVICE = "device"
    PHONE = "phone"
    PAYEE = "payee"
    IP = "ip"
    EMAIL = "email"
    ID_DOCUMENT = "id_document"
    BANK_CARD = "bank_card"


@strawberry.enum(description="An investigator's verdict.")
class VerdictValue(enum.Enum):
    FRAUD = "fraud"
    LEGIT = "legit"


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

    async def _record(self, info: Ctx) -> service.EntityRecord | None:
        if self.record is None:
            self.record = await info.context.loaders.entity.load((self.kind.value, self.raw_id))
        return self.record

    @_field(description="Account: its score in the build; identifier: riskiest ring.")
    async def risk_score(self, info: Ctx) -> float | None:
        ctx = info.context
        if self.kind is EntityKind.ACCOUNT:
            bid = self.build_id or await ctx.current_build_id()
            return None if bid is None else await ctx.loaders.risk.load((bid, self.raw_id))
        found = await ctx.loaders.clusters.load((self.kind.value, self.raw_id))
        return max((c.score for c in found), default=None)

    @_field(description="The known label from the data (accounts): fraud or legit.")
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

    @_field(description="Neighbours in total.")
    async def degree(self, info: Ctx) -> int:
        rec = await self._record(info)
        return 0 if rec is None else sum(rec.degrees.values())

    @_field(description="Neighbours per kind (identifiers: accounts using them).")
    async def degrees(self, info: Ctx) -> list[Degree]:
        rec = await self._record(info)
        if rec is None:
            return []
        return [Degree(kind=EntityKind(k), count=n) for k, n in rec.degrees.items()]

    @_field(description="Clusters of the current build it is in or ties together.")
    async def clusters(self, info: Ctx) -> list[Cluster]:
        found = await info.context.loaders.clusters.load((self.kind.value, self.raw_id))
        return [Cluster.make(info.context, c, "clusters") for c in found]

    @_field(permission_classes=[CanReadCases], description="Verdicts (accounts).")
    async def verdicts(self, info: Ctx) -> list[Verdict]:
        if self.kind is not EntityKind.ACCOUNT:
            return []
        found = await info.context.loaders.account_verdicts.load(self.raw_id)
        return [Verdict.of(v) for v in found]


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
            reasons=list(c.reasons),
            first_seen_build=c.first_seen_build,
            first_seen_at=c.first_seen_at,
            info_=c,
        )

    @_field(description="Member accounts; riskScore is their score in this build.")
    def members(self, info: Ctx) -> list[Entity]:
        return [
            Entity.make(info.context, "account", m, "members", build_id=self.build_id)
            for m in self.info_.members
        ]

    @strawberry.field
    def shared_identifiers(self, info: Ctx) -> list[SharedIdentifier]:
        ctx = info.context
        out = []
        for kind, value, n in self.info_.key_identifiers:
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

    @_field(description="The ring in every stored build, oldest first.")
    async def history(self, info: Ctx) -> list[RingSnapshot]:
        found = await info.context.loaders.history.load(self.info_.ring_id)
        return [
            RingSnapshot(build_id=s.build_id, finished_at=s.finished_at, size=s.size, score=s.score)
            for s in found
        ]

    @_field(permission_classes=[CanReadCases], description="Verdicts on the ring.")
    async def labels(self, info: Ctx) -> list[Verdict]:
        found = await info.context.loaders.ring_verdicts.load(self.info_.ring_id)
        return [Verdict.of(v) for v in found]

    @_field(permission_classes=[CanReadCases], description="Case notes on the ring.")
    async def notes(self, info: Ctx) -> list[CaseNote]:
        found = await info.context.loaders.notes.load(self.info_.ring_id)
        return [CaseNote.of(n) for n in found]


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


# --- neighbourhoods ---------------------------------------------------------------------------


@strawberry.type
class NeighbourNode:
    key: strawberry.ID = strawberry.field(description="<kind>:<id>; masked PII: <kind>:~<hash>")
    kind: EntityKind
    id: strawberry.ID
    masked: bool
    hop: int
    degree: int
    hub: bool = strawberry.field(description="Too many accounts to expand; see `degree`.")
    risk_score: float | None
    label: str | None
    flagged: bool


@strawberry.type(description="Account -> identifier, folded over all observations.")
class NeighbourEdge:
    source: strawberry.ID
    target: strawberry.ID
    kind: EntityKind
    first_seen: datetime | None
    last_seen: datetime | None
    count: int


@strawberry.type(description="How the entity reaches a flagged account.")
class RiskPath:
    nodes: list[strawberry.ID]
    via: list[strawberry.ID] = strawberry.field(description="The shared identifiers on the way.")
    flagged_account: strawberry.ID
    risk_score: float | None


def _node_json(n: NeighbourNode) -> dict[str, Any]:
    return {
        "key": n.key, "kind": n.kind.name, "id": n.id, "masked": n.masked, "hop": n.hop,
        "degree": n.degree, "hub": n.hub, "riskScore": n.risk_score, "label": n.label,
        "flagged": n.flagged,
    }  # fmt: skip


def _edge_json(e: NeighbourEdge) -> dict[str, Any]:
    return {
        "source": e.source, "target": e.target, "kind": e.kind.name,
        "firstSeen": e.first_seen.isoformat() if e.first_seen else None,
        "lastSeen": e.last_seen.isoformat() if e.last_seen else None, "count": e.count,
    }  # fmt: skip


_JSON_FORM = (
    "as one JSON list of objects with the same keys and values (masked and audited the same "
    "way). GraphQL resolves each field of `{0}` one by one, about 2,000 for a 100-node "
    "answer; this form skips that, for clients that read whole neighbourhoods."
)


@strawberry.type
class Neighbourhood:
    build_id: str | None
    center: NeighbourNode
    nodes: list[NeighbourNode]
    edges: list[NeighbourEdge]
    paths: list[RiskPath]
    truncated: bool
    hops: int
    limit: int

    @_field(description="`nodes` " + _JSON_FORM.format("nodes"))
    def nodes_json(self) -> JSON:
        return cast(JSON, [_node_json(n) for n in self.nodes])

    @_field(description="`edges` " + _JSON_FORM.format("edges"))
    def edges_json(self) -> JSON:
        return cast(JSON, [_edge_json(e) for e in self.edges])


def _neighbourhood(ctx: RequestContext, nb: service.Neighbourhood) -> Neighbourhood:
    p = ctx.principal
    keys = {e: ctx.masker.key(n.kind, n.id, p) for e, n in nb.nodes.items()}

    def node(n: service.NbNode) -> NeighbourNode:
        ctx.returned(n.kind, n.id, "riskNeighbourhood")
        shown, masked = ctx.masker.display(n.kind, n.id, p)
        return NeighbourNode(
            key=strawberry.ID(keys[n.eid]),
            kind=EntityKind(n.kind),
            id=strawberry.ID(shown),
            masked=masked,
            hop=n.hop,
            degree=n.degree,
            hub=n.hub,
            risk_score=n.risk,
            label=n.label,
            flagged=n.eid in nb.flagged,
        )

    return Neighbourhood(
        build_id=nb.build_id,
        center=node(nb.center),
        nodes=[node(n) for n in nb.nodes.values()],
        edges=[
            NeighbourEdge(
                source=strawberry.ID(keys[e.source]),
                target=strawberry.ID(keys[e.target]),
                kind=EntityKind(e.kind),
                first_seen=e.first_seen,
                last_seen=e.last_seen,
                count=e.count,
            )
            for e in nb.edges
        ],
        paths=[
            RiskPath(
                nodes=[strawberry.ID(keys[e]) for e in path],
                via=[strawberry.ID(keys[e]) for e in path if nb.nodes[e].kind != "account"],
                flagged_account=strawberry.ID(keys[path[-1]]),
                risk_score=nb.nodes[path[-1]].risk,
            )
            for path in nb.paths
        ],
        truncated=nb.truncated,
        hops=nb.hops,
        limit=nb.limit,
    )


@strawberry.type(description="A feature that raised the account's score (tree SHAP).")
class FeatureContribution:
    name: str
    value: float
    contribution: float = strawberry.field(description="Log-odds added by this feature.")
    meaning: str


@strawberry.type(
    description="An identifier of the account, by how much removing it lowers the score."
)
class IdentifierInfluence:
    key: strawberry.ID = strawberry.field(description="<kind>:<id>; masked PII: <kind>:~<hash>")
    kind: EntityKind
    id: strawberry.ID
    masked: bool
    score_drop: float


@strawberry.type(description="Why the current model scores an account as it does.")
class Explanation:
    account_id: strawberry.ID
    score: float = strawberry.field(description="The model's probability, on today's graph.")
    model: str = strawberry.field(description="tree, gnn or blend")
    model_version: str | None
    build_id: str | None
    top_features: list[FeatureContribution]
    identifiers: list[IdentifierInfluence]
    accounts_read: int = strawberry.field(description="Accounts in the neighbourhood scored.")
    approximate: bool = strawberry.field(
        description="An identifier was too big to read whole; the GNN part is approximate."
    )


def _explanation(ctx: RequestContext, r: service.ExplanationRecord) -> Explanation:
    p = ctx.principal
    ctx.returned("account", r.account_id, "explain")
    idents = []
    for i in r.identifiers:
        ctx.returned(i.kind, i.id, "explain")
        shown, masked = ctx.masker.display(i.kind, i.id, p)
        idents.append(
            IdentifierInfluence(
                key=strawberry.ID(ctx.masker.key(i.kind, i.id, p)),
                kind=EntityKind(i.kind),
                id=strawberry.ID(shown),
                masked=masked,
                score_drop=i.score_drop,
            )
        )
    return Explanation(
        account_id=strawberry.ID(r.account_id),
        score=r.score,
        model=r.model,
        model_version=r.model_version,
        build_id=r.build_id,
        top_features=[
            FeatureContribution(name=n, value=v, contribution=c, meaning=m)
            for n, v, c, m in r.top_features
        ],
        identifiers=idents,
        accounts_read=r.accounts_read,
        approximate=r.approximate,
    )


@strawberry.type
class ApiKeyInfo:
    id: strawberry.ID
    role: str
    name: str
    created_at: datetime | None
    revoked_at: datetime | None


# --- root types -------------------------------------------------------------------------------


@strawberry.type
class Query:
    @_field(
        permission_classes=[CanReadEntities],
        description="An account or identifier with its risk, clusters and degree per kind.",
    )
    async def entity(self, info: Ctx, kind: EntityKind, id: strawberry.ID) -> Entity | None:
        ctx = info.context
        rec = await ctx.loaders.entity.load((kind.value, str(id)))
        if rec is None:
            ctx.audit_not_found(kind.value, str(id), "entity")
            return None
        return Entity.make(ctx, kind.value, str(id), "entity", record=rec)

    @_field(
        permission_classes=[CanReadEntities],
        description="The subgraph around an entity; hubs unexpanded; paths to flagged accounts.",
    )
    async def risk_neighbourhood(
        self,
        info: Ctx,
        kind: EntityKind,
        id: strawberry.ID,
        hops: int = 2,
        limit: int = 100,
        min_score: float = 0.0,
    ) -> Neighbourhood | None:
        ctx = info.context
        if not 1 <= hops <= 3:
            raise service.InvalidArgumentError("hops is 1, 2 or 3.")
        if limit < 1:
            raise service.InvalidArgumentError("limit is at least 1.")
        if not math.isfinite(min_score):
            raise service.InvalidArgumentError("minScore must be a finite number.")
        s = ctx.settings
        nb = await ctx.run(
            service.neighbourhood,
            ctx.graph,
            kind.value,
            str(id),
            hops=hops,
            limit=min(limit, s.api_neighbourhood_max_nodes),
            min_score=min_score,
            hub_degree=s.api_hub_degree,
            flag_score=s.api_flag_score,
            cache=ctx.scores,
        )
        if nb is None:
            ctx.audit_not_found(kind.value, str(id), "riskNeighbourhood")
            return None
        return _neighbourhood(ctx, nb)

    @_field(
        permission_classes=[CanReadScores],
        description="A cluster by cluster id, or a ring id in the current build.",
    )
    async def cluster(self, info: Ctx, id: strawberry.ID) -> Cluster | None:
        ctx = info.context
        found = await ctx.run(service.find_cluster, ctx.graph, str(id))
        if found is None:
            ctx.audit_not_found("cluster", str(id), "cluster")
            return None
        return Cluster.make(ctx, found, "cluster")

    @_field(
        permission_classes=[CanReadScores],
        description="One build's clusters at or above minScore; a cursor stays in its build.",
    )
    async def clusters(
        self,
        info: Ctx,
        min_score: float = 0.0,
        first: int = DEFAULT_PAGE,
        after: str | None = None,
    ) -> ClusterConnection:
        ctx = info.context
        if not 1 <= first <= MAX_PAGE:
            raise service.LimitExceededError(f"first is between 1 and {MAX_PAGE}.")
        if not math.isfinite(min_score):
            raise service.InvalidArgumentError("minScore must be a finite number.")
        page = await ctx.run(
            builds.clusters, ctx.graph, min_score=min_score, first=first, after=after
        )
        return ClusterConnection(
            build_id=page.build_id,
            total_count=page.total,
            edges=[
                ClusterEdge(
                    cursor=builds.encode_cursor(page.build_id, c.score, c.id),
                    node=Cluster.make(ctx, c, "clusters"),
                )
                for c in page.items
            ],
            page_info=PageInfo(has_next_page=page.has_next, end_cursor=page.end_cursor),
        )

    @_field(
        permission_classes=[CanReadScores],
        description=f"Risk scores in the current build; at most {service.MAX_ACCOUNT_RISK_IDS}.",
    )
    async def account_risk(self, info: Ctx, ids: list[strawberry.ID]) -> list[AccountRisk]:
        ctx = info.context
        wanted = service.unique(str(i) for i in ids)
        if len(wanted) > service.MAX_ACCOUNT_RISK_IDS:
            raise service.LimitExceededError(
                f"accountRisk takes at most {service.MAX_ACCOUNT_RISK_IDS} ids per request "
                f"({len(wanted)} given); split the list."
            )
        bid = await ctx.current_build_id()
        if bid is None:
            raise builds.BuildNotFoundError("No complete build yet; run the detection first.")
        found = await ctx.run(service.account_risk, ctx.graph, bid, wanted, ctx.scores)
        ctx.returned_many("account", wanted, "accountRisk")
        return [
            AccountRisk(id=strawberry.ID(i), risk_score=found.get(i), build_id=bid) for i in wanted
        ]

    @_field(
        permission_classes=[CanReadEntities],
        description="Why the current model scores an account: top features and identifiers.",
    )
    async def explain(
        self, info: Ctx, account_id: strawberry.ID, top: int = 5
    ) -> Explanation | None:
        ctx = info.context
        if not 1 <= top <= service.MAX_EXPLAIN_TOP:
            raise service.InvalidArgumentError(f"top is between 1 and {service.MAX_EXPLAIN_TOP}.")
        if ctx.models is None:
            raise service.NotFoundError("This server does not serve a model.")
        found = await ctx.run(
            service.explain,
            ctx.graph,
            ctx.models,
            str(account_id),
            top=top,
            budget=ctx.settings.api_explain_expand_max,
        )
        if found is None:
            ctx.audit_not_found("account", str(account_id), "explain")
            return None
        return _explanation(ctx, found)

    @_field(permission_classes=[CanReadScores], description="The build readers see.")
    async def current_build(self, info: Ctx) -> Build | None:
        ctx = info.context
        b = await ctx.run(builds.current_build, ctx.graph)
        if b is None:
            return None
        return Build(
            id=strawberry.ID(b.id),
            status=b.status,
            started_at=b.started_at,
            finished_at=b.finished_at,
            model_version=b.model_version,
            previous_build=b.previous_build,
        )

    @_field(permission_classes=[CanManageKeys], description="Every API key (no secrets).")
    async def api_keys(self, info: Ctx) -> list[ApiKeyInfo]:
        ctx = info.context
        keys = await ctx.run(list_keys, ctx.graph)
        return [
            ApiKeyInfo(
                id=strawberry.ID(k.key_id),
                role=k.role,
                name=k.name,
                created_at=k.created_at,
                revoked_at=k.revoked_at,
            )
            for k in keys
        ]


@strawberry.type
class Mutation:
    @_mutation(
        permission_classes=[CanWriteLabels],
        description="Record a verdict on an account (author: the API key's name).",
    )
    async def label_account(
        self, info: Ctx, account_id: strawberry.ID, verdict: VerdictValue, note: str
    ) -> Verdict:
        ctx = info.context
        v = await ctx.run(
            service.label_account, ctx.graph, str(account_id), verdict.value, note, ctx.principal
        )
        ctx.returned("account", str(account_id), "labelAccount")
        return Verdict.of(v)

    @_mutation(
        permission_classes=[CanWriteLabels],
        description="Record a verdict on a ring (cluster id or ring id), kept across builds.",
    )
    async def label_cluster(
        self, info: Ctx, cluster_id: strawberry.ID, verdict: VerdictValue, note: str
    ) -> Verdict:
        ctx = info.context
        v, c = await ctx.run(
            service.label_cluster, ctx.graph, str(cluster_id), verdict.value, note, ctx.principal
        )
        ctx.returned("cluster", c.id, "labelCluster")
        return Verdict.of(v)

    @_mutation(
        permission_classes=[CanWriteLabels],
        description="Add a case note to a ring (cluster id or ring id), kept across builds.",
    )
    async def add_case_note(self, info: Ctx, cluster_id: strawberry.ID, text: str) -> CaseNote:
        ctx = info.context
        n, c = await ctx.run(service.add_case_note, ctx.graph, str(cluster_id), text, ctx.principal)
        ctx.returned("cluster", c.id, "addCaseNote")
        return CaseNote.of(n)


# --- the schema -------------------------------------------------------------------------------


def should_mask(error: GraphQLError) -> bool:
    """Mask unexpected errors (and log them); show GraphQL's and named domain errors."""
    original = error.original_error
    unexpected = original is not None and not isinstance(original, RingScopeError | GraphQLError)
    if unexpected and original is not None:
        log.error("unexpected error in %s", error.path, exc_info=original)
    return unexpected


class RingScopeSchema(strawberry.Schema):
    """Expected errors (refusals, domain errors, invalid queries) are answers, not log noise;
    unexpected ones are logged by :func:`should_mask` before they are masked."""

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        return None


def build_schema(settings: Settings | None = None) -> strawberry.Schema:
    """The schema with its limits; introspection off when ``api_env`` is production; leaf-only
    objects completed by api/execution.py unless ``api_fast_leaves`` is off."""
    s = settings or Settings()
    # Factories, so that every request gets fresh extension instances; the parser and
    # validation caches themselves are module-level LRU caches shared by all requests. The
    # validation cache is keyed by the rule classes too, and QueryDepthLimiter and
    # MaxAliasesLimiter make a new rule class per instance: built per request they missed the
    # cache every time (10% of a neighbourhood request's CPU went to validation). Their rules
    # are made once here and added per request.
    limits = (
        QueryDepthLimiter(max_depth=s.api_max_depth).validation_rules
        + MaxAliasesLimiter(max_alias_count=s.api_max_aliases).validation_rules
    )
    extensions: list[Callable[[], SchemaExtension]] = [
        partial(MaxTokensLimiter, max_token_count=s.api_max_tokens),
        partial(ParserCache, maxsize=1_000),
        partial(ValidationCache, maxsize=1_000),
        partial(AddValidationRules, limits),
        partial(MaskErrors, should_mask_error=should_mask, error_message="Internal server error."),
    ]
    if s.api_env == "production":
        extensions.append(DisableIntrospection)
    return RingScopeSchema(
        query=Query,
        mutation=Mutation,
        extensions=extensions,
        execution_context_class=LeafObjectExecutionContext if s.api_fast_leaves else None,
    )


def sdl() -> str:
    """The schema's SDL (what api/schema.graphql holds)."""
    return build_schema(Settings()).as_str() + "\n"
