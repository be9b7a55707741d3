"""Investigators' verdicts as labels: what a rebuild trains and evaluates with, and what an
explanation counts, overriding the labels imported with the data.

The API records the verdicts (``api/service.py``); they are nodes of their own, kept across
builds (``docs/api.md``, "Verdicts and rebuilds").
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from ringscope.graph import cypher
from ringscope.graph.connection import Graph
from ringscope.graph.values import native
from ringscope.models.projection import Projection


def verdict_labels(
    graph: Graph, ids: Sequence[str] | None = None
) -> dict[str, tuple[str, datetime | None]]:
    """Investigators' labels for the next rebuild: account -> (fraud|legit, when); of the
    accounts ``ids`` only when given (read from those accounts, not from every verdict).

    An account's own latest verdict wins over verdicts on rings it was in; among ring verdicts the
    latest wins. See docs/api.md ("Verdicts and rebuilds").
    """
    rows = (
        graph.read(cypher.API_VERDICT_LABELS)
        if ids is None
        else graph.read(cypher.API_VERDICT_LABELS_FOR, {"ids": list(ids)})
    )
    return {r["account"]: (r["label"], native(r["labelled_at"])) for r in rows}


def apply_verdicts(graph: Graph, proj: Projection, *, local: bool = False) -> int:
    """Overwrite ``proj``'s labels with investigators' verdicts; returns how many applied.

    ``local``: ``proj`` is a neighbourhood (explain's); only its accounts' verdicts are read."""
    index = {a: i for i, a in enumerate(proj.ids)}
    applied = 0
    for account, (label, _) in verdict_labels(graph, proj.ids if local else None).items():
        i = index.get(account)
        if i is not None:
            proj.label[i] = 1 if label == "fraud" else 0
            applied += 1
    return applied
