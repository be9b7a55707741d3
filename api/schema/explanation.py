"""explain(accountId)'s types: the features and identifiers behind an account's score."""

from __future__ import annotations

import strawberry

from ringscope.api.context import RequestContext
from ringscope.api.schema.enums import EntityKind
from ringscope.models.explain import ExplanationRecord


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


def to_explanation(ctx: RequestContext, r: ExplanationRecord) -> Explanation:
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
