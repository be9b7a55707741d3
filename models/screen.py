"""Screening an event at decision time: the current model's score for the event's account as if
the event were in the graph, the flagged rings it reaches, and how fast its identifiers are
being taken up, without writing anything.

The score is the account model's, not a second model. The event's account neighbourhood is read
as ``explain`` reads one (:func:`models.projection.read_event_neighbourhood`: the account if the
graph holds it, the identifiers it and the event use, with their whole-graph sizes, the accounts
on them and all of their edges), the event's rows (:func:`ingest.events.prepare_events`, the
loader's own normalise and reduce) are applied to it exactly as the loader's Cypher would apply
them to the graph (:func:`_apply`: a new account opened at the event's time, a pair's count,
first and last seen, a new identifier of size 1, an identifier's size grown by one new account,
a payment summed into its (account, payee, currency) row, the data's "now" moved to the event),
and the model scores the account from that (:meth:`AccountRiskModel.assess`). So screening an
event gives the score a rebuild with the same model would give the account once the event is
ingested (tested), and recording the event changes the graph the next screen reads.

Rings are reached through identifiers that are not hubs for the detector (at most the kind's
``degree_cap`` accounts, ``ringscope.kinds``) and that the flagged clusters hold: their members
are more than half of the accounts the build knew on it (opened by the build's data "now";
accounts recorded since do not dilute it). An account on a flagged cluster's farm device is
linked to that cluster; one on an office IP or a family card that a ring member shares with more
honest accounts is not; one behind a carrier IP is not either, and the IP is listed as ignored.
A ring is also reached in two hops (:func:`_second_hop`): through one of the event's personal
identifiers (document, card, email) held by another account that uses an identifier the flagged
clusters hold, the case of a mule ring's document group left outside its flagged clusters.
Velocity is, per identifier of the event, how many accounts first used it in the hour, day and
week up to the event (the event's account included when the event is its first use).

With a tree model and a build that kept its feature table (:mod:`models.screen_table`), the
accounts on the event's identifiers are not read edge by edge: their rows come from the table,
the sizes of their big identifiers are read live, and only an account the writers stamped since
the build is read whole. The answer is the same (tested); what a screen reads is smaller.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import numpy as np

from ringscope.graph import cypher
from ringscope.graph.connection import Graph, Reads
from ringscope.kinds import BY_NAME, IDENTIFIER_KINDS, PAYEE
from ringscope.models.builds import BuildInfo, get_build
from ringscope.models.builds.records import DEFAULT_FLAG_THRESHOLD
from ringscope.models.projection import (
    LINK_RELS,
    NO_LINKS,
    KindEdges,
    Projection,
    assemble_local,
    expand_identifiers,
)
from ringscope.models.screen_table import Kept, ScreenTable, load_table
from ringscope.models.store import ModelStore

T = TypeVar("T")

__all__ = ["WINDOWS", "LinkedRing", "ScreenRecord", "Velocity", "screen"]

# Velocity windows: (name, seconds).
WINDOWS: tuple[tuple[str, int], ...] = (("hour", 3_600), ("day", 86_400), ("week", 604_800))


@dataclass(frozen=True)
class EventRow:
    """One row the event becomes once reduced by the loader (``ingest.events``): an (account,
    identifier) observation pair, or a payment row per (account, payee, currency)."""

    kind: str
    target: str  # the identifier's id, normalised
    count: int
    first: int  # epoch seconds
    last: int
    currency: str | None = None  # payments only
    round_count: int = 0
    total_e4: int = 0


@dataclass(frozen=True)
class EventInput:
    """An event as screening applies it: its account, time (epoch seconds), KYC level for a
    new account (-1 unknown), its identifiers (kind -> normalised ids) and its rows."""

    event_id: str
    account_id: str
    at: int
    kyc: int
    values: dict[str, list[str]]
    rows: tuple[EventRow, ...]
    # What the event's details state (ingest.events.DETAIL_FIELDS): (kind, id) -> emulator
    # device, virtual phone; recording writes them to the identifier, as a file's row would.
    flags: Mapping[tuple[str, str], bool] = field(default_factory=dict)


@dataclass(frozen=True)
class LinkedRing:
    """A flagged cluster of the current build the event reaches, and through what: (kind, id)
    pairs, ``("account", id)`` when the event's own account is a member."""

    ring_id: str
    cluster_id: str
    score: float
    via: tuple[tuple[str, str, int], ...]  # (kind, id, the cluster's members on it)
    # 1: through the event's own identifiers (or the account is a member); 2: ``via`` is the
    # event's personal identifier (no members on it) and then its holder's identifier that the
    # cluster holds (SCREEN_NEIGHBOURHOOD's second hop).
    hops: int = 1


