"""Reading builds: the current one, clusters page by page, ring histories and account scores.

Readers resolve the ``(:CurrentBuild)`` pointer first and read that one build only; a read of a
build's data ends by checking the build is still complete (:func:`read_build`), so nobody ever
sees a half-written or half-deleted build.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import LiteralString

from ringscope.graph import cypher
from ringscope.graph.connection import Graph, Reader
from ringscope.graph.values import native
from ringscope.models.builds.cache import ScoreCache
from ringscope.models.builds.cursor import decode_cursor, encode_cursor
from ringscope.models.builds.errors import BuildNotFoundError, InvalidCursorError
from ringscope.models.builds.records import (
    BuildInfo,
    ClusterInfo,
    ClusterPage,
    RingSnapshot,
    build_info,
    cluster_info,
)
from ringscope.models.builds.tx import read_build, read_current_build

# --- builds -----------------------------------------------------------------------------------


def current_build(graph: Graph) -> BuildInfo | None:
    """The build readers see now, or None before the first build completed."""
    recs = graph.read(cypher.BUILD_CURRENT)
    return build_info(recs[0]["build"], True) if recs else None


def current_build_id(graph: Graph) -> str | None:
    """Only the current build's id (cheaper than :func:`current_build`)."""
    recs = graph.read(cypher.BUILD_CURRENT_ID)
    return str(recs[0]["id"]) if recs else None


def get_build(graph: Graph, build_id: str) -> BuildInfo | None:
    cur = current_build_id(graph)
    recs = graph.read(cypher.BUILD_GET, {"build_id": build_id})
    if not recs:
        return None
    return build_info(recs[0]["build"], cur == build_id)


def list_builds(graph: Graph) -> list[BuildInfo]:
    """Every stored build, newest first, including running and failed ones."""
    return [build_info(r["build"], bool(r["current"])) for r in graph.read(cypher.BUILD_ALL)]


def _resolve(graph: Graph, build_id: str | None) -> str:
    if build_id is not None:
        return build_id
    cur = current_build_id(graph)
    if cur is None:
        raise BuildNotFoundError("No complete build yet; run the detection first.")
    return cur


# --- clusters and rings -----------------------------------------------------------------------


def clusters(
    graph: Graph,
    build_id: str | None = None,
    min_score: float = 0.0,
    first: int = 50,
    after: str | None = None,
) -> ClusterPage:
    """One page of a build's clusters, by score descending then id.

    Without ``build_id`` the current build is read, except when ``after`` is given: a cursor
    always keeps reading the build it came from, so a switch between pages never mixes builds.
    A cursor of a build that was deleted since raises :class:`BuildNotFoundError`; a cursor of
    another build than an explicit ``build_id`` raises :class:`InvalidCursorError`.
    """
    if first < 1:
        raise ValueError("first must be at least 1")
    after_score: float | None = None
    after_id: str | None = None
    if after is not None:
        cur_build, after_score, after_id = decode_cursor(after)
        if build_id is not None and build_id != cur_build:
            raise InvalidCursorError(
                f"The cursor belongs to build {cur_build}, not {build_id}; "
                "start again from the first page."
            )
        build_id = cur_build
    bid = _resolve(graph, build_id)
    params = {
        "build_id": bid,
        "min_score": float(min_score),
        "after_score": after_score,
        "after_id": after_id,
        "limit": first + 1,
    }

    def work(tx: Reader) -> tuple[list[ClusterInfo], int]:
        items = [cluster_info(r["cluster"]) for r in tx.run(cypher.BUILD_CLUSTER_PAGE, params)]
        total = tx.run(cypher.BUILD_CLUSTER_TOTAL, params).single()
        return items, int(total["n"]) if total else 0

    items, total = read_build(graph, bid, work)
    has_next = len(items) > first
    items = items[:first]
    end = encode_cursor(bid, items[-1].score, items[-1].id) if items else None
    return ClusterPage(bid, tuple(items), total, end, has_next)


def all_clusters(
    graph: Graph, build_id: str | None = None, min_score: float = -math.inf
) -> tuple[str, list[ClusterInfo]]:
    """Every cluster of one build (the current one by default), in one consistent read."""
    bid = _resolve(graph, build_id)
    params = {
        "build_id": bid,
        "min_score": min_score if math.isfinite(min_score) else -1e308,
        "after_score": None,
        "after_id": None,
        "limit": 2**62,
    }

    def work(tx: Reader) -> list[ClusterInfo]:
        res = tx.run(cypher.BUILD_CLUSTER_PAGE, params)
        return [cluster_info(r["cluster"]) for r in res]

    return bid, read_build(graph, bid, work)


