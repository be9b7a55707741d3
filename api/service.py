"""The API's service layer: every read and write the GraphQL resolvers need, over a Graph.

Resolvers never run Cypher themselves; they call these functions (through per-request
DataLoaders for the batched ones). Builds, clusters, ring histories and scores come from
:mod:`models.builds`, verdicts as labels from :mod:`models.verdicts`, explanations from
:mod:`models.explain`; the API's own Cypher is the ``# --- api ---`` section of
:mod:`graph.cypher`. Everything here is synchronous (the neo4j driver is), and the server runs
it in worker threads.
"""

from __future__ import annotations

import logging
import math
import secrets
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import neo4j

from ringscope.api.auth import Principal
from ringscope.errors import RingScopeError
from ringscope.graph import cypher
from ringscope.graph.connection import Graph, Reader
from ringscope.graph.values import native
from ringscope.ingest.events import (
    Event,
    EventError,
    InvalidField,
    Prepared,
    RecordOutcome,
    prepare_events,
)
from ringscope.ingest.events import record_events as write_events
from ringscope.kinds import BY_NAME, KINDS
from ringscope.models import builds
from ringscope.models import explain as explanations
from ringscope.models import screen as screening
from ringscope.models.builds import (
    BuildNotFoundError,
    ClusterInfo,
    InvalidCursorError,
    RingSnapshot,
)
from ringscope.models.explain import ExplanationRecord
from ringscope.models.screen import ScreenRecord
from ringscope.models.store import ModelStore

log = logging.getLogger(__name__)

MAX_ACCOUNT_RISK_IDS = 1_000
MAX_NOTE_CHARS = 10_000
MAX_PATHS = 20
# Error messages quote a client's input up to this many characters (a 100 kB id was echoed
# back whole, issue #19); a page cursor is never longer than MAX_CURSOR_CHARS.
MAX_ECHO_CHARS = 200
MAX_CURSOR_CHARS = 1_000
VERDICTS = ("fraud", "legit")
KIND_BY_REL = {k.rel: k.name for k in KINDS if k.rel is not None}


class ApiError(RingScopeError):
    """A named domain error whose message is shown to API clients."""


class NotFoundError(ApiError):
    pass


class LimitExceededError(ApiError):
    pass


class InvalidArgumentError(ApiError):
    pass


def clip(value: str, limit: int = MAX_ECHO_CHARS) -> str:
    """A client's input quoted for an error message, cut to ``limit`` characters."""
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}... ({len(value):,} characters)"


def check_cursor(cursor: str) -> None:
    """Refuse a cursor that is not one of ours, before any read: a named error whose message
    quotes at most :data:`MAX_CURSOR_CHARS` of it. A cursor whose score is NaN or infinite
    matched no cluster and gave an empty page, as if the reading were done (issue #19)."""
    again = "pass back the endCursor of a previous page."
    if len(cursor) > MAX_CURSOR_CHARS:
        raise InvalidCursorError(f"Invalid cursor ({len(cursor):,} characters): {again}")
    try:
        _, score, _ = builds.decode_cursor(cursor)
    except InvalidCursorError:
        raise InvalidCursorError(f"Invalid cursor {clip(cursor)}: {again}") from None
    if not math.isfinite(score):
        raise InvalidCursorError(f"Invalid cursor {clip(cursor)}: its score is {score}; {again}")


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _from_ms(ms: int | None) -> datetime | None:
    return None if ms is None else _EPOCH + timedelta(milliseconds=ms)


def kind_of(name: str) -> str:
    if name not in BY_NAME:
        raise InvalidArgumentError(f"Unknown kind {clip(name)}; one of {', '.join(BY_NAME)}.")
    return name


# --- entities ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class EntityRecord:
    kind: str
    id: str
    props: dict[str, Any]
    degrees: dict[str, int]


def entities(graph: Graph, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], EntityRecord]:
    """The entities that exist among ``keys`` ((kind, id) pairs): one query per kind present."""
    by_kind: dict[str, list[str]] = defaultdict(list)
    for kind, eid in keys:
        by_kind[kind_of(kind)].append(eid)

    def work(tx: neo4j.ManagedTransaction) -> dict[tuple[str, str], EntityRecord]:
        out: dict[tuple[str, str], EntityRecord] = {}
        for kind, ids in by_kind.items():
            for r in tx.run(cypher.API_ENTITIES[kind], {"ids": ids}):
                props = {k: native(v) for k, v in dict(r["props"]).items()}
                degrees = {k: int(v) for k, v in dict(r["degrees"]).items()}
                out[(kind, r["id"])] = EntityRecord(kind, r["id"], props, degrees)
        return out

    return graph.read_tx(work)