@dataclass(frozen=True)
class Velocity:
    kind: str
    id: str
    accounts: int  # accounts on it, the event's included
    hour: int
    day: int
    week: int


@dataclass(frozen=True)
class ScreenRecord:
    event_id: str
    account_id: str
    known_account: bool
    score: float
    model: str
    model_version: str | None
    build_id: str | None
    flag_threshold: float
    top_features: tuple[tuple[str, float, float, str], ...]
    linked_rings: tuple[LinkedRing, ...]
    hubs_ignored: tuple[tuple[str, str, int], ...]  # (kind, id, accounts)
    velocity: tuple[Velocity, ...]
    accounts_read: int
    seconds: float
    table_rows: int = 0  # accounts whose features came from the build's table


@dataclass
class EventNeighbourhood:
    """What screening read: the local projection of the event's account (the event not yet
    applied), each PAID row's currency, and the event's
    identifiers that exist, (kind, id) -> (internal id, accounts, flag)."""

    proj: Projection
    currency: list[str]
    found: dict[tuple[str, str], tuple[int, int, bool]]
    # Identifiers the event adds to the graph: (kind, id) -> placeholder internal id (-1, -2..)
    new: dict[tuple[str, str], int] = field(default_factory=dict)


@dataclass(frozen=True)
class _BuildFacts:
    data_now: int
    flag_threshold: float


_FACTS: OrderedDict[str, _BuildFacts] = OrderedDict()
_FACTS_LOCK = threading.Lock()
_KIND_OF_REL = {k.rel: k.name for k in IDENTIFIER_KINDS}
_RELS = [k.rel for k in IDENTIFIER_KINDS]
_CAPS = {k.rel: k.degree_cap for k in IDENTIFIER_KINDS}  # hubs, as the detector caps them


# Two-hop links (SCREEN_NEIGHBOURHOOD's second hop) are evidence one step removed: an answer
# lists at most this many such rings (the highest scored), each through at most this many
# identifiers of each hop.
SECOND_HOP_RINGS = 3
SECOND_HOP_VIA = 2

# An event names at most 20 values per kind (ingest.events.MAX_EVENT_VALUES): its lists are
# padded to one of two lengths, the first where every list of the event fits under it (the usual
# event names a few values; each padded value is an index seek of "" per kind in SCREEN_START,
# 8% of Neo4j's CPU a screen at 32, session 33), the second past the most. So the identifier
# lists take two plans, both made at start-up (api.service.warm_screening).
IDS_PADDED = (10, 32)


def _pad(values: list[T], sentinel: T, length: int | None = None) -> list[T]:
    """``values`` and at least one ``sentinel`` after them, ``length`` long, or (without one)
    as long as the next power of two, 16 at least: one plan per list size class (see
    :func:`screen`)."""
    n = len(values) + 1
    size = max(length, n) if length is not None else max(16, 1 << (n - 1).bit_length())
    return [*values, *([sentinel] * (size - len(values)))]


