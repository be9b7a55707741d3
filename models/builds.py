"""Versioned write-back of ring-detection results into Neo4j, with stable ring ids.

Every detection run is written as a **build**: a ``(:Build)`` node, its ``(:Cluster)`` nodes with
``MEMBER_OF`` memberships, and the accounts' risk scores as ``(:ScoreChunk)`` runs. A build is
written while it is ``running`` and invisible to readers; one transaction then marks it
``complete`` and moves the single ``(:CurrentBuild)`` pointer to it. Readers resolve the pointer
first and read that one build only, so nobody ever sees a half-written build. ``docs/builds.md``
explains the model, the ring-id matching and the costs.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import math
import os
import secrets
import socket
import threading
import time
from bisect import bisect_left, bisect_right
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, LiteralString, Protocol, TypeVar

import neo4j
import numpy as np
from scipy import sparse

from ringscope.errors import RingScopeError
from ringscope.graph import cypher
from ringscope.graph.connection import Graph
from ringscope.graph.schema import init_schema

T = TypeVar("T")

DEFAULT_BATCH_ROWS = 10_000  # memberships (or accounts) per UNWIND transaction
SCORE_CHUNK = 5_000  # accounts per ScoreChunk node
SCORE_BATCH = 50_000  # accounts per score-writing transaction
DELETE_BATCH = 10_000
HEARTBEAT_EVERY_S = 20.0
MATCH_JACCARD = 0.5  # a new cluster inherits a ring id at this Jaccard overlap ...
MATCH_KEPT = 0.5  # ... or when it keeps at least this share of the old ring's members


# --- errors -----------------------------------------------------------------------------------


class BuildError(RingScopeError):
    """A build could not be written or switched to."""


class BuildInProgressError(BuildError):
    """Another build is being written right now."""


class BuildNotFoundError(RingScopeError):
    """The build asked for does not exist (any more) or is not complete."""


class InvalidCursorError(RingScopeError):
    """A pagination cursor is malformed or belongs to another build."""


# --- what the detector hands over (models.detect.Cluster / Detection satisfy these) -------------


class DetectedCluster(Protocol):
    @property
    def members(self) -> Sequence[str]: ...
    @property
    def score(self) -> float: ...
    @property
    def reasons(self) -> Sequence[str]: ...
    @property
    def features(self) -> Mapping[str, float]: ...
    @property
    def key_identifiers(self) -> Sequence[tuple[str, str, int]]: ...
    @property
    def density(self) -> float: ...


class DetectionResult(Protocol):
    @property
    def clusters(self) -> Sequence[DetectedCluster]: ...
    @property
    def account_scores(self) -> Mapping[str, float]: ...
    @property
    def stage_seconds(self) -> Mapping[str, float]: ...


# --- what readers get -------------------------------------------------------------------------


@dataclass(frozen=True)
class BuildInfo:
    id: str
    status: str  # running | complete | failed | deleting
    started_at: datetime | None
    finished_at: datetime | None
    model_version: str | None
    previous_build: str | None
    current: bool
    clusters: int = 0
    memberships: int = 0
    members_missing: int = 0  # cluster members with no Account node (not linked)
    accounts_scored: int = 0
    rings_new: int = 0
    rings_kept: int = 0
    write_seconds: float = 0.0
    metrics: dict[str, Any] = field(default_factory=dict)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        for k in ("started_at", "finished_at"):
            d[k] = d[k].isoformat() if d[k] is not None else None
        return d


@dataclass(frozen=True)
class ClusterInfo:
    id: str  # <build id>/<ring id>
    ring_id: str
    build_id: str
    score: float
    size: int
    density: float
    reasons: tuple[str, ...]
    features: dict[str, float]
    key_identifiers: tuple[tuple[str, str, int], ...]
    members: tuple[str, ...]
    first_seen_build: str
    first_seen_at: datetime | None


@dataclass(frozen=True)
class ClusterPage:
    build_id: str
    items: tuple[ClusterInfo, ...]
    total: int  # clusters in the build with score >= min_score
    end_cursor: str | None  # pass as ``after`` for the next page
    has_next: bool


@dataclass(frozen=True)
class RingSnapshot:
    build_id: str
    finished_at: datetime | None
    size: int
    score: float


# --- helpers ----------------------------------------------------------------------------------


def _dead_here(host: str | None, pid: int | None) -> bool:
    """A running build whose writer was on this machine and whose process is gone is stale
    now, not after ``stale_after`` seconds (a killed rebuild is retried at once)."""
    if host != socket.gethostname() or pid is None:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def new_build_id(now: datetime | None = None) -> str:
    """``b-<UTC time>-<4 hex>``: sorts by start time, unique enough for humans to quote."""
    now = now or datetime.now(UTC)
    return f"b-{now.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(2)}"


def _native(value: Any) -> Any:
    to_native = getattr(value, "to_native", None)
    return to_native() if callable(to_native) else value


def _build_info(props: Mapping[str, Any], current: bool) -> BuildInfo:
    def _json(key: str) -> dict[str, Any]:
        raw = props.get(key)
        return dict(json.loads(raw)) if raw else {}

    return BuildInfo(
        id=props["id"],
        status=props.get("status", "unknown"),
        started_at=_native(props.get("started_at")),
        finished_at=_native(props.get("finished_at")),
        model_version=props.get("model_version"),
        previous_build=props.get("previous_build"),
        current=current,
        clusters=int(props.get("clusters", 0)),
        memberships=int(props.get("memberships", 0)),
        members_missing=int(props.get("members_missing", 0)),
        accounts_scored=int(props.get("accounts_scored", 0)),
        rings_new=int(props.get("rings_new", 0)),
        rings_kept=int(props.get("rings_kept", 0)),
        write_seconds=float(props.get("write_seconds", 0.0)),
        metrics=_json("metrics"),
        stage_seconds=_json("stage_seconds"),
        error=props.get("error"),
    )


def _cluster_info(props: Mapping[str, Any]) -> ClusterInfo:
    keys = json.loads(props.get("key_identifiers") or "[]")
    return ClusterInfo(
        id=props["id"],
        ring_id=props["ring_id"],
        build_id=props["build_id"],
        score=float(props["score"]),
        size=int(props["size"]),
        density=float(props.get("density") or 0.0),
        reasons=tuple(props.get("reasons") or ()),
        features={k: float(v) for k, v in json.loads(props.get("features") or "{}").items()},
        key_identifiers=tuple((str(k), str(i), int(n)) for k, i, n in keys),
        members=tuple(props.get("members") or ()),
        first_seen_build=props.get("first_seen_build") or props["build_id"],
        first_seen_at=_native(props.get("first_seen_at")),
    )


def _session(graph: Graph) -> neo4j.Session:
    return graph.driver.session(database=graph.database)


def _tx_write(graph: Graph, work: Callable[[neo4j.ManagedTransaction], T]) -> T:
    """Run ``work`` in a managed (retried) write transaction with the configured timeout."""
    with _session(graph) as session:
        return session.execute_write(neo4j.unit_of_work(timeout=graph.query_timeout)(work))


def _tx_read(graph: Graph, work: Callable[[neo4j.ManagedTransaction], T]) -> T:
    with _session(graph) as session:
        return session.execute_read(neo4j.unit_of_work(timeout=graph.query_timeout)(work))


def _write(graph: Graph, text: LiteralString, params: Mapping[str, Any]) -> list[Any]:
    """One managed write transaction; returns the records' first values."""

    def work(tx: neo4j.ManagedTransaction) -> list[Any]:
        return [r[0] for r in tx.run(text, dict(params))]

    return _tx_write(graph, work)


