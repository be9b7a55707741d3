"""Deleting builds: one by one in batches, and pruning all but the newest few."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import LiteralString

from ringscope.graph import cypher
from ringscope.graph.connection import Graph
from ringscope.models.builds.readers import list_builds
from ringscope.models.builds.tx import write_values

DELETE_BATCH = 10_000


def _delete_loop(graph: Graph, text: LiteralString, build_id: str, limit: int) -> int:
    total = 0
    while True:
        got = write_values(graph, text, {"build_id": build_id, "limit": limit})
        n = int(got[0]) if got else 0
        total += n
        if n == 0:
            return total


def delete_build(graph: Graph, build_id: str, *, batch: int = DELETE_BATCH) -> bool:
    """Delete a non-current build in batches. Returns False when it is current or absent.

    The build is first marked ``deleting`` (readers of it then fail cleanly instead of seeing a
    partial build); an interrupted delete is finished by the next ``write_build``.
    """
    if not write_values(graph, cypher.BUILD_MARK_DELETING, {"build_id": build_id}):
        return False
    _delete_loop(graph, cypher.BUILD_DELETE_MEMBERSHIPS, build_id, batch)
    _delete_loop(graph, cypher.BUILD_DELETE_CLUSTERS, build_id, max(1, batch // 10))
    _delete_loop(graph, cypher.BUILD_DELETE_CHUNKS, build_id, 20)
    write_values(graph, cypher.BUILD_DELETE_NODE, {"build_id": build_id})
    return True


def prune_builds(graph: Graph, *, keep: int = 3) -> list[str]:
    """Delete complete builds beyond the newest ``keep`` (never the current one)."""
    complete = [b for b in list_builds(graph) if b.status == "complete"]
    complete.sort(
        key=lambda b: (b.current, b.finished_at or datetime.min.replace(tzinfo=UTC), b.id),
        reverse=True,
    )
    deleted = []
    for info in complete[keep:]:
        if not info.current and delete_build(graph, info.id):
            deleted.append(info.id)
    return deleted
