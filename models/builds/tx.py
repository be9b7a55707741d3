"""The build store's two transaction shapes, over :meth:`Graph.write_tx` / :meth:`Graph.read_tx`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, LiteralString, TypeVar

import neo4j

from ringscope.graph import cypher
from ringscope.graph.connection import Graph
from ringscope.models.builds.errors import BuildNotFoundError

T = TypeVar("T")


def write_values(graph: Graph, text: LiteralString, params: Mapping[str, Any]) -> list[Any]:
    """One managed write transaction; returns the records' first values."""

    def work(tx: neo4j.ManagedTransaction) -> list[Any]:
        return [r[0] for r in tx.run(text, dict(params))]

    return graph.write_tx(work)


def read_build(graph: Graph, build_id: str, work: Callable[[neo4j.ManagedTransaction], T]) -> T:
    """Run ``work`` in one read transaction, then check the build is still complete.

    A build is marked ``deleting`` before any of it is deleted, so a ``complete`` status read
    *after* the data means every record read was from the intact build.
    """

    def tx_work(tx: neo4j.ManagedTransaction) -> tuple[T, str | None]:
        result = work(tx)
        rec = tx.run(cypher.BUILD_STATUS, {"build_id": build_id}).single()
        return result, (rec["status"] if rec else None)

    result, status = graph.read_tx(tx_work)
    if status != "complete":
        raise BuildNotFoundError(
            f"Build {build_id} is not available (status: {status or 'deleted'}); "
            "read the current build instead (`current_build`)."
        )
    return result
