"""`ringscope neo4j start --browser`: Neo4j Browser on Neo4j's own HTTP connector, loopback only.

Against real processes: a private embedded instance started by the CLI with the Browser (one for
the module), and one without it. The Browser logs in the way a web browser does, over a WebSocket
on the Bolt port, so one test speaks Bolt over a WebSocket with a minimal client written here.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import ipaddress
import json
import os
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ringscope.graph import EmbeddedNeo4j, connect, counts
from ringscope.ingest import load
from ringscope.settings import Settings
from tests.conftest import free_port
from tests.helpers import ringscope
from tests.ingest_support import sample_tables, write_dataset

pytestmark = pytest.mark.neo4j


@dataclass(frozen=True)
class Running:
    """A private instance started by the CLI: its environment and `neo4j status --json`."""

    env: dict[str, str]
    status: dict[str, object]

    @property
    def bolt_port(self) -> int:
        return int(str(self.status["port"]))

    @property
    def http_port(self) -> int:
        return int(self.env["RINGSCOPE_NEO4J_HTTP_PORT"])

    @property
    def pid(self) -> int:
        return int(str(self.status["pid"]))

    @property
    def password(self) -> str:
        return str(self.status["password"])


def private_env(neo4j_env: dict[str, str], data_dir: Path) -> dict[str, str]:
    """Environment for an instance of its own (not the session's), on free Bolt and HTTP ports."""
    env = {k: v for k, v in neo4j_env.items() if not k.startswith("NEO4J_")}
    env.update(
        RINGSCOPE_DATA_DIR=str(data_dir),
        RINGSCOPE_NEO4J_PORT=str(free_port()),
        RINGSCOPE_NEO4J_HTTP_PORT=str(free_port()),
        RINGSCOPE_NEO4J_HEAP="512m",
        RINGSCOPE_NEO4J_PAGECACHE="128m",
    )
    return env


def start(env: dict[str, str], *flags: str) -> Running:
    started = ringscope("neo4j", "start", *flags, env=env)
    assert started.returncode == 0, started.stderr
    status = ringscope("neo4j", "status", "--json", env=env)
    assert status.returncode == 0, status.stderr
    return Running(env, json.loads(status.stdout))


@pytest.fixture(scope="module")
def with_browser(
    tmp_path_factory: pytest.TempPathFactory, neo4j_env: dict[str, str]
) -> Iterator[Running]:
    env = private_env(neo4j_env, tmp_path_factory.mktemp("browser"))
    try:
        yield start(env, "--browser")
    finally:
        ringscope("neo4j", "stop", env=env)


# --- reading what a process listens on --------------------------------------------------------


def listening(pid: int) -> set[tuple[str, int]]:
    """The TCP sockets process ``pid`` listens on, as (address, port), found the way `ss -ltnp`
    finds them: the socket inodes among /proc/PID/fd, their LISTEN rows in /proc/net/tcp{,6}.
    An IPv4-mapped IPv6 address (a Java socket on 127.0.0.1) reads as its IPv4 address."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):  # an fd closed while we look
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    found = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and inode in inodes:  # 0A: TCP_LISTEN
                hex_address, hex_port = local.split(":")
                found.add((_proc_address(hex_address), int(hex_port, 16)))
    return found


def _proc_address(hex_address: str) -> str:
    """/proc/net/tcp* write addresses as 32-bit words in host (little-endian) byte order."""
    raw = b"".join(
        bytes.fromhex(hex_address[i : i + 8])[::-1] for i in range(0, len(hex_address), 8)
    )
    if len(raw) == 4:
        return str(ipaddress.IPv4Address(raw))
    address = ipaddress.IPv6Address(raw)
    return str(address.ipv4_mapped or address)


def non_loopback_addresses() -> list[str]:
    """This machine's own addresses other than loopback (and link-local, which needs a scope)."""
    proc = subprocess.run(["hostname", "-I"], capture_output=True, text=True, check=False)
    addresses = [ipaddress.ip_address(a) for a in proc.stdout.split()]
    return [str(a) for a in addresses if not (a.is_loopback or a.is_link_local)]


# --- HTTP and Bolt over WebSocket -------------------------------------------------------------


def fetch(
    port: int,
    method: str,
    path: str,
    body: object = None,
    auth: tuple[str, str] | None = None,
    accept: str = "application/json",
) -> tuple[int, dict[str, str], bytes]:
    """One request to 127.0.0.1 (http.client: no proxy from the environment gets in the way)."""
    headers = {"Accept": accept}
    if body is not None:
        headers["Content-Type"] = "application/json"
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request(method, path, None if body is None else json.dumps(body), headers)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455, section 1.3
HELLO, LOGON, RUN, PULL = 0x01, 0x6A, 0x10, 0x3F
SUCCESS, RECORD, FAILURE = 0x70, 0x71, 0x7F


class BoltOverWebSocket:
    """Bolt inside WebSocket binary frames on the Bolt port: how Neo4j Browser (the JavaScript
    driver in a web page) reaches Neo4j. Just enough of RFC 6455, Bolt 5.1-5.2 and PackStream
    for a login and one query."""

    def __init__(self, port: int, origin: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\nOrigin: {origin}\r\n\r\n".encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError(f"closed during the WebSocket upgrade: {head!r}")
            head += chunk
        head, self.raw = head.split(b"\r\n\r\n", 1)  # what follows is frame data already
        lines = head.decode("latin-1").split("\r\n")
        self.status_line = lines[0]
        self.headers = {
            k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])
        }
        digest = hashlib.sha1((key + WEBSOCKET_GUID).encode(), usedforsecurity=False).digest()
        self.expected_accept = base64.b64encode(digest).decode()
        self.data = b""  # WebSocket payload received but not yet read

    def close(self) -> None:
        self.sock.close()

    # WebSocket frames

    def send(self, payload: bytes) -> None:
        """One binary frame; a client masks what it sends (RFC 6455, 5.3)."""
        mask = os.urandom(4)
        size = len(payload)
        length = bytes([0x80 | size]) if size < 126 else bytes([0x80 | 126]) + size.to_bytes(2)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(bytes([0x82]) + length + mask + masked)

    def read(self, n: int) -> bytes:
        while len(self.data) < n:
            first, second = self._raw(2)
            size = second & 0x7F
            if size == 126:
                size = int.from_bytes(self._raw(2))
            elif size == 127:
                size = int.from_bytes(self._raw(8))
            payload = self._raw(size)  # a server does not mask
            opcode = first & 0x0F
            if opcode == 0x8:
                raise ConnectionError(f"the server closed the WebSocket: {payload!r}")
            if opcode in (0x0, 0x2):  # continuation, binary
                self.data += payload
        out, self.data = self.data[:n], self.data[n:]
        return out

    def _raw(self, n: int) -> bytes:
        while len(self.raw) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            self.raw += chunk
        out, self.raw = self.raw[:n], self.raw[n:]
        return out

    # Bolt

    def handshake(self) -> tuple[int, int]:
        """Propose Bolt 5.2 down to 5.1 (HELLO then LOGON, no bolt_agent needed)."""
        self.send(b"\x60\x60\xb0\x17" + bytes([0, 1, 2, 5]) + bytes(12))
        agreed = self.read(4)
        return agreed[3], agreed[2]

    def request(self, signature: int, *fields: object) -> list[tuple[int, list[object]]]:
        """Send one message; return the responses up to its SUCCESS or FAILURE."""
        body = bytes([0xB0 + len(fields), signature]) + b"".join(pack(f) for f in fields)
        self.send(len(body).to_bytes(2) + body + b"\x00\x00")
        responses = []
        while not responses or responses[-1][0] == RECORD:
            responses.append(self._message())
        return responses

    def _message(self) -> tuple[int, list[object]]:
        body = b""
        while True:
            size = int.from_bytes(self.read(2))
            if size == 0:
                if body:
                    break
                continue  # a NOOP chunk: keep-alive between messages
            body += self.read(size)
        value, _ = unpack(body, 0)
        assert isinstance(value, Struct), body
        return value.signature, value.fields


