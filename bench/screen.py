"""Screening speed (issue #17, item 6): ``screen(event)`` against ``accountRisk`` of one id, and
``recordEvents`` of one event, through real server processes on a generated world.

    python bench/screen.py --accounts 1000000 --reuse [--seconds 15] [--concurrency 1,20]
                           [--data-dir DIR --neo4j-port PORT --model-dir DIR] [--out FILE]

The world: the graph ``Settings()`` points at (``--data-dir``, ``--neo4j-port``, ``--model-dir``
and friends set the ``RINGSCOPE_*`` variables first, for this process and the server alike). With
``--reuse`` it is kept as it is when it holds at least ``--accounts`` accounts, a current build
and a current model that the build was scored with; otherwise (or without ``--reuse``) a data set
is generated (``ringscope.synth.generate``, seed ``--seed``), the store is EMPTIED and loaded (the
embedded Neo4j's offline importer; Cypher batches against an external Neo4j), and a rebuild with a
retrain writes a build and a tree-only model (``model_use_gnn=False``: screening's fast path).

The events: a pool of screen bodies built from the world with parameterised Cypher, mixed as
``MIX`` says: (a) ``payment_known_payee``: existing accounts paying a payee they paid before, from
one of their devices and IPs; (b) ``signup_ring_identifier`` / ``signup_shared_identifier``: new
accounts signing up on an existing device and phone, taken from members of flagged rings
(``MEMBER_OF`` a cluster of the current build scoring >= 0.6) or from random accounts;
(c) ``signup_all_new``: new accounts whose identifiers are all new; (d) ``hub_ip``: an existing
account logging in, or a new one signing up, from a hub IP (more accounts than the IP degree cap).
Every event is ``at`` a few minutes after the build's data "now"; wrk (``bench/wrk_bodies.lua``)
cycles through the pool and gives every request a fresh eventId (and every new account a fresh
id), so no two requests are the same event. A sample of each kind is screened once first and
checked (no errors; rings reached, hubs left out, per kind) and recorded in the results.

The runs: ``python -m ringscope.api serve`` (production settings, ``--workers`` processes x
``--threads`` threads, a ``risk_engine`` key), driven by ``wrk`` (one thread, N connections,
back to back). For each concurrency: ``accountRisk(ids: [$id])`` of random existing ids (the
baseline), then ``screen`` with the issue's exact operation, alternated ``--rounds`` times for
``--seconds`` each, so that drift in the (shared) machine's speed shows in both. Per phase: wrk's
requests/s, p50, p90, p99 and any non-GraphQL-data answers; per concurrency and operation: the
sum of requests over the summed time, the mean of the phases' p50s and the worst p99. Then
``recordEvents`` of one event per request, one client in this process (httpx, keep-alive;
``--record-requests`` requests, each a fresh event of the same mix), then the same events again
(the duplicate path: nothing written), with ``accountRisk`` through the same client beside them
as the client's own share. Recording writes into the graph (new accounts, links, ledger rows).

With ``--offered R1,R2``: after those, the same two operations at each offered load, alternated
``--rounds`` times: the last concurrency's connections (20), each waiting after every answer an
exponential think time of mean ``connections * 1000 / R`` ms before its next request, so that the
clients together offer about R requests a second while answers take much less than the think time
(a closed loop with think time: a slow answer delays its client's next request, so the rate
reached, reported beside the latencies, is what was offered in the end). Back to back, 20 clients
with p99 under 30 ms need over 667 answers a second; this says what a risk engine whose 20
threads decide at a given rate sees.

Also: the peak RSS of the server (its processes summed, sampled every 0.5 s, and each process's
VmHWM) and of Neo4j (sampled, and the JVM's VmHWM since it started), the machine's load average
before and after, and the goals below. Writes ``bench/results/screen-<accounts>.json`` and prints
a table against the goals. Needs ``wrk`` (``apt-get install wrk``).
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
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

WRK_SCRIPT = REPO / "bench" / "wrk_bodies.lua"
GOALS = {"screen_p99_ms_at_20": 30.0, "screen_rps_at_20": 200.0, "record_p50_ms": 10.0}
FLAGGED = 0.6  # a ring member: MEMBER_OF a cluster of the current build scoring at least this
MIX = {  # the share of each kind of event in the pool
    "payment_known_payee": 0.40,
    "signup_ring_identifier": 0.12,
    "signup_shared_identifier": 0.18,
    "signup_all_new": 0.15,
    "hub_ip": 0.15,
}
EID = "__EID__"  # replaced per request by bench/wrk_bodies.lua (a unique number)

# The exact operation of issue #17 (tests/test_screening.py: SCREEN).
SCREEN = (
    "query Screen($event: ScreenEvent!) { screen(event: $event) { score buildId modelVersion "
    "reasons linkedRings { ringId score via { kind id } } hubsIgnored { kind id degree } } }"
)
SCREEN_CHECK = (
    "query Screen($event: ScreenEvent!) { screen(event: $event) { knownAccount score model "
    "modelVersion buildId reasons linkedRings { ringId } hubsIgnored { kind degree } "
    "invalidFields { field reason } accountsRead } }"
)
BASELINE = "query Risk($id: ID!) { accountRisk(ids: [$id]) { id riskScore } }"
RECORD = (
    "mutation Record($events: [ScreenEvent!]!) { recordEvents(events: $events) "
    "{ recorded duplicates rowsWritten invalidFields { eventId field reason } } }"
)
MEMBERS = (
    "MATCH (c:Cluster) WHERE c.build_id = $build AND c.score >= $score "
    "MATCH (a:Account)-[:MEMBER_OF]->(c) RETURN DISTINCT a.id AS id"
)
PAYEES = (  # (one row per account: far fewer driver records than one per row)
    "UNWIND $ids AS id MATCH (:Account {id: id})-[r:PAID]->(p:Payee) "
    "WITH id, collect(DISTINCT [p.id, r.currency])[..5] AS payees RETURN id, payees"
)
ALL_IDS = "MATCH (a:Account) RETURN collect(a.id) AS ids"
HUBS_SCAN = (
    "MATCH (x:IP) WITH x, COUNT { (x)<-[:USES_IP]-() } AS n WHERE n > $cap "
    "RETURN x.id AS value, n AS degree ORDER BY n DESC LIMIT 50"
)


def identifiers_query(kind: str) -> str:
    """Accounts' identifiers of one kind, with each identifier's degree (kinds table)."""
    from ringscope.kinds import BY_NAME

    k = BY_NAME[kind]
    return (
        f"UNWIND $ids AS id MATCH (:Account {{id: id}})-[:{k.rel}]->(x:{k.label}) "
        f"WITH id, collect([x.id, COUNT {{ (x)<-[:{k.rel}]-() }}]) AS found RETURN id, found"
    )


def configure(args: argparse.Namespace) -> None:
    """The options that name the world become RINGSCOPE_* variables, read by ``Settings()`` here
    and by the server processes (they inherit this environment)."""
    for opt, var in (
        ("data_dir", "RINGSCOPE_DATA_DIR"),
        ("neo4j_port", "RINGSCOPE_NEO4J_PORT"),
        ("neo4j_http_port", "RINGSCOPE_NEO4J_HTTP_PORT"),
        ("neo4j_heap", "RINGSCOPE_NEO4J_HEAP"),
        ("neo4j_pagecache", "RINGSCOPE_NEO4J_PAGECACHE"),
        ("model_dir", "RINGSCOPE_MODEL_DIR"),
    ):
        value = getattr(args, opt)
        if value is not None:
            os.environ[var] = str(value)
    os.environ["RINGSCOPE_MODEL_USE_GNN"] = "false"  # a rebuild here trains the tree only


# --- the world -----------------------------------------------------------------------------------


def prepare(settings: Any, accounts: int, seed: int, reuse: bool) -> Any:
    """A connected graph holding ``accounts`` accounts, a current build and its model."""
    from ringscope.graph import EmbeddedNeo4j, connect, counts, cypher, init_schema
    from ringscope.ingest import load
    from ringscope.jobs.rebuild import rebuild
    from ringscope.models.builds import current_build

    graph = connect(settings)
    nodes, _ = counts(graph)
    info = current_build(graph)
    have = nodes.get("Account", 0)
    tree_only = settings.model_copy(update={"model_use_gnn": False})
    if reuse and have >= accounts and info is not None:
        stale = model_problem(settings, info.model_version)
        if stale is None:
            print(f"reusing the loaded graph ({have} accounts, build {info.id})", flush=True)
            return graph
        # The data are there: a rebuild with a retrain (minutes), not a new world (an hour).
        print(f"reusing the loaded graph ({have} accounts), but {stale}: rebuilding with a "
              "retrain (tree only)", flush=True)  # fmt: skip
        t0 = time.monotonic()
        rebuild(graph, tree_only, retrain=True)
        print(f"rebuilt with a retrain in {time.monotonic() - t0:.0f} s", flush=True)
        return graph
    if reuse:
        why = f"{have} accounts < {accounts}" if have < accounts else "no current build"
        print(f"not reusable ({why}): generating and loading a new world", flush=True)
    sys.path.insert(0, str(REPO / "bench"))
    from datasets import generate

    root = Path(os.environ.get("BENCH_DIR") or Path(tempfile.gettempdir()) / "ringscope-bench")
    t0 = time.monotonic()
    data = generate(accounts, root, seed)
    print(f"generated {accounts} accounts in {time.monotonic() - t0:.0f} s", flush=True)
    if settings.neo4j_uri:  # an external server: deleted in batches
        with graph.driver.session(database=graph.database) as session:
            session.run(cypher.INGEST_CLEAR_IN_BATCHES).consume()
    else:  # the embedded store is dropped (minutes faster than deleting through Cypher)
        EmbeddedNeo4j(settings).drop_database()
        graph.reconnect(settings)
        init_schema(graph)
    t0 = time.monotonic()
    load(data, graph, settings, progress=False, bulk=not settings.neo4j_uri)
    print(f"loaded in {time.monotonic() - t0:.0f} s", flush=True)
    t0 = time.monotonic()
    rebuild(graph, tree_only, retrain=True)
    print(f"rebuilt with a retrain (tree only) in {time.monotonic() - t0:.0f} s", flush=True)
    return graph


def model_problem(settings: Any, build_model: str | None) -> str | None:
    """Why the current model cannot serve the current build's screens, or None: none trained,
    not the one the build was scored with, or trained on another feature schema than this
    code computes (the server would refuse it)."""
    from ringscope.models.artefacts import MANIFEST, check_schema, current_model
    from ringscope.models.features import FEATURE_SCHEMA

    path = current_model(settings.models_dir)
    if path is None:
        return f"no model under {settings.models_dir}"
    if path.name != build_model:
        return f"the build used model {build_model}, the current one is {path.name}"
    try:
        check_schema(json.loads((path / MANIFEST).read_text()), path, FEATURE_SCHEMA)
    except Exception as exc:  # ModelSchemaError: the features changed since it was trained
        return f"model {path.name} does not fit this code ({str(exc)[:200]})"
    return None


class Pool:
    """Screen events drawn from the world (see the module doc)."""

    def __init__(self, graph: Any, seed: int, token: str) -> None:
        from ringscope.kinds import BY_NAME
        from ringscope.models.builds import current_build

        t0 = time.monotonic()
        info = current_build(graph)
        assert info is not None
        self.build_id: str = info.id
        counts = info.metrics.get("counts") or {}
        now = counts.get("data_now")
        if now is None:
            rows = graph.read("MATCH (a:Account) RETURN max(a.created_at) AS now")
            now = rows[0]["now"]
            now = int(now.to_native().timestamp()) if hasattr(now, "to_native") else int(now)
        self.now = int(now)
        self.rnd = random.Random(seed)
        self.token = token
        self.ids: list[str] = graph.read(ALL_IDS)[0]["ids"]
        self.members: list[str] = sorted(
            r["id"] for r in graph.read(MEMBERS, {"build": info.id, "score": FLAGGED})
        )
        sample = self.rnd.sample(self.ids, min(6000, len(self.ids)))
        members = self.rnd.sample(self.members, min(3000, len(self.members)))

        def by_account(kind: str, ids: list[str]) -> dict[str, list[tuple[str, int]]]:
            out: dict[str, list[tuple[str, int]]] = {}
            for r in graph.read(identifiers_query(kind), {"ids": ids}):
                out[r["id"]] = [(str(v), int(d)) for v, d in r["found"]]
            return out

        self.devices = by_account("device", sample)
        self.phones = by_account("phone", sample)
        self.ips = by_account("ip", sample)
        self.ring_devices = by_account("device", members)
        self.ring_phones = by_account("phone", members)
        self.payees: dict[str, list[tuple[str, str]]] = {}
        for r in graph.read(PAYEES, {"ids": sample}):
            self.payees[r["id"]] = [(str(p), str(c or "CNY")) for p, c in r["payees"]]
        cap = BY_NAME["ip"].degree_cap
        hubs = {v: d for rows in self.ips.values() for v, d in rows if d > cap}
        if not hubs:  # none among the sample's IPs: look over all of them
            hubs = {r["value"]: int(r["degree"]) for r in graph.read(HUBS_SCAN, {"cap": cap})}
        self.hub_ips = sorted(hubs.items(), key=lambda kv: -kv[1])
        self.payers = sorted(self.payees)
        self.facts = {
            "build": self.build_id,
            "model_version": info.model_version,
            "data_now": datetime.fromtimestamp(self.now, UTC).isoformat(),
            "accounts": len(self.ids),
            "flagged_ring_members": len(self.members),
            "hub_ips_found": len(self.hub_ips),
            "hub_ip_degrees": [d for _, d in self.hub_ips[:10]],
            "read_s": round(time.monotonic() - t0, 1),
        }
        print(f"pool facts: {self.facts}", flush=True)
        if not self.payers or not self.members or not self.hub_ips:
            raise SystemExit(f"the world lacks payers, ring members or hub IPs: {self.facts}")
        self.n = 0

    # identifiers that no account has used
    def _new(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}{self.token}x{self.n}"

    def _phone(self) -> str:
        return f"+86 13{self.rnd.randint(0, 9)} {self.rnd.randint(0, 9999):04d} " + (
            f"{self.rnd.randint(0, 9999):04d}"
        )

    def _ip(self) -> str:
        return ".".join(str(self.rnd.randint(1, 254)) for _ in range(4))

    def _at(self) -> str:
        return datetime.fromtimestamp(self.now + self.rnd.randint(60, 1800), UTC).isoformat()

    def _one(self, rows: dict[str, list[tuple[str, int]]], account: str) -> list[str]:
        got = rows.get(account)
        return [self.rnd.choice(got)[0]] if got else []

    def event(self, kind: str, eid: str, new_account: str) -> dict[str, Any]:
        """One event of ``kind``; ``eid`` its id, ``new_account`` the id of a new account."""
        r = self.rnd
        ev: dict[str, Any] = {"eventId": eid, "at": self._at()}
        if kind == "payment_known_payee":
            a = r.choice(self.payers)
            payee, cur = r.choice(self.payees[a])
            ev.update(accountId=a, type="PAYMENT", payee=payee, currency=cur,
                      amount=f"{r.uniform(5, 3000):.2f}", devices=self._one(self.devices, a),
                      ips=[v for v in self._one(self.ips, a)])  # fmt: skip
        elif kind in ("signup_ring_identifier", "signup_shared_identifier"):
            ring = kind == "signup_ring_identifier"
            devs, phs = (
                (self.ring_devices, self.ring_phones) if ring else (self.devices, self.phones)
            )
            owners = sorted(set(devs) | set(phs))
            a = r.choice(owners)
            ev.update(accountId=new_account, type="SIGNUP", kycLevel=r.randint(0, 2),
                      devices=self._one(devs, a) or [self._new("D")],
                      phones=self._one(phs, a) or [self._phone()],
                      emails=[f"{self._new('u')}@example.com"], ips=[self._ip()])  # fmt: skip
        elif kind == "signup_all_new":
            t = r.choice(("SIGNUP", "APPLICATION"))
            ev.update(accountId=new_account, type=t, kycLevel=r.randint(0, 3),
                      devices=[self._new("D")], phones=[self._phone()],
                      emails=[f"{self._new('u')}@example.com"], ips=[self._ip()])  # fmt: skip
            if t == "APPLICATION":
                ev["idDocuments"] = [f"{r.randint(10**17, 10**18 - 1)}"]
                ev["bankCards"] = [f"62{r.randint(10**13, 10**14 - 1)}"]
        elif kind == "hub_ip":
            hub = r.choice(self.hub_ips)[0]
            if r.random() < 0.5:
                a = r.choice(self.payers)
                ev.update(accountId=a, type="LOGIN", ips=[hub], devices=self._one(self.devices, a))
            else:
                ev.update(accountId=new_account, type="SIGNUP", kycLevel=r.randint(0, 2),
                          ips=[hub], devices=[self._new("D")], phones=[self._phone()])  # fmt: skip
        else:
            raise ValueError(kind)
        return ev

    def kinds(self, n: int) -> list[str]:
        names = list(MIX)
        return self.rnd.choices(names, weights=[MIX[k] for k in names], k=n)


# --- load generation and measurement -------------------------------------------------------------


def wrk(
    url: str, key: str, bodies: list[str], clients: int, seconds: float, think_ms: float = 0.0
) -> dict[str, Any]:
    """``clients`` wrk connections for ``seconds``, cycling through ``bodies``; with
    ``think_ms``, each connection waits an exponential time of that mean after each answer."""
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl") as f:
        f.write("\n".join(bodies) + "\n")
        f.flush()
        env = {**os.environ, "WRK_BODIES": f.name, "WRK_KEY": key, "WRK_THINK_MS": f"{think_ms:g}",
               "WRK_STAMP": f"{time.time_ns() % 10**12:x}"}  # fmt: skip
        cmd = ["wrk", "-t1", f"-c{clients}", f"-d{seconds:g}s", "--latency", "--timeout", "30s",
               "-s", str(WRK_SCRIPT), url]  # fmt: skip
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    res: dict[str, Any] = json.loads(out.split("RESULT ", 1)[1])
    res.update(rps=round(res["requests"] / res["duration_s"], 1), clients=clients)
    bad = res["non_2xx"] + res["socket_errors"] + res["graphql_errors"]
    if bad:
        print(f"warning: {bad} failed answers of {res['requests']}: {res['first_error']}",
              flush=True)  # fmt: skip
    return res


def cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU seconds the processes have used (``/proc/<pid>/stat``)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for p in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def measured(srv_pid: int, neo4j_pid: int | None, run: Any, spy: Path | None = None) -> Any:
    """``run()`` (a wrk phase), with the CPU the server processes and Neo4j spent on it, per
    request, added to its result; with ``spy``, a py-spy profile of each server worker during
    the phase (``<spy>-<pid>.txt``, collapsed stacks, GIL holders only)."""
    procs = process_tree(srv_pid)
    spies = []
    if spy is not None:
        for p in procs[1:] or procs:
            cmd = [str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(p),
                   "--gil", "--format", "raw", "--rate", "200", "--output", f"{spy}-{p}.txt",
                   "--nonblocking"]  # fmt: skip
            spies.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL))  # fmt: skip
        time.sleep(1.0)
    s0, n0 = cpu_seconds(procs), cpu_seconds([neo4j_pid] if neo4j_pid else [])
    res = run()
    s1, n1 = cpu_seconds(procs), cpu_seconds([neo4j_pid] if neo4j_pid else [])
    for sp in spies:
        sp.send_signal(2)
        sp.wait(timeout=30)
    done = max(1, res["requests"])
    res["cpu_ms_per_request"] = {"server": round(1000 * (s1 - s0) / done, 2),
                                 "neo4j": round(1000 * (n1 - n0) / done, 2)}  # fmt: skip
    return res


def warm_up(url: str, key: str, events: list[dict[str, Any]], n: int) -> list[float]:
    """``n`` screens at once, so that every server process answers one (its first loads the
    model: seconds); the seconds of each. Failures here are reported, not fatal."""
    from concurrent.futures import ThreadPoolExecutor

    def one(i: int) -> float:
        e = json.loads(json.dumps(events[i % len(events)]).replace(EID, f"warm{i}"))
        t0 = time.perf_counter()
        resp = httpx.post(url, json={"query": SCREEN, "variables": {"event": e}},
                          headers={"Authorization": f"Bearer {key}"}, timeout=300)  # fmt: skip
        if resp.status_code != 200 or "errors" in resp.json():
            print(f"warning: a first screen failed: {resp.text[:300]}", flush=True)
        return round(time.perf_counter() - t0, 2)

    with ThreadPoolExecutor(n) as ex:
        return list(ex.map(one, range(n)))


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    requests = sum(r["requests"] for r in runs)
    seconds = sum(r["duration_s"] for r in runs)
    return {
        "rps": round(requests / seconds, 1),
        "p50_ms": round(statistics.mean(r["p50_ms"] for r in runs), 2),
        "p99_ms": round(max(r["p99_ms"] for r in runs), 2),
        "requests": requests,
        "failed": sum(r["non_2xx"] + r["socket_errors"] + r["graphql_errors"] for r in runs),
        "cpu_ms_per_request": {
            side: round(
                sum(r["cpu_ms_per_request"][side] * r["requests"] for r in runs) / max(1, requests),
                2,
            )
            for side in ("server", "neo4j")
        }
        if all("cpu_ms_per_request" in r for r in runs)
        else None,
        "runs": runs,
    }


def sequential(
    http: httpx.Client, url: str, bodies: list[dict[str, Any]]
) -> tuple[list[float], list[Any]]:
    """Post each body in turn: the milliseconds of each, and each answer's data."""
    times, data = [], []
    for body in bodies:
        t0 = time.perf_counter()
        resp = http.post(url, json=body)
        times.append((time.perf_counter() - t0) * 1000)
        if resp.status_code != 200 or "errors" in resp.json():
            raise RuntimeError(f"a request failed: {resp.text[:500]}")
        data.append(resp.json()["data"])
    return times, data


