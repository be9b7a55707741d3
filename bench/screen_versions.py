"""Two checkouts' screening side by side on the same loaded world: ``screen`` at 1 and 20
clients and ``recordEvents`` of one event, rounds alternating which server goes first, with
the CPU each request cost the server and Neo4j.

    python bench/screen_versions.py --before /path/to/old/checkout --accounts 100000 \\
        [--data-dir DIR --neo4j-port PORT --model-dir DIR] [--before-model-dir DIR] \\
        [--rounds 3] [--seconds 10] \\
        [--concurrency 1,20] [--offered 40,80] [--record-requests 150] [--out FILE]

Why: a change to a screen's fixed cost (normalising the event, the tree's row, the feature
table) is judged against the code before it on the same data in the same run, since this
2-core machine's speed drifts between runs. The world is ``bench/screen.py``'s (``--reuse``
there: loaded, rebuilt, with a tree model; its options name it the same way) and so are the
events (its pool and mix, every request a fresh event id). Both servers run at once (``python
-m ringscope.api serve`` from each checkout's root, 2 processes x 2 threads, production
settings); per round and concurrency each serves ``accountRisk`` (the baseline) and then the
screens, and per round each records ``--record-requests`` fresh events, one per request, one
client; with ``--offered``, per round each also serves screens at those offered loads (20
clients thinking between requests, as ``bench/screen.py --offered``). Per server and phase:
wrk's requests/s, p50, p99, and the server's and Neo4j's CPU per request (``/proc`` before and
after); the ratio now/before of screens per second, over the rounds; each server's peak RSS
(its processes' high-water marks, summed) and Neo4j's. Writes JSON to ``--out``
(``bench/results/screen-versions-<accounts>.json``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from screen import (  # noqa: E402
    BASELINE,
    EID,
    RECORD,
    SCREEN,
    Pool,
    configure,
    latency,
    machine,
    measured,
    prepare,
    process_tree,
    sequential,
    summary,
    vm_hwm_mib,
    warm_up,
    wrk,
)
from servers import Server  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", type=Path, required=True, help="the other checkout's root")
    ap.add_argument("--accounts", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--concurrency", default="1,20")
    ap.add_argument(
        "--offered",
        default="",
        help="requests/s, comma-separated: screens by the last concurrency's clients "
        "thinking between requests (bench/screen.py --offered)",
    )
    ap.add_argument("--pool", type=int, default=5000)
    ap.add_argument("--record-requests", type=int, default=150)
    for name in ("--data-dir", "--model-dir", "--out"):
        ap.add_argument(name, type=Path)
    ap.add_argument("--before-model-dir", type=Path,
                    help="the models folder of the other checkout's server (default: the same); "
                    "for a change to the feature table's files, a copy holding the build's "
                    "table in the other checkout's form")  # fmt: skip
    for name in ("--neo4j-port", "--neo4j-http-port"):
        ap.add_argument(name, type=int)
    ap.add_argument("--neo4j-heap")
    ap.add_argument("--neo4j-pagecache")
    args = ap.parse_args()
    configure(args)

    from ringscope.api.auth import create_key
    from ringscope.graph import EmbeddedNeo4j
    from ringscope.settings import Settings

    settings = Settings()
    facts = machine(settings)
    graph = prepare(settings, args.accounts, args.seed, reuse=True)
    token = f"{int(time.time()) % 10**8:x}"
    pool = Pool(graph, args.seed, token)
    kinds = pool.kinds(args.pool)
    events = [pool.event(k, f"v{token}-{i}-{EID}", f"V{token}-{i}-{EID}")
              for i, k in enumerate(kinds)]  # fmt: skip
    bodies = {
        "screen": [json.dumps({"query": SCREEN, "variables": {"event": e}}, separators=(",", ":"))
                   for e in events],
        "accountRisk": [
            json.dumps({"query": BASELINE, "variables": {"id": a}}, separators=(",", ":"))
            for a in pool.rnd.sample(pool.ids, min(args.pool, len(pool.ids)))
        ],
    }  # fmt: skip
    key = create_key(graph, "risk_engine", f"bench-screen-versions-{token}").key
    neo4j = None if settings.neo4j_uri else EmbeddedNeo4j(settings).status()
    neo4j_pid = neo4j.pid if neo4j else None
    env = {"RINGSCOPE_API_WORKERS": "2", "RINGSCOPE_API_THREADS": "2",
           "RINGSCOPE_API_MAX_BUILD_AGE_S": "0"}  # fmt: skip
    code = {"before": args.before.resolve(), "now": REPO}
    levels = [int(c) for c in args.concurrency.split(",")]
    offered = [float(x) for x in args.offered.split(",") if x.strip()]
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        name: {
            **{f"{op}-c{c}": [] for c in levels for op in ("accountRisk", "screen")},
            **{f"screen-offered-{rate:g}": [] for rate in offered},
        }
        for name in code
    }
    records: dict[str, list[float]] = {name: [] for name in code}
    with contextlib.ExitStack() as stack:
        own = {"before": {"RINGSCOPE_MODEL_DIR": str(args.before_model_dir)}
               if args.before_model_dir else {}, "now": {}}  # fmt: skip
        servers = {name: stack.enter_context(Server({**env, **own[name]}, cwd=path))
                   for name, path in code.items()}  # fmt: skip
        http = stack.enter_context(
            httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=120)
        )
        for name, srv in servers.items():
            first = warm_up(srv.url, key, events, 4)
            print(f"{name}: first screens {first} s", flush=True)
            wrk(srv.url, key, bodies["accountRisk"], levels[-1], 3)
            wrk(srv.url, key, bodies["screen"], levels[-1], 5)
        for r in range(args.rounds):
            order = list(code) if r % 2 == 0 else list(reversed(code))
            for c in levels:
                for name in order:
                    srv = servers[name]
                    for op in ("accountRisk", "screen"):
                        res = measured(
                            srv.proc.pid, neo4j_pid,
                            lambda b=bodies[op], n=c, u=srv.url: wrk(u, key, b, n, args.seconds),
                        )  # fmt: skip
                        runs[name][f"{op}-c{c}"].append(res)
                        cpu = res["cpu_ms_per_request"]
                        print(f"round {r + 1} {name} {op} c={c}: {res['rps']:.0f}/s p50 "
                              f"{res['p50_ms']:.1f} ms p99 {res['p99_ms']:.1f} ms; CPU/request "
                              f"server {cpu['server']} ms, Neo4j {cpu['neo4j']} ms",
                              flush=True)  # fmt: skip
            for rate in offered:  # the last concurrency's clients, thinking (bench/screen.py)
                think = 1000.0 * levels[-1] / rate
                for name in order:
                    srv = servers[name]
                    res = measured(
                        srv.proc.pid, neo4j_pid,
                        lambda b=bodies["screen"], u=srv.url, t=think: wrk(
                            u, key, b, levels[-1], args.seconds, t
                        ),
                    )  # fmt: skip
                    runs[name][f"screen-offered-{rate:g}"].append(res)
                    print(f"round {r + 1} {name} screen offered {rate:g}/s: {res['rps']:.0f}/s "
                          f"p50 {res['p50_ms']:.1f} ms p99 {res['p99_ms']:.1f} ms",
                          flush=True)  # fmt: skip
            for name in order:
                fresh = [
                    {"query": RECORD, "variables": {"events": [
                        pool.event(k, f"rv{token}-{name}-{r}-{i}", f"RV{token}-{name}-{r}-{i}")
                    ]}}
                    for i, k in enumerate(pool.kinds(args.record_requests))
                ]  # fmt: skip
                times, data = sequential(http, servers[name].url, fresh)
                if any(len(d["recordEvents"]["recorded"]) != 1 for d in data):
                    raise SystemExit(f"{name}: recordEvents did not record every event")
                records[name].extend(times)
                print(f"round {r + 1} {name} recordEvents: p50 "
                      f"{statistics.median(times):.1f} ms", flush=True)  # fmt: skip
        # Peak memory: each server's processes' high-water RSS, summed, before they stop.
        peak = {name: round(sum(vm_hwm_mib(p) or 0.0 for p in process_tree(srv.proc.pid)), 1)
                for name, srv in servers.items()}  # fmt: skip
        if neo4j_pid is not None:
            peak["neo4j"] = round(vm_hwm_mib(neo4j_pid) or 0.0, 1)
    graph.close()
    out: dict[str, Any] = {
        "accounts": len(pool.ids),
        "machine": facts,
        "code": {k: str(v) for k, v in code.items()},
        "server": "2 uvicorn processes x 2 threads (production), both up, alternating",
        "rounds": args.rounds,
        "seconds_per_phase": args.seconds,
        "world": pool.facts,
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "results": {
            name: {ph: summary(rs) for ph, rs in phases.items()} for name, phases in runs.items()
        },
        "record": {name: latency(t) for name, t in records.items()},
        "peak_rss_mib": peak,
    }
    ratio = {}
    for c in levels:
        now = out["results"]["now"][f"screen-c{c}"]["rps"]
        before = out["results"]["before"][f"screen-c{c}"]["rps"]
        ratio[f"screen_rps_c{c}"] = round(now / before, 3)
    ratio["record_p50"] = round(
        out["record"]["now"]["p50_ms"] / out["record"]["before"]["p50_ms"], 3
    )
    out["ratio_now_over_before"] = ratio
    dest = args.out or REPO / "bench" / "results" / f"screen-versions-{args.accounts}.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(out, indent=2, default=str) + "\n")
    for name in code:
        for ph, s in out["results"][name].items():
            print(f"{name:7} {ph:16} {s['rps']:7.1f}/s p50 {s['p50_ms']:7.1f} ms p99 "
                  f"{s['p99_ms']:7.1f} ms CPU/request {s['cpu_ms_per_request']}")  # fmt: skip
        print(f"{name:7} recordEvents p50 {out['record'][name]['p50_ms']} ms, "
              f"p99 {out['record'][name]['p99_ms']} ms")  # fmt: skip
    print(f"peak RSS MiB: {peak}")
    print(f"now/before: {ratio}; wrote {dest}")


if __name__ == "__main__":
    main()
