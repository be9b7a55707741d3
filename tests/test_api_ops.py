"""Operating the API: /metrics (token, build metrics), /healthz (build age), the persistent PII
masking secret and the fsynced audit log. Real uvicorn servers on loopback, the real Neo4j.

Each test's server gets its own data dir (for the mask secret) and reaches the session's Neo4j
as an external server, so nothing here touches the session's state files.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import neo4j
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

import ringscope.api.audit
from ringscope.api.app import create_app
from ringscope.api.audit import AuditLog, AuditWriteError
from ringscope.api.context import MaskSecretError, mask_secret_path
from ringscope.errors import RingScopeError
from ringscope.graph import Graph
from ringscope.graph.connection import resolve_target
from ringscope.models.builds import write_build
from ringscope.settings import Settings
from tests.api_support import (
    PHONE,
    LiveServer,
    TCluster,
    TDetection,
    api_settings,
    first_build,
    load_small_graph,
    make_keys,
)
from tests.conftest import free_port

pytestmark = pytest.mark.neo4j

TOKEN = "metrics-token-0123456789"
STAGES = {"projection": 1.5, "linking": 0.25}
# One cluster per band edge: [0, 0.2) gets 0.0 and 0.19, [0.2, 0.4) gets 0.2, [0.6, 0.8) gets
# 0.79, and [0.8, 1.0] gets 0.8 and 1.0; [0.4, 0.6) stays empty.
SCORES = (0.0, 0.19, 0.2, 0.79, 0.8, 1.0)
BANDS = {"0.0-0.2": 2, "0.2-0.4": 1, "0.4-0.6": 0, "0.6-0.8": 1, "0.8-1.0": 2}


@pytest.fixture
def make_settings(neo4j_settings: Settings, tmp_path: Path) -> Callable[..., Settings]:
    """Settings with a private data dir that reach the test Neo4j as an external server."""
    target = resolve_target(neo4j_settings, start=False)

    def make(data_dir: Path | None = None, **overrides: Any) -> Settings:
        base = neo4j_settings.model_copy(
            update={
                "data_dir": data_dir or tmp_path / "data",
                "neo4j_uri": target.uri,
                "neo4j_user": target.user,
                "neo4j_password": SecretStr(target.password) if target.password else None,
                "neo4j_database": target.database,
            }
        )
        return api_settings(base, tmp_path, **overrides)

    return make


@pytest.fixture
def world(graph: Graph) -> Iterator[Graph]:
    load_small_graph(graph)
    yield graph


def band_build(graph: Graph) -> str:
    clusters = tuple(
        TCluster((f"A{10 + i:03d}", f"A{20 + i:03d}"), s) for i, s in enumerate(SCORES)
    )
    scores = {m: c.score for c in clusters for m in c.members}
    info = write_build(graph, TDetection(clusters, scores, STAGES), model_version="ops-1")
    return info.id


def age_build(graph: Graph, build_id: str, seconds: float) -> None:
    """Pretend the build finished ``seconds`` ago."""
    graph.write(
        "MATCH (b:Build {id: $id}) SET b.finished_at = datetime() - duration({seconds: $s})",
        {"id": build_id, "s": int(seconds)},
    )


def base_url(srv: LiveServer) -> str:
    return srv.url.removesuffix("/graphql")


def scrape(srv: LiveServer, token: str | None = None) -> dict[str, list[Any]]:
    """The samples of /metrics by metric family name."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    resp = httpx.get(base_url(srv) + "/metrics", headers=headers, timeout=30)
    assert resp.status_code == 200, resp.text
    return {f.name: f.samples for f in text_string_to_metric_families(resp.text)}


def by_label(samples: list[Any], label: str) -> dict[str, float]:
    return {s.labels[label]: s.value for s in samples}


# --- /metrics ---------------------------------------------------------------------------------


