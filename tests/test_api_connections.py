"""Half-open connections (issue #19, slowloris): a client that opens a connection and then sends
nothing, half its headers, or a body slower than promised, is cut off once the read deadline
(``RINGSCOPE_API_READ_TIMEOUT_S``) passes, and honest requests are still answered.

The server is ``python -m ringscope.api serve`` in a process of its own with two workers, as in
production (the protocol class travels to the workers by pickling: that path is tested too).
Nothing is timed: each socket waits up to a fixed 30 s for the server to close it, which the old
server never did (its connections were still open when the wait ran out).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.conftest import free_port

WAIT_S = 30.0  # how long a socket waits to be closed; the deadline under test is 1 s


def _closed_by_server(port: int, payload: bytes) -> bool:
    """Send ``payload`` and then nothing: True when the server closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT_S) as sock:
        if payload:
            sock.sendall(payload)
        try:
            while sock.recv(4096):
                pass  # whatever it answers (nothing, or an error) before closing
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True
        return True


def test_half_open_connections_are_closed_after_the_read_deadline(
    neo4j_env: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **neo4j_env,
        "RINGSCOPE_API_AUDIT_DIR": str(tmp_path / "audit"),
        "RINGSCOPE_API_READ_TIMEOUT_S": "1",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
    }
    cmd = [sys.executable, "-m", "ringscope.api", "serve", "--host", "127.0.0.1"]
    proc = subprocess.Popen(
        [*cmd, "--port", str(port), "--workers", "2"], env=env, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, "the server exited"
            try:
                httpx.get(base + "/healthz", timeout=2)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "the server did not come up"
                time.sleep(0.2)

        nothing = b""
        half_headers = b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: appl"
        slow_body = (
            b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 1000\r\n\r\n{"query": "{ curr'
        )
        payloads = [nothing] * 10 + [half_headers] * 10 + [slow_body] * 10
        with ThreadPoolExecutor(len(payloads)) as pool:
            held = [p for p, closed in zip(payloads, pool.map(
                lambda p: _closed_by_server(port, p), payloads
            ), strict=True) if not closed]  # fmt: skip
            # While they are held (or after), an honest request is answered.
            assert httpx.get(base + "/healthz", timeout=WAIT_S).status_code in (200, 503)
        assert not held, f"{len(held)} of {len(payloads)} half-open connections still held"
        # A request sent whole is not cut off, though its connection was idle before it.
        with socket.create_connection(("127.0.0.1", port), timeout=WAIT_S) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            answer = b""
            while chunk := sock.recv(4096):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 "), answer[:100]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
