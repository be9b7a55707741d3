"""The embedded Neo4j: build the Maven launcher, run it detached, find it again, stop it.

The launcher is a real Neo4j Community 5.26 DBMS in a JVM of its own, with Bolt on 127.0.0.1.
Started with ``browser=True`` (``ringscope neo4j start --browser``) it also runs Neo4j's own HTTP
connector on 127.0.0.1, which serves Neo4j Browser at ``/browser/``; otherwise nothing listens on
HTTP. Its state lives in ``<data_dir>/neo4j``::

    home/            the Neo4j store and Neo4j's own logs (home/logs/debug.log)
    password         the generated password of user ``neo4j`` (mode 0600)
    state.json       pid, Bolt port and HTTP port (null: no Browser) of the running instance
    launcher.log     the JVM's stdout and stderr
    import.pending   present while an offline bulk import rewrites the store (see import_full)

Auth is on: a loopback bind keeps other machines out, but not other users of this machine.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from ringscope.errors import (
    JavaNotFoundError,
    LaunchTimeoutError,
    Neo4jError,
    PortInUseError,
    StoreError,
)
from ringscope.settings import Settings

LAUNCHER_SRC = Path(__file__).resolve().parent / "launcher"
MAIN_CLASS = "io.ringscope.launcher.EmbeddedNeo4j"
ADMIN_CLASS = "org.neo4j.cli.AdminTool"  # neo4j-admin; its import tool is on the classpath
MIN_JAVA = 17
# Neo4j 5 needs these on Java 17+ (its own start scripts pass the same).
JVM_FLAGS = (
    "--add-opens=java.base/java.nio=ALL-UNNAMED",
    "--add-opens=java.base/java.io=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens=java.base/java.lang=ALL-UNNAMED",
    "-XX:+UseG1GC",
    "-XX:+ExitOnOutOfMemoryError",
    "-Dfile.encoding=UTF-8",
)


@dataclass(frozen=True)
class Instance:
    """A running embedded Neo4j, as ``ringscope neo4j status --json`` reports it."""

    uri: str
    user: str
    password: str | None
    pid: int
    port: int
    # Neo4j's HTTP connector and the Browser on it; None when started without the Browser.
    http_port: int | None
    browser_url: str | None
    data_dir: str
    log_file: str
    debug_log: str
    started_at: float

    def to_json(self) -> dict[str, object]:
        return asdict(self)


class EmbeddedNeo4j:
    """Manages the one embedded instance that belongs to a data directory."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = settings.neo4j_home
        self.home = self.root / "home"
        self.password_file = self.root / "password"
        self.state_file = self.root / "state.json"
        self.log_file = self.root / "launcher.log"
        self.import_marker = self.root / "import.pending"

    # --- public API -------------------------------------------------------------------------

    def status(self) -> Instance | None:
        """The running instance, or None. Cleans up a state file left by a dead process."""
        if not self.state_file.exists():
            return None
        state = json.loads(self.state_file.read_text())
        if not _is_our_process(int(state["pid"]), self.home):
            self.state_file.unlink(missing_ok=True)
            return None
        http_port = state.get("http_port")  # absent in a state file from before the Browser
        return self._instance(
            int(state["pid"]),
            int(state["port"]),
            None if http_port is None else int(http_port),
            float(state["started_at"]),
        )

    def start(self, browser: bool = False) -> tuple[Instance, bool]:
        """Start the instance, or find the one already running. Returns (instance, started).

        ``browser`` also turns on Neo4j's HTTP connector (127.0.0.1:``neo4j_http_port``) with
        Neo4j Browser. A running instance keeps the connectors it was started with: asking for
        the Browser from one started without it is an error, not a silent restart, since a
        restart would cut off every client of the running instance (the API server included).
        """
        self.root.mkdir(parents=True, exist_ok=True)
        with self._lock():
            running = self.status()
            if running is not None:
                if browser and running.http_port is None:
                    raise Neo4jError(
                        f"Neo4j is already running (pid {running.pid}) without the Browser, and "
                        "its HTTP connector can only be turned on at start. Run `ringscope neo4j "
                        "stop` (this disconnects its clients, an API server too), then `ringscope "
                        "neo4j start --browser`."
                    )
                return running, False
            if self.import_marker.exists():
                raise StoreError(
                    f"A bulk import into {self.home} was interrupted, so its store is incomplete. "
                    "Run the bulk load again (`ringscope ingest --bulk DIR` starts the store "
                    "afresh), or remove that directory to start empty."
                )
            port = self.settings.neo4j_port
            http_port = self.settings.neo4j_http_port if browser else None
            java = check_java(self.settings.java)
            _check_port_free(port, "RINGSCOPE_NEO4J_PORT", "Bolt")
            if http_port is not None:
                if http_port == port:
                    raise PortInUseError(
                        f"RINGSCOPE_NEO4J_HTTP_PORT and RINGSCOPE_NEO4J_PORT are both {port}: "
                        "the Browser's HTTP connector needs a port of its own. Set "
                        "RINGSCOPE_NEO4J_HTTP_PORT to another free port."
                    )
                _check_port_free(http_port, "RINGSCOPE_NEO4J_HTTP_PORT", "HTTP (Browser)")
            self._ensure_password()
            classpath = build_launcher(self.settings)
            return self._launch(java, classpath, port, http_port), True

    def stop(self, timeout: float = 120.0) -> bool:
        """Stop cleanly (SIGTERM, so the store is checkpointed). Returns False if none ran."""
        with self._lock():
            running = self.status()
            if running is None:
                return False
            os.kill(running.pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and _alive(running.pid):
                time.sleep(0.2)
            if _alive(running.pid):
                os.kill(running.pid, signal.SIGKILL)
                raise Neo4jError(
                    f"Neo4j (pid {running.pid}) did not stop within {timeout:.0f} s and was "
                    f"killed; the store will recover on the next start. See {self.log_file}."
                )
            self.state_file.unlink(missing_ok=True)
            return True

    def discard_interrupted_import(self) -> bool:
        """Drop the default database left half-written by an interrupted bulk import, so the
        next start creates it empty. Returns False (and touches nothing) when none was."""
        if not self.import_marker.exists():
            return False
        self.drop_database()
        return True

    def drop_database(self) -> None:
        """Stop the instance and delete the default database's store and transaction logs (the
        system database and the password stay): the next start creates it empty. Far faster
        than deleting millions of nodes through Cypher."""
        self.stop()
        with self._lock():
            db = self.settings.neo4j_database
            for sub in ("databases", "transactions"):
                shutil.rmtree(self.home / "data" / sub / db, ignore_errors=True)
            self.import_marker.unlink(missing_ok=True)

    def import_full(self, arguments: Path, log_file: Path) -> None:
        """Replace the default database with ``neo4j-admin database import full @arguments``.

        The instance is stopped for the import and started again after it. ``import.pending``
        marks the store as incomplete for as long as the importer runs, so a killed import is
        never mistaken for a graph (``start`` refuses it; ``discard_interrupted_import`` drops it).
        """
        s = self.settings
        java = check_java(s.java)
        classpath = build_launcher(s)
        running = self.status()
        browser = running is not None and running.http_port is not None
        self.stop()
        self.import_marker.write_text(json.dumps({"arguments": str(arguments)}))
        cmd = [
            java, f"-Xms{s.neo4j_heap}", f"-Xmx{s.neo4j_heap}", *JVM_FLAGS, "-cp", classpath,
            ADMIN_CLASS, "database", "import", "full", s.neo4j_database, f"@{arguments}",
        ]  # fmt: skip
        env = {**os.environ, "NEO4J_HOME": str(self.home)}
        env.pop("NEO4J_CONF", None)
        with open(log_file, "wb") as log:
            proc = subprocess.run(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                cwd=self.root, check=False,
            )  # fmt: skip
        if proc.returncode != 0:
            # The importer's reason comes before its Java stack trace: leave the frames out.
            lines = _read_from(log_file, 0).splitlines()
            told = "\n".join(ln for ln in lines if not ln.lstrip().startswith("at "))
            raise StoreError(
                f"neo4j-admin database import failed (exit {proc.returncode}); the store in "
                f"{self.home} is incomplete. See {log_file}:\n{_tail(told, 15)}"
            )
        self.import_marker.unlink()
        self.start(browser=browser)  # as it ran before: an analyst's Browser comes back too

    # --- internals ----------------------------------------------------------------------------

    def _instance(self, pid: int, port: int, http_port: int | None, started_at: float) -> Instance:
        return Instance(
            uri=f"bolt://127.0.0.1:{port}",
            user="neo4j",
            password=self.password_file.read_text().strip(),
            pid=pid,
            port=port,
            http_port=http_port,
            browser_url=None if http_port is None else browser_url(http_port, port),
            data_dir=str(self.root),
            log_file=str(self.log_file),
            debug_log=str(self.home / "logs" / "debug.log"),
            started_at=started_at,
        )

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """Serialise start/stop across processes (two `start`s must not launch two JVMs)."""
        with open(self.root / ".lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _ensure_password(self) -> None:
        if self.password_file.exists():
            return
        if (self.home / "data" / "databases" / "system").exists():
            raise Neo4jError(
                f"{self.password_file} is missing but a store exists in {self.home}: the "
                "password cannot be recovered. Restore the file, or move the store aside."
            )
        fd = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(24) + "\n")

    def _launch(self, java: str, classpath: str, port: int, http_port: int | None) -> Instance:
        s = self.settings
        cmd = [
            java,
            f"-Xms{s.neo4j_heap}",
            f"-Xmx{s.neo4j_heap}",
            *JVM_FLAGS,
            "-cp",
            classpath,
            MAIN_CLASS,
            "--home",
            str(self.home),
            "--port",
            str(port),
            "--pagecache",
            s.neo4j_pagecache,
            "--password-file",
            str(self.password_file),
            "--recv-timeout",
            str(s.neo4j_recv_timeout),
        ]
        if http_port is not None:
            cmd += ["--http-port", str(http_port)]
        if not s.neo4j_tx_log_preallocate:
            cmd += ["--tx-log-preallocate", "false"]
        started_at = time.time()
        ports = f"port {port}" + ("" if http_port is None else f", HTTP port {http_port}")
        with open(self.log_file, "ab") as log:
            log.write(f"--- launch at {time.ctime(started_at)}: {ports}\n".encode())
            log.flush()
            offset = log.tell()
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # outlives the CLI that started it
                cwd=self.root,
            )
        deadline = time.monotonic() + s.neo4j_start_timeout
        while True:
            out = _read_from(self.log_file, offset)
            if "RINGSCOPE-READY" in out:
                break
            code = proc.poll()
            if code is not None:
                raise self._launch_failure(code, out, port, http_port)
            if time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                raise LaunchTimeoutError(
                    f"Neo4j did not answer on bolt://127.0.0.1:{port} within "
                    f"{s.neo4j_start_timeout:.0f} s and was killed. See {self.log_file} and "
                    f"{self.home / 'logs' / 'debug.log'}; on a slow machine raise "
                    "RINGSCOPE_NEO4J_START_TIMEOUT."
                )
            time.sleep(0.1)
        state = {"pid": proc.pid, "port": port, "http_port": http_port, "started_at": started_at}
        self.state_file.write_text(json.dumps(state))
        return self._instance(proc.pid, port, http_port, started_at)

    def _launch_failure(self, code: int, out: str, port: int, http_port: int | None) -> Neo4jError:
        match = re.search(r"RINGSCOPE-ERROR (\w+): (.*)", out)
        detail = match.group(2) if match else _tail(out)
        if code == 4:
            if http_port is None:
                where, fix = f"127.0.0.1:{port}", "RINGSCOPE_NEO4J_PORT"
            else:  # taken since the check in start(): either one may be the culprit
                where = f"127.0.0.1:{port} (Bolt) or 127.0.0.1:{http_port} (HTTP)"
                fix = "RINGSCOPE_NEO4J_PORT or RINGSCOPE_NEO4J_HTTP_PORT"
            return PortInUseError(
                f"Neo4j could not bind {where}: the port is in use. Stop what holds it or set "
                f"{fix} to a free port. ({detail})"
            )
        if code == 3:
            return StoreError(
                f"The Neo4j store in {self.home} could not be opened; it may be corrupt. Move "
                f"that directory aside to start empty, or restore it from a backup. ({detail})"
            )
        return Neo4jError(
            f"Neo4j exited with code {code} while starting. See {self.log_file}. Last output: "
            f"{detail}"
        )