@dataclass(frozen=True)
class Struct:
    signature: int
    fields: list[object]


def pack(value: object) -> bytes:
    """PackStream for the few types these messages carry."""
    if value is None:
        return b"\xc0"
    if isinstance(value, bool):
        return b"\xc3" if value else b"\xc2"
    if isinstance(value, int):
        if -16 <= value < 128:
            return value.to_bytes(1, signed=True)
        return b"\xcb" + value.to_bytes(8, signed=True)
    if isinstance(value, str):
        data = value.encode()
        return _sized(len(data), 0x80, 0xD0) + data
    if isinstance(value, dict):
        return _sized(len(value), 0xA0, 0xD8) + b"".join(
            pack(k) + pack(v) for k, v in value.items()
        )
    if isinstance(value, list):
        return _sized(len(value), 0x90, 0xD4) + b"".join(pack(v) for v in value)
    raise TypeError(value)


def _sized(size: int, tiny: int, marker8: int) -> bytes:
    if size < 16:
        return bytes([tiny + size])
    if size < 256:
        return bytes([marker8, size])
    return bytes([marker8 + 1]) + size.to_bytes(2)


def unpack(data: bytes, at: int) -> tuple[object, int]:
    marker = data[at]
    at += 1
    high = marker & 0xF0
    if marker < 0x80 or marker >= 0xF0:
        return int.from_bytes(bytes([marker]), signed=True), at
    if marker in (0xC8, 0xC9, 0xCA, 0xCB):
        width = 1 << (marker - 0xC8)
        return int.from_bytes(data[at : at + width], signed=True), at + width
    if marker == 0xC0:
        return None, at
    if marker in (0xC2, 0xC3):
        return marker == 0xC3, at
    size, at = _size(data, at, marker, high)
    if high == 0x80 or 0xD0 <= marker <= 0xD2:
        return data[at : at + size].decode(), at + size
    if high == 0x90 or 0xD4 <= marker <= 0xD6:
        items = []
        for _ in range(size):
            item, at = unpack(data, at)
            items.append(item)
        return items, at
    if high == 0xA0 or 0xD8 <= marker <= 0xDA:
        mapping = {}
        for _ in range(size):
            key, at = unpack(data, at)
            mapping[key], at = unpack(data, at)
        return mapping, at
    if high == 0xB0:
        signature = data[at]
        at += 1
        fields = []
        for _ in range(size):
            field, at = unpack(data, at)
            fields.append(field)
        return Struct(signature, fields), at
    raise ValueError(f"PackStream marker {marker:#x} not handled here")