def _build_facts(graph: Graph, build_id: str | None) -> _BuildFacts:
    """The build's data "now" and flag point, read once per build (a build never changes
    once complete); without a build, the latest account opening and the default flag point."""
    if build_id is not None:
        with _FACTS_LOCK:
            hit = _FACTS.get(build_id)
        if hit is not None:
            return hit
        info: BuildInfo | None = get_build(graph, build_id)
        counts = (info.metrics.get("counts") if info is not None else None) or {}
        if info is not None and counts.get("data_now") is not None:
            facts = _BuildFacts(int(counts["data_now"]), info.flag_threshold)
            with _FACTS_LOCK:
                _FACTS[build_id] = facts
                while len(_FACTS) > 8:
                    _FACTS.popitem(last=False)
            return facts
    rows = graph.read(cypher.API_LATEST_ACCOUNT_CREATED)
    now = int(rows[0]["now"]) if rows and rows[0]["now"] is not None else 0
    return _BuildFacts(now, DEFAULT_FLAG_THRESHOLD)


def screen(
    graph: Graph,
    models: ModelStore,
    ev: EventInput,
    *,
    budget: int,
    top: int = 3,
    use_table: bool = True,
) -> ScreenRecord:
    """Screen one event (see the module doc). Two reads, in one transaction (internal node ids
    pass between them): SCREEN_START (the build, the account
    and the identifiers it and the event use) and SCREEN_NEIGHBOURHOOD (the accounts on them
    with all of their edges, their verdicts, and the flagged clusters reached). With the
    build's feature table (``use_table``, a tree model, and a build that wrote one:
    :mod:`models.screen_table`), SCREEN_TABLE_NEIGHBOURHOOD reads the same but only the edges
    on the event's identifiers and the account's own, the other accounts' features coming from
    the table, and SCREEN_TABLE_LINKS the edges of any account whose row is stale."""
    t0 = time.perf_counter()
    model = models.current()
    params: dict[str, object] = {"id": ev.account_id}
    # Every list parameter is padded with a value that matches nothing ("" is no id, -1 no
    # node) to a fixed length (the identifier lists) or a power of two (the neighbourhood's):
    # Neo4j's plan cache keys on each list's type and size bucket, and every new combination
    # (an empty list is List<Any>; 1 value and 2-10 are different buckets) planned these
    # queries again, 1-5 s each (bench/arrivals.py found 29-44 such screens per 20k world).
    longest = max((len(v) for v in ev.values.values()), default=0)
    padded = IDS_PADDED[0] if longest < IDS_PADDED[0] else IDS_PADDED[1]
    params.update(
        (f"ids_{k.name}", _pad(list(ev.values.get(k.name, ())), "", padded))
        for k in IDENTIFIER_KINDS
    )
    # One transaction for the reads: internal node ids pass from one to the next.
    with graph.reads() as reads:
        start = reads.read(cypher.SCREEN_START, params)[0]
        build_id = start["build_id"]
        facts = _build_facts(graph, build_id)
        me = start["account"]
        info: dict[int, tuple[int, bool]] = {}
        names: dict[int, tuple[str, str]] = {}  # internal id -> (kind, id)
        for r in start["mine"]:
            info[int(r["node"])] = (int(r["degree"]), bool(r["flag"]))
            names[int(r["node"])] = (_KIND_OF_REL[r["rel"]], str(r["id"]))
        on = set(info)
        found: dict[tuple[str, str], tuple[int, int, bool]] = {}
        for r in start["found"]:
            kind, node = _KIND_OF_REL[r["rel"]], int(r["node"])
            found[(kind, str(r["id"]))] = (node, int(r["degree"]), bool(r["flag"]))
            info[node] = (int(r["degree"]), bool(r["flag"]))
            names[node] = (kind, str(r["id"]))
        # Sizes once the event is in: one more account where the account is new to an identifier.
        after = {n: info[n][0] + (0 if n in on else 1) for n in names}
        is_hub = {n: after[n] > BY_NAME[names[n][0]].degree_cap for n in names}
        # A detail that changes a known identifier's flag changes the features of every
        # account on it, whose table rows then no longer hold: such a (rare) screen reads every
        # neighbour whole, as without a table.
        flips = any(
            (kind, value) in found and found[(kind, value)][2] != flag
            for (kind, value), flag in ev.flags.items()
        )
        table = (
            load_table(models.root, build_id)
            if use_table and build_id is not None and model.choice == "tree" and not flips
            else None
        )
        expand = expand_identifiers(
            info, model.config.hub_degree, budget if model.choice != "tree" else 0
        )
        params = {
            "expand": _pad(expand, -1),
            "me": int(me["node"]) if me is not None else -1, "rels": _RELS,
            "known": _pad(sorted(info), -1),
            "open": _pad(sorted(n for n in names if not is_hub[n]), -1), "build_id": build_id or "",
            "personal": _pad(sorted(
                n for n in names if not is_hub[n] and BY_NAME[names[n][0]].personal
            ), -1),
            "min_score": facts.flag_threshold, "data_now": facts.data_now, "caps": _CAPS,
            "rings": bool(model.config.ring_prior),  # the neighbours' ring priors, if it reads them
        }  # fmt: skip
        now = max(facts.data_now, ev.at)
        kept = Kept.empty()
        if table is None:
            near = reads.read(cypher.SCREEN_NEIGHBOURHOOD, params)[0]
            links = {str(r["rel"]): r for r in near["links"]}
        else:
            params.update(full=_pad([int(me["node"])] if me is not None else [], -1),
                          skip=params["expand"])  # fmt: skip
            near = reads.read(cypher.SCREEN_TABLE_NEIGHBOURHOOD, params)[0]
            kept = table.match(near["accounts"])
            if me is not None:
                kept = kept.without(str(me["id"]))  # the event's account: its edges were read
            kept = _live_sharing(reads, table, kept)
            links = _table_links(reads, near, kept, params)
    proj = assemble_local(near["accounts"], links, info, now)
    # The current build's ring priors of the accounts read: what the next rebuild's ring
    # features read (models.features.ring_features).
    proj.ring = np.asarray([float(a["ring"]) for a in near["accounts"]], dtype=np.float64)
    index = {a: i for i, a in enumerate(proj.ids)}
    for v in near["verdicts"]:  # investigators' verdicts count as labels, as in a rebuild
        proj.label[index[v["account"]]] = 1 if v["label"] == "fraud" else 0
    nb = EventNeighbourhood(proj, [str(c) for c in links.get("PAID", NO_LINKS)["currency"]], found)
    applied = _apply(nb, ev)
    rows = table.rows(kept, _grown(proj, applied, kept), applied.now()) if table else None
    score, feats = model.assess(applied, ev.account_id, top=top, rows=rows)

    rings: dict[str, tuple[str, float, list[tuple[str, str, int]]]] = {}
    held: dict[int, int] = defaultdict(int)  # identifier -> members of flagged clusters on it
    for r in near["rings"]:
        held[int(r["node"])] += int(r["members"])
    for r in near["rings"]:
        node = int(r["node"])
        if node >= 0 and held[node] * 2 <= int(r["known"]):
            continue  # not the rings': their members are not most of the accounts on it
        via = (
            ("account", ev.account_id, 1)
            if node < 0
            else (names[node][0], names[node][1], int(r["members"]))
        )
        cid = str(r["cluster_id"])
        rings.setdefault(cid, (str(r["ring_id"]), float(r["score"]), []))[2].append(via)
    linked = [
        LinkedRing(rid, cid, round(sc, 6), tuple(sorted(via, key=_via_order)))
        for cid, (rid, sc, via) in rings.items()
    ]
    linked += _second_hop(near["second"], names, set(rings))
    hubs = sorted(
        ((names[n][0], names[n][1], after[n]) for n in names if is_hub[n]),
        key=lambda h: (-h[2], h[0], h[1]),
    )
    return ScreenRecord(
        event_id=ev.event_id,
        account_id=ev.account_id,
        known_account=me is not None,
        score=round(score, 6),
        model=model.choice,
        model_version=model.version,
        build_id=build_id,
        flag_threshold=facts.flag_threshold,
        top_features=feats,
        linked_rings=tuple(sorted(linked, key=lambda lr: (-lr.score, lr.ring_id))),
        hubs_ignored=tuple(hubs),
        velocity=_velocity(applied, ev.values, nb, ev.at),
        accounts_read=proj.n,
        seconds=round(time.perf_counter() - t0, 6),
        table_rows=len(rows or ()),
    )