def test_metrics_token_required_when_set(world: Graph, make_settings: Any) -> None:
    with LiveServer(make_settings(api_metrics_token=SecretStr(TOKEN))) as srv:
        url = base_url(srv) + "/metrics"
        assert httpx.get(url).status_code == 401
        for bad in ("Bearer wrong", f"Basic {TOKEN}", f"Bearer {TOKEN}x", "Bearer"):
            resp = httpx.get(url, headers={"Authorization": bad})
            assert resp.status_code == 401, bad
            assert TOKEN not in resp.text
        assert resp.headers["www-authenticate"].startswith("Bearer")
        ok = httpx.get(url, headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200
        assert "ringscope_api_requests_total" in ok.text
        assert 'ringscope_api_requests_total{path="/metrics",status="401"} 5.0' in ok.text
        # /healthz stays open.
        assert httpx.get(base_url(srv) + "/healthz").status_code == 200


def test_empty_metrics_token_is_refused(make_settings: Any) -> None:
    with pytest.raises(RingScopeError, match="METRICS_TOKEN"):
        create_app(make_settings(api_metrics_token=SecretStr(" ")))


def test_metrics_without_token_setting_are_open(world: Graph, make_settings: Any) -> None:
    with LiveServer(make_settings()) as srv:
        metrics = scrape(srv)
    assert metrics["ringscope_neo4j_up"][0].value == 1
    assert "ringscope_build_age_seconds" not in metrics  # no build yet: absent, not 0
    assert "ringscope_build_clusters" not in metrics


def test_build_metrics(world: Graph, make_settings: Any) -> None:
    build_id = band_build(world)
    with LiveServer(make_settings(api_metrics_token=SecretStr(TOKEN))) as srv:
        httpx.get(base_url(srv) + "/healthz")
        m = scrape(srv, TOKEN)
        assert m["ringscope_neo4j_up"][0].value == 1
        info = m["ringscope_build_info"][0]
        assert info.labels == {"build_id": build_id, "model": "ops-1"} and info.value == 1
        assert by_label(m["ringscope_build_clusters"], "band") == BANDS
        assert 0 <= m["ringscope_build_age_seconds"][0].value < 3600
        steps = by_label(m["ringscope_build_step_seconds"], "step")
        assert steps["detect_projection"] == 1.5 and steps["detect_linking"] == 0.25
        assert {"begin", "ring_ids", "write_clusters", "write_scores", "verify"} <= set(steps)
        assert m["ringscope_build_write_seconds"][0].value > 0
        # Request latency: a histogram with buckets per path.
        buckets = [
            s
            for s in m["ringscope_api_request_seconds"]
            if s.name.endswith("_bucket") and s.labels["path"] == "/healthz"
        ]
        assert len(buckets) > 5 and buckets[-1].labels["le"] == "+Inf"
        assert buckets[-1].value == 1

        # The age is computed at scrape time from the build's finishedAt.
        age_build(world, build_id, 5 * 3600)
        m = scrape(srv, TOKEN)
        age = m["ringscope_build_age_seconds"][0].value
        assert 5 * 3600 <= age < 5 * 3600 + 600
        finished = m["ringscope_build_finished_timestamp_seconds"][0].value
        assert abs(time.time() - finished - age) < 60

        # A new build: the band counts follow it (the cache is per build id).
        first = first_build(world)  # scores 0.92, 0.81, 0.55, 0.57, 0.59, 0.61, 0.63
        m = scrape(srv, TOKEN)
        assert m["ringscope_build_info"][0].labels["build_id"] == first
        assert by_label(m["ringscope_build_clusters"], "band") == {
            "0.0-0.2": 0,
            "0.2-0.4": 0,
            "0.4-0.6": 3,
            "0.6-0.8": 2,
            "0.8-1.0": 2,
        }
        assert "ringscope_build_step_seconds" in m


# --- /healthz ---------------------------------------------------------------------------------


def health(srv: LiveServer) -> httpx.Response:
    return httpx.get(base_url(srv) + "/healthz", timeout=30)


def test_healthz_fresh_then_stale(world: Graph, make_settings: Any) -> None:
    build_id = band_build(world)
    with LiveServer(make_settings(api_max_build_age_s=3600.0)) as srv:
        resp = health(srv)
        assert resp.status_code == 200
        body = resp.json()
        assert set(body) == {"status", "neo4j", "build", "build_age_s"}
        assert (body["status"], body["neo4j"], body["build"]) == ("ok", True, build_id)
        assert 0 <= body["build_age_s"] < 3600

        age_build(world, build_id, 2 * 3600)
        resp = health(srv)
        assert resp.status_code == 503
        body = resp.json()
        assert set(body) == {"status", "reason", "neo4j", "build", "build_age_s"}
        assert (body["status"], body["reason"], body["build"]) == (
            "unhealthy",
            "build_stale",
            build_id,
        )
        assert body["build_age_s"] >= 2 * 3600

        # A new build makes it healthy again.
        fresh = band_build(world)
        resp = health(srv)
        assert resp.status_code == 200 and resp.json()["build"] == fresh


@pytest.mark.parametrize("max_age", [None, 0.0])
def test_healthz_age_check_can_be_off(
    world: Graph, make_settings: Any, max_age: float | None
) -> None:
    build_id = band_build(world)
    age_build(world, build_id, 30 * 86400)
    with LiveServer(make_settings(api_max_build_age_s=max_age)) as srv:
        resp = health(srv)
    assert resp.status_code == 200 and resp.json()["status"] == "ok"


def test_healthz_default_max_age_is_two_days(world: Graph, make_settings: Any) -> None:
    assert Settings().api_max_build_age_s == 172_800
    build_id = band_build(world)
    age_build(world, build_id, 3 * 86400)
    with LiveServer(make_settings()) as srv:
        assert health(srv).status_code == 503


def test_healthz_before_the_first_build(world: Graph, make_settings: Any) -> None:
    with LiveServer(make_settings()) as srv:
        resp = health(srv)
    assert resp.status_code == 200
    assert resp.json() == {"status": "no_build", "neo4j": True, "build": None, "build_age_s": None}


def test_healthz_and_metrics_when_neo4j_is_unreachable(make_settings: Any) -> None:
    """In process (ASGI, no lifespan): a driver to a closed port stands for a dead Neo4j."""
    settings = make_settings()
    driver = neo4j.GraphDatabase.driver(
        f"bolt://127.0.0.1:{free_port()}",
        auth=("neo4j", "x"),
        connection_timeout=2,
        max_transaction_retry_time=0,
    )
    app = create_app(settings, Graph(driver, "neo4j", 2))

    async def call() -> tuple[httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            return await client.get("/healthz"), await client.get("/metrics")

    try:
        healthz, metrics = asyncio.run(call())
    finally:
        driver.close()
    assert healthz.status_code == 503
    assert healthz.json() == {
        "status": "unhealthy",
        "reason": "neo4j_unreachable",
        "neo4j": False,
        "build": None,
        "build_age_s": None,
    }
    assert metrics.status_code == 200  # a scrape never fails because of Neo4j
    assert "ringscope_neo4j_up 0.0" in metrics.text
    assert "ringscope_build_age_seconds" not in metrics.text


# --- the PII masking secret -------------------------------------------------------------------

NEIGHBOURS = '{ riskNeighbourhood(kind: ACCOUNT, id: "A000", hops: 1) { nodes { key kind id } } }'


def masked_phone_key(settings: Settings, key: str) -> str:
    with LiveServer(settings) as srv:
        nodes = srv.gql(NEIGHBOURS, key)["data"]["riskNeighbourhood"]["nodes"]
    phone = next(n for n in nodes if n["kind"] == "PHONE")
    assert PHONE not in phone["key"] + phone["id"]
    return str(phone["key"])


def test_mask_secret_is_stable_across_instances(
    world: Graph, make_settings: Any, tmp_path: Path
) -> None:
    first_build(world)
    key = make_keys(world).risk_engine
    shared = tmp_path / "shared"
    one = masked_phone_key(make_settings(shared), key)
    secret_file = mask_secret_path(make_settings(shared))
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    secret = secret_file.read_text().strip()
    assert len(secret) == 64
    # A second instance (a restart, or a replica) on the same data dir: the same tokens.
    assert masked_phone_key(make_settings(shared), key) == one
    assert secret_file.read_text().strip() == secret
    # Another secret gives other tokens; the file's content as the setting gives the same.
    other = make_settings(tmp_path / "other", api_mask_secret=SecretStr("another-secret-0123456"))
    assert masked_phone_key(other, key) != one
    assert not mask_secret_path(other).exists()  # an explicit secret writes no file
    same = make_settings(tmp_path / "third", api_mask_secret=SecretStr(secret))
    assert masked_phone_key(same, key) == one


def test_mask_secret_too_short_or_damaged(make_settings: Any, tmp_path: Path) -> None:
    with pytest.raises(MaskSecretError):
        create_app(make_settings(api_mask_secret=SecretStr("short")))
    settings = make_settings(tmp_path / "damaged")
    mask_secret_path(settings).parent.mkdir(parents=True)
    mask_secret_path(settings).write_text("")
    with pytest.raises(MaskSecretError):
        create_app(settings)
    assert mask_secret_path(settings).read_text() == ""  # never silently replaced


# --- the audit log ----------------------------------------------------------------------------


def test_audit_records_are_fsynced_once_per_request(
    world: Graph, make_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    first_build(world)
    key = make_keys(world).investigator
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    query = (
        '{ a: entity(kind: ACCOUNT, id: "A001") { id } b: entity(kind: ACCOUNT, id: "A002") '
        '{ id } accountRisk(ids: ["A003", "A004"]) { id } }'
    )
    with LiveServer(make_settings()) as srv:
        # os.fsync is patched for the whole process: only once the server (and its mask secret
        # file) is up, so that only the audit log's syncs are seen.
        monkeypatch.setattr(ringscope.api.audit.os, "fsync", fsync)
        resp = srv.post(query, key)
        assert resp.status_code == 200
        records = srv.audit_for(resp.headers["x-request-id"])  # read back from disk
        assert len(records) == 4
        assert synced == ["file", "dir"]  # the day's new file: its name is synced too
        synced.clear()
        resp = srv.post(query, key)
        assert resp.status_code == 200 and len(srv.audit_for(resp.headers["x-request-id"])) == 4
        assert synced == ["file"]  # one fsync per request, not per record
        directory = srv.settings.api_audit_dir
        assert directory is not None
        for path in directory.glob("api-audit-*.jsonl"):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_failed_audit_fsync_refuses_the_request(
    world: Graph, make_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    first_build(world)
    key = make_keys(world).investigator

    def fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    with LiveServer(make_settings()) as srv:
        monkeypatch.setattr(ringscope.api.audit.os, "fsync", fsync)
        resp = srv.post('{ entity(kind: ACCOUNT, id: "A001") { id } }', key)
        assert resp.status_code == 500
        assert "data" not in resp.json()
        assert "audit log" in resp.json()["errors"][0]["message"]
        m = scrape(srv)
        assert m["ringscope_api_audit_failures"][0].value == 1


def test_audit_records_queued_during_a_sync_share_the_next_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Group commit: while the writer thread syncs one request's records, the records of nine
    more requests queue up, and one more write and sync covers all of them. A failed sync fails
    every request it covered, and the writer goes on."""

    log = AuditLog(tmp_path / "audit")
    real_fsync = os.fsync
    synced: list[int] = []
    entered, release = threading.Event(), threading.Event()
    fail = threading.Event()

    def fsync(fd: int) -> None:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return real_fsync(fd)
        synced.append(fd)
        if len(synced) == 1:
            entered.set()
            assert release.wait(30)
        if fail.is_set():
            raise OSError(5, "Input/output error")
        return real_fsync(fd)

    monkeypatch.setattr(ringscope.api.audit.os, "fsync", fsync)
    first = log.submit([{"request_id": "r0", "id": "A0"}])
    assert entered.wait(30)  # the writer is inside the first sync
    rest = [
        log.submit([{"request_id": f"r{i}", "id": f"A{i}"}, {"request_id": f"r{i}", "id": "B"}])
        for i in range(1, 10)
    ]
    assert not any(f.done() for f in [first, *rest])  # nothing answered before its sync
    release.set()
    for f in [first, *rest]:
        f.result(timeout=30)
    assert len(synced) == 2
    lines = [json.loads(x) for x in log.path_for().read_text().splitlines()]
    assert len(lines) == 19 and {r["request_id"] for r in lines} == {f"r{i}" for i in range(10)}

    fail.set()
    with pytest.raises(AuditWriteError):
        log.submit([{"request_id": "r10", "id": "A10"}]).result(timeout=30)
    fail.clear()
    log.submit([{"request_id": "r11", "id": "A11"}]).result(timeout=30)  # the writer lives on
    assert log.path_for().read_text().splitlines()[-1].startswith('{"request_id":"r11"')


# --- several server processes -----------------------------------------------------------------


def test_worker_processes_share_metrics_and_the_audit_log(
    world: Graph, neo4j_env: dict[str, str], tmp_path: Path
) -> None:
    """`serve --workers 2`: both processes write Prometheus multiprocess files, /metrics (from
    whichever process answers) counts every process's requests, and every request's audit record
    lands in the one shared append-only file."""
    band_build(world)
    keys = make_keys(world)
    port, prom, audit = free_port(), tmp_path / "prom", tmp_path / "audit"
    prom.mkdir()
    env = {
        **neo4j_env,
        "RINGSCOPE_API_AUDIT_DIR": str(audit),
        "RINGSCOPE_API_KEY_CACHE_SECONDS": "0",
        "PROMETHEUS_MULTIPROC_DIR": str(prom),
    }
    cmd = [
        sys.executable,
        "-m",
        "ringscope.api",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    proc = subprocess.Popen([*cmd, "--workers", "2"], env=env, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the server did not come up"
            time.sleep(0.2)

        def ask(i: int) -> dict[str, Any]:
            with httpx.Client(timeout=30) as http:  # a connection of its own per request
                q = f'{{ entity(kind: ACCOUNT, id: "A{i:03d}") {{ id }} }}'
                resp = http.post(
                    base + "/graphql",
                    json={"query": q},
                    headers={"Authorization": f"Bearer {keys.admin}"},
                )
                assert resp.status_code == 200, resp.text
                body: dict[str, Any] = resp.json()
                return body

        with ThreadPoolExecutor(6) as pool:
            bodies = list(pool.map(ask, range(24)))
        assert all("errors" not in b for b in bodies), bodies
        assert sorted(b["data"]["entity"]["id"] for b in bodies) == [f"A{i:03d}" for i in range(24)]

        def workers() -> set[int]:
            return {int(f.stem.rsplit("_", 1)[1]) for f in prom.glob("counter_*.db")} - {proc.pid}

        # The kernel, not the server, picks which worker accepts a connection, and it can hand
        # one batch to a single worker (seen once in a full run): ask again, a bounded number
        # of times, until both have answered.
        for _ in range(20):
            if len(workers()) >= 2:
                break
            with ThreadPoolExecutor(6) as pool:
                more = list(pool.map(ask, range(24)))
            assert all("errors" not in b for b in more), more
            bodies += more
        assert len(workers()) == 2, sorted(p.name for p in prom.iterdir())  # 2 workers
        text = httpx.get(base + "/metrics", timeout=30).text
        families = {f.name: f.samples for f in text_string_to_metric_families(text)}
        served = [
            s.value
            for s in families["ringscope_api_requests"]
            if s.name == "ringscope_api_requests_total"
            and s.labels == {"path": "/graphql", "status": "200"}
        ]
        assert served == [float(len(bodies))]  # every request, whichever process served it
        assert "ringscope_build_info" in families  # the build metrics are exported too

        lines = [
            json.loads(line) for f in audit.glob("*.jsonl") for line in f.read_text().splitlines()
        ]
        assert sorted(r["id"] for r in lines) == sorted(b["data"]["entity"]["id"] for b in bodies)
        assert len({r["request_id"] for r in lines}) == len(bodies)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
