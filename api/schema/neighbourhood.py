"""riskNeighbourhood's types: nodes, edges and paths to flagged accounts, and the JSON forms.

``nodesJson`` / ``edgesJson`` give ``nodes`` / ``edges`` again as one JSON value each, for
clients that read whole neighbourhoods without GraphQL's per-field cost; leaf-only objects are
otherwise completed by the fast path of ``api/execution.py``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

import strawberry
from strawberry.scalars import JSON

from ringscope.api import service
from ringscope.api.context import RequestContext
from ringscope.api.schema.enums import EntityKind
from ringscope.api.schema.fields import typed_field


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

    @typed_field(description="`nodes` " + _JSON_FORM.format("nodes"))
    def nodes_json(self) -> JSON:
        return cast(JSON, [_node_json(n) for n in self.nodes])

    @typed_field(description="`edges` " + _JSON_FORM.format("edges"))
    def edges_json(self) -> JSON:
        return cast(JSON, [_edge_json(e) for e in self.edges])


def to_neighbourhood(ctx: RequestContext, nb: service.Neighbourhood) -> Neighbourhood:
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