def warm(graph: Graph) -> None:
    """Plan the reads a screen makes only when it has neighbours: the edges of those whose
    table row is stale (SCREEN_TABLE_LINKS) and the sizes of the big identifiers of the rest
    (SCREEN_TABLE_DEGREES), with lists of the usual sizes: a made-up event has no neighbours,
    so warming up by screening one leaves them to the first screens that have."""
    empty = _pad([], -1)
    graph.read(cypher.SCREEN_TABLE_LINKS, {"full": empty, "skip": empty, "known": empty,
                                           "rels": LINK_RELS})  # fmt: skip
    for length in (16, 32, 64, 128, 256, 512, 1024):  # big identifiers' lists of screens
        graph.read(cypher.SCREEN_TABLE_DEGREES, {"big": [-1] * length})


def _live_sharing(graph: Reads, table: ScreenTable, kept: Kept) -> Kept:
    """The accounts whose table row is current, with their sharing: the sizes of their big
    identifiers read live (SCREEN_TABLE_DEGREES, by internal id, padded to a size class) and
    put together with the build's counts (:meth:`ScreenTable.sharing`)."""
    big = table.big(kept)
    if not big:
        return table.sharing(kept, ([], []))
    got = graph.read(cypher.SCREEN_TABLE_DEGREES, {"big": _pad(big, -1)})[0]
    return table.sharing(kept, (got["seqs"], got["sizes"]))


