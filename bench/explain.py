"""``explain(accountId)`` side by side: two checkouts of the code on the same loaded world.

    python bench/explain.py --base /tmp/wt-explain [--random 40] [--flagged 30] [--rounds 2]
                            [--out bench/results/explain-100k-sidebyside.json]

``--base`` is another checkout (``git worktree add /tmp/wt-explain <commit>``); the other side is
this one. Both explain the same accounts (``--random`` sampled from the whole graph, ``--flagged``
from members of the current build's clusters scoring >= 0.6, seeded) against the graph
``Settings()`` points at, which must hold a current build and a trained model. Each side runs in
its own process with its checkout first on ``sys.path``, once per round, the order alternating
between rounds (page cache, CPU noise); each process warms up on one account first. Per explain:
wall time, the time in ``read_local_projection`` and in the model, and the number of Neo4j reads.
Every explanation (score, model, top features, identifiers and score drops, approximate) must be
the same on both sides, or the run fails; how many accounts were read may differ.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
FLAGGED = (
    "MATCH (c:Cluster)<-[:MEMBER_OF]-(a:Account) WHERE c.build_id = $build AND c.score >= 0.6 "
    "RETURN DISTINCT a.id AS id ORDER BY id"
)
ALL_ACCOUNTS = "MATCH (a:Account) RETURN a.id AS id ORDER BY id"


def worker(root: str, ids_file: str, out_file: str) -> None:
    """One side: explain each account, timed. Imports ringscope from ``root``."""
    sys.path.insert(0, root)
    from ringscope.graph import connect
    from ringscope.models import explain as ex
    from ringscope.models.store import ModelStore
    from ringscope.settings import Settings

    s = Settings()
    g = connect(s)
    models = ModelStore(s.models_dir)
    reads = [0]
    plain_read = g.read

    def counted(*a: Any, **k: Any) -> Any:
        reads[0] += 1
        return plain_read(*a, **k)

    g.read = counted  # type: ignore[method-assign]
    if hasattr(g, "reads"):  # reads in one transaction (Graph.reads, since session 29) count too
        plain_reads = g.reads

        @contextlib.contextmanager
        def counted_reads() -> Iterator[Any]:
            with plain_reads() as inner:

                class Counting:
                    def read(self, *a: Any, **k: Any) -> Any:
                        reads[0] += 1
                        return inner.read(*a, **k)

                yield Counting()

        g.reads = counted_reads  # type: ignore[method-assign]
    spent = {"projection": 0.0}
    plain_local = ex.read_local_projection

    def timed_local(*a: Any, **k: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return plain_local(*a, **k)
        finally:
            spent["projection"] += time.perf_counter() - t0

    ex.read_local_projection = timed_local  # type: ignore[assignment]
    todo = json.loads(Path(ids_file).read_text())
    ex.explain(g, models, todo["warmup"], top=5, budget=s.api_explain_expand_max)
    rows = []
    for group, account in todo["accounts"]:
        reads[0] = 0
        spent["projection"] = 0.0
        t0 = time.perf_counter()
        rec = ex.explain(g, models, account, top=5, budget=s.api_explain_expand_max)
        wall = time.perf_counter() - t0
        rows.append(
            {
                "group": group,
                "account": account,
                "seconds": wall,
                "projection_s": spent["projection"],
                "reads": reads[0],
                "record": asdict(rec) if rec is not None else None,
            }
        )
    g.close()
    Path(out_file).write_text(json.dumps(rows))


def _explanation(record: dict[str, Any] | None) -> dict[str, Any] | None:
    """What must not change: everything but how many accounts were read to get it."""
    if record is None:
        return None
    return {k: v for k, v in record.items() if k != "accounts_read"}


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    ms = sorted(1000 * r["seconds"] for r in rows)
    return {
        "explains": len(ms),
        "median_ms": round(statistics.median(ms), 1),
        "p90_ms": round(ms[int(0.9 * (len(ms) - 1))], 1),
        "max_ms": round(ms[-1], 1),
        "mean_ms": round(statistics.fmean(ms), 1),
        "projection_median_ms": round(statistics.median(1000 * r["projection_s"] for r in rows), 1),
        "model_median_ms": round(
            statistics.median(1000 * (r["seconds"] - r["projection_s"]) for r in rows), 1
        ),
        "reads_per_explain": round(statistics.fmean(r["reads"] for r in rows), 1),
        "accounts_read_median": statistics.median(r["record"]["accounts_read"] for r in rows),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True, help="the other checkout (a git worktree)")
    ap.add_argument("--random", type=int, default=40)
    ap.add_argument("--flagged", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--worker", nargs=3, metavar=("ROOT", "IDS", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(*args.worker)
        return

    sys.path.insert(0, str(REPO))
    from ringscope.graph import connect
    from ringscope.models.builds import current_build
    from ringscope.settings import Settings

    with connect(Settings()) as g:
        build = current_build(g)
        assert build is not None, "no current build: rebuild with a trained model first"
        everyone = [str(r["id"]) for r in g.read(ALL_ACCOUNTS)]
        flagged = [str(r["id"]) for r in g.read(FLAGGED, {"build": build.id})]
    rng = random.Random(args.seed)
    accounts = [("random", a) for a in rng.sample(everyone, args.random)]
    accounts += [("flagged", a) for a in rng.sample(flagged, min(args.flagged, len(flagged)))]
    warmup = rng.choice(everyone)
    sides = {"base": str(Path(args.base).resolve()), "new": str(REPO)}
    commits = {
        k: subprocess.run(
            ["git", "-C", v, "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        for k, v in sides.items()
    }
    results: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        ids_file = Path(tmp) / "ids.json"
        ids_file.write_text(json.dumps({"warmup": warmup, "accounts": accounts}))
        for rnd in range(args.rounds):
            order = ["base", "new"] if rnd % 2 == 0 else ["new", "base"]
            for side in order:
                out = Path(tmp) / f"{side}-{rnd}.json"
                env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
                # cwd outside both checkouts: '' on sys.path must not import the wrong one.
                cmd = [sys.executable, str(REPO / "bench" / "explain.py"), "--base", "-"]
                cmd += ["--worker", sides[side], str(ids_file), str(out)]
                subprocess.run(cmd, check=True, cwd=tmp, env=env)
                results[f"{side}_round{rnd + 1}"] = json.loads(out.read_text())
                print(side, rnd + 1, _summary(results[f"{side}_round{rnd + 1}"]), flush=True)

    mismatches = []
    runs = list(results.values())
    for k, (group, account) in enumerate(accounts):
        records = {json.dumps(_explanation(run[k]["record"]), sort_keys=True) for run in runs}
        if len(records) != 1:
            mismatches.append({"group": group, "account": account})
    summary: dict[str, Any] = {}
    for name, rows in results.items():
        summary[name] = {"all": _summary(rows)}
        for group in ("random", "flagged"):
            part = [r for r in rows if r["group"] == group]
            if part:
                summary[name][group] = _summary(part)
    report = {
        "what": "explain(accountId) side by side on one loaded world: base and new code, "
        "same accounts, alternating order per round",
        "commits": commits,
        "accounts": len(accounts),
        "random": args.random,
        "flagged": sum(1 for g_, _ in accounts if g_ == "flagged"),
        "graph_accounts": len(everyone),
        "identical_explanations": not mismatches,
        "mismatches": mismatches,
        "summary": summary,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }
    print(json.dumps({k: v for k, v in report.items() if k != "summary"}, indent=1))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    if mismatches:
        sys.exit(f"{len(mismatches)} explanations differ between base and new")


if __name__ == "__main__":
    main()
