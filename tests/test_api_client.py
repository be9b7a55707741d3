"""The typed client against a live server: pagination across a build switch, batched account
risk, labels, retries of reads only, and the CLI commands (`python -m ringscope.api ...`)."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ringscope.api.client import (
    AuthenticationError,
    ClientError,
    QueryError,
    RingScopeClient,
    ScreenEventData,
)
from ringscope.graph import Graph
from ringscope.models.builds import write_build
from ringscope.settings import Settings
from tests.api_support import (
    ACCOUNTS,
    RING_1,
    Keys,
    LiveServer,
    TCluster,
    api_settings,
    detection,
    small_world,
)
from tests.conftest import free_port

pytestmark = pytest.mark.neo4j


@pytest.fixture(scope="module")
def world(neo4j_settings: Settings) -> Iterator[tuple[Graph, Keys]]:
    yield from small_world(neo4j_settings)


@pytest.fixture(scope="module")
def server(
    neo4j_settings: Settings, world: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    with LiveServer(api_settings(neo4j_settings, tmp_path_factory.mktemp("api"))) as srv:
        yield srv


def test_iter_clusters_and_account_risk(server: LiveServer, world: Any) -> None:
    keys: Keys = world[1]
    with RingScopeClient(server.url, keys.risk_engine, timeout=10) as client:
        got = list(client.iter_clusters(min_score=0.5, page_size=2))
        assert [c.score for c in got] == sorted((c.score for c in got), reverse=True)
        assert len(got) == 7 and len({c.build_id for c in got}) == 1
        assert sorted(m.id for m in got[0].members) == list(RING_1)
        risks = client.account_risk([*ACCOUNTS, "nobody"], batch=7)
        assert risks["A000"] == 0.92 and risks["nobody"] is None and len(risks) == 46
        build = client.current_build()
        assert build is not None and build.id == got[0].build_id
        with pytest.raises(ClientError):  # risk_engine may not write labels
            client.label_account("A001", "fraud", "x")


def test_pagination_across_a_build_switch(server: LiveServer, world: Any) -> None:
    graph: Graph = world[0]
    keys: Keys = world[1]
    with RingScopeClient(server.url, keys.risk_engine, timeout=10) as client:
        old = client.current_build()
        assert old is not None
        first = client.clusters_page(0.5, first=3)
        assert first.build_id == old.id and first.has_next
        # A new build switches in between two pages ...
        new = write_build(
            graph,
            detection([TCluster(RING_1, 0.99), TCluster(("A020", "A021"), 0.98)], {}),
            keep=3,
        )
        second = client.clusters_page(0.5, first=50, after=first.end_cursor)
        # ... and the cursor keeps reading the build it came from: no mixing, no duplicates.
        assert second.build_id == old.id
        all_old = [c.id for c in (*first.items, *second.items)]
        assert len(all_old) == len(set(all_old)) == 7
        assert all(i.startswith(old.id + "/") for i in all_old)
        # The old page's members read the old build throughout: their score and their
        # clusters alike (the clusters used to come from the current build, a newer one).
        body = server.gql(
            "query($after: String) { clusters(minScore: 0.5, first: 1, after: $after) { "
            "buildId edges { node { id members { id riskScore clusters { id } } } } } }",
            keys.investigator,
            {"after": first.end_cursor},
        )
        assert "errors" not in body, body
        page = body["data"]["clusters"]
        assert page["buildId"] == old.id
        for member in page["edges"][0]["node"]["members"]:
            assert member["clusters"], member
            assert all(c["id"].startswith(old.id + "/") for c in member["clusters"]), member
        fresh = client.clusters_page(0.5, first=50)
        assert fresh.build_id == new.id and [c.score for c in fresh.items] == [0.99, 0.98]
        # Once the old build is pruned, its cursor fails with a clear, named error.
        write_build(graph, detection([TCluster(RING_1, 0.97)], {}), keep=1)
        with pytest.raises(QueryError, match="not available"):
            client.clusters_page(0.5, first=3, after=first.end_cursor)


def test_labels_through_the_client(server: LiveServer, world: Any) -> None:
    keys: Keys = world[1]
    with RingScopeClient(server.url, keys.investigator, timeout=10) as client:
        v = client.label_account("A005", "fraud", "confirmed by phone")
        assert (v.target_kind, v.target_id, v.verdict, v.author) == (
            "account", "A005", "FRAUD", "alice",
        )  # fmt: skip
        ring = next(client.iter_clusters(0.9))
        v = client.label_cluster(ring.ring_id, "legit", "family sharing a phone")
        assert (v.target_kind, v.target_id) == ("ring", ring.ring_id)


def test_bad_key_raises_authentication_error(server: LiveServer) -> None:
    with RingScopeClient(server.url, "rsk_000000000000_" + "x" * 43, retries=3) as client:
        with pytest.raises(AuthenticationError):
            client.current_build()
        assert client.attempts == 1  # a 401 is not retried


def test_reads_are_retried_and_writes_are_not() -> None:
    url = f"http://127.0.0.1:{free_port()}/graphql"  # nothing listens there
    with RingScopeClient(url, "rsk_000000000000_" + "x" * 43, retries=2, backoff=0.01) as c:
        with pytest.raises(ClientError, match="Cannot reach"):
            c.current_build()
        assert c.attempts == 3
        c.attempts = 0
        with pytest.raises(ClientError):
            c.label_account("A001", "fraud", "x")
        assert c.attempts == 1


def test_screen_is_retried_record_is_not_and_a_sub_second_timeout_holds() -> None:
    """screen is a read (retried), recordEvents a write (sent once); a timeout under a second
    is kept as given (it was rounded up to one second): a server that accepts the connection
    and never answers fails each attempt with a timeout, not a hang."""
    event = ScreenEventData("t-1", "A1", datetime.now(UTC), "LOGIN", devices=("d",))
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # accepts (the kernel's backlog), never reads nor answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/graphql"
        with RingScopeClient(url, "rsk_000000000000_" + "x" * 43, timeout=0.2, retries=1,
                             backoff=0.01) as c:  # fmt: skip
            with pytest.raises(ClientError, match=r"timed out\. \(read timeout=0\.2\)"):
                c.screen(event)
            assert c.attempts == 2
            c.attempts = 0
            with pytest.raises(ClientError, match="timed out"):
                c.record_events([event])
            assert c.attempts == 1


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ringscope.api", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=Path(__file__).resolve().parents[1],
    )


def test_cli_apikey_and_query(server: LiveServer, world: Any, neo4j_env: dict[str, str]) -> None:
    made = _cli("apikey", "create", "--role", "risk_engine", "--name", "cli", env=neo4j_env)
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert key.startswith("rsk_") and key not in made.stderr
    env = {**neo4j_env, "RINGSCOPE_API_URL": server.url, "RINGSCOPE_API_KEY": key}
    out = _cli("query", "clusters", "--min-score", "0.9", env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("\n") >= 1 and '"ring_id"' in out.stdout
    key_id = key.split("_")[1]
    assert _cli("apikey", "revoke", key_id, env=neo4j_env).returncode == 0
    denied = _cli("query", "clusters", env=env)
    assert denied.returncode == 2 and "401" in denied.stderr
    assert _cli("apikey", "create", "--role", "boss", env=neo4j_env).returncode == 2
