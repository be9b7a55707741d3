"""Replays the attacks of issue #19 against two servers on the same data, side by side.

    python bench/abuse.py [--accounts 20000] [--seed 7] [--baseline-ref d7dc6a4] [--reuse]

Steps: generate a data set (bench/datasets.py) and rebuild it with a model (EMPTIES the graph
that ``Settings()`` points at; ``--reuse`` keeps a loaded graph with a current build and
model), create an admin and a risk_engine key, then start two production servers on the same
Neo4j: the baseline, from a git worktree of ``--baseline-ref`` (the code before the hardening),
and this checkout's. Each attack is sent to each server in turn while a second thread polls
``/healthz`` every 50 ms; the table gives, per attack and server, the HTTP status, the time
to the answer, the answer's size, the first error, and the slowest ``/healthz`` answer during
the attack (a blocked event loop shows there). After the attacks, the servers' stderr is
searched for tracebacks. Writes ``bench/results/abuse-<accounts>.json``.

The attacks (issue #19 has the reproductions):

* ``fanout9`` / ``fanout9_x3``: ``cluster{members{clusters{members{...}}}}`` nine list levels
  deep on a 26-member ring, once and as three aliases; ``fanout8_at_depth_limit``: eight list
  levels, exactly the documented depth, so that only the cost limit can refuse it;
* ``hub_clusters``: the clusters of the IP that is in the most clusters, with their members;
* ``explain_x4``: four aliased ``explain`` calls on hub-linked accounts;
* ``depth_at_limit`` / ``depth_over_limit``: a query exactly at the documented depth, and one
  over it;
* ``deep_variables``: a variable nested 5,000 levels deep;
* ``lone_surrogate``: ``"\\ud800"`` as an id;
* ``echo_100k``: a 90 kB id (is it echoed back?);
* ``echo_80k_field``: an 80 kB field name (is it echoed back in the error?);
* ``cost_from_variables``: a query whose fan-out comes from a variable page size (500);
* ``nan_cursor``: a well-formed cursor of the current build whose score is ``NaN``;
* ``random_keys``: 300 requests, each with a random key id (a Neo4j read each, uncached);
* ``explain_burst``: 12 single ``explain`` requests back to back with one key, on an account
  whose explanation is quick (on a hub-linked one, each takes seconds and the bucket refills);
* ``normal_nb2``: not an attack, 500 2-hop neighbourhoods one at a time (p50, p99): what the
  hardening costs a normal request.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import platform
import random
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from datasets import load_world  # noqa: E402
from servers import Server, free_port  # noqa: E402

from ringscope.api.auth import create_key  # noqa: E402
from ringscope.graph import Graph  # noqa: E402
from ringscope.jobs.rebuild import rebuild  # noqa: E402
from ringscope.models.builds import current_build  # noqa: E402
from ringscope.settings import Settings  # noqa: E402

DOCUMENTED_DEPTH = Settings().api_max_depth
ATTACK_TIMEOUT_S = 120.0  # a request still running then is recorded as a timeout
LONE = "\ud800"  # a lone surrogate: json.dumps sends it as the escape \ud800
Attack = tuple[str, str, dict[str, Any], str]  # name, query, variables, role


class RawJson(str):
    """A variable's value sent as this JSON text, unparsed (json.dumps cannot nest 5,000 deep)."""


def prepare(settings: Settings, accounts: int, seed: int, reuse: bool) -> Graph:
    def build(graph: Graph, data: Path) -> None:  # a model too: explain needs one
        t0 = time.monotonic()
        rebuild(graph, settings, input_dir=data, retrain=True)
        print(f"loaded and rebuilt {accounts} accounts in {time.monotonic() - t0:.0f} s")

    return load_world(settings, accounts, seed, reuse, build)


def nested(depth: int) -> str:
    """``members{clusters{members{...{id}}}}``: ``depth`` list levels below the cluster."""
    inner = "id"
    for level in reversed(range(depth)):
        inner = f"{'members' if level % 2 == 0 else 'clusters'} {{ {inner} }}"
    return inner