def cluster(
    graph: Graph, cluster_or_ring_id: str, build_id: str | None = None
) -> ClusterInfo | None:
    """A cluster by its id (``<build>/<ring>``), or a ring id in ``build_id`` (default current)."""
    if "/" in cluster_or_ring_id:
        bid, _, _ = cluster_or_ring_id.partition("/")
        if build_id is not None and build_id != bid:
            return None
        text, params = cypher.BUILD_CLUSTER_BY_ID, {"cluster_id": cluster_or_ring_id}
    else:
        bid = _resolve(graph, build_id)
        text, params = (
            cypher.BUILD_CLUSTER_BY_RING,
            {"ring_id": cluster_or_ring_id, "build_id": bid},
        )
    try:
        recs = read_build(graph, bid, lambda tx: list(tx.run(text, params)))
    except BuildNotFoundError:
        if build_id is None and "/" not in cluster_or_ring_id:
            raise  # the current build vanished under us: a real error
        return None
    return cluster_info(recs[0]["cluster"]) if recs else None


def ring_histories(graph: Graph, ring_ids: Sequence[str]) -> dict[str, list[RingSnapshot]]:
    """Each ring in every stored complete build, oldest first (pruned builds are gone)."""
    out: dict[str, list[RingSnapshot]] = {r: [] for r in ring_ids}
    for r in graph.read(cypher.BUILD_RING_HISTORY, {"ring_ids": list(ring_ids)}):
        out[r["ring_id"]].append(
            RingSnapshot(r["build_id"], native(r["finished_at"]), int(r["size"]), float(r["score"]))
        )
    return out


def ring_history(graph: Graph, ring_id: str) -> list[RingSnapshot]:
    """The ring in every stored complete build, oldest first (pruned builds are gone)."""
    return ring_histories(graph, [ring_id])[ring_id]


# --- account scores ---------------------------------------------------------------------------


def _chunk_scores(
    graph: Graph, query: LiteralString, build_id: str | None
) -> tuple[str, dict[str, float]]:
    bid = _resolve(graph, build_id)

    def work(tx: Reader) -> dict[str, float]:
        out: dict[str, float] = {}
        for r in tx.run(query, {"build_id": bid}):
            out.update(zip(r["accounts"], r["scores"], strict=True))
        return out

    return bid, read_build(graph, bid, work)


def ring_priors(graph: Graph, build_id: str) -> dict[str, float]:
    """Per account, the largest label-free score of the build's clusters holding it
    (``models.features.ring_features``); accounts in no cluster are left out."""

    def work(tx: Reader) -> dict[str, float]:
        out: dict[str, float] = {}
        for r in tx.run(cypher.BUILD_RING_PRIOR, {"build_id": build_id}):
            p = float(r["prior"])
            for m in r["members"] or ():
                if p > out.get(m, -1.0):
                    out[m] = p
        return out

    return read_build(graph, build_id, work)


def account_scores(graph: Graph, build_id: str | None = None) -> tuple[str, dict[str, float]]:
    """Every account's risk score in one build (the current one by default)."""
    return _chunk_scores(graph, cypher.BUILD_SCORES, build_id)


def model_scores(graph: Graph, build_id: str | None = None) -> tuple[str, dict[str, float]]:
    """The learned model's probability per account in one build (empty when none ran)."""
    return _chunk_scores(graph, cypher.BUILD_MODEL_SCORES, build_id)


def account_score(
    graph: Graph,
    account_ids: Sequence[str],
    build_id: str | None = None,
    cache: ScoreCache | None = None,
) -> dict[str, float]:
    """Risk scores of some accounts in one build; accounts without a score are left out."""
    bid = _resolve(graph, build_id)
    ids = list(account_ids)
    return read_build(graph, bid, lambda tx: read_scores(tx, bid, ids, cache))


def current_account_score(
    graph: Graph, account_ids: Sequence[str], cache: ScoreCache | None = None
) -> tuple[str, dict[str, float]] | None:
    """The current build's id and the risk scores of some accounts in it, in one read
    transaction (:func:`read_current_build`); None when there is no complete build."""
    ids = list(account_ids)
    return read_current_build(graph, lambda tx, bid: read_scores(tx, bid, ids, cache))


def read_scores(
    tx: Reader,
    build_id: str,
    ids: Sequence[str],
    cache: ScoreCache | None = None,
) -> dict[str, float]:
    """Scores of ``ids`` in a build, inside a read transaction: from ``cache`` when given (a
    long-running reader's), else from the score chunks in Cypher."""
    if cache is not None:
        return cache.lookup(tx, build_id, ids)
    res = tx.run(cypher.BUILD_ACCOUNT_SCORES, {"ids": list(ids), "build_id": build_id})
    return {r["id"]: float(r["found"][0]) for r in res if r["found"]}
