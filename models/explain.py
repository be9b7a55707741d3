"""Why the current model scores an account as it does, from the account's neighbourhood alone."""

from __future__ import annotations

from dataclasses import dataclass

from ringscope.graph import cypher
from ringscope.graph.connection import Graph
from ringscope.models.builds import current_build
from ringscope.models.projection import read_local_projection, unread_identifiers
from ringscope.models.store import ModelStore
from ringscope.models.verdicts import apply_verdicts


@dataclass(frozen=True)
class ExplainedIdentifier:
    kind: str
    id: str
    score_drop: float


@dataclass(frozen=True)
class ExplanationRecord:
    account_id: str
    score: float
    model: str
    model_version: str | None
    build_id: str | None
    top_features: tuple[tuple[str, float, float, str], ...]
    identifiers: tuple[ExplainedIdentifier, ...]
    accounts_read: int
    approximate: bool  # an identifier of the account was too big to read whole


def explain(
    graph: Graph, models: ModelStore, account_id: str, *, top: int, budget: int
) -> ExplanationRecord | None:
    """Why the current model scores an account as it does, from its neighbourhood alone.

    The account's local projection (:func:`models.projection.read_local_projection`: the
    accounts sharing an identifier with it and their edges) gives the same score and
    explanation as the whole graph, so this costs a few reads of one neighbourhood, never a
    projection of the whole graph. For the tree, the neighbourhood stops at its ``hub_degree``;
    ``budget`` accounts more are read for the GNN's bigger identifiers. Investigators' verdicts
    count as labels, as in a rebuild.
    """
    model = models.current()
    info = current_build(graph)
    counts = (info.metrics.get("counts") if info is not None else None) or {}
    data_now = counts.get("data_now")
    proj = read_local_projection(
        graph,
        account_id,
        data_now=int(data_now) if data_now is not None else _latest_seen(graph),
        always=model.config.hub_degree,
        # The tree leaves identifiers above hub_degree out, so their accounts would be read
        # for nothing (a merchant's thousands): only the GNN's messages need them.
        budget=budget if model.choice != "tree" else 0,
        # The ring priors this build's scores read: the build before it's (jobs.rebuild).
        ring_build=info.previous_build if info is not None and model.config.ring_prior else None,
    )
    if proj is None:
        return None
    apply_verdicts(graph, proj, local=True)
    why = model.explain(proj, account_id, top=top)
    # Named from the reads themselves: the local projection's keys are internal ids, which
    # mean something only within the transaction that read them.
    names = proj.names
    # The tree reads only identifiers it always gets whole; the GNN also reads bigger ones.
    approximate = model.choice != "tree" and unread_identifiers(proj, account_id) > 0
    return ExplanationRecord(
        account_id=account_id,
        score=why.score,
        model=why.model,
        model_version=model.version,
        build_id=info.id if info is not None else None,
        top_features=why.top_features,
        identifiers=tuple(
            ExplainedIdentifier(k, names.get(n, f"#{n}"), d) for k, n, d in why.identifiers
        ),
        accounts_read=proj.n,
        approximate=approximate or data_now is None,
    )


def _latest_seen(graph: Graph) -> int:
    """The data's "now" for a build that did not record it (built before it was recorded)."""
    rows = graph.read(cypher.API_LATEST_ACCOUNT_CREATED)
    return int(rows[0]["now"]) if rows and rows[0]["now"] is not None else 0
