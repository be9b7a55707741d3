"""Shared helpers of the API tests: a tiny graph with builds, API keys, and a live server.

The server is the real ASGI app under uvicorn on a free loopback port, in a thread of the test
process, talking to the test session's real Neo4j; tests call it over HTTP (httpx, gql client).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from ringscope.api.app import RingScopeApp, connection_options, create_app
from ringscope.api.auth import create_key
from ringscope.graph import Graph, connect, cypher, init_schema
from ringscope.models.builds import write_build
from ringscope.settings import Settings
from tests.conftest import free_port

HUB_DEGREE = 10  # the test servers' api_hub_degree


@dataclass(frozen=True)
class TCluster:
    """A detected cluster (satisfies models.builds.DetectedCluster)."""

    members: tuple[str, ...]
    score: float
    reasons: tuple[str, ...] = ("shared device",)
    features: Mapping[str, float] = field(default_factory=lambda: {"size": 1.0})
    key_identifiers: tuple[tuple[str, str, int], ...] = ()
    density: float = 1.0


@dataclass(frozen=True)
class TDetection:
    clusters: tuple[TCluster, ...]
    account_scores: Mapping[str, float]
    stage_seconds: Mapping[str, float] = field(default_factory=dict)


def detection(clusters: Iterable[TCluster], base: Mapping[str, float]) -> TDetection:
    scores = dict(base)
    for c in clusters:
        for m in c.members:
            scores[m] = max(scores.get(m, 0.0), c.score)
    return TDetection(tuple(clusters), scores)


ACCOUNTS = [f"A{i:03d}" for i in range(30)] + [f"H{i:03d}" for i in range(15)]
RING_1 = ("A000", "A001", "A002", "A003")  # device D1, phone +441000000001, id doc ID-1
RING_2 = ("A010", "A011", "A012")  # email, bank card
PHONE = "+441000000001"
EMAIL = "ring2@example.com"


def load_small_graph(graph: Graph) -> None:
    """30 accounts, two rings sharing identifiers, a hub device used by 16 accounts."""
    graph.write(
        "UNWIND $ids AS id CREATE (:Account {id: id, kyc_level: 1, "
        "created_at: datetime('2024-01-01T00:00:00Z')})",
        {"ids": ACCOUNTS},
    )
    graph.write("MATCH (a:Account {id: 'A020'}) SET a.label = 'fraud'")
    graph.write("MATCH (a:Account {id: 'A021'}) SET a.label = 'legit'")
    links = [
        *(("Device", "USES_DEVICE", a, "D1") for a in RING_1),
        *(("Phone", "HAS_PHONE", a, PHONE) for a in RING_1[:2]),
        *(("IdDocument", "HAS_ID_DOCUMENT", a, "ID-1") for a in RING_1[2:]),
        *(("Email", "HAS_EMAIL", a, EMAIL) for a in RING_2),
        *(("BankCard", "HAS_BANK_CARD", a, "4000000000000002") for a in RING_2),
        ("Device", "USES_DEVICE", "A020", "D2"),
        ("Device", "USES_DEVICE", "A003", "D2"),  # ties ring 1 to the fraud-labelled A020
        ("Payee", "PAID", "A000", "P1"),
        # The hub: A000 and 15 others on one device.
        *(("Device", "USES_DEVICE", a, "DHUB") for a in ("A000", *ACCOUNTS[30:])),
    ]
    for label, rel in {(lb, r) for lb, r, _, _ in links}:
        rows = [{"a": a, "x": x} for lb, r, a, x in links if (lb, r) == (label, rel)]
        graph.write(
            f"UNWIND $rows AS row MATCH (a:Account {{id: row.a}}) MERGE (x:{label} {{id: row.x}}) "
            f"CREATE (a)-[:{rel} {{count: 3, first_seen: datetime('2024-02-01T00:00:00Z'), "
            "last_seen: datetime('2024-03-01T00:00:00Z')}]->(x)",
            {"rows": rows},
        )


def first_build(graph: Graph) -> str:
    clusters = [
        TCluster(
            RING_1,
            0.92,
            ("4 accounts share device D1",),
            key_identifiers=(("device", "D1", 4), ("phone", PHONE, 2)),
        ),
        TCluster(
            RING_2, 0.81, ("3 accounts share an email",), key_identifiers=(("email", EMAIL, 3),)
        ),
        *(TCluster((f"A0{20 + i}",), 0.55 + 0.02 * i) for i in range(5)),  # singletons
    ]
    base = {a: 0.05 for a in ACCOUNTS}
    base["A020"] = 0.7
    return write_build(graph, detection(clusters, base), model_version="test-1").id


@dataclass
class Keys:
    investigator: str
    risk_engine: str
    admin: str
    investigator_id: str


def make_keys(graph: Graph) -> Keys:
    inv = create_key(graph, "investigator", "alice")
    risk = create_key(graph, "risk_engine", "engine")
    admin = create_key(graph, "admin", "root")
    return Keys(inv.key, risk.key, admin.key, inv.key_id)


def small_world(settings: Settings) -> Iterator[tuple[Graph, Keys]]:
    """The body of a module's ``world`` fixture: an emptied graph with the small graph, its first
    build and the three roles' keys (``yield from small_world(neo4j_settings)``)."""
    with connect(settings) as g:
        g.write(cypher.DELETE_ALL)
        init_schema(g)
        load_small_graph(g)
        first_build(g)
        yield g, make_keys(g)


def api_settings(base: Settings, tmp: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "api_key_cache_seconds": 0.0,
        "api_hub_degree": HUB_DEGREE,
        "api_audit_dir": tmp / "audit",
        "api_threads": 4,
        # explain's per-key budget is tested on its own (test_api_limits); elsewhere a key
        # explains as often as a test needs.
        "api_explain_burst": 1_000,
    }
    values.update(overrides)
    return base.model_copy(update=values)


class LiveServer:
    """uvicorn serving the app on a free port in a daemon thread."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app: RingScopeApp = create_app(settings)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/graphql"
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            lifespan="on",
            log_level="warning",
            access_log=False,
            **connection_options(settings),  # the connections as `ringscope serve` has them
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the API server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)

    def post(
        self, query: str, key: str | None, variables: dict[str, Any] | None = None
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.post(
            self.url,
            json={"query": query, "variables": variables or {}},
            headers=headers,
            timeout=30,
        )

    def gql(self, query: str, key: str, variables: dict[str, Any] | None = None) -> Any:
        """POST and return the JSON body, asserting HTTP 200."""
        resp = self.post(query, key, variables)
        assert resp.status_code == 200, resp.text
        return resp.json()

    def audit_records(self) -> list[dict[str, Any]]:
        directory = self.settings.api_audit_dir
        assert directory is not None
        out: list[dict[str, Any]] = []
        for path in sorted(directory.glob("api-audit-*.jsonl")):
            out.extend(json.loads(line) for line in path.read_text().splitlines())
        return out

    def audit_for(self, request_id: str) -> list[dict[str, Any]]:
        return [r for r in self.audit_records() if r["request_id"] == request_id]


def ids(items: Sequence[dict[str, Any]], key: str = "id") -> list[Any]:
    return [i[key] for i in items]
