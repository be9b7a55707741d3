"""The Query root: entities, neighbourhoods, clusters, scores, explanations, builds, API keys.

Each resolver checks its arguments, calls the service layer (or the build store) in a worker
thread, and audits what it returns or does not find.
"""

from __future__ import annotations

import math

import strawberry

from ringscope.api import cost, service
from ringscope.api.auth import ROLE_CAPABILITIES, list_keys
from ringscope.api.schema.enums import Capability, EntityKind
from ringscope.api.schema.explanation import Explanation, to_explanation
from ringscope.api.schema.fields import Ctx, typed_field
from ringscope.api.schema.neighbourhood import Neighbourhood, to_neighbourhood
from ringscope.api.schema.permissions import (
    CanManageKeys,
    CanReadEntities,
    CanReadScores,
    CanScreenEvents,
)
from ringscope.api.schema.screening import ScreenEvent, ScreenResult, to_event, to_screen_result
from ringscope.api.schema.types import (
    AccountRisk,
    ApiKeyInfo,
    Build,
    Cluster,
    ClusterConnection,
    ClusterEdge,
    Entity,
    PageInfo,
    Viewer,
)
from ringscope.models import builds

MAX_PAGE = cost.CLUSTERS.max
DEFAULT_PAGE = cost.CLUSTERS.default


@strawberry.type
class Query:
    @typed_field(
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

    @typed_field(
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
            cache=ctx.scores,
        )
        if nb is None:
            ctx.audit_not_found(kind.value, str(id), "riskNeighbourhood")
            return None
        return to_neighbourhood(ctx, nb)

    @typed_field(
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

    @typed_field(
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
        if after is not None:
            service.check_cursor(after)
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

    @typed_field(
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
        if ctx.build_known():  # another field read the request's build: the same one here
            known = await ctx.current_build_id()
            got = None if known is None else (known, await ctx.run(
                service.account_risk, ctx.graph, known, wanted, ctx.scores))  # fmt: skip
        else:  # the build and the scores in one transaction (the risk engine's usual pull)
            got = await ctx.run(service.current_account_risk, ctx.graph, wanted, ctx.scores)
            if got is not None:
                ctx.build_is(got[0])
        if got is None:
            raise builds.BuildNotFoundError("No complete build yet; run the detection first.")
        bid, found = got
        ctx.returned_many("account", wanted, "accountRisk")
        return [
            AccountRisk(id=strawberry.ID(i), risk_score=found.get(i), build_id=bid) for i in wanted
        ]

    @typed_field(
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
        return to_explanation(ctx, found)

    @typed_field(
        permission_classes=[CanScreenEvents],
        description="Score an event (a sign-up, application, payment, login or card binding) "
        "against the current graph and build, writing nothing: the model's score for its "
        "account as if the event were ingested, the flagged rings it reaches, and why.",
    )
    async def screen(self, info: Ctx, event: ScreenEvent) -> ScreenResult:
        ctx = info.context
        if ctx.models is None:
            raise service.NotFoundError("This server does not serve a model.")
        found, invalid = await ctx.run(
            service.screen_event,
            ctx.graph,
            ctx.models,
            to_event(event),
            region=ctx.settings.default_region,
            budget=ctx.settings.api_explain_expand_max,
            use_table=ctx.settings.screen_table,
        )
        return to_screen_result(ctx, found, invalid)

    @typed_field(
        description="The calling API key: its role and what that role may do. Any valid key may "
        "read it (it names only the caller); the workbench uses it to sign in."
    )
    def viewer(self, info: Ctx) -> Viewer:
        p = info.context.principal
        caps = ROLE_CAPABILITIES[p.role]
        return Viewer(
            key_id=strawberry.ID(p.key_id),
            role=p.role.value,
            name=p.name,
            capabilities=[c for c in Capability if c in caps],  # in the enum's order
        )

    @typed_field(permission_classes=[CanReadScores], description="The build readers see.")
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

    @typed_field(
        permission_classes=[CanManageKeys],
        description=f"API keys (no secrets): the first `first` ({cost.API_KEYS.default} by "
        f"default, at most {cost.API_KEYS.max}).",
    )
    async def api_keys(self, info: Ctx, first: int = cost.API_KEYS.default) -> list[ApiKeyInfo]:
        cost.API_KEYS.check(first, "apiKeys")
        ctx = info.context
        keys = (await ctx.run(list_keys, ctx.graph))[:first]
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
