"""Ingest benchmark: the loader against a naive one-MERGE-per-row baseline, on generated data.

    python bench/ingest.py --accounts 100000 [--accounts 1000000] [--mode cypher|bulk|both]

A warm-up load of a small set comes first (``--warmup``). Then, for each size: generate a data
set (``ringscope.synth.generate``, in a subprocess, so its memory is not counted), empty the
graph, load it with :func:`ringscope.ingest.load` and measure rows/s, elapsed time and the peak
RSS of this Python process (reset before each load). ``--mode both`` (the default on the
embedded Neo4j) loads each size twice, side by side: through Cypher batches and through the
offline importer (``bulk=True``). Right after the smallest size's loads, run the naive baseline
on the same data (one auto-commit transaction per account_devices row, MERGE per row), time-
boxed into an emptied graph, and report the ratios. Prints a table; writes
``bench/results/ingest-<accounts>.json``. Uses the Neo4j that ``Settings()`` points at
(NEO4J_URI or the embedded one): it is EMPTIED.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ringscope.graph import EmbeddedNeo4j, Graph, connect, counts, cypher, init_schema  # noqa: E402
from ringscope.ingest import load  # noqa: E402
from ringscope.settings import Settings  # noqa: E402

sys.path.insert(0, str(REPO / "bench"))
from datasets import generate  # noqa: E402

GOALS = {"speedup_vs_naive": 100.0, "seconds_1m": 600.0, "peak_rss_gib": 2.0}


def reset_peak_rss() -> None:
    """Reset the kernel's high-water mark of this process (Linux: clear_refs 5)."""
    with contextlib.suppress(OSError):  # else the peak is the process's peak so far
        Path("/proc/self/clear_refs").write_text("5")


def peak_rss_gib() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def empty(graph: Graph, settings: Settings) -> None:
    """An empty database: the embedded one's store is dropped (minutes faster than deleting a
    1M graph through Cypher); a server's graph is deleted in batches."""
    if not settings.neo4j_uri:
        EmbeddedNeo4j(settings).drop_database()
        graph.reconnect(settings)
        init_schema(graph)
        return
    with graph.driver.session(database=graph.database) as session:
        session.run(cypher.INGEST_CLEAR_IN_BATCHES).consume()


def _table(path: Path) -> pa.Table:
    return pq.read_table(path) if path.suffix == ".parquet" else pacsv.read_csv(path)


def naive(graph: Graph, settings: Settings, data: Path, seconds: float) -> dict[str, Any]:
    """One MERGE statement per row, one auto-commit transaction per row, time-boxed."""
    path = next(data.glob("account_devices.*"))
    rows = _table(path).slice(0, 200_000).to_pylist()  # more than it gets through in time
    empty(graph, settings)
    done = 0
    t0 = time.monotonic()
    with graph.driver.session(database=graph.database) as session:
        for row in rows:
            session.run(
                cypher.INGEST_NAIVE_DEVICE_ROW,
                account=str(row["account_id"]), device=str(row["device_id"]),
                seen_at=str(row["seen_at"]),
            ).consume()  # fmt: skip
            done += 1
            if done % 200 == 0 and time.monotonic() - t0 > seconds:
                break
    elapsed = time.monotonic() - t0
    return {"rows": done, "elapsed_s": round(elapsed, 2), "rows_per_s": round(done / elapsed, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--accounts", type=int, action="append", help="data set size (repeatable)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/ringscope-bench"))  # noqa: S108
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--naive-seconds", type=float, default=60.0)
    ap.add_argument("--data", type=Path, help="use this data directory instead of generating")
    ap.add_argument(
        "--warmup", type=int, default=20_000,
        help="first load (and discard) a set of this many accounts, so that no measured load "
        "pays for the Neo4j JVM's warm-up (0: none; measured: 92 s cold vs 65 s warm at 100k)",
    )  # fmt: skip
    ap.add_argument("--mode", choices=("cypher", "bulk", "both"), default=None,
                    help="default: both on the embedded Neo4j, cypher with NEO4J_URI")  # fmt: skip
    args = ap.parse_args()
    sizes = sorted(args.accounts or [100_000])
    settings = Settings()
    mode = args.mode or ("cypher" if settings.neo4j_uri else "both")
    modes = ["cypher", "bulk"] if mode == "both" else [mode]
    console = Console()
    results: list[dict[str, Any]] = []
    with connect(settings) as graph:
        if args.warmup:
            empty(graph, settings)
            warm = generate(args.warmup, args.work, args.seed)
            load(warm, graph, settings, report_dir=args.work / "report-warmup", progress=False)
        for accounts in sizes:
            data = args.data or generate(accounts, args.work, args.seed)
            for m in modes:
                empty(graph, settings)
                reset_peak_rss()
                report = load(
                    data, graph, settings, report_dir=args.work / f"report-{accounts}-{m}",
                    bulk=m == "bulk",
                )  # fmt: skip
                nodes, rels = counts(graph)
                results.append({
                    "accounts": accounts, "mode": m, "data": str(data),
                    "rows_read": report.rows_read, "rows_loaded": report.rows_loaded,
                    "rows_quarantined": report.rows_quarantined, "elapsed_s": report.elapsed_s,
                    "import_s": report.import_s, "schema_s": report.schema_s,
                    "import_bytes": report.import_bytes,
                    "rows_per_s": round(report.rows_read / report.elapsed_s, 1),
                    "peak_rss_gib": round(peak_rss_gib(), 3), "nodes": nodes,
                    "relationships": rels,
                    "per_source": [
                        {"file": s.file, "rows": s.rows_read, "batches": s.batches,
                         "read_s": s.read_s, "write_s": s.write_s}
                        for s in report.sources
                    ],
                })  # fmt: skip
            if accounts == sizes[0]:  # the baseline on the same data, before a bigger graph
                baseline = naive(graph, settings, data, args.naive_seconds)
    first = {r["mode"]: r for r in results if r["accounts"] == sizes[0]}
    speedup = {m: round(r["rows_per_s"] / baseline["rows_per_s"], 1) for m, r in first.items()}
    t = Table(title="Ingest benchmark")
    for col in ("accounts", "mode", "rows read", "elapsed s", "rows/s", "peak RSS GiB",
                "vs naive"):  # fmt: skip
        t.add_column(col, justify="right")
    for r in results:
        t.add_row(
            f"{r['accounts']:,}", r["mode"], f"{r['rows_read']:,}", f"{r['elapsed_s']:.1f}",
            f"{r['rows_per_s']:,.0f}", f"{r['peak_rss_gib']:.2f}",
            f"{r['rows_per_s'] / baseline['rows_per_s']:,.0f}x",
        )  # fmt: skip
    t.add_row("naive", "", f"{baseline['rows']:,}", f"{baseline['elapsed_s']:.1f}",
              f"{baseline['rows_per_s']:,.0f}", "", "1x")  # fmt: skip
    console.print(t)
    doc = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "batch_size": settings.ingest_batch_size, "writers": settings.ingest_writers,
        "neo4j": settings.neo4j_uri or (
            f"embedded 5.26, heap {settings.neo4j_heap}, page cache {settings.neo4j_pagecache}"
        ),
        "warmup_accounts": args.warmup,
        "results": results, "naive": baseline,
        "speedup_vs_naive_first_size": speedup, "goals": GOALS,
    }  # fmt: skip
    out = REPO / "bench" / "results" / f"ingest-{sizes[-1]}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2, default=str))
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
