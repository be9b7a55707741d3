"""What node numbers cost a Cypher load: the load (which marks new nodes ``:Unnumbered``) and the
numbering the next projection does, side by side with a checkout of the code before numbers.

    RINGSCOPE_DATA_DIR=... RINGSCOPE_NEO4J_PORT=... python bench/numbering.py \\
        --data DIR --before /tmp/before --rounds 2 --label 100k

Each load runs in its own process with the side's repository first on ``sys.path``, into a
graph emptied first (the Neo4j ``Settings()`` points at is EMPTIED). Rounds alternate before and
now. Writes ``bench/results/numbering-<label>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def one(data: Path, report_dir: Path) -> dict[str, Any]:
    """One load in this process (the side's code is first on sys.path), then numbering."""
    from ringscope.graph import connect, cypher, init_schema
    from ringscope.ingest import load
    from ringscope.settings import Settings

    settings = Settings()
    with connect(settings) as g:
        for statement in (cypher.CLEAR_RELATIONSHIPS_IN_BATCHES, cypher.INGEST_CLEAR_IN_BATCHES):
            with g.driver.session(database=g.database) as session:
                session.run(statement).consume()  # CALL IN TRANSACTIONS: auto-commit only
        init_schema(g)
        t = time.perf_counter()
        report = load(data, g, settings, report_dir=report_dir, progress=False)
        out: dict[str, Any] = {"load_s": round(time.perf_counter() - t, 1)}
        out["rows"] = report.rows_loaded
        try:
            from ringscope.graph import number_nodes
        except ImportError:  # the code before numbers
            pass
        else:
            t = time.perf_counter()
            out["numbered"] = number_nodes(g)
            out["numbering_s"] = round(time.perf_counter() - t, 1)
    out["peak_rss_gib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="a generated data set")
    ap.add_argument("--before", type=Path, required=True, help="a checkout of the code before")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--label", default="graph")
    ap.add_argument("--work", type=Path, default=Path("/tmp/ringscope-bench-numbering"))  # noqa: S108
    ap.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        sys.path.insert(0, os.getcwd())
        print(json.dumps(one(Path(args.one[0]), Path(args.one[1]))), flush=True)
        return
    runs: list[dict[str, Any]] = []
    for i in range(args.rounds):
        for side, repo in (("before", args.before), ("now", REPO)):
            cmd = [sys.executable, str(REPO / "bench" / "numbering.py"), "--data",
                   str(args.data), "--before", str(args.before), "--one", str(args.data),
                   str(args.work / f"{side}-{i}")]  # fmt: skip
            out = subprocess.run(cmd, cwd=repo, check=True, capture_output=True, text=True)
            row = {"side": side, "round": i + 1, **json.loads(out.stdout.strip().splitlines()[-1])}
            print(row, flush=True)
            runs.append(row)
    doc = {"label": args.label, "machine": {"cpus": os.cpu_count(),
           "python": platform.python_version()}, "data": str(args.data), "runs": runs}  # fmt: skip
    path = REPO / "bench" / "results" / f"numbering-{args.label}.json"
    path.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