def entity_clusters(
    graph: Graph, keys: Sequence[tuple[str, str]], build_id: str | None
) -> dict[tuple[str, str], list[ClusterInfo]]:
    """Clusters of ``build_id`` each entity is in (accounts) or ties together (identifiers)."""
    out: dict[tuple[str, str], list[ClusterInfo]] = {k: [] for k in keys}
    if build_id is None:
        return out
    by_kind: dict[str, list[str]] = defaultdict(list)
    for kind, eid in keys:
        by_kind[kind_of(kind)].append(eid)

    def work(tx: neo4j.ManagedTransaction) -> None:
        for kind, ids in by_kind.items():
            params = {"ids": ids, "build_id": build_id}
            for r in tx.run(cypher.API_ENTITY_CLUSTERS[kind], params):
                out[(kind, r["id"])].append(builds.cluster_info(r["cluster"]))

    graph.read_tx(work)
    return out


def account_risk(
    graph: Graph, build_id: str, ids: Sequence[str], cache: builds.ScoreCache | None = None
) -> dict[str, float]:
    """Risk scores of accounts in one build (accounts without a score are left out)."""
    if not ids:
        return {}
    return builds.account_score(graph, list(dict.fromkeys(ids)), build_id, cache)


def current_account_risk(
    graph: Graph, ids: Sequence[str], cache: builds.ScoreCache | None = None
) -> tuple[str, dict[str, float]] | None:
    """The current build and the risk scores of accounts in it, in one read transaction;
    None when there is no complete build."""
    return builds.current_account_score(graph, list(dict.fromkeys(ids)), cache)


def ring_histories(graph: Graph, ring_ids: Sequence[str]) -> dict[str, list[RingSnapshot]]:
    return builds.ring_histories(graph, ring_ids)


def current_build_id(graph: Graph) -> str | None:
    return builds.current_build_id(graph)


def find_cluster(graph: Graph, cluster_or_ring_id: str) -> ClusterInfo | None:
    """A cluster by id (``<build>/<ring>``) or a ring id in the current build."""
    try:
        return builds.cluster(graph, cluster_or_ring_id)
    except BuildNotFoundError:
        return None


# --- verdicts and case notes ------------------------------------------------------------------


@dataclass(frozen=True)
class VerdictRecord:
    id: str
    target_kind: str  # account | ring
    target_id: str
    verdict: str  # fraud | legit
    note: str
    author: str
    key_id: str
    created_at: datetime | None
    build_id: str | None
    members: tuple[str, ...]


@dataclass(frozen=True)
class NoteRecord:
    id: str
    ring_id: str
    text: str
    author: str
    key_id: str
    created_at: datetime | None
    build_id: str | None


def _verdict(props: Mapping[str, Any]) -> VerdictRecord:
    return VerdictRecord(
        id=props["id"],
        target_kind=props["target_kind"],
        target_id=props["target_id"],
        verdict=props["verdict"],
        note=props.get("note") or "",
        author=props.get("author") or "",
        key_id=props.get("key_id") or "",
        created_at=native(props.get("created_at")),
        build_id=props.get("build_id"),
        members=tuple(props.get("members") or ()),
    )


def _note(props: Mapping[str, Any]) -> NoteRecord:
    return NoteRecord(
        id=props["id"],
        ring_id=props["ring_id"],
        text=props.get("text") or "",
        author=props.get("author") or "",
        key_id=props.get("key_id") or "",
        created_at=native(props.get("created_at")),
        build_id=props.get("build_id"),
    )


def _check_text(value: str, what: str) -> str:
    if len(value) > MAX_NOTE_CHARS:
        raise LimitExceededError(f"The {what} is longer than {MAX_NOTE_CHARS} characters.")
    return value


def _check_verdict(verdict: str) -> str:
    if verdict not in VERDICTS:
        raise InvalidArgumentError(
            f"A verdict is one of {', '.join(VERDICTS)}, not {clip(verdict)}."
        )
    return verdict


