"""Writing through Cypher: a reduced bucket's rows as batch parameters, the query each table's
batches run (every one starts with the ledger guard, graph/cypher.py) and the transaction
function that runs one batch."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, LiteralString

import neo4j
import pyarrow as pa
import pyarrow.compute as pc

from ringscope.graph import cypher
from ringscope.ingest.contract import Table
from ringscope.kinds import BY_NAME as KIND_BY_NAME
from ringscope.kinds import DEVICE, PAYEE, PHONE, Kind


def _rows_for(table: Table, t: pa.Table) -> list[dict[str, Any]]:
    """Batch rows as driver parameters. Timestamps travel as epoch milliseconds: the driver's
    datetime packing is pure Python and cost more than everything else together (profiled)."""
    rows, ts = _dicts_of(t)
    return _param_rows(table, rows, ts)


def _dicts_of(t: pa.Table) -> tuple[list[dict[str, Any]], list[str]]:
    """A table's rows as Python values with timestamps as epoch milliseconds, and the names of
    the timestamp columns."""
    ts = [f.name for f in t.schema if pa.types.is_timestamp(f.type)]
    for name in ts:
        col = t.column(name).cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64())
        t = t.set_column(t.schema.get_field_index(name), name, col)
    rows: list[dict[str, Any]] = t.to_pylist()
    return rows, ts


def _param_rows(table: Table, rows: list[dict[str, Any]], ts: list[str]) -> list[dict[str, Any]]:
    """Rows of ``table`` (timestamps ``ts`` as epoch milliseconds) as its Cypher takes them: an
    entity's as id, properties and timestamps; a link table's as they are."""
    if not table.entity:
        return rows
    return [
        {
            "id": r["id"],
            "props": {k: v for k, v in r.items() if v is not None and k != "id" and k not in ts},
            "ts": {k: r[k] for k in ts if r.get(k) is not None},
        }
        for r in rows
    ]


def _link_kind(table: Table, kind: str | None) -> Kind:
    """The kind of node a link table's rows point at (its label and relationship type)."""
    if table.name == "payments":
        return PAYEE
    found = {"account_devices": DEVICE, "account_phones": PHONE}.get(table.name)
    return found if found is not None else KIND_BY_NAME[str(kind)]


def _entity_label(table: Table) -> str:
    """The node label an entity table's rows become."""
    return {"accounts": ACCOUNTS_LABEL, "devices": DEVICE.label, "phones": PHONE.label,
            "payees": PAYEE.label}[table.name]  # fmt: skip


def _query(table: Table, kind: str | None) -> LiteralString:
    name = table.name
    if table.entity:
        return cypher.INGEST_NODES[_entity_label(table)]
    if name == "labels":
        return cypher.INGEST_LABELS
    if name == "payments":
        return cypher.INGEST_PAYMENTS
    rel = _link_kind(table, kind).rel
    assert rel is not None
    return cypher.INGEST_LINKS[rel]


ACCOUNTS_LABEL = KIND_BY_NAME["account"].label


def _write_batch(
    tx: neo4j.ManagedTransaction, query: LiteralString, params: dict[str, Any]
) -> tuple[int, int, int]:
    summary = tx.run(query, params).consume()
    c = summary.counters
    return c.nodes_created, c.relationships_created, c.properties_set


def _parts(rows: pa.Table, files: dict[str | None, str]) -> Iterator[tuple[str | None, pa.Table]]:
    """A reduced bucket split per ledger file: identifier rows by kind, other tables whole."""
    for kind in files:
        if kind is None:
            yield kind, rows
        else:
            yield kind, rows.filter(pc.equal(rows.column("kind"), kind)).drop_columns("kind")
