"""Shared fixtures. Integration tests talk to a real Neo4j: the embedded launcher on a free port
in a temporary directory, or the server named by NEO4J_URI when that is set."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ringscope.graph import EmbeddedNeo4j, Graph, connect, cypher, init_schema
from ringscope.settings import Settings

# Settings every embedded Neo4j of the tests starts with, in this process and in the CLI
# subprocesses that start their own: no transaction log allocated ahead (512 MiB a store; a CI
# run makes dozens of stores, and kept them, until the machine's disk was full).
TEST_NEO4J_ENV = {"RINGSCOPE_NEO4J_TX_LOG_PREALLOCATE": "false"}
os.environ.update(TEST_NEO4J_ENV)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def own_neo4j(root: Path, heap: str, pagecache: str) -> Iterator[tuple[Settings, EmbeddedNeo4j]]:
    """An embedded Neo4j of a test module's own (its store under ``root``, a free port), for
    tests that freeze or kill it (SIGSTOP, kill -9) without touching the session's shared one.
    The built launcher is shared. On exit it is thawed, in case a test froze it and failed, and
    stopped."""
    own = Settings(
        data_dir=root,
        cache_dir=Settings().cache_dir,
        neo4j_port=free_port(),
        neo4j_heap=heap,
        neo4j_pagecache=pagecache,
    )
    neo4j = EmbeddedNeo4j(own)
    neo4j.start()
    try:
        yield own, neo4j
    finally:
        instance = neo4j.status()
        if instance is not None:
            os.kill(instance.pid, signal.SIGCONT)
        neo4j.stop()


@pytest.fixture(scope="session")
def neo4j_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Settings that reach the test Neo4j; starts the embedded one for the session if needed."""
    if os.environ.get("NEO4J_URI"):
        yield Settings()
        return
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("ringscope-data"),
        neo4j_port=free_port(),
        neo4j_heap="1g",
        neo4j_pagecache="512m",
    )
    embedded = EmbeddedNeo4j(settings)
    embedded.start()
    try:
        yield settings
    finally:
        embedded.stop()


@pytest.fixture(scope="session")
def neo4j_env(neo4j_settings: Settings) -> dict[str, str]:
    """Environment for running the `ringscope` CLI against the test Neo4j in a subprocess."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RINGSCOPE_", "NEO4J_"))}
    if neo4j_settings.neo4j_uri:
        env.update({k: v for k, v in os.environ.items() if k.startswith("NEO4J_")})
    env.update(TEST_NEO4J_ENV)
    env["RINGSCOPE_DATA_DIR"] = str(neo4j_settings.data_dir)
    env["RINGSCOPE_CACHE_DIR"] = str(neo4j_settings.cache_dir)
    env["RINGSCOPE_NEO4J_PORT"] = str(neo4j_settings.neo4j_port)
    return env


@pytest.fixture
def graph(neo4j_settings: Settings) -> Iterator[Graph]:
    """A connection to an empty graph with the schema in place."""
    with connect(neo4j_settings) as g:
        g.write(cypher.DELETE_ALL)
        init_schema(g)
        yield g