def _table_links(
    graph: Reads, near: Mapping[str, Any], kept: Kept, params: dict[str, object]
) -> dict[str, dict[str, Any]]:
    """SCREEN_TABLE_NEIGHBOURHOOD's edges, per relationship type as ``assemble_local`` takes
    them (accounts by position in ``near["accounts"]``), with the edges of the accounts whose
    table row is not current (``kept`` lacks them) read too (SCREEN_TABLE_LINKS), so that
    their features are computed from all of their edges as before."""
    position = {int(a["node"]): k for k, a in enumerate(near["accounts"])}
    links = {str(r["rel"]): dict(r) for r in near["links"]}
    stale = [  # the event's own account is read whole already ($full)
        int(a["node"])
        for a in near["accounts"]
        if str(a["id"]) not in kept and int(a["node"]) != params["me"]
    ]
    if stale:
        more = graph.read(
            cypher.SCREEN_TABLE_LINKS,
            {
                "full": _pad(stale, -1),
                "skip": params["expand"],
                "known": params["known"],
                "rels": LINK_RELS,
            },
        )[0]["links"]
        for r in more:
            into = links.setdefault(str(r["rel"]), {c: [] for c in NO_LINKS})
            for col in ("acc", "ident", "first", "last", "count", "round_count", "total_e4",
                        "currency", "info_nodes", "degrees", "flags"):  # fmt: skip
                into[col] = [*into[col], *r[col]]
    for r in links.values():
        r["acc"] = [position[int(n)] for n in r["acc"]]
    return links


def _grown(
    before: Projection, after: Projection, accounts: Kept
) -> dict[str, list[tuple[str, int, int]]]:
    """Per account of ``accounts``, the identifiers the event made bigger that it is on:
    (kind, size before, size after)."""
    out: dict[str, list[tuple[str, int, int]]] = defaultdict(list)
    for kind, e in after.kinds.items():
        old = before.kinds[kind].full_degree
        assert old is not None and e.full_degree is not None
        m = len(old)
        for j in np.flatnonzero(e.full_degree[:m] > old).tolist():
            for a in np.unique(e.acc[e.ident == j]).tolist():
                if a < before.n and before.ids[a] in accounts:
                    out[before.ids[a]].append((kind, int(old[j]), int(e.full_degree[j])))
    return out


