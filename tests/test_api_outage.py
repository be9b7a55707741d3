"""Outages (issue #19): with Neo4j frozen (SIGSTOP) or killed (kill -9), /healthz answers 503 and
queries fail fast with a named error; when Neo4j is back, both recover without a restart.

The test owns its Neo4j: an embedded instance of its own (its own data directory and port), never
the session's shared one, which other tests use. Times are printed, not asserted tightly: each
request must come back before a fixed deadline far from what is measured (about 2 s), so the
test cannot hang, and fails on the old driver settings (15-38 s, or no answer at all).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import pytest

from ringscope.api.auth import create_key
from ringscope.errors import Neo4jUnavailableError
from ringscope.graph import EmbeddedNeo4j, Graph, connect, init_schema
from ringscope.settings import Settings
from tests.api_support import Keys, LiveServer, api_settings, first_build, load_small_graph
from tests.api_support import make_keys as make_api_keys
from tests.conftest import own_neo4j

pytestmark = pytest.mark.neo4j

# Each request must answer within this (its client timeout): far above the ~2 s measured, far
# below the 15-38 s (or forever) of the old settings.
ANSWER_WITHIN = 12.0
# How long to wait for a state change (503 after the outage, 200 after recovery).
CHANGE_WITHIN = 30.0
# A query while Neo4j is up: not what is measured, and slow on a busy machine's cold Neo4j.
WARM_WITHIN = 60.0
QUERY = '{ entity(kind: ACCOUNT, id: "A001") { id riskScore } }'
BURST = 32  # concurrent queries during an outage: 8 times the server's worker threads
# Their client timeout: generous, since the test's own threads share the server's CPU (and GIL).
BURST_WITHIN = 60.0


@dataclass
class Outage:
    settings: Settings  # this test's own Neo4j
    neo4j: EmbeddedNeo4j
    server: LiveServer
    keys: Keys

    @property
    def pid(self) -> int:
        instance = self.neo4j.status()
        assert instance is not None, "the test's Neo4j is not running"
        return instance.pid

    @property
    def health_url(self) -> str:
        return self.server.url.replace("/graphql", "/healthz")

    def health(self) -> tuple[int, float]:
        t0 = time.monotonic()
        resp = httpx.get(self.health_url, timeout=ANSWER_WITHIN)
        return resp.status_code, time.monotonic() - t0

    def query(self, key: str, within: float = ANSWER_WITHIN) -> tuple[httpx.Response, float]:
        t0 = time.monotonic()
        resp = httpx.post(
            self.server.url,
            json={"query": QUERY},
            headers={"Authorization": f"Bearer {key}"},
            timeout=within,
        )
        return resp, time.monotonic() - t0

    def wait_for_health(self, status: int, since: float) -> float:
        """Poll /healthz until it answers ``status``; seconds from ``since`` to that answer."""
        while True:
            got, took = self.health()
            assert took < ANSWER_WITHIN
            if got == status:
                return time.monotonic() - since
            assert time.monotonic() - since < CHANGE_WITHIN, f"/healthz still {got}"
            time.sleep(0.1)

    def works(self) -> None:
        resp, _ = self.query(self.keys.investigator, WARM_WITHIN)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert "errors" not in body and body["data"]["entity"]["id"] == "A001", body
        assert isinstance(body["data"]["entity"]["riskScore"], float)

    def new_key(self) -> str:
        """A key the server has never verified, so that verifying it needs Neo4j."""
        with connect(self.settings) as g:
            return create_key(g, "risk_engine", "fresh").key


@pytest.fixture(scope="module")
def outage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outage]:
    root = tmp_path_factory.mktemp("outage")
    with own_neo4j(root / "data", "512m", "128m") as (own, neo4j):
        with connect(own) as g:
            init_schema(g)
            load_small_graph(g)
            first_build(g)
            keys = make_api_keys(g)
        # Keys stay cached for a minute, so a query reaches its resolvers during the outage.
        settings = api_settings(own, root, api_key_cache_seconds=60.0)
        with LiveServer(settings) as server:
            yield Outage(own, neo4j, server, keys)


def check_outage(o: Outage, started: float, fresh_key: str) -> dict[str, float]:
    """While Neo4j is away: /healthz goes 503, a query answers "Neo4j is unavailable" (a GraphQL
    error), and a key not cached yet is a 503 with the same message. Returns the figures."""
    to_503 = o.wait_for_health(503, started)
    resp, query_s = o.query(o.keys.investigator)  # cached key: the resolver meets the outage
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["data"] == {"entity": None}
    assert body["errors"][0]["message"].startswith("Neo4j is unavailable"), body
    resp, fresh_s = o.query(fresh_key)  # never verified: the key lookup meets the outage
    assert resp.status_code == 503 and resp.headers["retry-after"] == "1", resp.text
    assert resp.json()["errors"][0]["message"].startswith("Neo4j is unavailable")
    _, health_s = o.health()
    # A burst: more requests than the server has worker threads. None waits behind the ones
    # that wait out the driver's timeout: once one found Neo4j unavailable, the others fail
    # at once (api_neo4j_unavailable_hold_s).
    with ThreadPoolExecutor(BURST) as pool:
        answers = list(pool.map(lambda _: o.query(o.keys.investigator, BURST_WITHIN), range(BURST)))
    for resp, _ in answers:
        assert resp.status_code == 200, resp.text
        assert resp.json()["errors"][0]["message"].startswith("Neo4j is unavailable")
    burst_s = max(took for _, took in answers)
    return {
        "to_503": to_503, "query": query_s, "fresh_key": fresh_s, "healthz": health_s,
        "burst": burst_s,
    }  # fmt: skip


def test_frozen_neo4j_is_a_503_in_seconds_and_recovers(outage: Outage) -> None:
    o = outage
    o.wait_for_health(200, time.monotonic())  # a cold first read may miss the 2 s deadline
    o.works()  # the investigator's key is cached from here on
    pid = o.pid
    os.kill(pid, signal.SIGSTOP)
    stopped = time.monotonic()
    try:
        figures = check_outage(o, stopped, o.keys.risk_engine)
    finally:
        os.kill(pid, signal.SIGCONT)
    resumed = time.monotonic()
    recover = o.wait_for_health(200, resumed)
    o.works()
    print(
        f"\nSIGSTOP: /healthz 503 after {figures['to_503']:.2f} s; a query failed in "
        f"{figures['query']:.2f} s, an uncached key in {figures['fresh_key']:.2f} s, /healthz "
        f"in {figures['healthz']:.2f} s, the slowest of {BURST} concurrent queries in "
        f"{figures['burst']:.2f} s. SIGCONT: /healthz 200 after {recover:.2f} s."
    )


def read_frozen(outage: Outage, g: Graph, within: float = 60.0) -> tuple[object, float]:
    """SIGSTOP the test's Neo4j, run one read on ``g`` in a thread, SIGCONT once it ended or
    ``within`` seconds passed. Returns what the read returned or raised, and how long it took
    (``within`` when it was still waiting)."""
    result: list[object] = []

    def read() -> None:
        try:
            result.append(g.read("RETURN 1 AS x"))
        except BaseException as exc:
            result.append(exc)

    pid = outage.pid
    os.kill(pid, signal.SIGSTOP)
    t0 = time.monotonic()
    try:
        worker = threading.Thread(target=read, daemon=True)
        worker.start()
        worker.join(timeout=within)
        took = time.monotonic() - t0
    finally:
        os.kill(pid, signal.SIGCONT)
    worker.join(timeout=within)
    return (result[0] if result else None), took


def test_a_read_in_flight_on_a_frozen_server_fails_within_the_recv_timeout(
    outage: Outage,
) -> None:
    """Not the API's driver (which checks a connection before each use) but the default one of
    every command: a read sent on a pooled connection to a frozen server ends when the server's
    receive-timeout hint (neo4j_recv_timeout, 4 s) runs out, not after Neo4j's default 120 s."""
    s = outage.settings.model_copy(update={"neo4j_max_retry_time": 0.0})
    with connect(s) as g:
        g.read("RETURN 1 AS x")  # a pooled connection, used again below
        got, took = read_frozen(outage, g)
    print(f"\na read in flight on a frozen Neo4j failed after {took:.2f} s")
    assert took < 60, "the read was still waiting after 60 s"
    assert isinstance(got, Neo4jUnavailableError), got