def label_account(
    graph: Graph, account_id: str, verdict: str, note: str, principal: Principal
) -> VerdictRecord:
    """Record an investigator's verdict on an account (append-only; the latest one counts)."""
    params = {
        "id": "V-" + secrets.token_hex(8),
        "target_id": account_id,
        "verdict": _check_verdict(verdict),
        "note": _check_text(note, "note"),
        "author": principal.name,
        "key_id": principal.key_id,
        "build_id": current_build_id(graph),
    }
    recs = graph.write_records(cypher.API_VERDICT_ACCOUNT, params)
    if not recs:
        raise NotFoundError(f"No account {clip(account_id)}.")
    return _verdict(recs[0]["verdict"])


def label_cluster(
    graph: Graph, cluster_or_ring_id: str, verdict: str, note: str, principal: Principal
) -> tuple[VerdictRecord, ClusterInfo]:
    """Record a verdict on a ring (by cluster id or ring id), with its current members."""
    info = find_cluster(graph, cluster_or_ring_id)
    if info is None:
        raise NotFoundError(f"No cluster or ring {clip(cluster_or_ring_id)}.")
    params = {
        "id": "V-" + secrets.token_hex(8),
        "target_id": info.ring_id,
        "verdict": _check_verdict(verdict),
        "note": _check_text(note, "note"),
        "author": principal.name,
        "key_id": principal.key_id,
        "build_id": info.build_id,
        "members": list(info.members),
    }
    recs = graph.write_records(cypher.API_VERDICT_RING, params)
    return _verdict(recs[0]["verdict"]), info


def add_case_note(
    graph: Graph, cluster_or_ring_id: str, text: str, principal: Principal
) -> tuple[NoteRecord, ClusterInfo]:
    info = find_cluster(graph, cluster_or_ring_id)
    if info is None:
        raise NotFoundError(f"No cluster or ring {clip(cluster_or_ring_id)}.")
    if not text.strip():
        raise InvalidArgumentError("A case note needs some text.")
    params = {
        "id": "N-" + secrets.token_hex(8),
        "ring_id": info.ring_id,
        "text": _check_text(text, "case note"),
        "author": principal.name,
        "key_id": principal.key_id,
        "build_id": info.build_id,
    }
    recs = graph.write_records(cypher.API_NOTE_CREATE, params)
    return _note(recs[0]["note"]), info


def verdicts(graph: Graph, target_kind: str, ids: Sequence[str]) -> dict[str, list[VerdictRecord]]:
    out: dict[str, list[VerdictRecord]] = {i: [] for i in ids}
    params = {"target_kind": target_kind, "ids": list(ids)}
    for r in graph.read(cypher.API_VERDICTS, params):
        out[r["id"]].append(_verdict(r["verdict"]))
    return out


def notes(graph: Graph, ring_ids: Sequence[str]) -> dict[str, list[NoteRecord]]:
    out: dict[str, list[NoteRecord]] = {i: [] for i in ring_ids}
    for r in graph.read(cypher.API_NOTES, {"ring_ids": list(ring_ids)}):
        out[r["ring_id"]].append(_note(r["note"]))
    return out


# --- neighbourhoods ---------------------------------------------------------------------------


@dataclass
class NbNode:
    eid: str
    kind: str
    id: str
    hop: int
    degree: int
    hub: bool
    label: str | None
    risk: float | None = None


@dataclass(frozen=True)
class NbEdge:
    source: str  # element ids: the account, then the identifier
    target: str
    kind: str  # the identifier kind
    first_seen: datetime | None
    last_seen: datetime | None
    count: int


@dataclass
class Neighbourhood:
    build_id: str | None
    center: NbNode
    nodes: dict[str, NbNode]
    edges: list[NbEdge]
    paths: list[list[str]]  # element ids from the center to a flagged account
    truncated: bool
    hops: int
    limit: int
    flagged: set[str] = field(default_factory=set)


def _scores(
    tx: Reader,
    build_id: str | None,
    ids: list[str],
    cache: builds.ScoreCache | None = None,
) -> dict[str, float]:
    if build_id is None or not ids:
        return {}
    return builds.read_scores(tx, build_id, ids, cache)


