"""Investigators' verdicts as labels: what a rebuild trains and evaluates with, and what an
explanation counts, overriding the labels imported with the data.

The API records the verdicts (``api/service.py``); they are nodes of their own, kept across
builds (``docs/api.md``, "Verdicts and rebuilds").
"""

from __future__ import annotations

from datetime import datetime

from ringscope.graph import cypher
from ringscope.graph.connection import Graph
from ringscope.graph.values import native
from ringscope.models.projection import Projection


def verdict_labels(graph: Graph) -> dict[str, tuple[str, datetime | None]]:
    """Investigators' labels for the next rebuild: account -> (fraud|legit, when).

    An account's own latest verdict wins over verdicts on rings it was in; among ring verdicts the
    latest wins. See docs/api.md ("Verdicts and rebuilds").
    """
    return {
        r["account"]: (r["label"], native(r["labelled_at"]))
        for r in graph.read(cypher.API_VERDICT_LABELS)
    }


def apply_verdicts(graph: Graph, proj: Projection) -> int:
    """Overwrite ``proj``'s labels with investigators' verdicts; returns how many applied."""
    index = {a: i for i, a in enumerate(proj.ids)}
    applied = 0
    for account, (label, _) in verdict_labels(graph).items():
        i = index.get(account)
        if i is not None:
            proj.label[i] = 1 if label == "fraud" else 0
            applied += 1
    return applied
