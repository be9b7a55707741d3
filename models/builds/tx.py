"""The build store's transaction shapes, over :meth:`Graph.write_tx` / :meth:`Graph.read_tx`."""

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


def _status(tx: neo4j.ManagedTransaction, build_id: str) -> str | None:
    rec = tx.run(cypher.BUILD_STATUS, {"build_id": build_id}).single()
    return rec["status"] if rec else None


def _complete(build_id: str, status: str | None) -> None:
    if status != "complete":
        raise BuildNotFoundError(
            f"Build {build_id} is not available (status: {status or 'deleted'}); "
            "read the current build instead (`current_build`)."
        )


def read_build(graph: Graph, build_id: str, work: Callable[[neo4j.ManagedTransaction], T]) -> T:
    """Run ``work`` in one read transaction, then check the build is still complete.

    A build is marked ``deleting`` before any of it is deleted, so a ``complete`` status read
    *after* the data means every record read was from the intact build.
    """

    def tx_work(tx: neo4j.ManagedTransaction) -> tuple[T, str | None]:
        return work(tx), _status(tx, build_id)

    result, status = graph.read_tx(tx_work)
    _complete(build_id, status)
    return result


def read_current_build(
    graph: Graph, work: Callable[[neo4j.ManagedTransaction, str], T]
) -> tuple[str, T] | None:
    """:func:`read_build` of the current build, found in the same transaction: the build's id
    and ``work(tx, build_id)``, or None when there is no current build. One transaction where
    reading the current build first took two (a round trip of begin and commit on the risk
    engine's most frequent pull)."""

    def tx_work(tx: neo4j.ManagedTransaction) -> tuple[str, T, str | None] | None:
        rec = tx.run(cypher.BUILD_CURRENT_ID).single()
        if rec is None:
            return None
        build_id = str(rec["id"])
        return build_id, work(tx, build_id), _status(tx, build_id)

    got = graph.read_tx(tx_work)
    if got is None:
        return None
    build_id, result, status = got
    _complete(build_id, status)
    return build_id, result
