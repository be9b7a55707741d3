"""Every Cypher statement RingScope runs, in one place, as parameterised constants.

Values always travel as parameters. The only text assembled here is labels and relationship
types, and only from the fixed table in :mod:`graph.model`, never from input.
"""

from __future__ import annotations

from typing import LiteralString

from graph.model import ACCOUNT, KINDS

# --- schema -----------------------------------------------------------------------------------


def _unique_id(label: str) -> LiteralString:
    name = label.lower() + "_id_unique"
    return f"CREATE CONSTRAINT {name} IF NOT EXISTS FOR (n:{label}) REQUIRE n.id IS UNIQUE"  # type: ignore[return-value]


SCHEMA: tuple[LiteralString, ...] = (
    *(_unique_id(k.label) for k in KINDS),
    f"CREATE INDEX account_label IF NOT EXISTS FOR (n:{ACCOUNT.label}) ON (n.label)",  # type: ignore[misc]
    f"CREATE INDEX account_created_at IF NOT EXISTS FOR (n:{ACCOUNT.label}) ON (n.created_at)",  # type: ignore[misc]
)

SHOW_CONSTRAINTS: LiteralString = (
    "SHOW CONSTRAINTS YIELD name, labelsOrTypes, properties RETURN name, labelsOrTypes, properties"
)
SHOW_INDEXES: LiteralString = "SHOW INDEXES YIELD name, state RETURN name, state"

# --- counts -----------------------------------------------------------------------------------
# One MATCH per label/type so Neo4j answers each from its count store, without a scan.

COUNT_NODES: LiteralString = "\nUNION ALL\n".join(  # type: ignore[assignment]
    f"MATCH (n:{k.label}) RETURN '{k.label}' AS label, count(n) AS n" for k in KINDS
)
COUNT_RELS: LiteralString = "\nUNION ALL\n".join(  # type: ignore[assignment]
    f"MATCH ()-[r:{k.rel}]->() RETURN '{k.rel}' AS type, count(r) AS n"
    for k in KINDS
    if k.rel is not None
)

DELETE_ALL: LiteralString = "MATCH (n) DETACH DELETE n"
AWAIT_INDEXES: LiteralString = "CALL db.awaitIndexes(300)"