def latency(times: list[float]) -> dict[str, Any]:
    return {
        "n": len(times),
        "p50_ms": round(pct(times, 0.5), 2),
        "p90_ms": round(pct(times, 0.9), 2),
        "p99_ms": round(pct(times, 0.99), 2),
        "mean_ms": round(statistics.mean(times), 2),
        "max_ms": round(max(times), 2),
    }


def status_kib(pid: int, field: str) -> int | None:
    """A ``/proc/<pid>/status`` field in KiB (VmRSS, VmHWM), None when the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (``/proc/<pid>/task/*/children``)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            with contextlib.suppress(OSError):
                todo.extend(int(c) for c in (task / "children").read_text().split())
    return out


class RssSampler(threading.Thread):
    """The summed RSS of the server's processes and Neo4j's, every 0.5 s; keeps the peaks."""

    def __init__(self, server_pid: int, neo4j_pid: int | None) -> None:
        super().__init__(daemon=True)
        self.server = server_pid
        self.neo4j = neo4j_pid
        self.peak_server = 0  # KiB
        self.peak_neo4j = 0
        self.stop = threading.Event()

    def sample(self) -> None:
        total = sum(status_kib(p, "VmRSS") or 0 for p in process_tree(self.server))
        self.peak_server = max(self.peak_server, total)
        if self.neo4j is not None:
            self.peak_neo4j = max(self.peak_neo4j, status_kib(self.neo4j, "VmRSS") or 0)

    def run(self) -> None:
        while not self.stop.wait(0.5):
            self.sample()


def vm_hwm_mib(pid: int) -> float | None:
    kib = status_kib(pid, "VmHWM")
    return round(kib / 1024, 1) if kib is not None else None


def machine(settings: Any) -> dict[str, Any]:
    cpu = next((ln.split(":", 1)[1].strip() for ln in
                Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("model name")),
               platform.processor())  # fmt: skip

    def git(*a: str) -> str:
        return subprocess.run(["git", *a], cwd=REPO, capture_output=True, text=True).stdout.strip()

    wrk_v = subprocess.run(["wrk", "--version"], capture_output=True, text=True)
    return {
        "node": platform.node(),
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "wrk": (wrk_v.stdout or wrk_v.stderr).split("\n", 1)[0].strip(),
        "neo4j": settings.neo4j_uri
        or (
            f"embedded on port {settings.neo4j_port}, heap {settings.neo4j_heap}, "
            f"page cache {settings.neo4j_pagecache}, data {settings.data_dir}"
        ),
        "models_dir": str(settings.models_dir),
        "git_commit": git("rev-parse", "--short", "HEAD"),
        "git_dirty_files": len(git("status", "--porcelain").splitlines()),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--accounts", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--reuse", action="store_true",
                    help="keep a loaded world with a current build and its model")  # fmt: skip
    ap.add_argument("--seconds", type=float, default=15.0, help="per phase")
    ap.add_argument("--rounds", type=int, default=2, help="baseline/screen alternations")
    ap.add_argument("--concurrency", default="1,20", help="wrk connections, comma-separated")
    ap.add_argument(
        "--offered",
        default="",
        help="requests/s, comma-separated: phases where the last concurrency's connections "
        "think between requests (see the module doc)",
    )
    ap.add_argument("--warmup", type=float, default=5.0, help="seconds of each op first")
    ap.add_argument("--pool", type=int, default=5000, help="distinct screen events, cycled")
    ap.add_argument("--record-requests", type=int, default=300)
    ap.add_argument("--check", type=int, default=10, help="events of each kind checked first")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data-dir", type=Path)
    ap.add_argument("--neo4j-port", type=int)
    ap.add_argument("--neo4j-http-port", type=int)
    ap.add_argument("--neo4j-heap")
    ap.add_argument("--neo4j-pagecache")
    ap.add_argument("--model-dir", type=Path)
    ap.add_argument("--note", default="", help="stored in the results (e.g. the machine was busy)")
    ap.add_argument(
        "--py-spy",
        type=Path,
        help="folder: py-spy profiles of the workers in each op's first phase",
    )
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    configure(args)
    if args.py_spy:
        args.py_spy.mkdir(parents=True, exist_ok=True)

    from ringscope.api.auth import create_key
    from ringscope.graph import EmbeddedNeo4j
    from ringscope.settings import Settings

    sys.path.insert(0, str(REPO / "bench"))
    from servers import Server

    settings = Settings()
    levels = [int(c) for c in args.concurrency.split(",")]
    facts = machine(settings)
    load_before = os.getloadavg()
    graph = prepare(settings, args.accounts, args.seed, args.reuse)
    token = f"{int(time.time()) % 10**8:x}"
    pool = Pool(graph, args.seed, token)
    kinds = pool.kinds(args.pool)
    screen_events = [
        pool.event(k, f"s{token}-{i}-{EID}", f"N{token}-{i}-{EID}") for i, k in enumerate(kinds)
    ]
    screen_bodies = [
        json.dumps({"query": SCREEN, "variables": {"event": e}}, separators=(",", ":"))
        for e in screen_events
    ]
    base_ids = pool.rnd.sample(pool.ids, min(args.pool, len(pool.ids)))
    base_bodies = [
        json.dumps({"query": BASELINE, "variables": {"id": a}}, separators=(",", ":"))
        for a in base_ids
    ]
    record_kinds = pool.kinds(args.record_requests)
    record_events = [
        pool.event(k, f"r{token}-{i}", f"R{token}-{i}") for i, k in enumerate(record_kinds)
    ]
    key = create_key(graph, "risk_engine", f"bench-screen-{token}").key
    neo4j = None if settings.neo4j_uri else EmbeddedNeo4j(settings).status()
    env = {
        "RINGSCOPE_API_WORKERS": str(args.workers),
        "RINGSCOPE_API_THREADS": str(args.threads),
        "RINGSCOPE_API_MAX_BUILD_AGE_S": "0",  # a reused world's build may be days old
    }
    results: dict[str, Any] = {
        "accounts": len(pool.ids),
        "machine": facts,
        "note": args.note,
        "server": f"{args.workers} uvicorn processes x {args.threads} threads (production)",
        "load_generator": "wrk, 1 thread, N connections, back to back; each request a fresh "
        "eventId (bench/wrk_bodies.lua)",
        "seconds_per_phase": args.seconds,
        "rounds": args.rounds,
        "world": pool.facts,
        "mix": MIX,
        "pool": {"events": len(screen_bodies), "kinds": dict(Counter(kinds))},
        "summaries": "rps: all requests of the op's phases over their summed time; p50_ms: the "
        "mean of the phases' p50s; p99_ms: the worst phase's p99",
    }
    headers = {"Authorization": f"Bearer {key}"}
    log = Path(tempfile.gettempdir()) / f"ringscope-bench-screen-{token}.log"
    results["server_log"] = str(log)
    with Server(env, log=log) as srv, httpx.Client(headers=headers, timeout=120) as http:
        sampler = RssSampler(srv.proc.pid, neo4j.pid if neo4j else None)
        sampler.start()
        results["first_screens_s"] = warm_up(srv.url, key, screen_events, 2 * args.workers)
        print(f"first screens (each process loads the model): {results['first_screens_s']} s")
        # A sample of each kind of event, screened once and checked.
        check: dict[str, Any] = {}
        for kind in MIX:
            picked = [e for e, k in zip(screen_events, kinds, strict=True) if k == kind]
            picked = picked[: args.check]
            rows = []
            for j, e in enumerate(picked):
                e = json.loads(json.dumps(e).replace(EID, f"check{j}"))
                resp = http.post(srv.url, json={"query": SCREEN_CHECK, "variables": {"event": e}})
                body = resp.json()
                if "errors" in body:
                    raise SystemExit(f"screen fails on a {kind} event {e}: {body['errors']}")
                rows.append(body["data"]["screen"])
            check[kind] = {
                "n": len(rows),
                "known_account": sum(r["knownAccount"] for r in rows),
                "reach_rings": sum(bool(r["linkedRings"]) for r in rows),
                "hubs_ignored": sum(bool(r["hubsIgnored"]) for r in rows),
                "invalid_fields": sum(len(r["invalidFields"]) for r in rows),
                "mean_score": round(statistics.mean(r["score"] for r in rows), 3),
                "mean_accounts_read": round(statistics.mean(r["accountsRead"] for r in rows), 1),
                "models": sorted({r["model"] for r in rows}),
            }
        results["pool"]["check"] = check
        results["model"] = sorted({m for c in check.values() for m in c["models"]})
        print(f"screen check per kind: {json.dumps(check)}", flush=True)
        if args.warmup:
            wrk(srv.url, key, base_bodies, levels[-1], args.warmup)
            wrk(srv.url, key, screen_bodies, levels[-1], args.warmup)
        for c in levels:
            runs: dict[str, list[dict[str, Any]]] = {"accountRisk": [], "screen": []}
            for r in range(args.rounds):
                for op, bodies in (("accountRisk", base_bodies), ("screen", screen_bodies)):
                    spy = args.py_spy / f"{op}-c{c}" if args.py_spy and r == 0 else None
                    res = measured(
                        srv.proc.pid, neo4j.pid if neo4j else None,
                        lambda b=bodies, n=c: wrk(srv.url, key, b, n, args.seconds), spy,
                    )  # fmt: skip
                    runs[op].append(res)
                    cpu = res["cpu_ms_per_request"]
                    print(
                        f"c={c} round {r + 1} {op}: {res['rps']:.0f}/s p50 "
                        f"{res['p50_ms']:.1f} ms p99 {res['p99_ms']:.1f} ms; CPU per request: "
                        f"server {cpu['server']} ms, Neo4j {cpu['neo4j']} ms",
                        flush=True,
                    )
            results[f"c{c}"] = {op: summary(done) for op, done in runs.items()}
        offered = [float(x) for x in args.offered.split(",") if x.strip()]
        for rate in offered:
            c = levels[-1]
            think = 1000.0 * c / rate
            runs = {"accountRisk": [], "screen": []}
            for r in range(args.rounds):
                for op, bodies in (("accountRisk", base_bodies), ("screen", screen_bodies)):
                    res = measured(
                        srv.proc.pid, neo4j.pid if neo4j else None,
                        lambda b=bodies, n=c, t=think: wrk(srv.url, key, b, n, args.seconds, t),
                    )  # fmt: skip
                    runs[op].append(res)
                    print(
                        f"offered {rate:g}/s (c={c}, think {think:.0f} ms) round {r + 1} {op}: "
                        f"{res['rps']:.0f}/s p50 {res['p50_ms']:.1f} ms p90 "
                        f"{res['p90_ms']:.1f} ms p99 {res['p99_ms']:.1f} ms",
                        flush=True,
                    )
            results.setdefault("offered", {})[f"{rate:g}"] = {
                "clients": c,
                "think_ms_mean": round(think, 1),
                **{op: summary(done) for op, done in runs.items()},
            }
        # recordEvents, one event per request, one client; then the same again (duplicates).
        record_bodies = [{"query": RECORD, "variables": {"events": [e]}} for e in record_events]
        client_base = [{"query": BASELINE, "variables": {"id": a}} for a in base_ids]
        sequential(http, srv.url, client_base[:50])  # warms the connection
        fresh, wrote = sequential(http, srv.url, record_bodies)
        again, seen = sequential(http, srv.url, record_bodies)
        base_seq, _ = sequential(http, srv.url, client_base[: args.record_requests])
        for e, w, s in zip(record_events, wrote, seen, strict=True):
            w, s = w["recordEvents"], s["recordEvents"]
            if w["recorded"] != [e["eventId"]] or s["duplicates"] != [e["eventId"]]:
                raise SystemExit(f"recordEvents did not record, then refuse, {e}: {w} {s}")
        results["record"] = {
            "client": "httpx in the bench process, keep-alive, one request at a time",
            "fresh": latency(fresh),
            "rows_written_mean": round(
                statistics.mean(w["recordEvents"]["rowsWritten"] for w in wrote), 2
            ),
            "invalid_fields": sum(len(w["recordEvents"]["invalidFields"]) for w in wrote),
            "duplicate": latency(again),
            "accountRisk_same_client": latency(base_seq),
            "kinds": dict(Counter(record_kinds)),
        }
        sampler.stop.set()
        time.sleep(1)
        results["server_tracebacks"] = log.read_text(errors="replace").count("Traceback")
        sampler.sample()
        procs = process_tree(srv.proc.pid)
        results["memory"] = {
            "server_peak_rss_mib": round(sampler.peak_server / 1024, 1),
            "server_processes": len(procs),
            "server_vmhwm_mib": [vm_hwm_mib(p) for p in procs],
            "neo4j_peak_rss_mib": round(sampler.peak_neo4j / 1024, 1) if neo4j else None,
            "neo4j_vmhwm_mib": vm_hwm_mib(neo4j.pid) if neo4j else None,
            "neo4j_vmhwm_note": "the JVM's peak since it started (a load or rebuild before may "
            "have set it)",
        }
    graph.close()
    load_after = os.getloadavg()
    results["machine"]["loadavg_before"] = [round(x, 2) for x in load_before]
    results["machine"]["loadavg_after"] = [round(x, 2) for x in load_after]
    results["goals"] = GOALS
    top = f"c{levels[-1]}"
    results["against_goals"] = {
        "screen_p99_ms_at_20": results.get("c20", results[top])["screen"]["p99_ms"],
        "screen_rps_at_20": results.get("c20", results[top])["screen"]["rps"],
        "record_p50_ms": results["record"]["fresh"]["p50_ms"],
    }
    out = args.out or REPO / "bench" / "results" / f"screen-{args.accounts}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    report(results, levels)
    print(f"wrote {out}")


def report(results: dict[str, Any], levels: list[int]) -> None:
    t = Table(title=f"screen at {results['accounts']:,} accounts ({results['server']})")
    for col in ("operation", "clients", "requests/s", "p50 ms", "p99 ms", "failed", "goal"):
        t.add_column(col, justify="right")
    for c in levels:
        for op in ("accountRisk", "screen"):
            s = results[f"c{c}"][op]
            goal = ""
            if op == "screen" and c == 20:
                ok_p99 = s["p99_ms"] < GOALS["screen_p99_ms_at_20"]
                ok_rps = s["rps"] >= GOALS["screen_rps_at_20"]
                goal = (f"p99<30ms {'met' if ok_p99 else 'MISSED'}, "
                        f">=200/s {'met' if ok_rps else 'MISSED'}")  # fmt: skip
            t.add_row(op, str(c), f"{s['rps']:.0f}", f"{s['p50_ms']:.1f}", f"{s['p99_ms']:.1f}",
                      str(s["failed"]), goal)  # fmt: skip
    for rate, o in results.get("offered", {}).items():
        for op in ("accountRisk", "screen"):
            s = o[op]
            t.add_row(f"{op}, {rate} offered/s", str(o["clients"]), f"{s['rps']:.0f}",
                      f"{s['p50_ms']:.1f}", f"{s['p99_ms']:.1f}", str(s["failed"]), "")  # fmt: skip
    rec = results["record"]
    for name, label in (("fresh", "recordEvents"), ("duplicate", "recordEvents duplicate"),
                        ("accountRisk_same_client", "accountRisk, httpx")):  # fmt: skip
        s = rec[name]
        goal = ""
        if name == "fresh":
            ok = s["p50_ms"] < GOALS["record_p50_ms"]
            goal = f"p50<10ms {'met' if ok else 'MISSED'}"
        t.add_row(label, "1", "", f"{s['p50_ms']:.1f}", f"{s['p99_ms']:.1f}", "0", goal)
    Console(width=max(Console().width, 120)).print(t)
    m = results["memory"]
    mach = results["machine"]
    print(
        f"peak RSS: server {m['server_peak_rss_mib']} MiB ({m['server_processes']} processes), "
        f"Neo4j {m['neo4j_peak_rss_mib']} MiB; load average before {mach['loadavg_before']}, "
        f"after {mach['loadavg_after']}"
    )


if __name__ == "__main__":
    main()
