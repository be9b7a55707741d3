"""The append-only audit log: one JSON line per entity returned or denied.

No personal data in clear (PCI DSS 3.3/3.4: no full card number in a log). An entity of a PII kind
(one ``ringscope.kinds`` marks ``pii``: phone, email, id_document, bank_card) is named by ``~`` and
the first 16 hex digits of HMAC-SHA256(``<kind>:<value>``) under the API's masking secret: the
token a masked answer shows in its node keys (``phone:~3f1c...``), for every role, investigators
included. ``ringscope audit find --kind --id`` hashes a value the same way to search the log. Other
ids are written as they are, cut to :data:`ID_MAX_CHARS` characters (marked ``truncated`` with the
original length), so a record is at most :data:`RECORD_MAX_BYTES` bytes however long the id a
client sent: a 97 kB id used to write 296 kB of audit.

The server's own request id (``request_id``, also the response's ``X-Request-ID``) is always its
own; an ``X-Request-ID`` the client sent is kept in ``client_request_id``, so a client cannot make
its records look like another request's.

Records are collected while a request runs and written with a single ``write`` to a file opened
with ``O_APPEND`` (``<audit dir>/api-audit-<UTC date>.jsonl``, mode 0600), then ``fsync``-ed, before
the response is sent: a crash right after a response cannot lose its records. If the write or
the sync fails, the request fails: nothing is returned that was not logged.

The server submits a request's records to the log's own writer thread (:meth:`AuditLog.submit`),
which appends everything queued since its last sync in one ``write`` and one ``fsync``, a group
commit. The records never wait for a Neo4j worker thread, and under load one sync covers many
requests. Measured at 100k accounts and 250 requests/s, before this writer thread: the audit step
took 18 ms on average, almost all of it queued behind Neo4j calls, for a 0.2 ms sync.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from ringscope.kinds import BY_NAME

# An id longer than this is cut to its first ID_MAX_CHARS characters in the record.
ID_MAX_CHARS = 128
# The most one record takes, newline included: a 128-character id is at most 768 bytes of JSON
# (control characters escaped as \u00XX), the other fields are bounded by the code (a 32-character
# request id, a client's of at most 64 characters, a 12-character key id, kind, field, time).
RECORD_MAX_BYTES = 2_048


class AuditWriteError(Exception):
    """The audit log could not be written (the request is refused)."""


def pii_token(secret: bytes, kind: str, value: str) -> str:
    """How the audit log names a PII value: ``~`` and 16 hex digits of its HMAC, the same token
    as the masked key ``<kind>:~<token>`` (``api.context.Masker.key``). A lone surrogate (which
    no real identifier has) is hashed as its code point rather than failing the request."""
    data = f"{kind}:{value}".encode("utf-8", "surrogatepass")
    return "~" + hmac.new(secret, data, hashlib.sha256).hexdigest()[:16]


def is_pii(kind: str) -> bool:
    k = BY_NAME.get(kind)  # "cluster" is not a kind of the table, and not personal data
    return k is not None and k.pii


def audit_id(secret: bytes, kind: str, value: str) -> tuple[str, int | None]:
    """The ``id`` a record holds for ``value``, and the original length when it was cut."""
    if is_pii(kind):
        return pii_token(secret, kind, value), None
    try:
        value.encode()
    except UnicodeEncodeError:  # lone surrogates: orjson refuses them; escape them visibly
        value = value.encode("utf-8", "backslashreplace").decode()
    if len(value) > ID_MAX_CHARS:
        return value[:ID_MAX_CHARS], len(value)
    return value, None


@dataclass
class AuditBuffer:
    """The records of one request; duplicates of (kind, id, outcome) are recorded once.

    ``secret`` is the masking secret PII values are hashed under; ``client_request_id`` the
    client's own ``X-Request-ID``, if it sent a well-formed one.
    """

    request_id: str
    key_id: str
    role: str
    secret: bytes = field(repr=False)
    client_request_id: str | None = None
    records: list[dict[str, Any]] = field(default_factory=list)
    _seen: set[tuple[str, str, str]] = field(default_factory=set)
    # One time for the request's records (when it read them): formatting a clock reading per
    # record was a tenth of a 100-node neighbourhood's CPU.
    ts: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="microseconds"))

    def __post_init__(self) -> None:
        if not self.secret:
            raise ValueError("the audit log needs the masking secret to name PII values")

    def add(
        self, kind: str, entity_id: str, outcome: str, field_name: str, event_id: str | None = None
    ) -> None:
        """One record; ``event_id`` names the screened or recorded event it belongs to."""
        key = (kind, entity_id, outcome)
        if key in self._seen:
            return
        self._seen.add(key)
        name, cut_from = audit_id(self.secret, kind, entity_id)
        record: dict[str, Any] = {"ts": self.ts, "request_id": self.request_id}
        if self.client_request_id is not None:
            record["client_request_id"] = self.client_request_id
        record.update(key_id=self.key_id, role=self.role, kind=kind, id=name)
        if cut_from is not None:
            record.update(truncated=True, id_chars=cut_from)
        record.update(outcome=outcome, field=field_name[:64])  # returned | denied | not_found
        if event_id is not None:  # screened | recorded, and what those answers named
            record["event_id"] = audit_id(self.secret, "event", event_id)[0]
        self.records.append(record)


def find_records(
    directory: Path, secret: bytes, kind: str, value: str
) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every record in the audit files of ``directory`` (oldest file first) that names the
    entity ``kind``/``value``, as :class:`AuditBuffer` would have written it."""
    name, cut_from = audit_id(secret, kind, value)
    needle = orjson.dumps(name)  # the id as it appears in a line: a cheap filter before parsing
    for path in sorted(directory.glob("api-audit-*.jsonl")):
        with path.open("rb") as fh:
            for line in fh:
                if needle not in line:
                    continue
                try:
                    record = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue  # a torn last line (a crash mid-write) is not a match
                if _matches(record, kind, name, cut_from):
                    yield path, record


