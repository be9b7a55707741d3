"""Idempotence, incremental loads and resuming a killed load, against the real Neo4j."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ingest_support import dump, ledger_batches, sample_tables, write_dataset

from ringscope.graph import Graph, counts, cypher
from ringscope.ingest import load
from ringscope.settings import Settings

pytestmark = pytest.mark.neo4j
REPO = Path(__file__).resolve().parents[1]


def test_loading_twice_changes_nothing(
    graph: Graph, neo4j_settings: Settings, tmp_path: Path
) -> None:
    d = write_dataset(tmp_path / "d", sample_tables())
    first = load(d, graph, neo4j_settings, report_dir=tmp_path / "r1", progress=False)
    before = (counts(graph), dump(graph))
    second = load(d, graph, neo4j_settings, report_dir=tmp_path / "r2", progress=False)
    assert (counts(graph), dump(graph)) == before
    assert first.relationships_created > 0
    assert second.nodes_created == second.relationships_created == second.properties_set == 0
    assert all(s.batches_written == 0 for s in second.sources)
    assert second.rows_loaded == first.rows_loaded  # the report still accounts for every row


def test_second_directory_updates_counts_and_times(
    graph: Graph, neo4j_settings: Settings, tmp_path: Path
) -> None:
    base = {
        "accounts": {"account_id": ["a1"], "created_at": ["2024-01-01T00:00:00Z"]},
        "account_devices": {
            "account_id": ["a1", "a1"],
            "device_id": ["d1", "d1"],
            "seen_at": ["2024-02-01T00:00:00Z", "2024-02-05T00:00:00Z"],
        },
        "payments": {
            "payment_id": ["p1", "p2"],
            "account_id": ["a1", "a1"],
            "payee_id": ["m1", "m1"],
            "amount": ["100", "0.25"],
            "currency": ["CNY", "CNY"],
            "paid_at": ["2024-03-01T00:00:00Z", "2024-03-02T00:00:00Z"],
        },
        "labels": {"account_id": ["a1"], "label": ["legit"], "labelled_at": ["2024-04-01"]},
    }
    newer = {
        "accounts": {"account_id": ["b1"], "created_at": ["2024-05-01T00:00:00Z"]},
        "account_devices": {  # a1 is already in the graph: not an unknown account
            "account_id": ["a1", "b1"],
            "device_id": ["d1", "d1"],
            "seen_at": ["2024-06-01T00:00:00Z", "2024-06-02T00:00:00Z"],
        },
        "payments": {
            "payment_id": ["p3"],
            "account_id": ["a1"],
            "payee_id": ["m1"],
            "amount": ["300.10"],
            "currency": ["CNY"],
            "paid_at": ["2024-06-03T00:00:00Z"],
        },
        "labels": {"account_id": ["a1"], "label": ["fraud"], "labelled_at": ["2024-07-01"]},
    }
    load(write_dataset(tmp_path / "d1", base), graph, neo4j_settings, progress=False,
         report_dir=tmp_path / "r1")  # fmt: skip
    report = load(write_dataset(tmp_path / "d2", newer), graph, neo4j_settings,
                  progress=False, report_dir=tmp_path / "r2")  # fmt: skip
    assert report.rows_quarantined == 0
    r = graph.read("MATCH (:Account {id: 'a1'})-[r:USES_DEVICE]->(:Device {id: 'd1'}) RETURN r")[0][
        "r"
    ]
    assert r["count"] == 3
    assert r["first_seen"].iso_format().startswith("2024-02-01T00:00:00")
    assert r["last_seen"].iso_format().startswith("2024-06-01T00:00:00")
    p = graph.read("MATCH (:Account {id: 'a1'})-[r:PAID]->(:Payee {id: 'm1'}) RETURN r")[0]["r"]
    assert (p["count"], p["total_amount"], p["total_amount_e4"]) == (3, "400.3500", 4_003_500)
    assert (p["max_amount"], p["round_count"]) == ("300.1000", 1)
    assert p["last_seen"].iso_format().startswith("2024-06-03")
    assert p["first_seen"].iso_format().startswith("2024-03-01")
    assert graph.read("MATCH (a:Account {id: 'a1'}) RETURN a.label AS l")[0]["l"] == "fraud"
    # an older label arriving later does not overwrite the newer one
    old = {
        "accounts": {"account_id": ["c1"]},
        "labels": {"account_id": ["a1"], "label": ["legit"], "labelled_at": ["2024-01-01"]},
    }
    load(write_dataset(tmp_path / "d3", old), graph, neo4j_settings, progress=False,
         report_dir=tmp_path / "r3")  # fmt: skip
    assert graph.read("MATCH (a:Account {id: 'a1'}) RETURN a.label AS l")[0]["l"] == "fraud"


_CHILD = """
import sys
from pathlib import Path
from ringscope.graph import connect
from ringscope.ingest import load
from ringscope.settings import Settings
s = Settings()
with connect(s) as g:
    load(Path(sys.argv[1]), g, s, report_dir=Path(sys.argv[2]), progress=False)
"""


def test_killed_load_resumes_to_the_same_graph(
    graph: Graph, neo4j_settings: Settings, neo4j_env: dict[str, str], tmp_path: Path
) -> None:
    d = write_dataset(tmp_path / "d", sample_tables(n_accounts=150, repeat=2))
    env = {**neo4j_env, "RINGSCOPE_INGEST_BATCH_SIZE": "3", "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(d), str(tmp_path / "killed")],
        env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    try:
        while ledger_batches(graph) < 60:  # well into the relationship batches
            assert child.poll() is None, child.stdout.read() if child.stdout else ""
            assert time.monotonic() < deadline
            time.sleep(0.02)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait()
    assert child.returncode == -signal.SIGKILL
    partial = ledger_batches(graph)
    small = neo4j_settings.model_copy(update={"ingest_batch_size": 3})
    resumed = load(d, graph, small, report_dir=tmp_path / "resumed", progress=False)
    assert sum(s.batches_skipped for s in resumed.sources) >= partial - 2  # the kill may land
    assert sum(s.batches_written for s in resumed.sources) > 0  # mid-commit of one more
    after_resume = dump(graph)
    graph.write(cypher.DELETE_ALL)
    load(d, graph, neo4j_settings, report_dir=tmp_path / "clean", progress=False)
    assert dump(graph) == after_resume