def _size(data: bytes, at: int, marker: int, high: int) -> tuple[int, int]:
    if high in (0x80, 0x90, 0xA0, 0xB0):
        return marker & 0x0F, at
    width = 1 << (marker & 0x03)  # 8-, 16- or 32-bit size
    return int.from_bytes(data[at : at + width]), at + width


# --- the tests --------------------------------------------------------------------------------


@pytest.mark.slow
def test_browser_page_and_discovery(with_browser: Running) -> None:
    port = with_browser.http_port
    status, headers, page = fetch(port, "GET", "/browser/", accept="text/html")
    assert status == 200
    assert headers["content-type"].startswith("text/html")
    assert b"<title>Neo4j Browser</title>" in page

    # The Browser reads the discovery document at / for the Bolt URL it offers to connect to.
    status, _, body = fetch(port, "GET", "/")
    assert status == 200
    discovery = json.loads(body)
    assert discovery["bolt_direct"] == f"bolt://127.0.0.1:{with_browser.bolt_port}"
    assert discovery["bolt_direct"] == with_browser.status["uri"]

    assert with_browser.status["http_port"] == port
    assert with_browser.status["browser_url"] == (
        f"http://127.0.0.1:{port}/browser/?dbms=bolt://neo4j@127.0.0.1:{with_browser.bolt_port}"
    )


@pytest.mark.slow
def test_browser_listens_on_loopback_only(with_browser: Running) -> None:
    # Every socket the JVM listens on: Bolt and HTTP, both on 127.0.0.1, nothing else.
    assert listening(with_browser.pid) == {
        ("127.0.0.1", with_browser.bolt_port),
        ("127.0.0.1", with_browser.http_port),
    }
    # And from the outside: this machine's other addresses do not reach it.
    for address in non_loopback_addresses():
        with pytest.raises(OSError), socket.create_connection((address, with_browser.http_port), 5):
            pass


@pytest.mark.slow
def test_cypher_over_http_with_the_generated_password(with_browser: Running) -> None:
    statement = {"statement": "RETURN $x AS x", "parameters": {"x": 42}}
    body = {"statements": [statement]}
    path = "/db/neo4j/tx/commit"
    status, _, answer = fetch(
        with_browser.http_port, "POST", path, body, auth=("neo4j", with_browser.password)
    )
    assert status == 200, answer
    result = json.loads(answer)
    assert result["errors"] == []
    assert result["results"][0]["data"][0]["row"] == [42]

    status, _, answer = fetch(with_browser.http_port, "POST", path, body, auth=("neo4j", "wrong"))
    assert status == 401
    assert json.loads(answer)["errors"][0]["code"] == "Neo.ClientError.Security.Unauthorized"