def neighbourhood(
    graph: Graph,
    kind: str,
    entity_id: str,
    *,
    hops: int,
    limit: int,
    min_score: float,
    hub_degree: int,
    cache: builds.ScoreCache | None = None,
    head_hops: int = 2,
) -> Neighbourhood | None:
    """The subgraph within ``hops`` of an entity, hubs unexpanded, at most ``limit`` nodes.

    One statement reads the current build, the start node and its first ``head_hops`` hops (at
    most 2, and 1 when ``min_score`` may drop accounts of the first hop), then one expansion per
    further hop; scores come from ``cache`` (read in Cypher on a miss). When the head reads every
    hop, its statements are auto-commit reads (:meth:`Graph.read_auto`), else one transaction.
    ``head_hops=0`` reads every hop by its own statement, the rules written once in Python that
    the head statement mirrors (the tests compare the two). Accounts other than the start below
    ``min_score`` are left out (and not expanded). Identifiers with more than ``hub_degree``
    accounts are returned with ``hub`` set and their degree, and never expanded. Paths lead from
    the start to each flagged account: risk at or above the build's flag threshold (the detector's,
    recorded on the build: :attr:`models.builds.BuildInfo.flag_threshold`) or a known fraud label.
    """
    kind = kind_of(kind)
    is_account = kind == "account"
    # Hops read by the head statement: at most two, and one when min_score may drop a hop-1
    # account (the start is an identifier), whose survivors the second hop would start from.
    head_hops = min(hops, head_hops, 2 if is_account or min_score <= 0 else 1)

    def work(tx: Reader) -> Neighbourhood | None:
        params = {"id": entity_id, "hops": head_hops, "limit": limit, "hub": hub_degree}
        start = tx.run(cypher.API_NB_HEAD[kind], params).single()
        if start is None:
            return None
        build_id: str | None = start["build_id"]
        threshold = builds.flag_threshold(start["flag_threshold"])
        center = NbNode(
            start["eid"],
            kind,
            entity_id,
            0,
            int(start["degree"]),
            (not is_account) and int(start["degree"]) > hub_degree,
            start["label"],
        )
        if is_account:
            center.risk = _scores(tx, build_id, [entity_id], cache).get(entity_id)
        nodes = {center.eid: center}
        edges: list[NbEdge] = []
        parent: dict[str, str] = {}
        truncated = False
        frontier = [] if center.hub else [center.eid]
        from_accounts = is_account
        for hop in range(1, hops + 1):
            if not frontier:
                break
            if len(nodes) >= limit:
                truncated = True
                break
            # One row (a list, in the order cypher.API_NB_FROM_* give) per edge: the head's for
            # its hops, which follow these same rules, then one statement per hop.
            if hop <= head_hops:
                rows = start[f"rows{hop}"]
            else:
                text = (
                    cypher.API_NB_FROM_ACCOUNTS if from_accounts else cypher.API_NB_FROM_IDENTIFIERS
                )
                params = {"eids": frontier, "seen": list(nodes), "limit": limit - len(nodes) + 1}
                rows = tx.run(text, params).single(strict=True)["rows"]
            scores = {} if from_accounts else _scores(tx, build_id, [r[3] for r in rows], cache)
            new: list[str] = []
            for src, eid, rel, node_id, first_ms, last_ms, count, degree, label in rows:
                node_kind = KIND_BY_REL[rel] if from_accounts else "account"
                risk = None if from_accounts else scores.get(node_id)
                if node_kind == "account" and min_score > 0 and (risk or 0.0) < min_score:
                    continue
                account_eid, ident_eid = (src, eid) if from_accounts else (eid, src)
                edge = NbEdge(
                    account_eid,
                    ident_eid,
                    KIND_BY_REL[rel],
                    _from_ms(first_ms),
                    _from_ms(last_ms),
                    int(count or 0),
                )
                if eid not in nodes:
                    if len(nodes) >= limit:
                        truncated = True
                        continue
                    degree = int(degree)
                    nodes[eid] = NbNode(
                        eid,
                        node_kind,
                        node_id,
                        hop,
                        degree,
                        node_kind != "account" and degree > hub_degree,
                        label,
                        risk,
                    )
                    parent[eid] = src
                    new.append(eid)
                edges.append(edge)
            frontier = [e for e in new if not nodes[e].hub]
            from_accounts = not from_accounts
        # An identifier's risk in the result: its riskiest account there.
        for e in edges:
            acc, ident = nodes[e.source], nodes[e.target]
            if acc.risk is not None and (ident.risk is None or acc.risk > ident.risk):
                ident.risk = acc.risk
        flagged = {
            n.eid
            for n in nodes.values()
            if n.kind == "account"
            and ((n.risk is not None and n.risk >= threshold) or n.label == "fraud")
        }
        # Paths lead from the center to the *other* flagged accounts.
        ranked = sorted(
            flagged - {center.eid}, key=lambda e: (-(nodes[e].risk or 0.0), nodes[e].id)
        )
        paths = []
        for eid in ranked[:MAX_PATHS]:
            path = [eid]
            while path[-1] in parent:
                path.append(parent[path[-1]])
            paths.append(path[::-1])
        return Neighbourhood(build_id, center, nodes, edges, paths, truncated, hops, limit, flagged)

    # Element ids pass between statements only past the head: those statements share one
    # transaction, since Neo4j promises an element id's meaning only within one.
    return graph.read_auto(work) if head_hops >= hops else graph.read_tx(work)