def _second_hop(
    rows: list[dict[str, Any]], names: dict[int, tuple[str, str]], linked: set[str]
) -> list[LinkedRing]:
    """The flagged clusters SCREEN_NEIGHBOURHOOD reached in two hops (``rows``, its
    ``second``) that one hop did not reach (``linked``)."""
    found: dict[str, tuple[str, float, set[tuple[str, str, int]]]] = {}
    for r in rows:
        cid = str(r["cluster_id"])
        if cid in linked:
            continue
        via = found.setdefault(cid, (str(r["ring_id"]), float(r["score"]), set()))[2]
        via.add((*names[int(r["node"])], 0))
        via.add((_KIND_OF_REL[r["rel"]], str(r["id"]), int(r["members"])))
    out = []
    for cid, (rid, sc, via) in found.items():
        first = sorted(v for v in via if v[2] == 0)[:SECOND_HOP_VIA]
        second = sorted((v for v in via if v[2] > 0), key=_via_order)[:SECOND_HOP_VIA]
        out.append(LinkedRing(rid, cid, round(sc, 6), (*first, *second), hops=2))
    return sorted(out, key=lambda lr: (-lr.score, lr.ring_id))[:SECOND_HOP_RINGS]


def _via_order(v: tuple[str, str, int]) -> tuple[int, str, str]:
    return (-v[2], v[0], v[1])


def _velocity(
    proj: Projection, values: dict[str, list[str]], nb: EventNeighbourhood, at: int
) -> tuple[Velocity, ...]:
    """Per identifier of the event read whole, accounts whose first use of it falls in each
    window up to the event."""
    out: list[Velocity] = []
    for kind, ids in values.items():
        e = proj.kinds[kind]
        assert e.full_degree is not None
        for value in ids:
            hit = nb.found.get((kind, value))
            j = _index(e, hit[0]) if hit is not None else _new_index(e, kind, value, nb)
            if j is None:
                continue
            on = e.ident == j
            accs, first = e.acc[on], e.first[on]
            if len(np.unique(accs)) < e.full_degree[j]:
                continue  # not read whole (a hub the model leaves out): no count to give
            start: dict[int, int] = {}
            for a, f in zip(accs.tolist(), first.tolist(), strict=True):
                if f >= 0:
                    start[a] = min(start.get(a, f), f)
            counts = [sum(1 for f in start.values() if at - w < f <= at) for _, w in WINDOWS]
            out.append(Velocity(kind, value, int(e.full_degree[j]), *counts))
    return tuple(out)


def _index(e: KindEdges, node: int) -> int | None:
    hits = np.flatnonzero(e.nodes == node)
    return int(hits[0]) if len(hits) else None


def _new_index(e: KindEdges, kind: str, value: str, nb: EventNeighbourhood) -> int | None:
    """A new identifier's index: new ones are numbered -1, -2, ... in the order applied."""
    key = nb.new.get((kind, value))
    return _index(e, key) if key is not None else None


def _apply(nb: EventNeighbourhood, ev: EventInput) -> Projection:
    """The local projection with the event applied as the loader's Cypher applies its rows."""
    proj = nb.proj
    if ev.account_id in proj.ids:
        k = proj.ids.index(ev.account_id)
    else:  # EVENT_ACCOUNTS: opened at the event's time, with its KYC level
        k = proj.n
        proj = replace(
            proj,
            ids=[*proj.ids, ev.account_id],
            nodes=np.append(proj.nodes, -1),
            created=np.append(proj.created, ev.at),
            kyc=np.append(proj.kyc, ev.kyc),
            label=np.append(proj.label, -1),
            ring=np.append(proj.ring_prior(), 0.0),  # in no cluster of any build yet
        )
    kinds = dict(proj.kinds)
    edits: dict[str, list[EventRow]] = defaultdict(list)
    for row in ev.rows:
        edits[row.kind].append(row)
    for kind, rows in edits.items():
        currency = nb.currency if kind == PAYEE.name else None
        kinds[kind] = _apply_kind(kinds[kind], kind, rows, k, nb, currency, ev.flags)
    return replace(proj, kinds=kinds, data_now=max(proj.now(), ev.at))


