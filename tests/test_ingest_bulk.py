"""Bulk initial loads (neo4j-admin database import) against real embedded Neo4j instances: the
same graph, quarantine and ledger as a Cypher load, refusals, and a killed import."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import TEST_NEO4J_ENV, free_port
from helpers import ringscope
from ingest_support import Tables, dump, ledger_batches, sample_tables, write_dataset

from ringscope.errors import StoreError
from ringscope.graph import EmbeddedNeo4j, Graph, connect, counts, cypher, number_nodes
from ringscope.ingest import IngestError, load
from ringscope.ingest.loader import iter_quarantine
from ringscope.settings import Settings

pytestmark = [
    pytest.mark.neo4j,
    pytest.mark.skipif(
        bool(os.environ.get("NEO4J_URI")),
        reason="bulk loads rewrite the embedded store; NEO4J_URI points at a server",
    ),
]
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def bulk_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """An embedded instance of its own: bulk loads stop it and replace its store."""
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("bulk-data"),
        neo4j_port=free_port(),
        neo4j_heap="512m",
        neo4j_pagecache="256m",
    )
    try:
        yield settings
    finally:
        EmbeddedNeo4j(settings).stop()


def _tables() -> Tables:
    """The sample set, plus what could trip a CSV importer: an extra column, a line break and
    quotes in a name, a device seen only in logins, and bad rows that must be quarantined."""
    t = sample_tables(n_accounts=30)
    t["accounts"]["segment"] = ["retail" if i % 3 else None for i in range(30)]
    t["payees"] = {
        "payee_id": ["m-0", "m-1"],
        "kind": ["merchant", "individual"],
        "name": ['Shop "North"\nBranch, 2', "Li Wei"],
    }
    extra = {
        "account_devices": {"account_id": "nobody", "device_id": "dev-0",
                            "seen_at": "2024-02-01T00:00:00Z"},
        "payments": {"payment_id": "pay-0-0", "account_id": "acc-0001", "payee_id": "m-1",
                     "amount": "7", "currency": "CNY", "paid_at": "2024-02-01T00:00:00Z"},
    }  # fmt: skip
    for table, row in extra.items():
        for col, value in row.items():
            t[table][col].append(value)
    t["payments"]["amount"][5] = "-3"
    return t


def _quarantined(path: str) -> set[tuple[str, int, str, str]]:
    return {(r["file"], r["row"], r["field"], r["reason"]) for r in iter_quarantine(Path(path))}


def _pairs_linked_twice(g: Graph) -> int:
    """(account, identifier) pairs with more than one relationship of a type (payments: per
    currency). explain reads an identifier's distinct accounts as its relationship degree
    (models/projection.py), which holds only while every load folds links to one per pair."""
    rows = g.read(
        "MATCH (a)-[r]->(x) WITH a, type(r) AS t, r.currency AS c, x, count(*) AS n "
        "WHERE n > 1 RETURN count(*) AS pairs"
    )
    return int(rows[0]["pairs"])


def test_bulk_load_gives_the_graph_quarantine_and_ledger_of_a_cypher_load(
    graph: Graph, neo4j_settings: Settings, bulk_settings: Settings, tmp_path: Path
) -> None:
    d = write_dataset(tmp_path / "d", _tables())
    by_cypher = load(d, graph, neo4j_settings, report_dir=tmp_path / "cypher", progress=False)
    expected, expected_batches = dump(graph), ledger_batches(graph)
    assert by_cypher.rows_quarantined == 3

    with connect(bulk_settings) as g:
        g.write(cypher.DELETE_ALL)
        bulk = load(d, g, bulk_settings, report_dir=tmp_path / "bulk", progress=False, bulk=True)
        assert bulk.mode == "bulk" and bulk.import_bytes > 0
        assert dump(g) == expected
        assert _pairs_linked_twice(g) == 0
        # The importer numbers every node itself (graph/numbering.py): nothing left to number.
        seqs = [r["seq"] for r in g.read(
            "MATCH (n) WHERE NOT n:IngestBatch AND NOT n:IngestFile AND NOT n:Sequence "
            "RETURN n.seq AS seq"
        )]  # fmt: skip
        assert sorted(seqs) == list(range(len(seqs)))
        assert number_nodes(g) == 0
        assert ledger_batches(g) == expected_batches
        assert _quarantined(bulk.quarantine_file) == _quarantined(by_cypher.quarantine_file)
        for src in bulk.sources:
            assert src.rows_read == src.rows_loaded + src.rows_quarantined, src
        assert (bulk.rows_read, bulk.rows_loaded) == (by_cypher.rows_read, by_cypher.rows_loaded)
        name = g.read("MATCH (p:Payee {id: 'm-0'}) RETURN p.name AS n")[0]["n"]
        assert name == 'Shop "North"\nBranch, 2'
        constraints = {r["name"] for r in g.read(cypher.SHOW_CONSTRAINTS)}
        assert "ingestbatch_id_unique" in constraints and len(constraints) >= 8

        # The imported ledger is the one Cypher would have committed: loading again is a no-op.
        again = load(d, g, bulk_settings, report_dir=tmp_path / "again", progress=False)
        assert sum(s.batches_written for s in again.sources) == 0
        assert sum(s.batches_skipped for s in again.sources) == expected_batches
        assert dump(g) == expected

        with pytest.raises(IngestError, match="already holds nodes"):
            load(d, g, bulk_settings, report_dir=tmp_path / "refused", progress=False, bulk=True)
        assert dump(g) == expected


def test_bulk_load_refuses_a_server_it_does_not_own(
    graph: Graph, neo4j_settings: Settings, tmp_path: Path
) -> None:
    d = write_dataset(tmp_path / "d", sample_tables())
    remote = neo4j_settings.model_copy(update={"neo4j_uri": "bolt://127.0.0.1:7687"})
    with pytest.raises(IngestError, match="NEO4J_URI"):
        load(d, graph, remote, report_dir=tmp_path / "r", progress=False, bulk=True)
    assert counts(graph)[0].get("Account", 0) == 0


_CHILD = """
import sys
from pathlib import Path
from ringscope.graph import connect
from ringscope.ingest import load
from ringscope.settings import Settings
s = Settings()
with connect(s) as g:
    load(Path(sys.argv[1]), g, s, report_dir=Path(sys.argv[2]), progress=False, bulk=True)
