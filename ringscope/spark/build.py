"""Writing a Spark detection into a build: the driver writes the clusters (ring ids are matched
against the previous build's rings there, which needs every cluster at once, and clusters are
few), the executors write the accounts' score chunks straight to Neo4j with the Python driver,
each partition in its own transactions. The driver opened the build (``BuildWriter.begin``)
and calls ``finish``, which counts what is in the graph against what was written and refuses to
switch the readers to an incomplete build, so a job killed half-way leaves the previous build
serving (``docs/builds.md``).

Chunks are the in-process writer's (``models.builds.writer``): ``SCORE_CHUNK`` accounts each,
numbered in business-id order, so readers find an account's chunk by ``lo``/``hi`` either way.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ringscope.graph import cypher
from ringscope.graph.connection import Graph, resolve_target
from ringscope.models.builds import BuildWriter
from ringscope.models.builds.tx import write_values
from ringscope.models.builds.writer import SCORE_BATCH, SCORE_CHUNK
from ringscope.settings import Settings

if TYPE_CHECKING:
    from pyspark import RDD
    from pyspark.sql import DataFrame

__all__ = ["write_score_chunks"]


Row = tuple[str, float, float | None]  # account, score, the account model's (or None)


def _chunks(rows: Iterable[tuple[int, Iterable[Row]]]) -> Iterator[dict[str, Any]]:
    for chunk, members in rows:
        part = sorted(members)
        model = [m for _, _, m in part]
        yield {
            "chunk": int(chunk),
            "lo": part[0][0],
            "hi": part[-1][0],
            "accounts": [a for a, _, _ in part],
            "scores": [float(s) for _, s, _ in part],
            # As the in-process writer: a list when the account model ran, else null.
            "model_scores": None if model[0] is None else [float(m or 0.0) for m in model],
        }


def write_score_chunks(scores: DataFrame, writer: BuildWriter, settings: Settings) -> int:
    """Every account's score (``scores``: account, score, and the account model's score or
    null when none ran) as the build's score chunks, written
    by the executors; returns how many chunks were written. The writer's counts are updated
    for ``finish`` to verify against the graph."""
    import neo4j

    build_id = writer.build_id
    if build_id is None:
        raise RuntimeError("write_score_chunks needs a begun build")
    target = resolve_target(settings, start=False)  # executors never start a Neo4j
    auth = (target.user, target.password) if target.password is not None else None
    uri, database = target.uri, target.database
    timeout = settings.neo4j_query_timeout
    per_tx = max(SCORE_BATCH // SCORE_CHUNK, 1)

    def write(partition: Iterable[tuple[int, Iterable[Row]]]) -> Iterator[int]:
        rows = list(_chunks(partition))
        # Fault injection (tests): the worker dies after its first transaction, as an executor
        # lost half-way through its writes would.
        die = os.environ.get("RINGSCOPE_SPARK_FAILPOINT") == "score-chunks"
        if not rows:
            yield 0
            return
        driver = neo4j.GraphDatabase.driver(uri, auth=auth, notifications_min_severity="OFF")
        try:
            graph = Graph(driver, database, timeout)
            for lo in range(0, len(rows), per_tx):
                write_values(
                    graph,
                    cypher.BUILD_MERGE_SCORES,
                    {"build_id": build_id, "rows": rows[lo : lo + per_tx]},
                )
                if die:
                    os._exit(1)
        finally:
            driver.close()
        yield len(rows)

    ranked: RDD[tuple[int, Iterable[Row]]] = (
        scores.select("account", "score", "model")
        .rdd.map(lambda r: (str(r[0]), (float(r[1]), None if r[2] is None else float(r[2]))))
        .sortByKey()
        .zipWithIndex()
        .map(lambda t: (t[1] // SCORE_CHUNK, (t[0][0], t[0][1][0], t[0][1][1])))
        .groupByKey()
    )
    written = int(sum(ranked.mapPartitions(write).collect()))
    n = int(scores.count())
    writer.counts["accounts_scored"] = n
    writer.counts["score_chunks"] = written
    return written
