"""The embedded Neo4j and the connection rules, against real processes and a real Bolt server."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import neo4j
import pytest

from ringscope.graph import Graph
from ringscope.settings import Settings
from tests.conftest import free_port
from tests.helpers import ringscope


def own_env(neo4j_env: dict[str, str], data_dir: Path, port: int) -> dict[str, str]:
    """Environment for a second, private embedded instance (not the session one)."""
    env = {k: v for k, v in neo4j_env.items() if not k.startswith("NEO4J_")}
    env.update(
        RINGSCOPE_DATA_DIR=str(data_dir),
        RINGSCOPE_NEO4J_PORT=str(port),
        RINGSCOPE_NEO4J_HEAP="512m",
        RINGSCOPE_NEO4J_PAGECACHE="128m",
    )
    return env


def external_env(
    neo4j_env: dict[str, str], neo4j_settings: Settings, password: str
) -> dict[str, str]:
    """Environment that points NEO4J_URI at the session's running instance."""
    status = ringscope("neo4j", "status", "--json", env=neo4j_env)
    uri = json.loads(status.stdout)["uri"] if status.returncode == 0 else os.environ["NEO4J_URI"]
    env = dict(neo4j_env)
    env.update(NEO4J_URI=uri, NEO4J_USER=neo4j_settings.neo4j_user, NEO4J_PASSWORD=password)
    return env


def session_password(neo4j_env: dict[str, str]) -> str:
    if os.environ.get("NEO4J_URI"):
        return os.environ.get("NEO4J_PASSWORD", "")
    status = ringscope("neo4j", "status", "--json", env=neo4j_env)
    return str(json.loads(status.stdout)["password"])


def test_write_and_read_through_bolt(graph: Graph) -> None:
    graph.write("CREATE (:Account {id: $id, kyc_level: $kyc})", {"id": "A-1", "kyc": 2})
    rows = graph.read("MATCH (a:Account {id: $id}) RETURN a.kyc_level AS kyc", {"id": "A-1"})
    assert [r["kyc"] for r in rows] == [2]


def test_uniqueness_constraint_is_enforced(graph: Graph) -> None:
    graph.write("CREATE (:Device {id: 'D-1'})")
    with pytest.raises(neo4j.exceptions.ConstraintError):
        graph.write("CREATE (:Device {id: 'D-1'})")


@pytest.mark.slow
def test_start_status_stop_start_keeps_data(tmp_path: Path, neo4j_env: dict[str, str]) -> None:
    env = own_env(neo4j_env, tmp_path, free_port())
    first = ringscope("neo4j", "start", env=env)
    assert first.returncode == 0, first.stderr
    uri = first.stdout.strip()
    assert uri == f"bolt://127.0.0.1:{env['RINGSCOPE_NEO4J_PORT']}"
    try:
        status = json.loads(ringscope("neo4j", "status", "--json", env=env).stdout)
        assert {"uri", "user", "password", "pid", "data_dir", "log_file"} <= status.keys()
        assert status["uri"] == uri and status["running"] is True
        assert Path(status["log_file"]).is_file()
        pw_file = Path(status["data_dir"]) / "password"
        assert pw_file.stat().st_mode & 0o777 == 0o600
        # The tests' settings (TEST_NEO4J_ENV) reach the launcher: no transaction log is
        # allocated ahead, where Neo4j's default writes 256 MiB per database at once.
        logs = list(Path(status["data_dir"]).rglob("neostore.transaction.db.*"))
        sizes = {f"{p.parent.name}/{p.name}": p.stat().st_size for p in logs}
        assert len(logs) >= 2 and max(sizes.values()) < 64 * 2**20, sizes

        again = ringscope("neo4j", "start", env=env)
        assert again.returncode == 0 and "already running" in again.stderr
        assert (
            json.loads(ringscope("neo4j", "status", "--json", env=env).stdout)["pid"]
            == (status["pid"])
        )

        auth = (status["user"], status["password"])
        with neo4j.GraphDatabase.driver(uri, auth=auth) as driver:
            driver.execute_query("CREATE (:Account {id: 'survivor'})", database_="neo4j")

        stop = ringscope("neo4j", "stop", env=env)
        assert stop.returncode == 0, stop.stderr
        stopped = ringscope("neo4j", "status", "--json", env=env)
        assert stopped.returncode == 1 and json.loads(stopped.stdout)["running"] is False
        with pytest.raises(neo4j.exceptions.ServiceUnavailable):
            neo4j.GraphDatabase.driver(uri, auth=auth).verify_connectivity()

        restart = ringscope("neo4j", "start", env=env)
        assert restart.returncode == 0, restart.stderr
        with neo4j.GraphDatabase.driver(uri, auth=auth) as driver:
            records, _, _ = driver.execute_query(
                "MATCH (a:Account {id: 'survivor'}) RETURN count(a) AS n", database_="neo4j"
            )
        assert records[0]["n"] == 1
    finally:
        ringscope("neo4j", "stop", env=env)


