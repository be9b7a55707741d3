"""Per-request state: the caller, the audit buffer, PII masking and the DataLoaders.

A new :class:`RequestContext` (with new DataLoaders) is made for every request, so nothing
cached in a loader outlives the request or leaks between callers.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import hmac
import logging
import os
import re
import secrets
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ParamSpec, TypeVar

from strawberry.dataloader import DataLoader

from ringscope.api import service
from ringscope.api.audit import AuditBuffer
from ringscope.api.auth import Capability, Principal
from ringscope.errors import RingScopeError
from ringscope.graph.connection import Graph
from ringscope.kinds import BY_NAME, KINDS
from ringscope.models.builds import ClusterInfo, RingSnapshot, ScoreCache
from ringscope.models.store import ModelStore
from ringscope.settings import Settings

log = logging.getLogger("ringscope.api")

P = ParamSpec("P")
T = TypeVar("T")
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Masker:
    """Masks personal data (phone, email, id_document, bank_card values) for roles without PII.

    A masked value shows its last two characters; its node key is an HMAC of the value under a
    persistent secret (:func:`load_mask_secret`), so structure stays linkable within a response,
    across responses, restarts and replicas sharing the secret, without revealing the value.
    """

    def __init__(self, secret: bytes) -> None:
        self.secret = secret

    def needs_mask(self, kind: str, principal: Principal) -> bool:
        return BY_NAME[kind].pii and not principal.can(Capability.READ_PII)

    def display(self, kind: str, value: str, principal: Principal) -> tuple[str, bool]:
        if not self.needs_mask(kind, principal):
            return value, False
        return "*" * max(3, len(value) - 2) + value[-2:], True

    def reasons(self, texts: Sequence[str], principal: Principal) -> list[str]:
        """A cluster's reasons with the personal values they quote masked, for roles without
        PII. The detector quotes identifiers in two forms (models/clusters.py): "<n> <kind
        words> (<v1>, <v2>[ and k more])" and "<kind word> <v> holds the group together", with
        the words from the kinds table, so the values are found by those forms and masked as
        :meth:`display` masks them anywhere else."""
        if principal.can(Capability.READ_PII):
            return list(texts)

        def masked(kind: str) -> Callable[[re.Match[str]], str]:
            def one(m: re.Match[str]) -> str:
                inner, more = m.group(2), ""
                cut = _MORE.search(inner)
                if cut is not None:
                    inner, more = inner[: cut.start()], inner[cut.start() :]
                values = [self.display(kind, v, principal)[0] for v in inner.split(", ")]
                return f"{m.group(1)}({', '.join(values)}{more})"

            return one

        def masked_one(kind: str) -> Callable[[re.Match[str]], str]:
            return lambda m: m.group(1) + self.display(kind, m.group(2), principal)[0]

        out = []
        for text in texts:
            for kind, listed, named in _QUOTED:
                text = named.sub(masked_one(kind), listed.sub(masked(kind), text))
            out.append(text)
        return out

    def key(self, kind: str, value: str, principal: Principal) -> str:
        if not self.needs_mask(kind, principal):
            return f"{kind}:{value}"
        digest = hmac.new(self.secret, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()
        return f"{kind}:~{digest[:16]}"


# For each personal kind, from the kinds table: "<n> <kind words> (" ... ")", and
# "<kind word> <value> holds the group together".
_QUOTED = [
    (
        k.name,
        re.compile(rf"(\b\d+ (?:{'|'.join(map(re.escape, k.words))}) )\(([^()]*)\)"),
        re.compile(rf"(\b{re.escape(k.words[0])} )(\S+)(?= holds the group together)"),
    )
    for k in KINDS
    if k.pii and k.words[0]
]
_MORE = re.compile(r" and \d+ more$")

MASK_SECRET_MIN_CHARS = 16


class MaskSecretError(RingScopeError):
    """The masking secret is unusable (too short, or its file is damaged)."""


def mask_secret_path(settings: Settings) -> Path:
    return settings.data_dir / "api" / "mask_secret"


def load_mask_secret(settings: Settings) -> bytes:
    """The HMAC key of masked PII: ``api_mask_secret``, else ``<data_dir>/api/mask_secret``.

    The file is generated once (64 hex characters, mode 0600) and reused, so masked tokens keep
    their value across restarts, and across replicas that share the data dir or the setting. The
    file's text and the setting are used the same way, so copying the file's content into
    ``RINGSCOPE_API_MASK_SECRET`` gives the same tokens. A damaged file is an error, never
    silently replaced: that would change every token clients may have stored.
    """
    if settings.api_mask_secret is not None:
        return _checked(settings.api_mask_secret.get_secret_value(), "RINGSCOPE_API_MASK_SECRET")
    path = mask_secret_path(settings)
    if not path.exists():
        _create_secret_file(path)
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        log.warning("%s is readable by others (mode %o); chmod 600 it.", path, mode)
    return _checked(path.read_text().strip(), str(path))


def _checked(value: str, where: str) -> bytes:
    if len(value) < MASK_SECRET_MIN_CHARS:
        raise MaskSecretError(
            f"The PII masking secret in {where} has {len(value)} characters; it needs at least "
            f"{MASK_SECRET_MIN_CHARS}. Set a longer one (or delete a damaged file to generate "
            "one, which changes every masked token)."
        )
    return value.encode()


def _create_secret_file(path: Path) -> None:
    """Write a new secret atomically: a temporary file, linked into place unless one exists.

    Two replicas starting together on a shared data dir both try; ``link`` lets exactly one win
    and the other reads the winner's file, never a half-written one.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            os.write(fd, (secrets.token_hex(32) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        with contextlib.suppress(FileExistsError):  # another process won: use its secret
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


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
    clusters: DataLoader[tuple[str, str, str], list[ClusterInfo]]  # (build id, kind, id)
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
    models: ModelStore | None = None  # the app's; None where no model is served
    scores: ScoreCache | None = None  # the app's cache of complete builds' score chunks
    loaders: Loaders = field(init=False)
    _build: asyncio.Future[str | None] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        g = self.graph

        def risk(keys: list[tuple[str, str]]) -> dict[tuple[str, str], float | None]:
            by_build: dict[str, list[str]] = defaultdict(list)
            for bid, aid in keys:
                by_build[bid].append(aid)
            out: dict[tuple[str, str], float | None] = {}
            for bid, ids in by_build.items():
                for aid, score in service.account_risk(g, bid, ids, self.scores).items():
                    out[(bid, aid)] = score
            return out

        def clusters(
            keys: list[tuple[str, str, str]],
        ) -> dict[tuple[str, str, str], list[ClusterInfo]]:
            # By the build the field names: the request's (one read of the current build per
            # request) or the one its entity was reached through, as ``risk`` above. Reading
            # the current build here again could answer from a newer build than the rest.
            by_build: dict[str, list[tuple[str, str]]] = defaultdict(list)
            for bid, kind, eid in keys:
                by_build[bid].append((kind, eid))
            out: dict[tuple[str, str, str], list[ClusterInfo]] = {}
            for bid, wanted in by_build.items():
                for (kind, eid), found in service.entity_clusters(g, wanted, bid).items():
                    out[(bid, kind, eid)] = found
            return out

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

    def build_known(self) -> bool:
        """Whether this request has read (or is reading) its current build already."""
        return self._build is not None

    def build_is(self, build_id: str) -> None:
        """The current build as a field read it with its own data (one transaction): the
        request's other fields then use the same build."""
        if self._build is None:
            done: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
            done.set_result(build_id)
            self._build = done

    def returned(self, kind: str, entity_id: str, field_name: str) -> None:
        self.audit.add(kind, entity_id, "returned", field_name)

    def returned_many(self, kind: str, ids: Sequence[str], field_name: str) -> None:
        for i in ids:
            self.audit.add(kind, i, "returned", field_name)

    def audit_denied(self, kind: str, entity_id: str, field_name: str) -> None:
        self.audit.add(kind, entity_id, "denied", field_name)

    def audit_not_found(self, kind: str, entity_id: str, field_name: str) -> None:
        self.audit.add(kind, entity_id, "not_found", field_name)
