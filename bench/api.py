"""API benchmark: real server processes, a load generator in another process, on generated data.

    python bench/api.py --accounts 100000 [--concurrency 20] [--seconds 10] [--repeat 3]
                        [--workers 2] [--threads 2] [--reuse]

Steps: generate a data set (``ringscope.synth.generate``, subprocess) and load it (EMPTIES the
graph that ``Settings()`` points at), run the detector and write a build (``--reuse`` keeps a
loaded graph with a current build), create an admin key, start ``python -m ringscope.api serve``
(production settings) on a free loopback port, then drive it with ``wrk`` (C,
``bench/wrk_post.lua``: a few percent of one core, where the earlier httpx generator took most
of one of the machine's two cores) for each scenario, N concurrent connections back to back:

* ``trivial``: ``{ currentBuild { id } }``
* ``nb2_random``: ``riskNeighbourhood`` 2 hops from random accounts
* ``nb2_ring``: the same from ring members (dense neighbourhoods)
* ``nb2_random_json`` / ``nb2_ring_json``: the same with ``nodesJson`` / ``edgesJson``
* ``nb2_random_paced``: ``nb2_random`` with a think time per connection (below saturation)
* ``clusters_pull``: every cluster of the build, pages of 500, one client (time per full pull)

and reports requests/s, p50 and p99. Two baselines run first, in the same run on the same data:
the server as it ran before session 5's changes (one process, 16 threads, no score cache,
graphql-core completing every field), and one process with the default settings; beside the
tuned server runs the same server with ``RINGSCOPE_API_FAST_LEAVES=false`` (api/execution.py
off). Then the GraphQL overhead: the same 2-hop neighbourhoods
one at a time (one wrk connection) vs. the same service call (the same Cypher in one read
transaction, a warm score cache) run directly through the driver in this process. Writes
``bench/results/api-<accounts>.json``. Needs ``wrk`` (``apt-get install wrk``).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ringscope.api import service  # noqa: E402
from ringscope.api.auth import create_key  # noqa: E402
from ringscope.graph import Graph  # noqa: E402
from ringscope.ingest import load  # noqa: E402  (before bench/ joins the path: bench/ingest.py)
from ringscope.models.builds import ScoreCache, all_clusters, write_build  # noqa: E402
from ringscope.models.detect import detect  # noqa: E402
from ringscope.settings import Settings  # noqa: E402

sys.path.insert(0, str(REPO / "bench"))
from datasets import load_world  # noqa: E402
from servers import Server  # noqa: E402

GOALS = {"nb2_p99_ms_at_20": 50.0, "nb2_rps": 300.0, "graphql_overhead_x": 2.0}
NB = (
    "query N($id: ID!) { riskNeighbourhood(kind: ACCOUNT, id: $id, hops: 2, limit: 100) "
    "{ truncated nodes { key kind hop hub degree riskScore flagged } "
    "edges { source target kind firstSeen lastSeen count } paths { nodes via } } }"
)
NB_JSON = (
    "query N($id: ID!) { riskNeighbourhood(kind: ACCOUNT, id: $id, hops: 2, limit: 100) "
    "{ truncated nodesJson edgesJson paths { nodes via } } }"
)
TRIVIAL = "{ currentBuild { id } }"
CLUSTERS = (
    "query C($after: String) { clusters(minScore: 0, first: 500, after: $after) { buildId "
    "edges { node { id score size reasons members { id riskScore } } } "
    "pageInfo { hasNextPage endCursor } } }"
)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def prepare(settings: Settings, accounts: int, seed: int, reuse: bool) -> Graph:
    def build(graph: Graph, data: Path) -> None:  # rings only: no model
        t0 = time.monotonic()
        load(data, graph, settings, progress=False)
        print(f"loaded {accounts} accounts in {time.monotonic() - t0:.0f} s", flush=True)
        t0 = time.monotonic()
        write_build(graph, detect(graph, settings), model_version="bench")
        print(f"detected and wrote a build in {time.monotonic() - t0:.0f} s", flush=True)

    return load_world(settings, accounts, seed, reuse, build)


# --- the load generator: wrk in its own process ---------------------------------------------------

WRK_SCRIPT = REPO / "bench" / "wrk_post.lua"


def load_test(
    url: str,
    key: str,
    query: str,
    ids: list[str] | None,
    clients: int,
    seconds: float,
    think_ms: float = 0.0,
) -> dict[str, Any]:
    """``clients`` wrk connections for ``seconds``; ids (if any) cycled as ``$id``."""
    check = {"query": query, "variables": {"id": ids[0]} if ids else {}}
    body = httpx.post(url, json=check, headers={"Authorization": f"Bearer {key}"}, timeout=60)
    if body.status_code != 200 or "errors" in body.json():
        raise RuntimeError(f"the scenario's query fails: {body.text[:500]}")
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as f:
        f.write("\n".join(ids or []))
        f.flush()
        env = {
            **os.environ,
            "WRK_QUERY": json.dumps(query),
            "WRK_KEY": key,
            "WRK_IDS": f.name if ids else "",
            "WRK_THINK_MS": str(think_ms),
        }
        cmd = ["wrk", "-t1", f"-c{clients}", f"-d{seconds:g}s", "--latency", "-s", str(WRK_SCRIPT)]
        out = subprocess.run(
            [*cmd, "--timeout", "30s", url], env=env, capture_output=True, text=True, check=True
        ).stdout
    res: dict[str, Any] = json.loads(out.split("RESULT ", 1)[1])
    res.update(rps=res["requests"] / res["duration_s"], clients=clients, think_ms=think_ms)
    if res["non_2xx"] or res["socket_errors"]:
        print(
            f"warning: {res['non_2xx']} non-2xx, {res['socket_errors']} socket errors", flush=True
        )
    return res


def _pull_process(url: str, key: str, repeat: int, queue: Any) -> None:
    times, clusters = [], 0
    with httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=120) as http:
        for _ in range(repeat):
            t0, after, clusters = time.perf_counter(), None, 0
            while True:
                body = http.post(url, json={"query": CLUSTERS, "variables": {"after": after}})
                page = body.json()["data"]["clusters"]
                clusters += len(page["edges"])
                if not page["pageInfo"]["hasNextPage"]:
                    break
                after = page["pageInfo"]["endCursor"]
            times.append(time.perf_counter() - t0)
    queue.put({"clusters": clusters, "pull_s": times})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--accounts", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--concurrency", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--think-ms", type=float, default=100.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--reuse", action="store_true")
    args = ap.parse_args()
    settings = Settings()
    graph = prepare(settings, args.accounts, args.seed, args.reuse)
    key = create_key(graph, "admin", "bench").key
    bid, clusters = all_clusters(graph)
    ring_members = sorted({m for c in clusters for m in c.members})
    all_accounts = [r["id"] for r in graph.read("MATCH (a:Account) RETURN a.id AS id")]
    rnd = random.Random(args.seed)
    random_ids = rnd.sample(all_accounts, min(2000, len(all_accounts)))
    ring_ids = rnd.sample(ring_members, min(2000, len(ring_members)))

    c, s = args.concurrency, args.seconds
    tuned = {"RINGSCOPE_API_WORKERS": str(args.workers), "RINGSCOPE_API_THREADS": str(args.threads)}
    results: dict[str, Any] = {
        "accounts": len(all_accounts),
        "clusters": len(clusters),
        "build": bid,
        "machine": f"{platform.node()} {os.cpu_count()} cores",
        "load_generator": f"wrk, 1 thread, {c} connections, {s:g} s per run",
        "server": f"{args.workers} uvicorn processes x {args.threads} threads (production)",
        "repeat": f"{args.repeat} rounds, each scenario of each server once per round; the run "
        "with the median requests/s is reported, rps_runs lists all",
    }
    # Baselines on the same data in this run, their servers up beside the tuned one and their
    # scenarios interleaved with its own, so that drift in the machine's speed hits all alike:
    # (1) the server as the previous bench ran it: one process, 16 threads, no score cache
    # (which it had, but never used); (2) one process with this version's defaults.
    # (3) the tuned server with graphql-core completing every field (no api/execution.py).
    before = {"RINGSCOPE_API_SCORE_CACHE_CHUNKS": "0", "RINGSCOPE_API_THREADS": "16",
              "RINGSCOPE_API_FAST_LEAVES": "false"}  # fmt: skip
    with (
        Server({**before, "RINGSCOPE_API_WORKERS": "1"}) as base,
        Server({"RINGSCOPE_API_WORKERS": "1"}) as one,
        Server({**tuned, "RINGSCOPE_API_FAST_LEAVES": "false"}) as core,
        Server(tuned) as srv,
    ):
        url = srv.url
        for server in (base, one, core, srv):  # warm-up (fills the score caches)
            load_test(server.url, key, NB, random_ids, c, 5.0)
        plan: list[tuple[str, str, Server, str, list[str] | None, float]] = [
            ("baseline_before", "trivial", base, TRIVIAL, None, 0.0),
            ("baseline_before", "nb2_random", base, NB, random_ids, 0.0),
            ("baseline_before", "nb2_ring", base, NB, ring_ids, 0.0),
            ("one_process_defaults", "nb2_random", one, NB, random_ids, 0.0),
            ("tuned_graphql_core", "nb2_random", core, NB, random_ids, 0.0),
            ("tuned_graphql_core", "nb2_ring", core, NB, ring_ids, 0.0),
            ("tuned", "trivial", srv, TRIVIAL, None, 0.0),
            ("tuned", "nb2_random", srv, NB, random_ids, 0.0),
            ("tuned", "nb2_ring", srv, NB, ring_ids, 0.0),
            ("tuned", "nb2_random_json", srv, NB_JSON, random_ids, 0.0),
            ("tuned", "nb2_ring_json", srv, NB_JSON, ring_ids, 0.0),
            ("tuned", "nb2_random_paced", srv, NB, random_ids, args.think_ms),
        ]
        runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for _ in range(args.repeat):
            for group, name, server, query, ids, think in plan:
                res = load_test(server.url, key, query, ids, c, s, think)
                runs.setdefault((group, name), []).append(res)
        for (group, name), done in runs.items():
            ranked = sorted(done, key=lambda r: r["rps"])
            median = dict(ranked[len(ranked) // 2])
            median["rps_runs"] = [round(r["rps"], 1) for r in done]
            results.setdefault(group, {})[name] = median
        results["baseline_before"]["config"] = (
            "1 process, 16 threads, no score cache, graphql-core completion"
        )
        results["tuned_graphql_core"]["config"] = "tuned, graphql-core completing every field"
        results["one_process_defaults"]["config"] = (
            f"1 process, {settings.api_threads} threads, score cache"
        )
        results["speedup_vs_before"] = {
            k: results["tuned"][k]["rps"] / results["baseline_before"][k]["rps"]
            for k in ("trivial", "nb2_random", "nb2_ring")
        }
        ctx = mp.get_context("spawn")
        queue = ctx.Queue()
        proc = ctx.Process(target=_pull_process, args=(url, key, 3, queue))
        proc.start()
        results["clusters_pull"] = queue.get(timeout=900)
        proc.join()
        # GraphQL overhead: the same neighbourhoods, one at a time, server vs. the same service
        # call (the same Cypher in one read transaction, a warm score cache) run directly,
        # interleaved over the rounds; medians of the rounds' p50s.
        sample = random_ids[:300]
        cache = ScoreCache(settings.api_score_cache_chunks)

        def direct_pass() -> list[float]:
            times = []
            for a in sample:
                t0 = time.perf_counter()
                service.neighbourhood(
                    graph, "account", a, hops=2, limit=100, min_score=0.0,
                    hub_degree=settings.api_hub_degree,
                    cache=cache,
                )  # fmt: skip
                times.append(time.perf_counter() - t0)
            return times

        direct_pass()  # warms the cache
        graphql, graphql_core, graphql_json, direct = [], [], [], []
        for _ in range(args.repeat):
            graphql.append(load_test(url, key, NB, sample, 1, 5.0)["p50_ms"])
            graphql_core.append(load_test(core.url, key, NB, sample, 1, 5.0)["p50_ms"])
            graphql_json.append(load_test(url, key, NB_JSON, sample, 1, 5.0)["p50_ms"])
            direct.append(pct(direct_pass(), 0.5) * 1000)
        results["overhead"] = {
            "graphql_p50_ms": statistics.median(graphql),
            "graphql_core_p50_ms": statistics.median(graphql_core),
            "graphql_json_p50_ms": statistics.median(graphql_json),
            "direct_p50_ms": statistics.median(direct),
            "rounds": {
                "graphql": graphql,
                "graphql_core": graphql_core,
                "graphql_json": graphql_json,
                "direct": direct,
            },
        }
        o = results["overhead"]
        o["ratio_p50"] = o["graphql_p50_ms"] / o["direct_p50_ms"]
        o["ratio_json_p50"] = o["graphql_json_p50_ms"] / o["direct_p50_ms"]
        o["ratio_core_p50"] = o["graphql_core_p50_ms"] / o["direct_p50_ms"]
    graph.close()
    results["goals"] = GOALS
    out = REPO / "bench" / "results" / f"api-{args.accounts}.json"
    out.write_text(json.dumps(results, indent=2, default=str))
    print(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
