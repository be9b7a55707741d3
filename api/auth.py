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
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime

from ringscope.errors import RingScopeError
from ringscope.graph import cypher
from ringscope.graph.connection import Graph
from ringscope.graph.schema import init_schema
from ringscope.graph.values import native

KEY_PREFIX = "rsk"
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


ROLE_CAPABILITIES: dict[Role, frozenset[Capability]] = {
    Role.INVESTIGATOR: frozenset(
        {
            Capability.READ_SCORES,
            Capability.READ_ENTITIES,
            Capability.READ_PII,
            Capability.READ_CASES,
            Capability.WRITE_LABELS,
        }
    ),
    Role.RISK_ENGINE: frozenset({Capability.READ_SCORES, Capability.READ_ENTITIES}),
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


class KeyVerifier:
    """Checks presented keys against Neo4j, caching verified records for ``ttl`` seconds.

    The cache holds the stored hash, so a wrong secret for a cached key id is still refused;
    revocation takes effect within ``ttl`` (0 disables the cache).
    """

    def __init__(self, graph: Graph, ttl: float) -> None:
        self.graph = graph
        self.ttl = ttl
        self._cache: dict[str, tuple[float, str, Principal | None]] = {}
        self._lock = threading.Lock()

    def verify(self, header: str | None) -> Principal | None:
        parsed = parse_bearer(header)
        if parsed is None:
            return None
        key_id, secret = parsed
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key_id)
        if hit is None or now - hit[0] > self.ttl:
            recs = self.graph.read(cypher.API_KEY_GET, {"id": key_id})
            if not recs or recs[0]["revoked"]:
                stored, principal = "", None
            else:
                r = recs[0]
                stored = str(r["hash"])
                principal = Principal(key_id, Role(r["role"]), str(r["name"]))
            hit = (now, stored, principal)
            if self.ttl > 0:
                with self._lock:
                    if len(self._cache) > 10_000:
                        self._cache.clear()
                    self._cache[key_id] = hit
        _, stored, principal = hit
        if principal is None or not hmac.compare_digest(stored, _hash(secret)):
            return None
        return principal
