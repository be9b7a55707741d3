"""Small helpers shared by tests: run the real `ringscope` CLI in a subprocess; a generated
world loaded into the test graph."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ringscope.graph import Graph, connect, cypher, init_schema
from ringscope.graph.connection import resolve_target
from ringscope.ingest import load
from ringscope.settings import Settings
from ringscope.synth.generate import generate


@contextmanager
def generated_graph(settings: Settings, root: Path, accounts: int, seed: int) -> Iterator[Graph]:
    """A generated world (``root/data``, its truth in ``root/truth``) loaded through ingest into
    the emptied test graph."""
    generate(root / "data", root / "truth", accounts, seed)
    with connect(settings) as g:
        g.write(cypher.DELETE_ALL)
        init_schema(g)
        load(root / "data", g, settings, report_dir=root / "report", progress=False)
        yield g


def ringscope(
    *args: str, env: dict[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run `python -m ringscope ARGS` with exactly this environment; never raises on failure."""
    return subprocess.run(
        [sys.executable, "-m", "ringscope", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def cli_env(neo4j_settings: Settings, data_dir: Path, **extra: str) -> dict[str, str]:
    """The CLI's environment: the test Neo4j as an external server, a private data dir, this
    run's cache (the compiled launcher, the GraphX helper), and ``extra`` settings on top; no
    RINGSCOPE_ or NEO4J_ variable of the caller's leaks in."""
    target = resolve_target(neo4j_settings, start=False)
    e = {k: v for k, v in os.environ.items() if not k.startswith(("RINGSCOPE_", "NEO4J_"))}
    e.update(
        NEO4J_URI=target.uri,
        NEO4J_USER=target.user,
        NEO4J_PASSWORD=target.password or "",
        NEO4J_DATABASE=target.database,
        RINGSCOPE_DATA_DIR=str(data_dir),
        RINGSCOPE_CACHE_DIR=str(neo4j_settings.cache_dir),
        **extra,
    )
    return e
