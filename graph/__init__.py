"""Neo4j: the embedded default, connections, the schema and the Cypher RingScope runs."""

from ringscope.graph.connection import Graph, Reader, Reads, Target, connect, resolve_target
from ringscope.graph.embedded import EmbeddedNeo4j, Instance
from ringscope.graph.numbering import number_nodes
from ringscope.graph.schema import counts, init_schema

__all__ = [
    "EmbeddedNeo4j",
    "Graph",
    "Instance",
    "Reader",
    "Reads",
    "Target",
    "connect",
    "counts",
    "init_schema",
    "number_nodes",
    "resolve_target",
]
