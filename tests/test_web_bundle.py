"""The committed workbench bundle (api/static) is what web/'s sources build to.

The bundle is committed so that a Python-only install (the wheel, `pip install`) serves the
workbench with no Node on the machine. The price is that it could drift from its sources; this
test rebuilds it from a clean copy of web/ with the committed lockfile (`npm ci`, the npm
registry is reachable from CI) and compares every file, byte for byte. To fix a failure: `make
web` and commit api/static. It also runs web/'s own unit tests (`npm test`: the graph layout).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
WEB = REPO / "web"
STATIC = REPO / "api" / "static"


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_the_committed_bundle_is_built_from_the_sources(tmp_path: Path) -> None:
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is not installed: `make test` installs it (make browser)")
    src = tmp_path / "web"
    shutil.copytree(WEB, src, ignore=shutil.ignore_patterns("node_modules"))
    out = tmp_path / "static"
    env = {**os.environ, "npm_config_cache": str(Path.home() / ".cache" / "ringscope" / "npm")}
    for cmd in (
        [npm, "ci", "--no-audit", "--no-fund"],
        [npm, "run", "build", "--", "--outDir", str(out), "--emptyOutDir"],
        [npm, "test"],  # web/app/src/layout.test.ts: every node placed, none overlapping
    ):
        proc = subprocess.run(cmd, cwd=src, env=env, capture_output=True, text=True, check=False)
        assert proc.returncode == 0, f"{' '.join(cmd)}:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
    built, committed = _files(out), _files(STATIC)
    assert sorted(built) == sorted(committed), "run `make web` and commit api/static"
    stale = [name for name in built if built[name] != committed[name]]
    assert not stale, f"api/static differs from web/'s build in {stale}: run `make web`"


def test_the_bundle_names_no_remote_origin() -> None:
    """No script, style or font URL outside the machine: the page must work with no internet.
    (The CSP of api/web.py refuses them in the browser too; this names the file at fault.)"""
    fetchable = re.compile(rb"""(?:src|href|url\()\s*=?\s*["']?(https?:)?//[a-z0-9.-]+""", re.I)
    found = {
        name: m.group(0)[:80]
        for name, body in _files(STATIC).items()
        for m in [fetchable.search(body)]
        if m is not None
    }
    assert not found, found