def _read_build(graph: Graph, build_id: str, work: Callable[[neo4j.ManagedTransaction], T]) -> T:
    """Run ``work`` in one read transaction, then check the build is still complete.

    A build is marked ``deleting`` before any of it is deleted, so a ``complete`` status read
    *after* the data means every record read was from the intact build.
    """

    def tx_work(tx: neo4j.ManagedTransaction) -> tuple[T, str | None]:
        result = work(tx)
        rec = tx.run(cypher.BUILD_STATUS, {"build_id": build_id}).single()
        return result, (rec["status"] if rec else None)

    result, status = _tx_read(graph, tx_work)
    if status != "complete":
        raise BuildNotFoundError(
            f"Build {build_id} is not available (status: {status or 'deleted'}); "
            "read the current build instead (`current_build`)."
        )
    return result


def _batches(rows: Iterable[T], weight: Callable[[T], int], limit: int) -> Iterator[list[T]]:
    batch: list[T] = []
    load = 0
    for row in rows:
        w = max(1, weight(row))
        if batch and load + w > limit:
            yield batch
            batch, load = [], 0
        batch.append(row)
        load += w
    if batch:
        yield batch


# --- stable ring ids --------------------------------------------------------------------------


@dataclass(frozen=True)
class PreviousRing:
    ring_id: str
    members: Sequence[str]
    first_seen_build: str
    first_seen_at: datetime | None


def _incidence(
    groups: Sequence[Sequence[str]], index: dict[str, int]
) -> Any:  # a scipy.sparse CSR matrix
    sizes = np.fromiter((len(g) for g in groups), dtype=np.int64, count=len(groups))
    rows = np.repeat(np.arange(len(groups), dtype=np.int64), sizes)
    cols = np.fromiter(
        (index.setdefault(m, len(index)) for g in groups for m in g),
        dtype=np.int64,
        count=int(sizes.sum()),
    )
    m = sparse.csr_matrix(
        (np.ones(len(rows), dtype=np.int32), (rows, cols)), shape=(len(groups), max(1, len(index)))
    )
    m.data[:] = 1  # duplicates within a group were summed; count each member once
    return m


