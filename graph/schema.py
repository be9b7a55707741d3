"""Creating the schema: uniqueness constraints and indexes, idempotently."""

from __future__ import annotations

from ringscope.graph import cypher
from ringscope.graph.connection import Graph


def init_schema(graph: Graph) -> list[str]:
    """Create every constraint and index (IF NOT EXISTS) and wait until they are online.

    Every node RingScope writes is covered: the graph, the ingest ledger, the builds and the
    API's own nodes (keys, verdicts, case notes). Returns the names of the constraints that now
    exist. Safe to run any number of times.
    """
    for statement in (*cypher.SCHEMA, *cypher.API_SCHEMA):
        graph.write(statement)
    graph.write(cypher.AWAIT_INDEXES)
    graph.write(cypher.API_VERDICT_LINK_MEMBERS)  # ring verdicts given before they were linked
    graph.write(cypher.API_VERDICT_MARK_ACCOUNTS)  # accounts linked before the label existed
    return sorted(r["name"] for r in graph.read(cypher.SHOW_CONSTRAINTS))


def counts(graph: Graph) -> tuple[dict[str, int], dict[str, int]]:
    """Node counts by label and relationship counts by type, from Neo4j's count store."""
    nodes = {r["label"]: r["n"] for r in graph.read(cypher.COUNT_NODES)}
    rels = {r["type"]: r["n"] for r in graph.read(cypher.COUNT_RELS)}
    return nodes, rels