# --- the launcher build ---------------------------------------------------------------------


def build_launcher(settings: Settings) -> str:
    """Compile the launcher and resolve Neo4j's jars once; return the JVM classpath.

    The build goes to a cache directory keyed by the launcher's source hash, so an edit to the
    pom or the Java file rebuilds it and nothing else does.
    """
    digest = hashlib.sha256()
    for path in sorted(LAUNCHER_SRC.rglob("*")):
        if path.is_file() and "target" not in path.parts:
            digest.update(path.relative_to(LAUNCHER_SRC).as_posix().encode())
            digest.update(path.read_bytes())
    out = settings.cache_dir / "launcher" / digest.hexdigest()[:16]
    done = out / "classpath.txt"
    if not done.exists():
        mvn = shutil.which(settings.mvn)
        if mvn is None:
            raise Neo4jError(
                f"Maven ({settings.mvn!r}) is not on PATH; it resolves Neo4j from Maven Central "
                "for the embedded default. Install it (apt-get install maven), or set NEO4J_URI "
                "to use an existing Neo4j."
            )
        out.mkdir(parents=True, exist_ok=True)
        with open(out.parent / ".build.lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            if not done.exists():
                proc = subprocess.run(
                    [
                        mvn,
                        "-B",
                        "-q",
                        "-f",
                        str(LAUNCHER_SRC / "pom.xml"),
                        "package",
                        "dependency:build-classpath",
                        f"-Dlauncher.build.dir={out}",
                    ],
                    capture_output=True,
                    text=True,
                    check=False,
                )
                if proc.returncode != 0 or not done.exists():
                    raise Neo4jError(
                        "Building the Neo4j launcher with Maven failed (is Maven Central "
                        f"reachable?):\n{_tail(proc.stdout + proc.stderr, 30)}"
                    )
    return f"{out / 'classes'}{os.pathsep}{done.read_text().strip()}"


def check_java(java: str) -> str:
    """Return the java executable's path, or raise with what to install."""
    path = shutil.which(java)
    if path is None:
        raise JavaNotFoundError(
            f"Java {MIN_JAVA}+ is needed for the embedded Neo4j, but {java!r} is not on PATH. "
            "Install a JDK (apt-get install openjdk-17-jdk-headless), set RINGSCOPE_JAVA to its "
            "java binary, or set NEO4J_URI to use an existing Neo4j."
        )
    proc = subprocess.run([path, "-version"], capture_output=True, text=True, check=False)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', proc.stderr + proc.stdout)
    if match is None:
        raise JavaNotFoundError(f"Could not tell the version of {path}: {proc.stderr.strip()}")
    major = int(match.group(1))
    if major == 1 and match.group(2):
        major = int(match.group(2))
    if major < MIN_JAVA:
        raise JavaNotFoundError(
            f"{path} is Java {major}; Neo4j 5.26 needs Java {MIN_JAVA} or 21. Install a newer "
            "JDK or set RINGSCOPE_JAVA."
        )
    return path


def browser_url(http_port: int, bolt_port: int) -> str:
    """Where an analyst opens Neo4j Browser: its connect form comes filled in with this
    instance's Bolt URL and user ``neo4j``, leaving only the generated password to type."""
    return f"http://127.0.0.1:{http_port}/browser/?dbms=bolt://neo4j@127.0.0.1:{bolt_port}"


def _check_port_free(port: int, variable: str, connector: str) -> None:
    """Fail before launching a JVM when the port is taken, naming the setting that moves it."""
    # Something on the Bolt port may be the Neo4j the user meant; on the HTTP port it is not.
    use_it = (
        ", or set NEO4J_URI if that process is the Neo4j you want" if connector == "Bolt" else ""
    )
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As a server does: connections of a previous run in TIME_WAIT must not count as in use.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise PortInUseError(
                f"Port {port} on 127.0.0.1 is already in use by another process, so the "
                f"embedded Neo4j's {connector} connector cannot listen there. Stop that process "
                f"or set {variable} to a free port{use_it}. ({exc.strerror})"
            ) from None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child (possible when this process launched it) counts as dead.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _is_our_process(pid: int, home: Path) -> bool:
    """True when pid is alive and is the launcher for this home (pids get reused)."""
    if not _alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True  # no /proc: trust the pid
    return MAIN_CLASS.encode() in cmdline and str(home).encode() in cmdline


def _read_from(path: Path, offset: int) -> str:
    with open(path, "rb") as fh:
        fh.seek(offset)
        return fh.read().decode("utf-8", "replace")


def _tail(text: str, lines: int = 5) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])