def _apply_kind(
    e: KindEdges,
    kind: str,
    rows: list[EventRow],
    k: int,
    nb: EventNeighbourhood,
    currency: list[str] | None,
    flags: Mapping[tuple[str, str], bool],
) -> KindEdges:
    """One kind's rows of the event applied to its edges (see :func:`_apply`): a pair seen
    before gains the count and widens its first/last seen (INGEST_LINKS, INGEST_PAYMENTS per
    currency), a new relationship grows its identifier's size by one (models.features
    identifier_sizes), a new identifier has one. A flag the event's details state (``flags``)
    is the identifier's, as recording writes it."""
    acc, ident = list(e.acc.tolist()), list(e.ident.tolist())
    first, last, count = list(e.first.tolist()), list(e.last.tolist()), list(e.count.tolist())
    rnd = list(e.round_count.tolist()) if e.round_count is not None else None
    tot = list(e.total.tolist()) if e.total is not None else None
    nodes, flag = list(e.nodes.tolist()), list(e.flag.tolist())
    assert e.full_degree is not None
    degree = list(e.full_degree.tolist())
    cur = list(currency) if currency is not None else None
    for row in rows:
        hit = nb.found.get((kind, row.target))
        if hit is not None:
            node, size, is_flagged = hit
        else:
            node, size, is_flagged = (
                nb.new.setdefault((kind, row.target), -1 - len(nb.new)),
                0,
                False,
            )
        if node in nodes:
            j = nodes.index(node)
        else:  # a new identifier, or one the neighbourhood reached no edge of
            nodes.append(node)
            flag.append(is_flagged)
            degree.append(size)
            j = len(nodes) - 1
        stated = flags.get((kind, row.target))
        if stated is not None:  # the event's detail, as INGEST_NODES writes it
            flag[j] = stated
        pair = [r for r in range(len(acc)) if acc[r] == k and ident[r] == j]
        match = [r for r in pair if cur is None or cur[r] == row.currency]
        if match:
            r = match[0]
            count[r] += row.count
            first[r] = row.first if first[r] < 0 or 0 <= row.first < first[r] else first[r]
            last[r] = row.last if last[r] < 0 or row.last > last[r] else last[r]
            if rnd is not None and tot is not None:
                rnd[r] += row.round_count
                tot[r] += row.total_e4 / 10_000.0
            continue
        degree[j] += 1  # one more relationship: a new account, or a payer's new currency
        acc.append(k)
        ident.append(j)
        first.append(row.first)
        last.append(row.last)
        count.append(row.count)
        if rnd is not None and tot is not None and cur is not None:
            rnd.append(row.round_count)
            tot.append(row.total_e4 / 10_000.0)
            cur.append(str(row.currency))
    return replace(
        e,
        acc=np.asarray(acc, dtype=np.int32),
        ident=np.asarray(ident, dtype=np.int32),
        first=np.asarray(first, dtype=np.int64),
        last=np.asarray(last, dtype=np.int64),
        count=np.asarray(count, dtype=np.int64),
        nodes=np.asarray(nodes, dtype=np.int64),
        flag=np.asarray(flag, dtype=bool),
        round_count=np.asarray(rnd, dtype=np.int64) if rnd is not None else None,
        total=np.asarray(tot, dtype=np.float64) if tot is not None else None,
        full_degree=np.asarray(degree, dtype=np.int64),
    )
