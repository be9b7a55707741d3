"""Rebuild cost on an already-loaded graph: a rings-only rebuild (the structural detector, as
`ringscope detect`), a full rebuild with a retrain, then a score-only rebuild that reuses that
model, each in its own process so that each peak RSS is its own.

    RINGSCOPE_DATA_DIR=... RINGSCOPE_NEO4J_PORT=... python bench/rebuild.py --label 1m

``--engine spark --input DIR`` runs the in-process score-only rebuild (the current model) and
the Spark engine's (``rebuild --engine spark --no-load``: detection and the current model's tree
from DIR's files, the data set the graph was loaded from) side by side in the same run, Spark on
``RINGSCOPE_SPARK_MASTER`` (local[2] here); ``--modes rings-only spark-rings-only`` compares the
two without the account model.
Memory is sampled every half second over each run's whole process tree: the rebuild's Python
process (Spark's driver), the JVM (driver and executors, in local mode one process) and
Spark's Python workers, each role's peak and the peak of their sum.

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


def one(mode: str, input_dir: str | None = None) -> dict[str, Any]:
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
            use_model=mode not in ("rings-only", "spark-rings-only"),
            engine="spark" if mode.startswith("spark") else "in-process",
            input_dir=Path(input_dir) if mode.startswith("spark") and input_dir else None,
            load_input=False,
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


def _role(proc: Any) -> str:
    name = proc.name()
    if name.startswith("java"):
        return "jvm"
    cmd = " ".join(proc.cmdline())
    return "python_workers" if "pyspark" in cmd else "driver"


def run_sampled(cmd: list[str]) -> tuple[subprocess.CompletedProcess[str], dict[str, float]]:
    """Run ``cmd``, sampling the RSS of its process tree by role every half second."""
    import threading

    import psutil

    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO
    )
    peaks: dict[str, float] = {}
    done = threading.Event()

    def sample() -> None:
        root = psutil.Process(proc.pid)
        while not done.wait(0.5):
            try:
                tree = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            by: dict[str, float] = {}
            for p in tree:
                try:
                    by[_role(p)] = by.get(_role(p), 0.0) + p.memory_info().rss / 2**30
                except psutil.NoSuchProcess:
                    continue
            by["total"] = sum(by.values())
            for k, v in by.items():
                peaks[k] = max(peaks.get(k, 0.0), v)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    out, err = proc.communicate()
    done.set()
    thread.join()
    res = subprocess.CompletedProcess(cmd, proc.returncode, out, err)
    return res, {f"peak_{k}_gib": round(v, 2) for k, v in sorted(peaks.items())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--label", default="graph")
    ap.add_argument("--modes", nargs="+", default=["rings-only", "retrain", "score-only"])
    ap.add_argument(
        "--append", action="store_true", help="Keep the other modes' runs already in the file."
    )
    ap.add_argument("--engine", choices=["in-process", "spark"], default="in-process")
    ap.add_argument("--input", help="The files the graph was loaded from (--engine spark).")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.input)))
        return
    modes = args.modes
    if args.engine == "spark":
        if not args.input:
            sys.exit("--engine spark needs --input DIR (the files the graph was loaded from)")
        if modes == ap.get_default("modes"):
            modes = ["score-only", "spark"]
    runs = []
    for mode in modes:
        cmd = [sys.executable, __file__, "--one", mode]
        if args.input:
            cmd += ["--input", args.input]
        res, peaks = run_sampled(cmd)
        if res.returncode != 0:
            sys.exit(f"{mode} rebuild failed:\n{res.stderr[-4000:]}")
        runs.append(json.loads(res.stdout.strip().splitlines()[-1]) | peaks)
        print(json.dumps(runs[-1], indent=2), flush=True)
    dest = REPO / "bench" / "results" / f"rebuild-{args.label}.json"
    if args.append and dest.exists():
        kept = [r for r in json.loads(dest.read_text())["runs"] if r["mode"] not in modes]
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