def ping(graph: Graph) -> None:
    graph.read(cypher.API_PING)


def unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


# --- explanations (models.explain) -----------------------------------------------------------

MAX_EXPLAIN_TOP = 20


def explain(
    graph: Graph, models: ModelStore, account_id: str, *, top: int, budget: int
) -> ExplanationRecord | None:
    """Why the current model scores an account (:func:`models.explain.explain`)."""
    return explanations.explain(graph, models, account_id, top=top, budget=budget)


# --- screening (models.screen, ingest.events) -------------------------------------------------

MAX_RECORD_EVENTS = 500  # events per recordEvents call
MAX_SCREEN_REASONS = 12  # sentences in a screening answer


def screen_event(
    graph: Graph,
    models: ModelStore,
    event: Event,
    *,
    region: str,
    budget: int,
    use_table: bool = True,
) -> tuple[ScreenRecord, tuple[InvalidField, ...]]:
    """Score an event against the current graph and build, writing nothing
    (:func:`models.screen.screen`). An event that cannot be placed is an invalid argument."""
    try:
        prepared = prepare_events([event], region)
    except EventError as exc:
        raise InvalidArgumentError(f"event: {exc.field}: {exc.reason}.") from None
    record = screening.screen(
        graph, models, event_input(prepared), budget=budget, use_table=use_table
    )
    return record, tuple(prepared.invalid)


def event_input(prepared: Prepared, i: int = 0) -> screening.EventInput:
    """Event ``i`` of ``prepared`` (ingest's rows) as screening applies it."""
    ev = prepared.events[i]
    return screening.EventInput(
        event_id=ev.event_id,
        account_id=ev.account_id,
        at=prepared.at_ms[i] // 1000,
        kyc=prepared.kyc_of(ev.account_id),
        values=prepared.values[i],
        rows=tuple(screening.EventRow(**r) for r in prepared.rows_of(ev.account_id)),
        flags=prepared.flags(),
    )


def warm_screening(graph: Graph, models: ModelStore, region: str) -> None:
    """Screen two made-up events (an account that does not exist; no identifiers, then as many
    devices as pad the identifier lists to their longer length, ``models.screen.IDS_PADDED``),
    so that Neo4j plans the screening queries at start-up rather than on the risk engine's
    first decisions (planning them took 1-5 s on a busy 2-core machine). Reads only; any
    failure (no model yet, Neo4j down) is left for real requests to report."""
    now = datetime.now(UTC)
    many = [f"ringscope:warm-up:{i}" for i in range(screening.IDS_PADDED[0])]
    events = [Event("warm-up", "ringscope:warm-up", now, "LOGIN"),
              Event("warm-up-2", "ringscope:warm-up", now, "LOGIN", {"device": many})]  # fmt: skip
    try:
        for event in events:
            screen_event(graph, models, event, region=region, budget=0)
        screening.warm(graph)
    except Exception:
        log.debug("screening warm-up skipped", exc_info=True)


def record_events(graph: Graph, events: list[Event], *, region: str) -> RecordOutcome:
    """Write events into the graph through the loader's code and ledger, idempotent by event id
    (:func:`ingest.events.record_events`)."""
    if not 1 <= len(events) <= MAX_RECORD_EVENTS:
        raise LimitExceededError(f"recordEvents takes 1 to {MAX_RECORD_EVENTS} events.")
    try:
        prepared = prepare_events(events, region)
    except EventError as exc:
        raise InvalidArgumentError(
            f"event {exc.event_id[:64]!r}: {exc.field}: {exc.reason}; nothing was recorded."
        ) from None
    return write_events(graph, prepared)
