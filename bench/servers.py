"""A RingScope API server as a process, for the benchmarks (bench/api.py, bench/abuse.py).

Its own module, not bench/api.py's: a bench module named ``api`` would shadow the package's
``api`` folder (tests/test_packaging.py forbids importing it as a top-level module).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """``python -m ringscope.api serve`` (production settings) on a free loopback port, as a
    process."""

    def __init__(self, env: dict[str, str], cwd: Path = REPO, log: Path | None = None) -> None:
        self.cwd = cwd  # another checkout's root runs that checkout's server (bench/abuse.py)
        self.log = log  # the server's stderr goes there (bench/abuse.py counts tracebacks)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/graphql"
        self.env = {
            **os.environ,
            "RINGSCOPE_API_ENV": "production",
            "RINGSCOPE_API_KEY_CACHE_SECONDS": "30",
            **env,
        }

    def __enter__(self) -> Server:
        cmd = [
            sys.executable,
            "-m",
            "ringscope.api",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        err = self.log.open("ab") if self.log else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            cmd, cwd=self.cwd, env=self.env, stdout=subprocess.DEVNULL, stderr=err
        )
        for _ in range(300):
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.proc.terminate()
        raise RuntimeError("the server did not come up")

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # still busy with a request that will not end
            self.proc.kill()
            self.proc.wait()