"""


def test_a_killed_bulk_import_is_refused_then_loaded_afresh(
    bulk_settings: Settings, tmp_path: Path
) -> None:
    d = write_dataset(tmp_path / "d", sample_tables(n_accounts=200, repeat=2))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RINGSCOPE_", "NEO4J_"))}
    env.update({
        **TEST_NEO4J_ENV,
        "RINGSCOPE_DATA_DIR": str(bulk_settings.data_dir),
        "RINGSCOPE_CACHE_DIR": str(bulk_settings.cache_dir),
        "RINGSCOPE_NEO4J_PORT": str(bulk_settings.neo4j_port),
        "RINGSCOPE_NEO4J_HEAP": "512m", "RINGSCOPE_NEO4J_PAGECACHE": "256m",
        "PYTHONPATH": str(REPO),
    })  # fmt: skip
    with connect(bulk_settings) as g:
        g.write(cypher.DELETE_ALL)
    embedded = EmbeddedNeo4j(bulk_settings)
    # Kill the loader and its importer (one process group) once the import has begun.
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(d), str(tmp_path / "killed")], env=env, cwd=REPO,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 180
    try:
        while not embedded.import_marker.exists():
            assert child.poll() is None, child.stdout.read() if child.stdout else ""
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.5)
        os.killpg(child.pid, signal.SIGKILL)
    finally:
        child.wait()
    assert child.returncode == -signal.SIGKILL

    with pytest.raises(StoreError, match="interrupted"):
        embedded.start()

    done = ringscope("ingest", "--bulk", str(d), "--report-dir", str(tmp_path / "r"), env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "interrupted bulk import" in done.stderr
    with connect(bulk_settings) as g:
        nodes, rels = counts(g)
        assert nodes["Account"] == 200 and rels["USES_DEVICE"] == 200
        assert not embedded.import_marker.exists()


def test_bulk_load_through_a_mapping_matches_cypher(
    graph: Graph, neo4j_settings: Settings, bulk_settings: Settings, tmp_path: Path
) -> None:
    """The AWS transactions sample: one foreign file feeding accounts, payments and labels."""
    shared = REPO.parent / "shared" / "data"
    if not (shared / "aws_transactions_2k.csv").is_file():
        pytest.skip(f"reference data not present: {shared} (see shared/data/README.md)")
    mapping = REPO / "ingest" / "mappings" / "aws_transactions.yaml"
    by_cypher = load(shared, graph, neo4j_settings, mapping=mapping,
                     report_dir=tmp_path / "cypher", progress=False)  # fmt: skip
    assert by_cypher.rows_quarantined > 0  # unparseable billing phones
    with connect(bulk_settings) as g:
        g.write(cypher.DELETE_ALL)
        bulk = load(shared, g, bulk_settings, mapping=mapping, report_dir=tmp_path / "bulk",
                    progress=False, bulk=True)  # fmt: skip
        assert dump(g) == dump(graph)
        assert _pairs_linked_twice(g) == 0
        assert ledger_batches(g) == ledger_batches(graph)
    assert _quarantined(bulk.quarantine_file) == _quarantined(by_cypher.quarantine_file)
