"""API keys and roles.

A key is ``rsk_<key id>_<secret>``: the key id (12 hex digits) finds the stored record, the
secret (32 random bytes, base64url) is checked against its SHA-256 hash. Only the hash is stored,
as an ``(:ApiKey)`` node; the key itself is shown once, when it is created. A fast hash is right
here because the secret has 256 bits of entropy: there is nothing to brute-force.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import math
import re
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from ringscope.errors import RingScopeError
from ringscope.graph import cypher
from ringscope.graph.connection import Graph
from ringscope.graph.schema import init_schema
from ringscope.graph.values import native

KEY_PREFIX = "rsk"
V = TypeVar("V")
_KEY_RE = re.compile(r"^rsk_([0-9a-f]{12})_([A-Za-z0-9_-]{20,})$")


class ApiKeyError(RingScopeError):
    """An API key could not be created, found or revoked."""


class Role(enum.StrEnum):
    INVESTIGATOR = "investigator"
    RISK_ENGINE = "risk_engine"
    ADMIN = "admin"


class Capability(enum.StrEnum):
    READ_SCORES = "read scores, clusters and builds"
    READ_ENTITIES = "read entities and neighbourhoods"
    READ_PII = "read raw personal data"
    READ_CASES = "read verdicts and case notes"
    WRITE_LABELS = "write verdicts and case notes"
    MANAGE_KEYS = "manage API keys"
    SCREEN_EVENTS = "screen events at decision time"
    RECORD_EVENTS = "record events into the graph"


ROLE_CAPABILITIES: dict[Role, frozenset[Capability]] = {
    Role.INVESTIGATOR: frozenset(
        {
            Capability.READ_SCORES,
            Capability.READ_ENTITIES,
            Capability.READ_PII,
            Capability.READ_CASES,
            Capability.WRITE_LABELS,
            Capability.SCREEN_EVENTS,
        }
    ),
    Role.RISK_ENGINE: frozenset(
        {
            Capability.READ_SCORES,
            Capability.READ_ENTITIES,
            Capability.SCREEN_EVENTS,
            Capability.RECORD_EVENTS,
        }
    ),
    Role.ADMIN: frozenset(Capability),
}


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key id, its role and its name (recorded as the author of verdicts)."""

    key_id: str
    role: Role
    name: str

    def can(self, capability: Capability) -> bool:
        return capability in ROLE_CAPABILITIES[self.role]


@dataclass(frozen=True)
class CreatedKey:
    key_id: str
    key: str  # shown once, never stored
    role: Role
    name: str


@dataclass(frozen=True)
class KeyInfo:
    key_id: str
    role: str
    name: str
    created_at: datetime | None
    revoked_at: datetime | None


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(graph: Graph, role: Role | str, name: str | None = None) -> CreatedKey:
    """Create a key for ``role`` and return it; only its hash is stored."""
    role = Role(role)
    init_schema(graph)  # idempotent: the key id's uniqueness constraint exists
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    name = name or f"{role.value}-{key_id}"
    graph.write(
        cypher.API_KEY_CREATE,
        {"id": key_id, "hash": _hash(secret), "role": role.value, "name": name},
    )
    return CreatedKey(key_id, f"{KEY_PREFIX}_{key_id}_{secret}", role, name)


def revoke_key(graph: Graph, key_id: str) -> None:
    """Revoke a key by id (idempotent). Raises ApiKeyError when no such key exists."""
    if not graph.write_records(cypher.API_KEY_REVOKE, {"id": key_id}):
        raise ApiKeyError(f"No API key with id {key_id!r}; `ringscope apikey list` shows them.")


def list_keys(graph: Graph) -> list[KeyInfo]:
    return [
        KeyInfo(r["id"], r["role"], r["name"], native(r["created_at"]), native(r["revoked_at"]))
        for r in graph.read(cypher.API_KEY_LIST)
    ]


