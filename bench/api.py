"""API benchmark: a real server process, a load generator in another process, on generated data.

    python bench/api.py --accounts 100000 [--concurrency 20] [--seconds 15] [--reuse]

Steps: generate a data set (``ingest.generate``, subprocess) and load it (EMPTIES the graph that
``Settings()`` points at), run the detector and write a build (``--reuse`` keeps a loaded graph
with a current build), create an admin key, start ``python -m api serve`` (production settings)
on a free loopback port, then drive it from a separate process (asyncio + httpx, N concurrent
clients, time-boxed) for each scenario:

* ``trivial``: ``{ currentBuild { id } }``
* ``nb2_random``: ``riskNeighbourhood`` 2 hops from random accounts
* ``nb2_ring``: the same from ring members (dense neighbourhoods)
* ``nb2_random_json`` / ``nb2_ring_json``: the same with ``nodesJson`` / ``edgesJson``
* ``clusters_pull``: every cluster of the build, pages of 500, one client (time per full pull)

and reports requests/s, p50 and p99. A baseline server without the score cache
(``RINGSCOPE_API_SCORE_CACHE_CHUNKS=0``) runs the two neighbourhood scenarios first, in the same
run, for the speed-up ratio. Then the GraphQL overhead: the same 2-hop neighbourhoods one at a
time through the server vs. the same service call (the same Cypher in one read transaction, a
warm score cache) run directly through the driver in this process. Writes
``bench/results/api-<accounts>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from api import service  # noqa: E402
from api.auth import create_key  # noqa: E402
from graph import Graph, connect, counts, cypher, init_schema  # noqa: E402
from ingest import load  # noqa: E402  (before bench/ joins the path: bench/ingest.py)
from models.builds import ScoreCache, all_clusters, current_build, write_build  # noqa: E402
from models.detect import detect  # noqa: E402
from ringscope.settings import Settings  # noqa: E402

sys.path.insert(0, str(REPO / "bench"))
from datasets import generate  # noqa: E402

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def prepare(settings: Settings, accounts: int, seed: int, reuse: bool) -> Graph:
    graph = connect(settings)
    nodes, _ = counts(graph)
    if reuse and nodes.get("Account", 0) >= accounts and current_build(graph) is not None:
        print(f"reusing the loaded graph ({nodes['Account']} accounts)", flush=True)
        return graph
    root = Path(os.environ.get("BENCH_DIR") or Path(tempfile.gettempdir()) / "ringscope-bench")
    out = generate(accounts, root, seed)
    graph.write(cypher.DELETE_ALL)
    init_schema(graph)
    t0 = time.monotonic()
    load(out, graph, settings, progress=False)
    print(f"loaded {accounts} accounts in {time.monotonic() - t0:.0f} s", flush=True)

    t0 = time.monotonic()
    write_build(graph, detect(graph, settings), model_version="bench")
    print(f"detected and wrote a build in {time.monotonic() - t0:.0f} s", flush=True)
    return graph


# --- the load generator (runs in its own process) ---------------------------------------------


async def _drive(
    url: str, key: str, query: str, variables: list[dict[str, Any]], clients: int, seconds: float
) -> dict[str, Any]:
    import httpx

    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(headers=headers, limits=limits, timeout=30) as http:

        async def client(i: int) -> None:
            nonlocal errors
            n = i
            while time.perf_counter() < deadline:
                body = {"query": query, "variables": variables[n % len(variables)]}
                n += clients
                t0 = time.perf_counter()
                resp = await http.post(url, json=body)
                latencies.append(time.perf_counter() - t0)
                if resp.status_code != 200 or "errors" in resp.json():
                    errors += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(client(i) for i in range(clients)))
        wall = time.perf_counter() - t0
    return {"requests": len(latencies), "errors": errors, "wall_s": wall, "lat": latencies}


def _drive_process(args: tuple[Any, ...], queue: Any) -> None:
    queue.put(asyncio.run(_drive(*args)))


def load_test(
    url: str, key: str, query: str, variables: list[dict[str, Any]], clients: int, seconds: float
) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(
        target=_drive_process, args=((url, key, query, variables, clients, seconds), queue)
    )
    proc.start()
    res: dict[str, Any] = queue.get(timeout=seconds + 120)
    proc.join(timeout=30)
    lat = res.pop("lat")
    res.update(
        rps=res["requests"] / res["wall_s"],
        p50_ms=pct(lat, 0.5) * 1000,
        p99_ms=pct(lat, 0.99) * 1000,
        clients=clients,
    )
    return res


def _pull_process(url: str, key: str, repeat: int, queue: Any) -> None:
    import httpx

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


class Server:
    """``python -m api serve`` (production settings) on a free loopback port, as a process."""

    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/graphql"
        self.env = {
            **os.environ,
            "RINGSCOPE_API_ENV": "production",
            "RINGSCOPE_API_KEY_CACHE_SECONDS": "30",
            **env,
        }

    def __enter__(self) -> Server:
        import httpx

        cmd = [
            sys.executable,
            "-m",
            "api",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        self.proc = subprocess.Popen(
            cmd, cwd=REPO, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        for _ in range(300):
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.proc.terminate()
        raise RuntimeError("the server did not come up")

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--accounts", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--concurrency", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--reuse", action="store_true")
    args = ap.parse_args()
    settings = Settings()
    graph = prepare(settings, args.accounts, args.seed, args.reuse)
    key = create_key(graph, "admin", "bench").key
    bid, clusters = all_clusters(graph)
    ring_members = sorted({m for c in clusters for m in c.members})
    all_accounts = [r["id"] for r in graph.read("MATCH (a:Account) RETURN a.id AS id")]
    rnd = random.Random(args.seed)
    random_ids = [{"id": a} for a in rnd.sample(all_accounts, min(2000, len(all_accounts)))]
    ring_ids = [{"id": a} for a in rnd.sample(ring_members, min(2000, len(ring_members)))]

    results: dict[str, Any] = {
        "accounts": len(all_accounts),
        "clusters": len(clusters),
        "build": bid,
        "machine": f"{platform.node()} {os.cpu_count()} cores",
        "server": "1 uvicorn process (production settings)",
    }
    c, s = args.concurrency, args.seconds
    # The baseline first: the same server without the score cache (every account's score read
    # from its chunk in Cypher, as before the cache existed), on the same data in this run.
    with Server({"RINGSCOPE_API_SCORE_CACHE_CHUNKS": "0"}) as base:
        load_test(base.url, key, NB, random_ids[:50], 4, 2.0)  # warm-up
        results["baseline_no_score_cache"] = {
            "nb2_random": load_test(base.url, key, NB, random_ids, c, s),
            "nb2_ring": load_test(base.url, key, NB, ring_ids, c, s),
        }
    with Server({}) as srv:
        url = srv.url
        load_test(url, key, NB, random_ids, 4, 5.0)  # warm-up (fills the score cache)
        results["trivial"] = load_test(url, key, TRIVIAL, [{}], c, s)
        results["nb2_random"] = load_test(url, key, NB, random_ids, c, s)
        results["nb2_ring"] = load_test(url, key, NB, ring_ids, c, s)
        results["nb2_random_json"] = load_test(url, key, NB_JSON, random_ids, c, s)
        results["nb2_ring_json"] = load_test(url, key, NB_JSON, ring_ids, c, s)
        results["speedup_vs_baseline"] = {
            k: results[k]["rps"] / results["baseline_no_score_cache"][k]["rps"]
            for k in ("nb2_random", "nb2_ring")
        }
        ctx = mp.get_context("spawn")
        queue = ctx.Queue()
        proc = ctx.Process(target=_pull_process, args=(url, key, 3, queue))
        proc.start()
        results["clusters_pull"] = queue.get(timeout=900)
        proc.join()
        # GraphQL overhead: the same neighbourhoods, one at a time, server vs. the same service
        # call (the same Cypher in one read transaction, a warm score cache) run directly.
        sample = [v["id"] for v in random_ids[:300]]
        s1 = load_test(url, key, NB, [{"id": a} for a in sample], 1, 10.0)
        s1j = load_test(url, key, NB_JSON, [{"id": a} for a in sample], 1, 10.0)
        cache = ScoreCache(settings.api_score_cache_chunks)
        direct: list[float] = []
        for rnd_pass in range(2):  # the first pass warms the cache, the second is timed
            direct = []
            for a in sample:
                t0 = time.perf_counter()
                service.neighbourhood(
                    graph, "account", a, hops=2, limit=100, min_score=0.0,
                    hub_degree=settings.api_hub_degree, flag_score=settings.api_flag_score,
                    cache=cache,
                )  # fmt: skip
                direct.append(time.perf_counter() - t0)
            del rnd_pass
        results["overhead"] = {
            "graphql_p50_ms": s1["p50_ms"],
            "graphql_json_p50_ms": s1j["p50_ms"],
            "direct_p50_ms": pct(direct, 0.5) * 1000,
            "graphql_mean_ms": 1000 * s1["wall_s"] / max(1, s1["requests"]),
            "direct_mean_ms": 1000 * statistics.fmean(direct),
        }
        o = results["overhead"]
        o["ratio_p50"] = o["graphql_p50_ms"] / o["direct_p50_ms"]
        o["ratio_json_p50"] = o["graphql_json_p50_ms"] / o["direct_p50_ms"]
    graph.close()
    results["goals"] = GOALS
    out = REPO / "bench" / "results" / f"api-{args.accounts}.json"
    out.write_text(json.dumps(results, indent=2, default=str))
    print(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
