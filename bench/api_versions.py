"""Two checkouts' API servers side by side on the same loaded graph: two-hop neighbourhoods
from random accounts, back to back (saturation) and with a think time (an offered load below
it), rounds alternating which server goes first.

    RINGSCOPE_DATA_DIR=... python bench/api_versions.py --before /path/to/old/checkout \\
        [--rounds 2] [--seconds 10] [--label NAME]

Why: a change to the server (start-up, GC, the read path) is judged against the code before it
on the same data in the same run, since this 2-core machine's speed drifts between runs. The
graph ``Settings()`` points at must hold a loaded world with a current build (``bench/api.py``
makes one). Each server is ``python -m ringscope.api serve`` from its checkout's root (2
processes x 2 threads, production settings, ``bench/servers.py``), warmed 5 s back to back,
then driven by ``wrk`` (``bench/api.py``'s ``load_test``): 20 connections back to back, then 20
with 100 ms think time. Each phase also records the CPU the server's processes and the embedded
Neo4j spent per request (``/proc``, ``bench/screen.py``'s ``measured``), and the peak RSS of the
server's processes so far. Writes ``bench/results/api-versions-<label>.json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from servers import Server  # noqa: E402

from ringscope.api.auth import create_key  # noqa: E402
from ringscope.graph import EmbeddedNeo4j, connect  # noqa: E402
from ringscope.settings import Settings  # noqa: E402


def _module(name: str, path: Path) -> Any:
    """A bench module by path: "api" on sys.path is the repository's own API package."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench_api = _module("bench_api", REPO / "bench" / "api.py")
bench_screen = _module("bench_screen", REPO / "bench" / "screen.py")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--before", type=Path, required=True, help="the other checkout's root")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--think-ms", type=float, default=100.0)
    ap.add_argument("--label", default="now")
    args = ap.parse_args()
    settings = Settings()
    graph = connect(settings)
    neo4j = None if settings.neo4j_uri else EmbeddedNeo4j(settings).status()
    neo4j_pid = None if neo4j is None else neo4j.pid
    key = create_key(graph, "admin", "bench").key
    ids = [r["id"] for r in graph.read("MATCH (a:Account) RETURN a.id AS id")]
    rid = random.Random(7).sample(ids, 2000)
    code = {"before": args.before.resolve(), "now": REPO}
    rows: list[dict[str, Any]] = []
    for rnd in range(args.rounds):
        for name in ("before", "now") if rnd % 2 == 0 else ("now", "before"):
            env = {"RINGSCOPE_API_WORKERS": "2", "RINGSCOPE_API_THREADS": "2"}
            with Server(env, cwd=code[name]) as srv:
                rss = bench_screen.RssSampler(srv.proc.pid, neo4j_pid)
                rss.start()
                bench_api.load_test(srv.url, key, bench_api.NB, rid, 20, 5.0, 0.0)  # warm
                for think in (0.0, args.think_ms):
                    res = bench_screen.measured(
                        srv.proc.pid,
                        neo4j_pid,
                        lambda t=think: bench_api.load_test(
                            srv.url, key, bench_api.NB, rid, 20, args.seconds, t
                        ),
                    )
                    row = {"round": rnd, "code": name, "think_ms": think}
                    row.update({k: round(res[k], 3) for k in ("rps", "p50_ms", "p99_ms")})
                    row["cpu_ms_per_request"] = res["cpu_ms_per_request"]
                    # The server's processes summed, sampled every 0.5 s since it started.
                    row["server_peak_rss_mib"] = round(rss.peak_server / 1024, 1)
                    rows.append(row)
                    print(json.dumps(row), flush=True)
                rss.stop.set()
    out = REPO / "bench" / "results" / f"api-versions-{args.label}.json"
    out.write_text(json.dumps({"before": str(code["before"]), "runs": rows}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