def _matches(record: Any, kind: str, name: str, cut_from: int | None) -> bool:
    return (
        isinstance(record, dict)
        and record.get("kind") == kind
        and record.get("id") == name
        and record.get("id_chars") == cut_from
    )


class AuditLog:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._queued: list[tuple[bytes, Future[None]]] = []
        self._wake = threading.Condition()
        self._writer: threading.Thread | None = None
        self._today: tuple[int, Path] | None = None  # (UTC day number, its file)

    def submit(self, records: list[dict[str, Any]]) -> Future[None]:
        """Queue the records for the writer thread; the future is done once they are synced,
        or fails with AuditWriteError."""
        done: Future[None] = Future()
        if not records:
            done.set_result(None)
            return done
        data = b"".join(orjson.dumps(r, option=orjson.OPT_APPEND_NEWLINE) for r in records)
        with self._wake:
            self._queued.append((data, done))
            if self._writer is None:
                self._writer = threading.Thread(
                    target=self._write_queued, name="ringscope-audit", daemon=True
                )
                self._writer.start()
            self._wake.notify()
        return done

    def _write_queued(self) -> None:
        while True:
            with self._wake:
                while not self._queued:
                    self._wake.wait()
                batch, self._queued = self._queued, []
            try:
                self._append(b"".join(data for data, _ in batch))
            except BaseException as exc:  # the thread must live on: every waiter gets an answer
                failed = exc if isinstance(exc, AuditWriteError) else AuditWriteError(str(exc))
                for _, done in batch:
                    done.set_exception(failed)
            else:
                for _, done in batch:
                    done.set_result(None)

    def path_for(self, when: datetime | None = None) -> Path:
        """The file of ``when``'s UTC day (today's by default). Today's path is kept for the
        day it names: formatting a clock reading for every write was a tenth of the writer's
        time (issue #21)."""
        if when is not None:
            return self.directory / f"api-audit-{when.strftime('%Y-%m-%d')}.jsonl"
        now = time.time()
        day = int(now // 86_400)
        if self._today is None or self._today[0] != day:
            self._today = (day, self.path_for(datetime.fromtimestamp(now, UTC)))
        return self._today[1]

    def _append(self, data: bytes) -> None:
        """One write of whole records, then fsync; raises AuditWriteError on failure. Only the
        writer thread calls it, so appends never race within a process."""
        try:
            path = self.path_for()
            created = not path.exists()
            if created:  # the first write, a new day, or a directory removed since
                self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                # Durable before the responses leave: one sync for every request in the batch.
                os.fsync(fd)
            finally:
                os.close(fd)
            if created:
                _fsync_dir(self.directory)  # the new day's file must survive a crash too
        except OSError as exc:
            raise AuditWriteError(f"Cannot write the audit log in {self.directory}: {exc}") from exc


def _fsync_dir(directory: Path) -> None:
    """Make a new directory entry durable (a file's own fsync does not cover its name)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