def overlaps(
    left: Sequence[Sequence[str]], right: Sequence[Sequence[str]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every (left, right) pair of groups sharing a member: indices, shared count, sizes.

    Returns ``(li, ri, inter, left_sizes, right_sizes)``; one sparse product, no Python loop over
    pairs. Also used by the evaluation to compare clusters with the ground truth.
    """
    index: dict[str, int] = {}
    a = _incidence(left, index)
    b = _incidence(right, index)
    n = max(a.shape[1], b.shape[1])
    a.resize((a.shape[0], n))
    b.resize((b.shape[0], n))
    prod = (a @ b.T).tocoo()
    ls = np.asarray(a.sum(axis=1)).ravel().astype(np.int64)
    rs = np.asarray(b.sum(axis=1)).ravel().astype(np.int64)
    return (
        prod.row.astype(np.int64),
        prod.col.astype(np.int64),
        prod.data.astype(np.int64),
        ls,
        rs,
    )


def match_rings(new: Sequence[Sequence[str]], old: Sequence[Sequence[str]]) -> list[int | None]:
    """For each new cluster, the index of the old ring it continues, or None.

    A pair is eligible when the Jaccard overlap is >= 0.5 or the new cluster kept at least half of
    the old ring's members. Pairs are taken greedily, largest shared-member count first (then
    higher Jaccard, then lower indices), each old ring and each new cluster at most once.
    """
    result: list[int | None] = [None] * len(new)
    if not new or not old:
        return result
    ni, oi, inter, ns, os_ = overlaps(new, old)
    union = ns[ni] + os_[oi] - inter
    jac = inter / np.maximum(union, 1)
    ok = (jac >= MATCH_JACCARD) | (inter >= MATCH_KEPT * os_[oi])
    ni, oi, inter, jac = ni[ok], oi[ok], inter[ok], jac[ok]
    order = np.lexsort((oi, ni, -jac, -inter))
    old_taken = np.zeros(len(old), dtype=bool)
    for k in order.tolist():
        n, o = int(ni[k]), int(oi[k])
        if result[n] is None and not old_taken[o]:
            result[n] = o
            old_taken[o] = True
    return result


def mint_ring_id(build_id: str, smallest_member: str, attempt: int = 0) -> str:
    """``R-<12 hex>``, deterministic from the build and the cluster's smallest member."""
    salt = f"{build_id}\x00{smallest_member}\x00{attempt}".encode()
    return "R-" + hashlib.sha256(salt).hexdigest()[:12]


# --- writing ----------------------------------------------------------------------------------


class BuildWriter:
    """Writes one build step by step: ``begin``, ``write``, ``finish`` (or ``fail``).

    :func:`write_build` runs all three; the steps are public so that a caller (or a test) can
    stream a build or stop half-way, exactly as a killed process would.
    """

    def __init__(
        self,
        graph: Graph,
        *,
        model_version: str | None = None,
        batch_rows: int = DEFAULT_BATCH_ROWS,
        stale_after: float = 600.0,
    ) -> None:
        self.graph = graph
        self.model_version = model_version
        self.batch_rows = batch_rows
        self.stale_after = stale_after
        self.build_id: str | None = None
        self.previous_build: str | None = None
        self.counts: dict[str, int] = {}
        self.stage_seconds: dict[str, float] = {}
        self._t0 = 0.0
        self._beat = 0.0

    # -- begin

    def begin(self) -> str:
        """Take the build lock, clean up failed builds and create this one (``running``).

        A ``running`` build whose heartbeat is older than ``stale_after`` seconds is taken for a
        killed writer: it is marked ``failed`` and deleted. A fresher one means another writer is
        busy, and :class:`BuildInProgressError` is raised.
        """
        self._t0 = time.monotonic()
        init_schema(self.graph)  # idempotent: the build constraints and indexes exist
        build_id = new_build_id()

        def work(tx: neo4j.ManagedTransaction) -> tuple[str | None, list[str]]:
            tx.run(cypher.BUILD_LOCK).consume()
            running = list(tx.run(cypher.BUILD_RUNNING))
            busy = [
                r["id"]
                for r in running
                if r["idle_s"] < self.stale_after and not _dead_here(r["host"], r["pid"])
            ]
            if busy:
                raise BuildInProgressError(
                    f"Build {busy[0]} is being written by another process. Wait for it, or if "
                    f"that process died, retry after {self.stale_after:.0f}s without a heartbeat."
                )
            stale = [r["id"] for r in running]
            if stale:
                tx.run(
                    cypher.BUILD_MARK_FAILED,
                    {"ids": stale, "error": "abandoned: no heartbeat"},
                ).consume()
            rec = tx.run(
                cypher.BUILD_CREATE,
                {
                    "build_id": build_id,
                    "model_version": self.model_version,
                    "host": socket.gethostname(),
                    "pid": os.getpid(),
                },
            ).single()
            return (rec["previous_build"] if rec else None), stale

        self.previous_build, _ = _tx_write(self.graph, work)
        self.build_id = build_id
        self._beat = time.monotonic()
        for info in list_builds(self.graph):
            if info.status in ("failed", "deleting"):
                delete_build(self.graph, info.id)
        self.stage_seconds["begin"] = time.monotonic() - self._t0
        return build_id

    def _heartbeat(self, force: bool = False) -> None:
        if not force and time.monotonic() - self._beat < HEARTBEAT_EVERY_S:
            return
        alive = _write(self.graph, cypher.BUILD_HEARTBEAT, {"build_id": self._id})
        if not alive:
            raise BuildError(
                f"Build {self._id} is no longer running (marked failed by another writer?)."
            )
        self._beat = time.monotonic()

    @property
    def _id(self) -> str:
        if self.build_id is None:
            raise BuildError("BuildWriter.begin() was not called.")
        return self.build_id

    # -- write

    def previous_rings(self) -> list[PreviousRing]:
        """The previous complete build's rings with their members, in one streamed read."""
        if self.previous_build is None:
            return []

        def work(tx: neo4j.ManagedTransaction) -> list[PreviousRing]:
            res = tx.run(cypher.BUILD_MEMBERSHIPS, {"build_id": self.previous_build})
            return [
                PreviousRing(
                    r["ring_id"],
                    r["members"] or [],
                    r["first_seen_build"],
                    _native(r["first_seen_at"]),
                )
                for r in res
            ]

        return _tx_read(self.graph, work)

    def assign_ring_ids(
        self, clusters: Sequence[DetectedCluster]
    ) -> list[tuple[str, str, datetime | None]]:
        """(ring id, first_seen_build, first_seen_at) per cluster: inherited or newly minted."""
        t = time.monotonic()
        prev = self.previous_rings()
        members = [tuple(c.members) for c in clusters]
        matched = match_rings(members, [p.members for p in prev])
        out: list[tuple[str, str, datetime | None]] = []
        used: set[str] = set()
        minted: list[int] = []
        for k, m in enumerate(matched):
            if m is None:
                out.append(("", self._id, None))
                minted.append(k)
            else:
                p = prev[m]
                out.append(
                    (p.ring_id, p.first_seen_build or self.previous_build or "", p.first_seen_at)
                )
                used.add(p.ring_id)
        # Minted ids: deterministic, unique in this build and never reused from older builds.
        attempt = dict.fromkeys(minted, 0)
        pending = minted
        while pending:
            proposal: dict[int, str] = {}
            for k in pending:
                smallest = min(members[k]) if members[k] else f"#{k}"
                rid = mint_ring_id(self._id, smallest, attempt[k])
                while rid in used:
                    attempt[k] += 1
                    rid = mint_ring_id(self._id, smallest, attempt[k])
                proposal[k] = rid
                used.add(rid)
            taken = {
                r[0]
                for r in self.graph.read(
                    cypher.BUILD_RING_IDS_TAKEN, {"ring_ids": list(proposal.values())}
                )
            }
            pending = []
            for k, rid in proposal.items():
                if rid in taken:
                    attempt[k] += 1
                    pending.append(k)
                else:
                    out[k] = (rid, self._id, None)
        self.counts["rings_new"] = len(minted)
        self.counts["rings_kept"] = len(clusters) - len(minted)
        self.stage_seconds["ring_ids"] = time.monotonic() - t
        return out

    def write(
        self, detection: DetectionResult, model_scores: Mapping[str, float] | None = None
    ) -> None:
        """Write the detection's clusters, memberships and account scores under this build."""
        self.write_clusters(detection.clusters, detection.account_scores)
        self.write_scores(detection.account_scores, model_scores)
        self.stage_seconds.update(
            {f"detect_{k}": float(v) for k, v in detection.stage_seconds.items()}
        )

    def write_clusters(
        self, clusters: Sequence[DetectedCluster], account_scores: Mapping[str, float]
    ) -> None:
        ids = self.assign_ring_ids(clusters)
        t = time.monotonic()
        rows: list[dict[str, Any]] = []
        for c, (rid, fsb, fsa) in zip(clusters, ids, strict=True):
            members = list(dict.fromkeys(str(m) for m in c.members))
            scores = [account_scores.get(m) for m in members]
            rows.append(
                {
                    "id": f"{self._id}/{rid}",
                    "ring_id": rid,
                    "score": float(c.score),
                    "size": len(members),
                    "density": float(c.density),
                    "reasons": [str(r) for r in c.reasons],
                    "features": json.dumps(
                        {str(k): float(v) for k, v in c.features.items()}, sort_keys=True
                    ),
                    "key_identifiers": json.dumps(
                        [[str(k), str(i), int(n)] for k, i, n in c.key_identifiers]
                    ),
                    "members": members,
                    "member_scores": [None if s is None else float(s) for s in scores],
                    "first_seen_build": fsb,
                    "first_seen_at": fsa,
                }
            )
        linked = 0
        expected = 0
        for batch in _batches(rows, lambda r: len(r["members"]) + 1, self.batch_rows):
            got = _write(
                self.graph, cypher.BUILD_WRITE_CLUSTERS, {"build_id": self._id, "rows": batch}
            )
            linked += int(got[0]) if got else 0
            expected += sum(len(r["members"]) for r in batch)
            self._heartbeat()
        self.counts["clusters"] = self.counts.get("clusters", 0) + len(rows)
        self.counts["memberships"] = self.counts.get("memberships", 0) + linked
        self.counts["members_missing"] = self.counts.get("members_missing", 0) + expected - linked
        self.stage_seconds["write_clusters"] = time.monotonic() - t

    def write_scores(
        self,
        account_scores: Mapping[str, float],
        model_scores: Mapping[str, float] | None = None,
    ) -> None:
        """Account risk (and, when a learned model ran, its own probability) in sorted chunks."""
        t = time.monotonic()
        ids = sorted(account_scores)
        rows: list[dict[str, Any]] = []
        for n, lo in enumerate(range(0, len(ids), SCORE_CHUNK)):
            part = ids[lo : lo + SCORE_CHUNK]
            rows.append(
                {
                    "chunk": n,
                    "lo": part[0],
                    "hi": part[-1],
                    "accounts": part,
                    "scores": [float(account_scores[a]) for a in part],
                    "model_scores": None
                    if model_scores is None
                    else [float(model_scores.get(a, 0.0)) for a in part],
                }
            )
        limit = max(self.batch_rows, SCORE_BATCH)
        for batch in _batches(rows, lambda r: len(r["accounts"]), limit):
            _write(self.graph, cypher.BUILD_WRITE_SCORES, {"build_id": self._id, "rows": batch})
            self._heartbeat()
        self.counts["accounts_scored"] = len(ids)
        self.counts["score_chunks"] = len(rows)
        self.stage_seconds["write_scores"] = time.monotonic() - t

    # -- finish

    def finish(self, *, metrics: Mapping[str, Any] | None = None, keep: int = 3) -> BuildInfo:
        """Verify the build, switch readers to it in one transaction, prune old builds."""
        if keep < 1:
            raise ValueError("keep must be at least 1 (the current build)")
        build_id = self._id
        t = time.monotonic()
        self._heartbeat(force=True)
        n_clusters = self.graph.read(cypher.BUILD_COUNT_CLUSTERS, {"build_id": build_id})[0]["n"]
        n_chunks = self.graph.read(cypher.BUILD_COUNT_CHUNKS, {"build_id": build_id})[0]["n"]
        want_c, want_s = self.counts.get("clusters", 0), self.counts.get("score_chunks", 0)
        if n_clusters != want_c or n_chunks != want_s:
            raise BuildError(
                f"Build {build_id} is incomplete: {n_clusters}/{want_c} clusters and "
                f"{n_chunks}/{want_s} score chunks in the graph."
            )
        self.stage_seconds["verify"] = time.monotonic() - t
        props: dict[str, Any] = {
            k: self.counts.get(k, 0)
            for k in (
                "clusters",
                "memberships",
                "members_missing",
                "accounts_scored",
                "rings_new",
                "rings_kept",
            )
        }
        props["model_version"] = self.model_version
        props["write_seconds"] = round(time.monotonic() - self._t0, 3)
        props["metrics"] = json.dumps(dict(metrics or {}), sort_keys=True, default=str)
        props["stage_seconds"] = json.dumps(
            {k: round(v, 3) for k, v in self.stage_seconds.items()}, sort_keys=True
        )
        switched = _write(self.graph, cypher.BUILD_FINISH, {"build_id": build_id, "props": props})
        if not switched:
            raise BuildError(f"Build {build_id} was no longer running; readers were not switched.")
        t = time.monotonic()
        prune_builds(self.graph, keep=keep)
        info = get_build(self.graph, build_id)
        if info is None:
            raise BuildError(f"Build {build_id} vanished right after the switch.")
        # Pruning runs after the switch: its time is reported, not stored on the build.
        stages = {**info.stage_seconds, "prune": round(time.monotonic() - t, 3)}
        return replace(info, stage_seconds=stages, write_seconds=time.monotonic() - self._t0)

    def fail(self, error: str) -> None:
        """Mark this build failed (best effort); the next ``begin`` deletes it."""
        if self.build_id is None:
            return
        with contextlib.suppress(neo4j.exceptions.Neo4jError, neo4j.exceptions.DriverError):
            _write(
                self.graph,
                cypher.BUILD_MARK_FAILED,
                {"ids": [self.build_id], "error": error[:1000]},
            )


def write_build(
    graph: Graph,
    detection: DetectionResult,
    *,
    model_version: str | None = None,
    metrics: Mapping[str, Any] | None = None,
    keep: int = 3,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    stale_after: float = 600.0,
) -> BuildInfo:
    """Write ``detection`` as a new build and make it current; keep the last ``keep`` builds.

    Clusters inherit the ring id of the previous build's ring they continue (see
    :func:`match_rings`). On any error the build is marked ``failed`` and the readers stay on the
    previous build; the next call deletes the failed one.
    """
    if keep < 1:
        raise ValueError("keep must be at least 1 (the current build)")
    writer = BuildWriter(
        graph, model_version=model_version, batch_rows=batch_rows, stale_after=stale_after
    )
    writer.begin()
    try:
        writer.write(detection)
        return writer.finish(metrics=metrics, keep=keep)
    except BaseException as exc:
        writer.fail(f"{type(exc).__name__}: {exc}")
        raise


def _delete_loop(graph: Graph, text: LiteralString, build_id: str, limit: int) -> int:
    total = 0
    while True:
        got = _write(graph, text, {"build_id": build_id, "limit": limit})
        n = int(got[0]) if got else 0
        total += n
        if n == 0:
            return total


def delete_build(graph: Graph, build_id: str, *, batch: int = DELETE_BATCH) -> bool:
    """Delete a non-current build in batches. Returns False when it is current or absent.

    The build is first marked ``deleting`` (readers of it then fail cleanly instead of seeing a
    partial build); an interrupted delete is finished by the next ``write_build``.
    """
    if not _write(graph, cypher.BUILD_MARK_DELETING, {"build_id": build_id}):
        return False
    _delete_loop(graph, cypher.BUILD_DELETE_MEMBERSHIPS, build_id, batch)
    _delete_loop(graph, cypher.BUILD_DELETE_CLUSTERS, build_id, max(1, batch // 10))
    _delete_loop(graph, cypher.BUILD_DELETE_CHUNKS, build_id, 20)
    _write(graph, cypher.BUILD_DELETE_NODE, {"build_id": build_id})
    return True


def prune_builds(graph: Graph, *, keep: int = 3) -> list[str]:
    """Delete complete builds beyond the newest ``keep`` (never the current one)."""
    complete = [b for b in list_builds(graph) if b.status == "complete"]
    complete.sort(
        key=lambda b: (b.current, b.finished_at or datetime.min.replace(tzinfo=UTC), b.id),
        reverse=True,
    )
    deleted = []
    for info in complete[keep:]:
        if not info.current and delete_build(graph, info.id):
            deleted.append(info.id)
    return deleted


# --- reading ----------------------------------------------------------------------------------


def current_build(graph: Graph) -> BuildInfo | None:
    """The build readers see now, or None before the first build completed."""
    recs = graph.read(cypher.BUILD_CURRENT)
    return _build_info(recs[0]["build"], True) if recs else None


def current_build_id(graph: Graph) -> str | None:
    """Only the current build's id (cheaper than :func:`current_build`)."""
    recs = graph.read(cypher.BUILD_CURRENT_ID)
    return str(recs[0]["id"]) if recs else None


def get_build(graph: Graph, build_id: str) -> BuildInfo | None:
    cur = current_build_id(graph)
    recs = graph.read(cypher.BUILD_GET, {"build_id": build_id})
    if not recs:
        return None
    return _build_info(recs[0]["build"], cur == build_id)


def list_builds(graph: Graph) -> list[BuildInfo]:
    """Every stored build, newest first, including running and failed ones."""
    return [_build_info(r["build"], bool(r["current"])) for r in graph.read(cypher.BUILD_ALL)]


def _resolve(graph: Graph, build_id: str | None) -> str:
    if build_id is not None:
        return build_id
    cur = current_build_id(graph)
    if cur is None:
        raise BuildNotFoundError("No complete build yet; run the detection first.")
    return cur


def encode_cursor(build_id: str, score: float, cluster_id: str) -> str:
    raw = json.dumps([build_id, score, cluster_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, float, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        build_id, score, cluster_id = json.loads(raw)
        if not (isinstance(build_id, str) and isinstance(cluster_id, str)):
            raise ValueError("bad cursor fields")
        return build_id, float(score), cluster_id
    except (ValueError, TypeError, binascii.Error) as exc:
        raise InvalidCursorError(
            f"Invalid cursor {cursor!r}: pass back an end_cursor from a previous page."
        ) from exc


def clusters(
    graph: Graph,
    build_id: str | None = None,
    min_score: float = 0.0,
    first: int = 50,
    after: str | None = None,
) -> ClusterPage:
    """One page of a build's clusters, by score descending then id.

    Without ``build_id`` the current build is read, except when ``after`` is given: a cursor
    always keeps reading the build it came from, so a switch between pages never mixes builds.
    A cursor of a build that was deleted since raises :class:`BuildNotFoundError`; a cursor of
    another build than an explicit ``build_id`` raises :class:`InvalidCursorError`.
    """
    if first < 1:
        raise ValueError("first must be at least 1")
    after_score: float | None = None
    after_id: str | None = None
    if after is not None:
        cur_build, after_score, after_id = decode_cursor(after)
        if build_id is not None and build_id != cur_build:
            raise InvalidCursorError(
                f"The cursor belongs to build {cur_build}, not {build_id}; "
                "start again from the first page."
            )
        build_id = cur_build
    bid = _resolve(graph, build_id)
    params = {
        "build_id": bid,
        "min_score": float(min_score),
        "after_score": after_score,
        "after_id": after_id,
        "limit": first + 1,
    }

    def work(tx: neo4j.ManagedTransaction) -> tuple[list[ClusterInfo], int]:
        items = [_cluster_info(r["cluster"]) for r in tx.run(cypher.BUILD_CLUSTER_PAGE, params)]
        total = tx.run(cypher.BUILD_CLUSTER_TOTAL, params).single()
        return items, int(total["n"]) if total else 0

    items, total = _read_build(graph, bid, work)
    has_next = len(items) > first
    items = items[:first]
    end = encode_cursor(bid, items[-1].score, items[-1].id) if items else None
    return ClusterPage(bid, tuple(items), total, end, has_next)


def all_clusters(
    graph: Graph, build_id: str | None = None, min_score: float = -math.inf
) -> tuple[str, list[ClusterInfo]]:
    """Every cluster of one build (the current one by default), in one consistent read."""
    bid = _resolve(graph, build_id)
    params = {
        "build_id": bid,
        "min_score": min_score if math.isfinite(min_score) else -1e308,
        "after_score": None,
        "after_id": None,
        "limit": 2**62,
    }

    def work(tx: neo4j.ManagedTransaction) -> list[ClusterInfo]:
        res = tx.run(cypher.BUILD_CLUSTER_PAGE, params)
        return [_cluster_info(r["cluster"]) for r in res]

    return bid, _read_build(graph, bid, work)


def cluster(
    graph: Graph, cluster_or_ring_id: str, build_id: str | None = None
) -> ClusterInfo | None:
    """A cluster by its id (``<build>/<ring>``), or a ring id in ``build_id`` (default current)."""
    if "/" in cluster_or_ring_id:
        bid, _, _ = cluster_or_ring_id.partition("/")
        if build_id is not None and build_id != bid:
            return None
        text, params = cypher.BUILD_CLUSTER_BY_ID, {"cluster_id": cluster_or_ring_id}
    else:
        bid = _resolve(graph, build_id)
        text, params = (
            cypher.BUILD_CLUSTER_BY_RING,
            {"ring_id": cluster_or_ring_id, "build_id": bid},
        )
    try:
        recs = _read_build(graph, bid, lambda tx: list(tx.run(text, params)))
    except BuildNotFoundError:
        if build_id is None and "/" not in cluster_or_ring_id:
            raise  # the current build vanished under us: a real error
        return None
    return _cluster_info(recs[0]["cluster"]) if recs else None


def ring_history(graph: Graph, ring_id: str) -> list[RingSnapshot]:
    """The ring in every stored complete build, oldest first (pruned builds are gone)."""
    return [
        RingSnapshot(r["build_id"], _native(r["finished_at"]), int(r["size"]), float(r["score"]))
        for r in graph.read(cypher.BUILD_RING_HISTORY, {"ring_id": ring_id})
    ]


def _chunk_scores(
    graph: Graph, query: LiteralString, build_id: str | None
) -> tuple[str, dict[str, float]]:
    bid = _resolve(graph, build_id)

    def work(tx: neo4j.ManagedTransaction) -> dict[str, float]:
        out: dict[str, float] = {}
        for r in tx.run(query, {"build_id": bid}):
            out.update(zip(r["accounts"], r["scores"], strict=True))
        return out

    return bid, _read_build(graph, bid, work)


def account_scores(graph: Graph, build_id: str | None = None) -> tuple[str, dict[str, float]]:
    """Every account's risk score in one build (the current one by default)."""
    return _chunk_scores(graph, cypher.BUILD_SCORES, build_id)


def model_scores(graph: Graph, build_id: str | None = None) -> tuple[str, dict[str, float]]:
    """The learned model's probability per account in one build (empty when none ran)."""
    return _chunk_scores(graph, cypher.BUILD_MODEL_SCORES, build_id)


def account_score(
    graph: Graph,
    account_ids: Sequence[str],
    build_id: str | None = None,
    cache: ScoreCache | None = None,
) -> dict[str, float]:
    """Risk scores of some accounts in one build; accounts without a score are left out."""
    bid = _resolve(graph, build_id)
    ids = list(account_ids)
    return _read_build(graph, bid, lambda tx: read_scores(tx, bid, ids, cache))


def read_scores(
    tx: neo4j.ManagedTransaction,
    build_id: str,
    ids: Sequence[str],
    cache: ScoreCache | None = None,
) -> dict[str, float]:
    """Scores of ``ids`` in a build, inside a read transaction: from ``cache`` when given (a
    long-running reader's), else from the score chunks in Cypher."""
    if cache is not None:
        return cache.lookup(tx, build_id, ids)
    res = tx.run(cypher.BUILD_ACCOUNT_SCORES, {"ids": list(ids), "build_id": build_id})
    return {r["id"]: float(r["found"][0]) for r in res if r["found"]}


class ScoreCache:
    """Account scores of builds, kept a chunk at a time for a long-running reader (the API).

    A build's ``ScoreChunk``s never change once it is complete, so nothing here goes stale: a
    new build has new chunks. Reading a chunk's 5,000-entry list in Cypher costs 0.4-0.9 ms per
    looked-up account at 1M (measured); here an account costs two bisections once its chunk is
    held. At most ``max_chunks`` chunks
    are held (least recently used dropped first): 200 chunks are 1M accounts, about 100 MB.
    Chunk ranges are cached per build only when read from a complete build.
    """

    def __init__(self, max_chunks: int = 200, max_builds: int = 4) -> None:
        self.max_chunks = max_chunks
        self.max_builds = max_builds
        self._lock = threading.Lock()
        self._bounds: OrderedDict[str, tuple[list[str], list[str], list[int]]] = OrderedDict()
        self._chunks: OrderedDict[tuple[str, int], tuple[list[str], list[float]]] = OrderedDict()

    def held_chunks(self, build_id: str) -> int:
        """How many of ``build_id``'s chunks are held now (tests)."""
        with self._lock:
            return sum(1 for bid, _ in self._chunks if bid == build_id)

    def lookup(
        self, tx: neo4j.ManagedTransaction, build_id: str, ids: Sequence[str]
    ) -> dict[str, float]:
        """Scores of ``ids`` in ``build_id`` (missing ones left out), read inside ``tx``."""
        los, his, nos = self._ranges(tx, build_id)
        wanted: dict[int, list[str]] = defaultdict(list)
        for a in ids:
            k = bisect_right(los, a) - 1
            if k >= 0 and a <= his[k]:
                wanted[nos[k]].append(a)
        chunks = self._held(tx, build_id, sorted(wanted))
        out: dict[str, float] = {}
        for no, accounts in wanted.items():
            if no not in chunks:  # the build was deleted meanwhile (_read_build reports it)
                continue
            names, scores = chunks[no]
            for a in accounts:
                i = bisect_left(names, a)
                if i < len(names) and names[i] == a:
                    out[a] = scores[i]
        return out

    def _ranges(
        self, tx: neo4j.ManagedTransaction, build_id: str
    ) -> tuple[list[str], list[str], list[int]]:
        with self._lock:
            hit = self._bounds.get(build_id)
            if hit is not None:
                self._bounds.move_to_end(build_id)
                return hit
        rows = sorted(
            (r["lo"], r["hi"], r["chunk"])
            for r in tx.run(cypher.BUILD_SCORE_BOUNDS, {"build_id": build_id})
        )
        ranges = ([r[0] for r in rows], [r[1] for r in rows], [int(r[2]) for r in rows])
        status = tx.run(cypher.BUILD_STATUS, {"build_id": build_id}).single()
        if status is not None and status["status"] == "complete":
            with self._lock:
                self._bounds[build_id] = ranges
                while len(self._bounds) > self.max_builds:
                    self._bounds.popitem(last=False)
        return ranges

    def _held(
        self, tx: neo4j.ManagedTransaction, build_id: str, nos: list[int]
    ) -> dict[int, tuple[list[str], list[float]]]:
        out: dict[int, tuple[list[str], list[float]]] = {}
        missing: list[int] = []
        with self._lock:
            for no in nos:
                hit = self._chunks.get((build_id, no))
                if hit is None:
                    missing.append(no)
                else:
                    self._chunks.move_to_end((build_id, no))
                    out[no] = hit
        if missing:
            res = tx.run(cypher.BUILD_SCORE_CHUNKS, {"build_id": build_id, "chunks": missing})
            fresh = {int(r["chunk"]): (list(r["accounts"]), [float(x) for x in r["scores"]])
                     for r in res}  # fmt: skip
            out.update(fresh)
            with self._lock:
                for no, chunk in fresh.items():
                    self._chunks[(build_id, no)] = chunk
                while len(self._chunks) > self.max_chunks:
                    self._chunks.popitem(last=False)
        return out