@pytest.mark.slow
def test_browser_login_over_websocket_on_the_bolt_port(with_browser: Running) -> None:
    origin = f"http://127.0.0.1:{with_browser.http_port}"  # the page the Browser runs in

    def login(password: str) -> tuple[BoltOverWebSocket, list[tuple[int, list[object]]]]:
        bolt = BoltOverWebSocket(with_browser.bolt_port, origin)
        assert bolt.status_line.split()[1] == "101", bolt.status_line
        assert bolt.headers["sec-websocket-accept"] == bolt.expected_accept
        assert bolt.handshake() in {(5, 1), (5, 2)}
        assert bolt.request(HELLO, {"user_agent": "ringscope-tests/1.0"})[0][0] == SUCCESS
        auth = {"scheme": "basic", "principal": "neo4j", "credentials": password}
        return bolt, bolt.request(LOGON, auth)

    bolt, answer = login(with_browser.password)
    try:
        assert answer[0][0] == SUCCESS, answer
        assert bolt.request(RUN, "RETURN $x AS x", {"x": 7}, {})[0][0] == SUCCESS
        record, (summary, _) = bolt.request(PULL, {"n": -1})
        assert record == (RECORD, [[7]]) and summary == SUCCESS
    finally:
        bolt.close()

    bolt, answer = login("wrong")
    try:
        (signature, fields), *_ = answer
        assert signature == FAILURE
        assert isinstance(fields[0], dict)
        assert fields[0]["code"] == "Neo.ClientError.Security.Unauthorized"
    finally:
        bolt.close()


@pytest.mark.slow
def test_without_browser_nothing_listens_on_http(tmp_path: Path, neo4j_env: dict[str, str]) -> None:
    env = private_env(neo4j_env, tmp_path)
    try:
        plain = start(env)
        assert plain.status["http_port"] is None and plain.status["browser_url"] is None
        assert listening(plain.pid) == {("127.0.0.1", plain.bolt_port)}
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", plain.http_port), 5).close()

        # The HTTP connector cannot be added to a running instance, and asking does not restart it.
        again = ringscope("neo4j", "start", "--browser", env=env)
        assert again.returncode == 2
        assert "already running" in again.stderr and "without the Browser" in again.stderr
        assert "ringscope neo4j stop" in again.stderr and "Traceback" not in again.stderr
        status = json.loads(ringscope("neo4j", "status", "--json", env=env).stdout)
        assert status["pid"] == plain.pid and status["http_port"] is None
    finally:
        ringscope("neo4j", "stop", env=env)


def test_http_port_in_use(tmp_path: Path, neo4j_env: dict[str, str]) -> None:
    env = private_env(neo4j_env, tmp_path)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        env["RINGSCOPE_NEO4J_HTTP_PORT"] = str(port)
        result = ringscope("neo4j", "start", "--browser", env=env)
    assert result.returncode == 2
    assert f"Port {port}" in result.stderr and "already in use" in result.stderr
    assert "RINGSCOPE_NEO4J_HTTP_PORT" in result.stderr and "Traceback" not in result.stderr
    assert ringscope("neo4j", "status", "--json", env=env).returncode == 1  # nothing started


def test_http_port_same_as_bolt_port(tmp_path: Path, neo4j_env: dict[str, str]) -> None:
    env = private_env(neo4j_env, tmp_path)
    env["RINGSCOPE_NEO4J_HTTP_PORT"] = env["RINGSCOPE_NEO4J_PORT"]
    result = ringscope("neo4j", "start", "--browser", env=env)
    assert result.returncode == 2
    assert "needs a port of its own" in result.stderr and "Traceback" not in result.stderr
    assert ringscope("neo4j", "status", "--json", env=env).returncode == 1  # nothing started


@pytest.mark.slow
@pytest.mark.skipif(
    bool(os.environ.get("NEO4J_URI")), reason="a bulk load needs the embedded instance"
)
def test_a_bulk_load_restarts_the_instance_with_its_browser(tmp_path: Path) -> None:
    # The offline importer stops the instance and starts it again: an analyst's Browser must
    # come back with it, on the same port.
    settings = Settings(
        data_dir=tmp_path / "data",
        neo4j_port=free_port(),
        neo4j_http_port=free_port(),
        neo4j_heap="512m",
        neo4j_pagecache="128m",
    )
    embedded = EmbeddedNeo4j(settings)
    before, _ = embedded.start(browser=True)
    try:
        data = write_dataset(tmp_path / "d", sample_tables())
        with connect(settings) as graph:
            report = load(
                data, graph, settings, report_dir=tmp_path / "r", progress=False, bulk=True
            )
            assert report.mode == "bulk" and counts(graph)[0]["Account"] > 0
        after = embedded.status()
        assert after is not None and after.pid != before.pid  # it was restarted
        assert after.http_port == settings.neo4j_http_port
        status, _, page = fetch(settings.neo4j_http_port, "GET", "/browser/", accept="text/html")
        assert status == 200 and b"<title>Neo4j Browser</title>" in page
    finally:
        embedded.stop()