def depth_query(depth: int) -> str:
    """A query ``depth`` fields deep: ``cluster`` is level 1, then ``members``, ``clusters``,
    ``members``... one level each, and the leaf ``id`` the last."""
    names = ["members" if i % 2 == 0 else "clusters" for i in range(depth - 2)]
    inner = "id"
    for name in reversed(names):
        inner = f"{name} {{ {inner} }}"
    return "query D($id: ID!) { cluster(id: $id) { " + inner + " } }"


def attacks(graph: Graph) -> list[Attack]:
    info = current_build(graph)
    assert info is not None
    build = {"b": info.id}
    big = graph.read(
        "MATCH (c:Cluster {build_id: $b})<-[:MEMBER_OF]-(a:Account) WITH c, count(a) AS n "
        "RETURN c.id AS id, n ORDER BY abs(n - 26), c.id LIMIT 1",  # the ring had 26
        build,
    )[0]
    hub = graph.read(
        "MATCH (i:IP)<-[:USES_IP]-(a:Account)-[:MEMBER_OF]->(c:Cluster {build_id: $b}) "
        "WITH i, count(DISTINCT c) AS n RETURN i.id AS id, n ORDER BY n DESC LIMIT 1",
        build,
    )[0]
    hubby = graph.read(
        "MATCH (i:IP)<-[:USES_IP]-(a:Account) WITH i, collect(a.id)[..4] AS ids, "
        "count(a) AS n ORDER BY n DESC LIMIT 1 RETURN ids",
    )[0]["ids"]
    print(f"cluster {big['id']} ({big['n']} members); hub IP in {hub['n']} clusters")
    fan = "cluster(id: $id) { " + nested(9) + " }"
    explain4 = " ".join(
        f'e{i}: explain(accountId: "{a}") {{ score topFeatures {{ name value }} }}'
        for i, a in enumerate(hubby)
    )
    deep = "[" * 5000 + '"x"' + "]" * 5000  # raw JSON: json.dumps itself stops at ~1,000
    raw = json.dumps([info.id, "NaN", "z"]).replace('"NaN"', "NaN").encode()
    nan_cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")  # a score of NaN
    fan8 = "cluster(id: $id) { " + nested(8) + " }"  # 10 levels: within the documented depth
    return [
        ("fanout9", "query F($id: ID!) { " + fan + " }", {"id": big["id"]}, "risk_engine"),
        (
            "fanout8_at_depth_limit",
            "query F($id: ID!) { " + fan8 + " }",
            {"id": big["id"]},
            "risk_engine",
        ),
        (
            "fanout9_x3",
            "query F($id: ID!) { " + " ".join(f"a{i}: {fan}" for i in range(3)) + " }",
            {"id": big["id"]},
            "risk_engine",
        ),
        (
            "hub_clusters",
            "query H($id: ID!) { entity(kind: IP, id: $id) { clusters { members { id } } } }",
            {"id": hub["id"]},
            "admin",
        ),
        ("explain_x4", "{ " + explain4 + " }", {}, "admin"),
        ("depth_at_limit", depth_query(DOCUMENTED_DEPTH), {"id": big["id"]}, "admin"),
        ("depth_over_limit", depth_query(DOCUMENTED_DEPTH + 1), {"id": big["id"]}, "admin"),
        (
            "deep_variables",
            "query V($id: ID!) { cluster(id: $id) { id } }",
            {"id": RawJson(deep)},
            "admin",
        ),
        ("lone_surrogate", "query S($id: ID!) { cluster(id: $id) { id } }", {"id": LONE}, "admin"),
        (
            "echo_100k",
            "query E($id: ID!) { entity(kind: PHONE, id: $id) { id } }",
            {"id": "9" * 90_000},
            "admin",
        ),
        (
            "echo_80k_field",
            '{ cluster(id: "x") { ' + "x" * 80_000 + " } }",
            {},
            "admin",
        ),
        (
            "cost_from_variables",
            "query C($first: Int!) { clusters(minScore: 0, first: $first) { edges { node { "
            "members { clusters { members { id } } } } } } }",
            {"first": 500},
            "risk_engine",
        ),
        (
            "nan_cursor",
            "query P($after: String) "
            "{ clusters(first: 5, after: $after) { edges { node { id } } } }",
            {"after": nan_cursor},
            "admin",
        ),
    ]


