"""Generated data sets for the benchmarks, made once per size and seed under a work directory."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from ringscope.graph import Graph, connect, counts, cypher, init_schema
from ringscope.models.builds import current_build
from ringscope.settings import Settings

REPO = Path(__file__).resolve().parents[1]


def generate(accounts: int, root: Path, seed: int) -> Path:
    """The data directory for ``accounts`` (truth beside it), generated in a subprocess so that
    the generator's memory never counts towards a benchmark's peak."""
    out = root / f"data-{accounts}"
    if not (out / "accounts.parquet").exists() and not (out / "accounts.csv").exists():
        code = (
            "import sys; from pathlib import Path; from ringscope.synth.generate import generate; "
            "generate(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))"
        )
        subprocess.run(
            [sys.executable, "-c", code, str(out), str(root / f"truth-{accounts}"),
             str(accounts), str(seed)],
            check=True, cwd=REPO,
        )  # fmt: skip
    return out


def load_world(
    settings: Settings, accounts: int, seed: int, reuse: bool, build: Callable[[Graph, Path], None]
) -> Graph:
    """The graph ``Settings()`` points at, holding ``accounts`` generated accounts and a current
    build: kept as it is with ``reuse`` when it already does, else EMPTIED, and ``build(graph,
    data_dir)`` loads the generated data and writes a build (each bench its own way)."""
    graph = connect(settings)
    nodes, _ = counts(graph)
    if reuse and nodes.get("Account", 0) >= accounts and current_build(graph) is not None:
        print(f"reusing the loaded graph ({nodes['Account']} accounts)", flush=True)
        return graph
    root = Path(os.environ.get("BENCH_DIR") or Path(tempfile.gettempdir()) / "ringscope-bench")
    data = generate(accounts, root, seed)
    graph.write(cypher.DELETE_ALL)
    init_schema(graph)
    build(graph, data)
    return graph