def test_after_a_failure_calls_fail_at_once_for_the_hold(outage: Outage) -> None:
    """Once a call found Neo4j unavailable, the next ones fail without going to Neo4j (here
    for 600 s, so that Neo4j being back already proves it), and the hold ends."""
    s = outage.settings.model_copy(
        update={
            "neo4j_acquisition_timeout": 2.0,
            "neo4j_liveness_check_timeout": 0.0,
            "neo4j_max_retry_time": 0.0,
            "neo4j_unavailable_hold_s": 600.0,
        }
    )
    with connect(s) as g:
        g.read("RETURN 1 AS x")
        got, _ = read_frozen(outage, g)  # the liveness check times out after 2 s
        assert isinstance(got, Neo4jUnavailableError), got
        with pytest.raises(Neo4jUnavailableError):
            g.read("RETURN 1 AS x")  # Neo4j answers again, but the hold answers first
        g._unavailable_until = time.monotonic()  # the hold is over
        assert g.read("RETURN 1 AS x")[0]["x"] == 1


def test_killed_neo4j_is_a_503_in_seconds_and_recovers_after_a_restart(outage: Outage) -> None:
    o = outage
    o.works()
    fresh = o.new_key()
    os.kill(o.pid, signal.SIGKILL)
    killed = time.monotonic()
    figures = check_outage(o, killed, fresh)
    t0 = time.monotonic()
    o.neo4j.start()  # the same store and port; the API is not restarted
    started = time.monotonic()
    recover = o.wait_for_health(200, started)
    o.works()
    resp, _ = o.query(fresh)
    assert resp.status_code == 200 and "errors" not in resp.json()
    print(
        f"\nkill -9: /healthz 503 after {figures['to_503']:.2f} s; a query failed in "
        f"{figures['query']:.2f} s, an uncached key in {figures['fresh_key']:.2f} s, the "
        f"slowest of {BURST} concurrent queries in {figures['burst']:.2f} s. Neo4j restarted "
        f"in {started - t0:.1f} s; /healthz 200 {recover:.2f} s after that."
    )