class HealthPoller(threading.Thread):
    """Polls /healthz every 50 ms until stopped; keeps each answer's latency."""

    def __init__(self, base: str) -> None:
        super().__init__(daemon=True)
        self.base, self.stop, self.latencies = base, threading.Event(), list[float]()

    def run(self) -> None:
        with httpx.Client(timeout=120) as http:
            while not self.stop.is_set():
                t0 = time.perf_counter()
                with contextlib.suppress(httpx.HTTPError):
                    http.get(f"{self.base}/healthz")
                self.latencies.append(time.perf_counter() - t0)
                self.stop.wait(0.05)


def timed(base: str, fn: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    poller = HealthPoller(base)
    poller.start()
    time.sleep(0.2)
    t0 = time.perf_counter()
    try:
        out = fn(*args)
    except httpx.HTTPError as exc:
        out = {"status": None, "error": f"{type(exc).__name__}: {exc}"[:200]}
    out["seconds"] = round(time.perf_counter() - t0, 3)
    poller.stop.set()
    poller.join()
    out["healthz_max_ms"] = round(max(poller.latencies) * 1000, 1)
    return out


def send(url: str, key: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    """One request; its status, size, first error and any Retry-After."""
    # json.dumps writes a lone surrogate as the escape "\ud800", as an attacker's client would
    raw = {k: v for k, v in variables.items() if isinstance(v, RawJson)}
    plain = {k: v for k, v in variables.items() if not isinstance(v, RawJson)}
    text = json.dumps({"query": query, "variables": plain})
    for k, v in raw.items():  # splice each raw value into the variables object
        text = text[:-2] + ("" if text.endswith("{}}") else ", ") + f"{json.dumps(k)}: {v}}}}}"
    body = text.encode()
    resp = httpx.post(
        url,
        content=body,
        headers={"Authorization": f"Bearer {key}", "content-type": "application/json"},
        timeout=ATTACK_TIMEOUT_S,
    )
    first = ""
    try:
        data = resp.json()
        errors = data.get("errors") or ([data["error"]] if "error" in data else [])
        if errors:
            e = errors[0]
            first = e.get("message", str(e)) if isinstance(e, dict) else str(e)
    except (ValueError, AttributeError):
        first = resp.text[:200]
    return {
        "status": resp.status_code,
        "bytes": len(resp.content),
        "error": first[:160],
        "error_chars": len(first),
        "retry_after": resp.headers.get("retry-after"),
    }


def random_keys(url: str, n: int = 300) -> dict[str, Any]:
    statuses: dict[int, int] = {}
    with httpx.Client(timeout=60) as http:
        for _ in range(n):
            key = f"rsk_{secrets.token_hex(8)}_{secrets.token_urlsafe(24)}"
            r = http.post(
                url,
                json={"query": "{ currentBuild { id } }"},
                headers={"Authorization": f"Bearer {key}"},
            )
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
    return {"status": statuses, "requests": n}


def explain_burst(url: str, key: str, account: str, n: int = 12) -> dict[str, Any]:
    statuses: dict[int, int] = {}
    retry = None
    q = 'query { explain(accountId: "' + account + '") { score } }'
    with httpx.Client(timeout=120, headers={"Authorization": f"Bearer {key}"}) as http:
        for _ in range(n):
            r = http.post(url, json={"query": q})
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
            retry = r.headers.get("retry-after") or retry
    return {"status": statuses, "requests": n, "retry_after": retry}


NB2 = (
    "query N($id: ID!) { riskNeighbourhood(kind: ACCOUNT, id: $id, hops: 2, limit: 100) "
    "{ truncated nodes { key kind hop hub degree riskScore flagged } "
    "edges { source target kind } } }"
)


def normal_traffic(url: str, key: str, ids: list[str]) -> dict[str, Any]:
    """Not an attack: 2-hop neighbourhoods one after another, so that the price of the
    hardening (the cost check, the execution threads, the liveness check) shows as latency."""
    times: list[float] = []
    statuses: dict[int, int] = {}
    with httpx.Client(timeout=60, headers={"Authorization": f"Bearer {key}"}) as http:
        for i, a in enumerate(ids):
            t0 = time.perf_counter()
            r = http.post(url, json={"query": NB2, "variables": {"id": a}})
            if i >= 20:  # the first 20 warm the caches
                times.append(time.perf_counter() - t0)
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
    times.sort()
    return {
        "status": statuses,
        "requests": len(ids),
        "p50_ms": round(times[len(times) // 2] * 1000, 1),
        "p99_ms": round(times[int(len(times) * 0.99)] * 1000, 1),
    }


def tracebacks(path: Path) -> int:
    return path.read_text(errors="replace").count("Traceback") if path.exists() else 0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--accounts", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--baseline-ref", default="d7dc6a4")
    ap.add_argument("--reuse", action="store_true")
    ap.add_argument("--only", nargs="*", help="these rows only, merged into the results file")
    args = ap.parse_args()
    settings = Settings()
    graph = prepare(settings, args.accounts, args.seed, args.reuse)
    keys = {role: create_key(graph, role, f"abuse-{role}").key for role in ("admin", "risk_engine")}
    plan = attacks(graph)
    accounts = [r["id"] for r in graph.read("MATCH (a:Account) RETURN a.id AS id ORDER BY a.id")]
    sample = random.Random(args.seed).sample(accounts, 520)

    work = Path(tempfile.mkdtemp(prefix="ringscope-abuse-"))
    old = work / "baseline"
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(old), args.baseline_ref],
        cwd=REPO, check=True, capture_output=True,
    )  # fmt: skip
    env = {"RINGSCOPE_API_WORKERS": "1"}
    results: dict[str, Any] = {
        "accounts": args.accounts,
        "seed": args.seed,
        "machine": f"{platform.node()} {os.cpu_count()} cores",
        "baseline": f"{args.baseline_ref} (before the hardening)",
        "server": "1 uvicorn process, production settings, each server its own audit dir",
        "attacks": {},
    }
    try:
        servers = {
            "before": Server(
                {**env, "PYTHONPATH": str(old), "RINGSCOPE_API_AUDIT_DIR": str(work / "audit-0")},
                cwd=old,
                log=work / "before.log",
            ),
            "after": Server(
                {**env, "RINGSCOPE_API_AUDIT_DIR": str(work / "audit-1")}, log=work / "after.log"
            ),
        }
        # A fresh server process per attack and side: an attack that is still running in the
        # server when the client gives up (or that bloats its memory) cannot spoil the next.
        singles: list[tuple[str, Callable[..., dict[str, Any]], tuple[Any, ...]]] = [
            (name, send, (keys[role], query, variables)) for name, query, variables, role in plan
        ]
        singles += [
            ("random_keys", random_keys, ()),
            ("explain_burst", explain_burst, (keys["admin"], sample[0])),
            ("normal_nb2", normal_traffic, (keys["risk_engine"], sample)),
        ]
        if args.only:
            singles = [t for t in singles if t[0] in args.only]
        for name, fn, extra in singles:
            row = {}
            for label, srv in servers.items():
                with srv:
                    row[label] = timed(srv.url.rsplit("/", 1)[0], fn, srv.url, *extra)
                srv.port = free_port()
                srv.url = f"http://127.0.0.1:{srv.port}/graphql"
            results["attacks"][name] = row
            print(name, json.dumps(row), flush=True)
        results["tracebacks_in_server_log"] = {
            "before": tracebacks(work / "before.log"),
            "after": tracebacks(work / "after.log"),
        }
        audit_bytes = {
            label: sum(p.stat().st_size for p in (work / d).rglob("*") if p.is_file())
            for label, d in (("before", "audit-0"), ("after", "audit-1"))
        }
        results["audit_bytes"] = audit_bytes
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=REPO, check=False)
    print(json.dumps(results["tracebacks_in_server_log"]), json.dumps(results["audit_bytes"]))
    out = REPO / "bench" / "results" / f"abuse-{args.accounts}.json"
    if args.only and out.exists():  # a partial run updates its rows of the last full run
        merged = json.loads(out.read_text())
        merged["attacks"].update(results["attacks"])
        results = merged
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