def parse_bearer(header: str | None) -> tuple[str, str] | None:
    """``Bearer rsk_<id>_<secret>`` -> (key id, secret), or None when malformed."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    m = _KEY_RE.match(token.strip())
    return (m.group(1), m.group(2)) if m else None


class Unanswered(enum.Enum):
    """The type of :data:`UNANSWERED`."""

    UNANSWERED = "unanswered"


# What KeyVerifier.verify_cached returns when only a read of Neo4j can answer.
UNANSWERED = Unanswered.UNANSWERED


class KeyVerifier:
    """Checks presented keys against Neo4j, with a bounded cache of verified keys and a short
    negative cache of unknown key ids.

    * Verified records are kept for ``ttl`` seconds, at most ``max_entries`` of them, least
      recently used out first. The cache holds the stored hash, so a wrong secret for a cached
      key id is still refused; revocation takes effect within ``ttl`` (0 turns all caching off).
      It used to be a dict cleared whole at 10,000 entries, so a flood of random key ids evicted
      every valid key with them: unknown ids are no longer kept here at all.
    * An id that is neither cached nor in the list of unrevoked key ids (one read, made at most
      once per ``negative_ttl`` seconds, by whichever request first needs it) is refused without
      a read of its own: before, each random key id cost one Neo4j read. The price: a key created
      after the list was read is refused until the list is ``negative_ttl`` old (1 s by default).
      With more than ``max_listed`` keys the list is not kept, and unknown ids are remembered one
      by one for ``negative_ttl`` instead (as many as ``max_entries``, oldest out first).
    """

    def __init__(
        self,
        graph: Graph,
        ttl: float,
        *,
        negative_ttl: float = 1.0,
        max_entries: int = 10_000,
        max_listed: int = 100_000,
    ) -> None:
        self.graph = graph
        self.ttl = ttl
        # A negative answer never outlives a positive one: ttl 0 turns everything off.
        self.negative_ttl = min(negative_ttl, ttl)
        self.max_entries = max_entries
        self.max_listed = max_listed
        self._known: OrderedDict[str, tuple[float, str, Principal]] = OrderedDict()
        self._unknown: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()
        # The unrevoked key ids and when they were read; None: not read yet, or too many.
        self._listed: frozenset[str] | None = None
        self._listed_at = -math.inf
        self._list_lock = threading.Lock()  # one list read at a time; the others use its answer

    def verify(self, header: str | None) -> Principal | None:
        """The key's principal, or None; may read Neo4j (call it from a worker thread)."""
        parsed = parse_bearer(header)
        if parsed is None:
            return None
        key_id, secret = parsed
        return _checked(self._record(key_id), secret)

    def verify_cached(self, header: str | None) -> Principal | Unanswered | None:
        """What :meth:`verify` would answer, from the caches alone (no read, so the server's
        event loop may call it), or :data:`UNANSWERED` when only a read can tell. Nearly every
        request of a busy client is answered here: sending each to a worker thread and back
        cost more than the check (issue #21, a neighbourhood's thread hops)."""
        parsed = parse_bearer(header)
        if parsed is None:
            return None
        key_id, secret = parsed
        found, record = self._cached(key_id, time.monotonic())
        return _checked(record, secret) if found else UNANSWERED

    def _cached(self, key_id: str, now: float) -> tuple[bool, tuple[str, Principal] | None]:
        """(True, the record or None) when the caches or a fresh list of unrevoked key ids
        answer for ``key_id``; (False, None) when only a read can."""
        if self.ttl <= 0:
            return False, None
        with self._lock:
            hit = self._known.get(key_id)
            if hit is not None and now - hit[0] <= self.ttl:
                self._known.move_to_end(key_id)
                return True, (hit[1], hit[2])
            if hit is None:
                seen = self._unknown.get(key_id)
                if seen is not None and now - seen <= self.negative_ttl:
                    return True, None
        listed = self._listed
        if hit is None and listed is not None and now - self._listed_at <= self.negative_ttl:
            return key_id not in listed, None
        return False, None

    def _record(self, key_id: str) -> tuple[str, Principal] | None:
        """The stored hash and the principal of an unrevoked key, or None."""
        if self.ttl <= 0:
            return self._read(key_id)
        now = time.monotonic()
        found, cached = self._cached(key_id, now)
        if found:
            return cached
        hit = self._known.get(key_id)
        if hit is None and not self._may_exist(key_id):
            return None
        record = self._read(key_id)
        with self._lock:
            if record is None:
                self._known.pop(key_id, None)
                _put(self._unknown, key_id, now, self.max_entries)
            else:
                self._unknown.pop(key_id, None)
                _put(self._known, key_id, (now, *record), self.max_entries)
        return record

    def _may_exist(self, key_id: str) -> bool:
        """False when a list of unrevoked key ids at most ``negative_ttl`` old lacks the id."""
        if self.negative_ttl <= 0:
            return True
        with self._list_lock:
            if time.monotonic() - self._listed_at > self.negative_ttl:
                recs = self.graph.read(cypher.API_KEY_IDS, {"limit": self.max_listed + 1})
                ids = [str(i) for i in recs[0]["ids"]] if recs else []
                self._listed = frozenset(ids) if len(ids) <= self.max_listed else None
                self._listed_at = time.monotonic()
            listed = self._listed
        return listed is None or key_id in listed

    def _read(self, key_id: str) -> tuple[str, Principal] | None:
        recs = self.graph.read(cypher.API_KEY_GET, {"id": key_id})
        if not recs or recs[0]["revoked"]:
            return None
        r = recs[0]
        return str(r["hash"]), Principal(key_id, Role(r["role"]), str(r["name"]))


def _checked(record: tuple[str, Principal] | None, secret: str) -> Principal | None:
    """The record's principal when ``secret`` hashes to its stored hash, else None."""
    if record is None:
        return None
    stored, principal = record
    return principal if hmac.compare_digest(stored, _hash(secret)) else None


def _put(cache: OrderedDict[str, V], key: str, value: V, limit: int) -> None:
    """Insert as the most recently used entry; drop the least recently used beyond ``limit``."""
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > limit:
        cache.popitem(last=False)