def test_neo4j_uri_set_launches_nothing(
    tmp_path: Path, neo4j_env: dict[str, str], neo4j_settings: Settings
) -> None:
    env = external_env(neo4j_env, neo4j_settings, session_password(neo4j_env))
    # If anything tried to launch, these would fail: there is no java or mvn to launch with.
    env.update(
        RINGSCOPE_DATA_DIR=str(tmp_path / "fresh"),
        RINGSCOPE_JAVA=str(tmp_path / "no-java"),
        RINGSCOPE_MVN=str(tmp_path / "no-mvn"),
        RINGSCOPE_NEO4J_PORT=str(free_port()),
    )
    result = ringscope("graph", "init", env=env)
    assert result.returncode == 0, result.stderr
    assert "account_id_unique" in result.stdout
    assert not (tmp_path / "fresh" / "neo4j").exists()
    started = ringscope("neo4j", "start", env=env)
    assert started.returncode == 0 and "nothing to start" in started.stderr


def test_wrong_password_on_external_uri(
    neo4j_env: dict[str, str], neo4j_settings: Settings
) -> None:
    env = external_env(neo4j_env, neo4j_settings, "definitely-wrong")
    result = ringscope("graph", "init", env=env)
    assert result.returncode == 2
    assert "rejected the credentials" in result.stderr
    assert "NEO4J_PASSWORD" in result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_external_uri(neo4j_env: dict[str, str]) -> None:
    env = dict(neo4j_env, NEO4J_URI=f"bolt://127.0.0.1:{free_port()}", NEO4J_PASSWORD="x")
    result = ringscope("graph", "init", env=env)
    assert result.returncode == 2
    assert "Cannot reach Neo4j" in result.stderr


def test_port_in_use(tmp_path: Path, neo4j_env: dict[str, str]) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = ringscope("neo4j", "start", env=own_env(neo4j_env, tmp_path, port))
    assert result.returncode == 2
    assert f"Port {port}" in result.stderr and "already in use" in result.stderr
    assert "RINGSCOPE_NEO4J_PORT" in result.stderr


def test_missing_java(tmp_path: Path, neo4j_env: dict[str, str]) -> None:
    env = own_env(neo4j_env, tmp_path, free_port())
    env["PATH"] = str(tmp_path / "empty-bin")  # no java anywhere on PATH
    result = ringscope("neo4j", "start", env=env)
    assert result.returncode == 2
    assert "Java 17+" in result.stderr and "not on PATH" in result.stderr
    assert "NEO4J_URI" in result.stderr


def test_java_too_old(tmp_path: Path, neo4j_env: dict[str, str]) -> None:
    fake = tmp_path / "java"
    fake.write_text("#!/bin/sh\necho 'openjdk version \"11.0.2\" 2019-01-15' >&2\n")
    fake.chmod(0o755)
    env = dict(own_env(neo4j_env, tmp_path, free_port()), RINGSCOPE_JAVA=str(fake))
    result = ringscope("neo4j", "start", env=env)
    assert result.returncode == 2
    assert "Java 11" in result.stderr


@pytest.mark.slow
def test_launch_timeout_kills_the_jvm(tmp_path: Path, neo4j_env: dict[str, str]) -> None:
    env = dict(own_env(neo4j_env, tmp_path, free_port()), RINGSCOPE_NEO4J_START_TIMEOUT="0.5")
    result = ringscope("neo4j", "start", env=env)
    assert result.returncode == 2
    assert "did not answer" in result.stderr and "RINGSCOPE_NEO4J_START_TIMEOUT" in result.stderr
    status = ringscope("neo4j", "status", "--json", env=env)
    assert status.returncode == 1  # nothing left running


@pytest.mark.slow
def test_corrupt_store_is_reported(tmp_path: Path, neo4j_env: dict[str, str]) -> None:
    env = own_env(neo4j_env, tmp_path, free_port())
    assert ringscope("neo4j", "start", env=env).returncode == 0
    assert ringscope("neo4j", "stop", env=env).returncode == 0
    store = tmp_path / "neo4j" / "home" / "data" / "databases" / "neo4j"
    files = [p for p in store.iterdir() if p.is_file() and p.name.startswith("neostore")]
    assert files
    for path in files:
        path.write_bytes(b"\x00garbage" * 64)
    try:
        result = ringscope("neo4j", "start", env=env)
        assert result.returncode == 2
        assert "could not be opened" in result.stderr and "corrupt" in result.stderr
    finally:
        ringscope("neo4j", "stop", env=env)
