"""The one import namespace: the wheel installs only `ringscope`, and no code in the repository
imports the root folders (graph/, ingest/, api/, models/) as top-level modules.

A top-level `api` or `models` in site-packages breaks, or is broken by, any other project that
has one; and a stray `from graph import ...` in a test would load a second copy of a module
under another name (its own settings caches, its own metrics), which is worse than failing.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ROOT_FOLDERS = ("graph", "ingest", "api", "models")


@pytest.mark.slow
def test_the_wheel_installs_only_ringscope(tmp_path: Path) -> None:
    # Built from a copy of the source: setuptools keeps a build/ folder in the tree it builds,
    # and stale files there would end up in the wheel.
    src = tmp_path / "src"
    shutil.copytree(
        REPO,
        src,
        symlinks=True,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "*.egg-info", "__pycache__", "target"
        ),
    )
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    proc = subprocess.run(
        [*pip, "-w", str(tmp_path), str(src)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    (wheel,) = tmp_path.glob("ringscope-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        top_level_txt = next(n for n in names if n.endswith(".dist-info/top_level.txt"))
        declared = zf.read(top_level_txt).decode().split()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"ringscope"}
    assert declared == ["ringscope"]
    # Each root folder is inside the namespace, with its data files.
    for folder in ROOT_FOLDERS:
        assert f"ringscope/{folder}/__init__.py" in names
    assert "ringscope/graph/launcher/pom.xml" in names
    # The Spark engine compiles its GraphX helper from this source at first use.
    assert "ringscope/spark/graphx/src/io/ringscope/spark/Components.java" in names
    assert "ringscope/api/schema.graphql" in names
    assert "ringscope/models/cluster_prior.txt" in names  # the learned cluster prior
    # The workbench and GraphiQL, built (api/static): a Python-only install serves them.
    assert "ringscope/api/static/app/index.html" in names
    assert "ringscope/api/static/graphiql/index.html" in names
    assert any(n.startswith("ringscope/api/static/assets/") and n.endswith(".js") for n in names)
    assert "ringscope/jobs/rebuild.py" in names


def _top_level_imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return [(line, name) for line, name in found if name.split(".")[0] in ROOT_FOLDERS]


def test_no_code_imports_a_root_folder_as_a_top_level_module() -> None:
    files = [
        p
        for d in ("ringscope", "tests", "bench", *ROOT_FOLDERS)
        for p in (REPO / d).rglob("*.py")
        if "launcher" not in p.parts
    ]
    assert len(files) > 50
    offenders = [
        f"{p.relative_to(REPO)}:{line}: {name}"
        for p in files
        for line, name in _top_level_imports(p)
    ]
    assert offenders == [], "import these as ringscope.<folder>...: " + "; ".join(offenders)
