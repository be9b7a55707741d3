"""Node numbers: a stable integer name (``seq``) for every account and identifier node.

Why: the rebuild's projection reads the graph in several transactions (two reader sessions,
one chunk of accounts per statement), and what it names nodes by outlives them (a cluster's
reasons are looked up after the read, the screen table keeps a build's accounts until the next
build). Neo4j promises an internal or element id's meaning only within one transaction, and
reuses a deleted node's id. A business id would do but costs the projection's edge reads 20-37%
more Neo4j CPU (string seeks through the unique index, 100k world); an integer property costs
about 5% (measured, docs/scaling.md).

How: every writer marks a node it creates ``:Unnumbered`` (graph/cypher.py, "node numbers"), a
label write with no shared counter, so concurrent loads never wait on one another. Before each
projection, :func:`number_nodes` numbers the marked nodes from the one ``(:Sequence)`` counter,
in transactions of ``batch`` nodes; each transaction write-locks the counter first, so two
numbering runs never hand out the same numbers. The counter also keeps how many data nodes
have numbers; when the count store disagrees (an old store, a node written by hand, a delete),
the labels are scanned for nodes without one. (A delete and an unmarked node written by hand
in equal numbers would hide each other; RingScope deletes no account or identifier, and writes
none without the mark.) The bulk importer writes numbers itself (:mod:`ringscope.ingest.bulk`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import LiteralString

import neo4j

from ringscope.graph import cypher
from ringscope.graph.connection import Graph
from ringscope.kinds import KINDS


def number_nodes(graph: Graph, batch: int = 100_000) -> int:
    """Give every account and identifier node without a number one; returns how many.

    Costs one count-store read when there is nothing to number, so the projection calls it
    every time.
    """
    state = graph.read(cypher.SEQ_STATE)[0]
    complete = state["numbered"] is not None and int(state["numbered"]) == int(state["nodes"])
    if complete and not state["marked"]:
        return 0
    if state["numbered"] is None:  # never numbered: a store from before numbers
        for statement in cypher.SEQ_SCHEMA:
            graph.write(statement)
    total = 0
    for kind in KINDS:
        statements = [cypher.SEQ_NUMBER[kind.label]]
        if not complete:
            statements.append(cypher.SEQ_NUMBER_ANY[kind.label])
        for statement in statements:
            while True:
                k = graph.write_tx(_numbering(statement, batch))
                total += k
                if k < batch:
                    break
    graph.write_tx(_count_numbered)
    graph.write(cypher.AWAIT_INDEXES)  # the projection's range seeks name the account index
    return total


def _numbering(statement: LiteralString, batch: int) -> Callable[[neo4j.ManagedTransaction], int]:
    def work(tx: neo4j.ManagedTransaction) -> int:
        start = tx.run(cypher.SEQ_LOCK).single(strict=True)["next"]
        k = int(tx.run(statement, {"batch": batch, "next": start}).single(strict=True)["k"])
        if k:
            tx.run(cypher.SEQ_ADVANCE, {"k": k}).consume()
        return k

    return work


def _count_numbered(tx: neo4j.ManagedTransaction) -> None:
    """Record the data nodes counted now as numbered: every one is, the loops above saw to it
    (one created since is marked, and numbered next time)."""
    tx.run(cypher.SEQ_LOCK).consume()
    tx.run(cypher.SEQ_COUNTED).consume()


__all__ = ["number_nodes"]
