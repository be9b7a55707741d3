"""Helpers for the ingest tests: writing small data sets and dumping the graph for comparison."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ringscope.graph import Graph

Tables = dict[str, dict[str, list[Any]]]


def write_dataset(directory: Path, tables: Tables, fmt: str = "csv") -> Path:
    """Write each table as ``<name>.<fmt>``; all values as text (or null)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, columns in tables.items():
        table = pa.table({c: pa.array(v, pa.string()) for c, v in columns.items()})
        path = directory / f"{name}.{fmt}"
        if fmt == "csv":
            pacsv.write_csv(table, path)
        elif fmt == "parquet":
            pq.write_table(table, path)
        else:
            with path.open("w") as fh:
                for row in table.to_pylist():
                    fh.write(json.dumps(row) + "\n")
    return directory


def sample_tables(n_accounts: int = 12, repeat: int = 3) -> Tables:
    """A small but complete data set: every table, repeated observations, shared identifiers."""
    accounts = [f"acc-{i:04d}" for i in range(n_accounts)]
    t: Tables = {
        "accounts": {
            "account_id": accounts,
            "created_at": [f"2024-01-{1 + i % 28:02d}T08:00:00Z" for i in range(n_accounts)],
            "kyc_level": [str(i % 4) for i in range(n_accounts)],
            "country": ["CN"] * n_accounts,
        },
        "devices": {
            "device_id": ["dev-0", "dev-1"],
            "os": ["android", "ios"],
            "is_emulator": ["true", "false"],
        },
        "phones": {"phone": ["138 0013 8000"], "carrier": ["cmcc"], "is_virtual": ["0"]},
        "payees": {"payee_id": ["m-0"], "kind": ["merchant"], "name": ["Shop"]},
        "labels": {
            "account_id": accounts[:3],
            "label": ["fraud", "legit", "fraud"],
            "labelled_at": ["2024-06-01T00:00:00Z"] * 3,
        },
    }
    dev: dict[str, list[Any]] = {"account_id": [], "device_id": [], "seen_at": []}
    ph: dict[str, list[Any]] = {"account_id": [], "phone": [], "seen_at": []}
    pay: dict[str, list[Any]] = {
        "payment_id": [], "account_id": [], "payee_id": [], "amount": [], "currency": [],
        "paid_at": [],
    }  # fmt: skip
    ident: dict[str, list[Any]] = {"account_id": [], "kind": [], "value": [], "seen_at": []}
    spellings = ["+86 138 0013 8000", "13800138000", "138-0013-8000", "(+86) 13800138000"]
    for i, acc in enumerate(accounts):
        for r in range(repeat):
            ts = f"2024-02-{1 + (i + r) % 28:02d}T{r:02d}:30:00Z"
            dev["account_id"].append(acc)
            dev["device_id"].append(f"dev-{i % 3}")
            dev["seen_at"].append(ts)
            ph["account_id"].append(acc)
            ph["phone"].append(spellings[(i + r) % 4] if i % 2 == 0 else f"139{i:08d}")
            ph["seen_at"].append(ts)
            pay["payment_id"].append(f"pay-{i}-{r}")
            pay["account_id"].append(acc)
            pay["payee_id"].append(f"m-{i % 2}")
            pay["amount"].append(["100", "12.34", "200.00"][r % 3])
            pay["currency"].append("CNY")
            pay["paid_at"].append(ts)
            ident["account_id"].append(acc)
            ident["kind"].append(["email", "ip", "bank_card"][r % 3])
            ident["value"].append(
                [f" User{i % 4}@Example.COM ", f"10.0.0.{i % 5}", f"6222{i % 3:012d}"][r % 3]
            )
            ident["seen_at"].append(ts)
    t["account_devices"], t["account_phones"] = dev, ph
    t["payments"], t["account_identifiers"] = pay, ident
    return t


def _plain(value: Any) -> Any:
    if hasattr(value, "iso_format"):
        return value.iso_format()
    return value


_NAMING = ("seq", "moved_at")


def dump(graph: Graph) -> tuple[list[Any], list[Any]]:
    """Every node (labels, properties) and relationship, ledger excluded, in a stable order.
    Node numbers are left out (``seq``, the ``Unnumbered`` mark, the counter): they name nodes,
    and a bulk import numbers them as it writes, a Cypher load at the next projection. So are
    the writers' ``moved_at`` stamps (when a write happened, for screening's table: a bulk
    import into an empty store, which a build then reads whole, writes none)."""
    nodes = graph.read(
        "MATCH (n) WHERE NOT n:IngestBatch AND NOT n:IngestFile AND NOT n:Sequence "
        "RETURN [x IN labels(n) WHERE x <> 'Unnumbered'] AS labels, "
        "properties(n) AS props"
    )
    rels = graph.read(
        "MATCH (a)-[r]->(b) RETURN labels(a)[0] AS la, a.id AS a, type(r) AS type, "
        "labels(b)[0] AS lb, b.id AS b, properties(r) AS props"
    )
    node_list = sorted(
        json.dumps([sorted(r["labels"]),
                    {k: _plain(v) for k, v in r["props"].items() if k not in _NAMING}],
                   sort_keys=True)
        for r in nodes
    )  # fmt: skip
    rel_list = sorted(
        json.dumps([r["la"], r["a"], r["type"], r["lb"], r["b"],
                    {k: _plain(v) for k, v in r["props"].items()}], sort_keys=True)
        for r in rels
    )  # fmt: skip
    return node_list, rel_list


def ledger_batches(graph: Graph) -> int:
    return int(graph.read("MATCH (b:IngestBatch) RETURN count(b) AS n")[0]["n"])
