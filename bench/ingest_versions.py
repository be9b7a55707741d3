"""Two checkouts' Cypher loads side by side: the same generated data set loaded into an emptied
graph by each checkout's loader in turn, rounds alternating which goes first.

    python bench/ingest_versions.py --before /path/to/old/checkout [--accounts 20000] \\
        [--rounds 4] [--data-dir DIR --neo4j-port PORT --neo4j-http-port PORT] [--out FILE]

Why: a change to the loader's statements (session 34: the writers stamp what screening's table
rows read, graph/cypher.py) is judged against the code before it on the same data in the same
run, since this 2-core machine's speed drifts between runs. Each load runs in a process of its
own from its checkout's root (so it imports that checkout's code), into the graph ``Settings()``
points at, which is EMPTIED first; the first round is a warm-up (the JVM, the page cache) and is
reported but left out of the ratio. Per load: seconds, rows loaded, rows/s and the loader
process's peak RSS. Writes JSON to ``--out`` (``bench/results/ingest-versions-<accounts>.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from datasets import generate  # noqa: E402

ONE_LOAD = """
import json, resource, sys, time
from pathlib import Path
from ringscope.graph import connect, cypher, init_schema
from ringscope.ingest import load
from ringscope.settings import Settings
settings = Settings()
graph = connect(settings)
with graph.driver.session(database=graph.database) as session:
    session.run(cypher.CLEAR_RELATIONSHIPS_IN_BATCHES).consume()
    session.run(cypher.INGEST_CLEAR_IN_BATCHES).consume()
init_schema(graph)
t = time.perf_counter()
report = load(Path(sys.argv[1]), graph, settings, report_dir=Path(sys.argv[2]), progress=False)
seconds = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"s": round(seconds, 2), "rows": report.rows_loaded,
                  "rows_per_s": round(report.rows_loaded / seconds), "peak_rss_mib": round(peak)}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", type=Path, required=True, help="the other checkout's root")
    ap.add_argument("--accounts", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--work", type=Path,
                    default=Path(tempfile.gettempdir()) / "ringscope-ingest-versions")  # fmt: skip
    ap.add_argument("--data-dir", type=Path)
    ap.add_argument("--neo4j-port", type=int)
    ap.add_argument("--neo4j-http-port", type=int)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    for opt, var in (("data_dir", "RINGSCOPE_DATA_DIR"), ("neo4j_port", "RINGSCOPE_NEO4J_PORT"),
                     ("neo4j_http_port", "RINGSCOPE_NEO4J_HTTP_PORT")):  # fmt: skip
        if getattr(args, opt) is not None:
            os.environ[var] = str(getattr(args, opt))
    data = generate(args.accounts, args.work, args.seed)
    code = {"before": args.before.resolve(), "now": REPO}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in code}
    for r in range(args.rounds):
        for name in list(code) if r % 2 == 0 else list(reversed(code)):
            out = subprocess.run(
                [sys.executable, "-c", ONE_LOAD, str(data), str(args.work / f"report-{name}-{r}")],
                cwd=code[name], env={**os.environ, "PYTHONPATH": str(code[name])},
                check=True, capture_output=True, text=True,
            )  # fmt: skip
            res = json.loads(out.stdout.strip().splitlines()[-1])
            runs[name].append(res)
            print(f"round {r + 1} {name}: {res}", flush=True)
    timed = {name: [x["s"] for x in rs[1:]] for name, rs in runs.items()}  # warm-up left out
    result = {
        "accounts": args.accounts,
        "data": str(data),
        "code": {k: str(v) for k, v in code.items()},
        "rounds": runs,
        "mean_s_after_warmup": {k: round(statistics.mean(v), 2) for k, v in timed.items()},
        "ratio_now_over_before_s": round(
            statistics.mean(timed["now"]) / statistics.mean(timed["before"]), 3
        ),
    }
    dest = args.out or REPO / "bench" / "results" / f"ingest-versions-{args.accounts}.json"
    dest.write_text(json.dumps(result, indent=2) + "\n")
    print(f"mean s after the warm-up: {result['mean_s_after_warmup']}; now/before "
          f"{result['ratio_now_over_before_s']}; wrote {dest}")  # fmt: skip


if __name__ == "__main__":
    main()
