"""Writing a build: ``begin`` (the build lock), ``write`` (clusters, memberships, scores),
``finish`` (verify, switch readers in one transaction, prune) or ``fail``.

A build is written while it is ``running`` and invisible to readers; one transaction then marks
it ``complete`` and moves the ``(:CurrentBuild)`` pointer to it (``docs/builds.md``).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, TypeVar

import neo4j

from ringscope.graph import cypher
from ringscope.graph.connection import Graph
from ringscope.graph.schema import init_schema
from ringscope.graph.values import native
from ringscope.models.builds.cleanup import delete_build, prune_builds
from ringscope.models.builds.errors import BuildError, BuildInProgressError
from ringscope.models.builds.matching import PreviousRing, match_rings, mint_ring_id
from ringscope.models.builds.readers import get_build, list_builds
from ringscope.models.builds.records import BuildInfo, DetectedCluster, DetectionResult
from ringscope.models.builds.tx import write_values

T = TypeVar("T")

DEFAULT_BATCH_ROWS = 10_000  # memberships (or accounts) per UNWIND transaction
# Writers of cluster batches side by side: one transaction's work is one Neo4j core, and the
# 1M write took 18 s from one while this process waited.
DEFAULT_STREAMS = 2
SCORE_CHUNK = 5_000  # accounts per ScoreChunk node
SCORE_BATCH = 50_000  # accounts per score-writing transaction
HEARTBEAT_EVERY_S = 20.0


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


def _streams(rows: list[dict[str, Any]], n: int) -> list[list[dict[str, Any]]]:
    """``rows`` (clusters) dealt to ``n`` writers that run side by side: a cluster sharing a
    member with another goes to the first writer with every such cluster, so two writers never
    create relationships on one account and neither waits on the other's lock (at 1M: 4 accounts
    in two clusters of 49,855). The rest are dealt in turn."""
    if n <= 1 or len(rows) <= 1:
        return [rows]
    seen: dict[str, int] = {}
    for r in rows:
        for m in r["members"]:
            seen[m] = seen.get(m, 0) + 1
    out: list[list[dict[str, Any]]] = [[] for _ in range(n)]
    dealt = 0
    for r in rows:
        if any(seen[m] > 1 for m in r["members"]):
            out[0].append(r)
        else:
            out[dealt % n].append(r)
            dealt += 1
    return [s for s in out if s]


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
        flag_threshold: float | None = None,
        streams: int = DEFAULT_STREAMS,
    ) -> None:
        self.graph = graph
        # Cluster batches written by this many transactions at once (see write_clusters).
        self.streams = streams
        self.model_version = model_version
        # The detector's flag threshold, recorded on the Build node for its readers (the API's
        # flagged accounts); None records nothing and readers take the detector's default.
        self.flag_threshold = flag_threshold
        self.batch_rows = batch_rows
        self.stale_after = stale_after
        self.build_id: str | None = None
        self.previous_build: str | None = None
        self.counts: dict[str, int] = {}
        self.stage_seconds: dict[str, float] = {}
        self._t0 = 0.0
        self._previous: Future[list[PreviousRing]] | None = None
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

        self.previous_build, _ = self.graph.write_tx(work)
        self.build_id = build_id
        self._beat = time.monotonic()
        for info in list_builds(self.graph):
            if info.status in ("failed", "deleting"):
                delete_build(self.graph, info.id)
        self.stage_seconds["begin"] = time.monotonic() - self._t0
        return build_id

    def heartbeat(self, force: bool = False) -> None:
        """Mark the build alive (at most every ``HEARTBEAT_EVERY_S`` unless ``force``); raises
        :class:`BuildError` when another writer has marked it failed meanwhile."""
        if not force and time.monotonic() - self._beat < HEARTBEAT_EVERY_S:
            return
        alive = write_values(self.graph, cypher.BUILD_HEARTBEAT, {"build_id": self._id})
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

    def prefetch_previous_rings(self) -> None:
        """Start reading :meth:`previous_rings` in a background thread, for a caller with other
        work before the write (the rebuild: while it detects, Neo4j has a core to spare). The
        read took 3.4-5.4 s of the 1M write (50k rings, 250k members)."""
        if self._previous is None and self.previous_build is not None:
            pool = ThreadPoolExecutor(1, thread_name_prefix="build-previous")
            self._previous = pool.submit(self._read_previous_rings)
            pool.shutdown(wait=False)

    def previous_rings(self) -> list[PreviousRing]:
        """The previous complete build's rings with their members, in one streamed read (or the
        prefetched one's result: the previous build cannot change while this one runs, the
        build lock being held)."""
        if self._previous is not None:
            future, self._previous = self._previous, None
            return future.result()
        return self._read_previous_rings()

    def _read_previous_rings(self) -> list[PreviousRing]:
        if self.previous_build is None:
            return []

        def work(tx: neo4j.ManagedTransaction) -> list[PreviousRing]:
            res = tx.run(cypher.BUILD_MEMBERSHIPS, {"build_id": self.previous_build})
            return [
                PreviousRing(
                    r["ring_id"],
                    r["members"] or [],
                    r["first_seen_build"],
                    native(r["first_seen_at"]),
                )
                for r in res
            ]

        return self.graph.read_tx(work)

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
        """Write the detection's clusters, memberships and account scores under this build.

        The score chunks are written from a second thread while the clusters are: the two touch
        no common node but the build (read, not locked), so Neo4j runs the two transactions'
        work on two cores while this process builds the next batch's parameters."""
        with ThreadPoolExecutor(1, thread_name_prefix="build-scores") as pool:
            scores = pool.submit(self.write_scores, detection.account_scores, model_scores)
            self.write_clusters(detection.clusters, detection.account_scores)
            scores.result()
        self.stage_seconds.update(
            {f"detect_{k}": float(v) for k, v in detection.stage_seconds.items()}
        )

    def write_clusters(
        self, clusters: Sequence[DetectedCluster], account_scores: Mapping[str, float]
    ) -> None:
        """The clusters and their memberships, in batches of about ``batch_rows`` memberships,
        by ``streams`` transactions side by side (:func:`_streams`)."""
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
                    # The next build's ring prior (readers.ring_priors); None where the engine
                    # that wrote it had no fitted scorer to give it.
                    "unlabelled": (
                        float(c.features["score_unlabelled"])
                        if "score_unlabelled" in c.features
                        else None
                    ),
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

        def write(stream: list[dict[str, Any]], beats: bool) -> tuple[int, int]:
            linked = expected = 0
            for batch in _batches(stream, lambda r: len(r["members"]) + 1, self.batch_rows):
                got = write_values(
                    self.graph, cypher.BUILD_WRITE_CLUSTERS, {"build_id": self._id, "rows": batch}
                )
                linked += int(got[0]) if got else 0
                expected += sum(len(r["members"]) for r in batch)
                if beats:
                    self.heartbeat()
            return linked, expected

        streams = _streams(rows, self.streams)
        with ThreadPoolExecutor(len(streams), thread_name_prefix="build-clusters") as pool:
            done = list(pool.map(write, streams, [k == 0 for k in range(len(streams))]))
        linked, expected = (sum(d[i] for d in done) for i in (0, 1))
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
            write_values(
                self.graph, cypher.BUILD_WRITE_SCORES, {"build_id": self._id, "rows": batch}
            )
            self.heartbeat()
        self.counts["accounts_scored"] = len(ids)
        self.counts["score_chunks"] = len(rows)
        self.stage_seconds["write_scores"] = time.monotonic() - t

    # -- finish

    def prune_ahead(self, keep: int = 3) -> list[str]:
        """Delete the complete builds that this build's switch would prune (all but the newest
        ``keep - 1``, never the current), ahead of it: the rebuild runs this while the detector
        computes, so the deletes use Neo4j's core while Python uses the other, instead of adding
        to the switch's time. A rebuild that then fails leaves ``keep - 1`` builds, not ``keep``.
        """
        if keep < 1:
            raise ValueError("keep must be at least 1 (the current build)")
        t = time.monotonic()
        deleted = prune_builds(self.graph, keep=keep - 1)
        self.stage_seconds["prune_ahead"] = time.monotonic() - t
        return deleted

    def finish(self, *, metrics: Mapping[str, Any] | None = None, keep: int = 3) -> BuildInfo:
        """Verify the build, switch readers to it in one transaction, prune old builds."""
        if keep < 1:
            raise ValueError("keep must be at least 1 (the current build)")
        build_id = self._id
        t = time.monotonic()
        self.heartbeat(force=True)
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
        if self.flag_threshold is not None:
            props["flag_threshold"] = float(self.flag_threshold)
        props["write_seconds"] = round(time.monotonic() - self._t0, 3)
        props["metrics"] = json.dumps(dict(metrics or {}), sort_keys=True, default=str)
        props["stage_seconds"] = json.dumps(
            {k: round(v, 3) for k, v in self.stage_seconds.items()}, sort_keys=True
        )
        switched = write_values(
            self.graph, cypher.BUILD_FINISH, {"build_id": build_id, "props": props}
        )
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
            write_values(
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
    flag_threshold: float | None = None,
) -> BuildInfo:
    """Write ``detection`` as a new build and make it current; keep the last ``keep`` builds.

    Clusters inherit the ring id of the previous build's ring they continue (see
    :func:`match_rings`). On any error the build is marked ``failed`` and the readers stay on the
    previous build; the next call deletes the failed one.
    """
    if keep < 1:
        raise ValueError("keep must be at least 1 (the current build)")
    writer = BuildWriter(
        graph,
        model_version=model_version,
        batch_rows=batch_rows,
        stale_after=stale_after,
        flag_threshold=flag_threshold,
    )
    writer.begin()
    try:
        writer.write(detection)
        return writer.finish(metrics=metrics, keep=keep)
    except BaseException as exc:
        writer.fail(f"{type(exc).__name__}: {exc}")
        raise
