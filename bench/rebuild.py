"""Rebuild cost on an already-loaded graph: a rings-only rebuild (the structural detector, as
`ringscope detect`), a full rebuild with a retrain, then a score-only rebuild that reuses that
model, each in its own process so that each peak RSS is its own.

    RINGSCOPE_DATA_DIR=... RINGSCOPE_NEO4J_PORT=... python bench/rebuild.py --label 1m

Reports the time of every step, the model's training details, and the peak RSS of the rebuild
process (Neo4j runs in its own JVM, sized by RINGSCOPE_NEO4J_HEAP / _PAGECACHE, and is not
counted). Writes ``bench/results/rebuild-<label>.json``.
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
sys.path.insert(0, str(REPO))


def one(mode: str) -> dict[str, Any]:
    """Run one rebuild in this process and return its record."""
    from ringscope.graph import connect
    from ringscope.jobs.rebuild import rebuild
    from ringscope.settings import Settings

    settings = Settings()
    t = time.perf_counter()
    with connect(settings) as g:
        result = rebuild(
            g,
            settings,
            retrain=mode == "retrain",
            score_only=mode == "score-only",
            use_model=mode != "rings-only",
        )
    return {
        "mode": mode,
        "total_s": round(time.perf_counter() - t, 1),
        "steps_s": result.steps,
        "counts": result.counts,
        "model_version": result.model_version,
        "retrained": result.retrained,
        "model": result.model_metrics,
        "detect_stages_s": {
            k: v for k, v in result.build.stage_seconds.items() if k.startswith("detect_")
        },
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--label", default="graph")
    ap.add_argument("--modes", nargs="+", default=["rings-only", "retrain", "score-only"])
    ap.add_argument(
        "--append", action="store_true", help="Keep the other modes' runs already in the file."
    )
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one)))
        return
    runs = []
    for mode in args.modes:
        res = subprocess.run(
            [sys.executable, __file__, "--one", mode],
            capture_output=True,
            text=True,
            check=False,
            cwd=REPO,
        )
        if res.returncode != 0:
            sys.exit(f"{mode} rebuild failed:\n{res.stderr[-4000:]}")
        runs.append(json.loads(res.stdout.strip().splitlines()[-1]))
        print(json.dumps(runs[-1], indent=2), flush=True)
    dest = REPO / "bench" / "results" / f"rebuild-{args.label}.json"
    if args.append and dest.exists():
        kept = [r for r in json.loads(dest.read_text())["runs"] if r["mode"] not in args.modes]
        runs = kept + runs
    result = {
        "label": args.label,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "runs": runs,
    }
    dest.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {dest}")


if __name__ == "__main__":
    main()
