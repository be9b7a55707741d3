"""Small helpers shared by tests: run the real `ringscope` CLI in a subprocess."""

from __future__ import annotations

import subprocess
import sys


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
