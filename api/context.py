"""Per-request state: the caller, the audit buffer, PII masking and the DataLoaders.

A new :class:`RequestContext` (with new DataLoaders) is made for every request, so nothing
cached in a loader outlives the request or leaks between callers.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import ParamSpec, TypeVar

from strawberry.dataloader import DataLoader

from api import service
from api.audit import AuditBuffer
from api.auth import Capability, Principal
from graph.connection import Graph
from graph.model import BY_NAME
from models.builds import ClusterInfo, RingSnapshot
from ringscope.settings import Settings

P = ParamSpec("P")
T = TypeVar("T")
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Masker:
    """Masks personal data (phone, email, id_document, bank_card values) for roles without PII.

    A masked value shows its last two characters; its node key is an HMAC of the value under a
    per-process secret, so structure stays linkable within a response without revealing it.
    """

    def __init__(self, secret: bytes) -> None:
        self.secret = secret

    def needs_mask(self, kind: str, principal: Principal) -> bool:
        return BY_NAME[kind].pii and not principal.can(Capability.READ_PII)

    def display(self, kind: str, value: str, principal: Principal) -> tuple[str, bool]:
        if not self.needs_mask(kind, principal):
            return value, False
        return "*" * max(3, len(value) - 2) + value[-2:], True

    def key(self, kind: str, value: str, principal: Principal) -> str:
        if not self.needs_mask(kind, principal):
            return f"{kind}:{value}"
        digest = hmac.new(self.secret, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()
        return f"{kind}:~{digest[:16]}"


def _loader(
    ctx: RequestContext, fetch: Callable[[list[K]], dict[K, V]], default: Callable[[], V]
) -> DataLoader[K, V]:
    async def load(keys: list[K]) -> list[V]:
        found = await ctx.run(fetch, keys)
        return [found.get(k, default()) for k in keys]

    return DataLoader(load_fn=load)


@dataclass
class Loaders:
    entity: DataLoader[tuple[str, str], service.EntityRecord | None]
    risk: DataLoader[tuple[str, str], float | None]  # (build id, account id)
    clusters: DataLoader[tuple[str, str], list[ClusterInfo]]  # current build
    account_verdicts: DataLoader[str, list[service.VerdictRecord]]
    ring_verdicts: DataLoader[str, list[service.VerdictRecord]]
    notes: DataLoader[str, list[service.NoteRecord]]
    history: DataLoader[str, list[RingSnapshot]]


@dataclass
class RequestContext:
    graph: Graph
    settings: Settings
    principal: Principal
    audit: AuditBuffer
    masker: Masker
    loaders: Loaders = field(init=False)
    _build: asyncio.Task[str | None] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        g = self.graph

        def risk(keys: list[tuple[str, str]]) -> dict[tuple[str, str], float | None]:
            by_build: dict[str, list[str]] = defaultdict(list)
            for bid, aid in keys:
                by_build[bid].append(aid)
            out: dict[tuple[str, str], float | None] = {}
            for bid, ids in by_build.items():
                for aid, score in service.account_risk(g, bid, ids).items():
                    out[(bid, aid)] = score
            return out

        def clusters(keys: list[tuple[str, str]]) -> dict[tuple[str, str], list[ClusterInfo]]:
            return service.entity_clusters(g, keys, service.current_build_id(g))

        self.loaders = Loaders(
            entity=_loader(self, lambda k: dict(service.entities(g, k)), lambda: None),
            risk=_loader(self, risk, lambda: None),
            clusters=_loader(self, clusters, list),
            account_verdicts=_loader(self, lambda k: service.verdicts(g, "account", k), list),
            ring_verdicts=_loader(self, lambda k: service.verdicts(g, "ring", k), list),
            notes=_loader(self, lambda k: service.notes(g, k), list),
            history=_loader(self, lambda k: service.ring_histories(g, k), list),
        )

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run blocking service code in the server's worker threads."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, functools.partial(fn, *args, **kwargs))

    async def current_build_id(self) -> str | None:
        """The current build, read once per request."""
        if self._build is None:
            self._build = asyncio.ensure_future(self.run(service.current_build_id, self.graph))
        return await self._build

    def returned(self, kind: str, entity_id: str, field_name: str) -> None:
        self.audit.add(kind, entity_id, "returned", field_name)

    def returned_many(self, kind: str, ids: Sequence[str], field_name: str) -> None:
        for i in ids:
            self.audit.add(kind, i, "returned", field_name)

    def audit_denied(self, kind: str, entity_id: str, field_name: str) -> None:
        self.audit.add(kind, entity_id, "denied", field_name)

    def audit_not_found(self, kind: str, entity_id: str, field_name: str) -> None:
        self.audit.add(kind, entity_id, "not_found", field_name)
