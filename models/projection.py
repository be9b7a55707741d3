"""Projection: the account-identifier graph read out of Neo4j into numpy arrays.

Accounts come back one row each (the only per-row Python objects, one per account). Edges are
read per relationship type and per chunk of accounts: a chunk is a range of account numbers
(``seq``: graph/cypher.py, "node numbers"), and one record comes back carrying the chunk's edges
as parallel integer lists, which are copied straight into preallocated-and-grown numpy arrays.
Identifiers are compacted to ``0..m-1`` per kind with ``np.unique``; their business ids are only
looked up for the few that a cluster's reasons name (:func:`identifier_ids`).

Nodes are named by number, not by Neo4j's internal id, because the reads run in several
transactions (two reader sessions) and the names outlive them: Neo4j gives an internal id's
meaning only within one transaction, and a deleted node's id is reused. The local projections
(:func:`read_local_projection`) read in one transaction and keep internal ids within it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, LiteralString

import numpy as np
import numpy.typing as npt

from ringscope.graph import cypher
from ringscope.graph.connection import Graph, Reads
from ringscope.graph.numbering import number_nodes
from ringscope.kinds import IDENTIFIER_KINDS

I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]
F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]

KIND_NAMES: tuple[str, ...] = tuple(k.name for k in IDENTIFIER_KINDS)


@dataclass
class KindEdges:
    """All edges of one identifier kind, one row per (account, identifier) pair."""

    kind: str
    acc: I32  # account index (into Projection.ids)
    ident: I32  # compact identifier index 0..m-1
    first: I64  # first_seen, epoch seconds (-1 unknown)
    last: I64  # last_seen, epoch seconds (-1 unknown)
    count: I64
    # compact identifier index -> the identifier's number (a whole-graph projection) or its
    # internal id within the reading transaction (a local one)
    nodes: I64
    flag: B  # per identifier: emulator device / virtual phone / merchant payee
    round_count: I64 | None = None  # payments only
    total: F64 | None = None  # payments only, amount in currency units
    # Distinct accounts per identifier in the whole graph, where this holds only part of an
    # identifier's edges (a local projection, :func:`read_local_projection`); None: all of them.
    full_degree: I64 | None = None

    @property
    def m(self) -> int:
        return len(self.nodes)

    def degree(self) -> I64:
        """Edges per identifier (one per account, one per currency for PAID), in the whole
        graph: ``full_degree`` where this holds only part of the identifiers' edges."""
        if self.full_degree is not None:
            return self.full_degree
        return np.bincount(self.ident, minlength=self.m).astype(np.int64)


@dataclass
class Projection:
    ids: list[str]  # account business ids, in internal order
    nodes: I64  # account numbers (``seq``), or internal ids in a local projection
    created: I64  # epoch seconds, -1 unknown
    kyc: I64  # -1 unknown
    label: I64  # 1 fraud, 0 legit, -1 unlabelled
    kinds: dict[str, KindEdges] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    data_now: int | None = None  # the whole graph's "now", for a local projection
    # Each account's ring prior: its cluster's label-free score in the build current when the
    # graph was read (models.features.ring_features; jobs.rebuild and the local reads set it).
    # None reads as 0 for everyone: no build yet, or the feature switched off.
    ring: F64 | None = None
    # Business ids of identifiers, by ``KindEdges.nodes`` key, where the reads brought them (a
    # local projection: the account's own identifiers, which its explanation names, read in the
    # transaction whose internal ids key them).
    names: dict[int, str] = field(default_factory=dict)
    numbered: int = 0  # nodes the read numbered first (written since the last projection)

    def ring_prior(self) -> F64:
        """``ring``, or zeros where no build's priors were read."""
        return self.ring if self.ring is not None else np.zeros(self.n, dtype=np.float64)

    @property
    def n(self) -> int:
        return len(self.ids)

    def now(self) -> int:
        """The data's "now": the latest timestamp seen (never the wall clock, for determinism)."""
        if self.data_now is not None:
            return self.data_now
        t = [int(self.created.max()) if self.n else 0]
        t += [int(e.last.max()) for e in self.kinds.values() if len(e.last)]
        return max(t)


class _Grow:
    """A growable int/float column: preallocated, doubled when full, never a Python list."""

    def __init__(self, dtype: Any, capacity: int) -> None:
        self.a = np.empty(max(capacity, 16), dtype=dtype)
        self.n = 0

    def extend(self, values: list[Any] | npt.NDArray[Any]) -> None:
        k = len(values)
        if self.n + k > len(self.a):
            bigger = np.empty(max(2 * len(self.a), self.n + k), dtype=self.a.dtype)
            bigger[: self.n] = self.a[: self.n]
            self.a = bigger
        self.a[self.n : self.n + k] = values
        self.n += k

    def get(self) -> Any:
        return self.a[: self.n].copy()


def _node_set(graph: Graph, query: LiteralString) -> I64:
    rows = graph.read(query)
    return np.asarray(rows[0]["nodes"] if rows else [], dtype=np.int64)


def read_fraud_label_times(graph: Graph) -> tuple[I64, I64]:
    """The opening and labelling times (epoch seconds) of the accounts labelled fraud, for the
    account model's label exposure (``models.risk.label_exposure``)."""
    row = graph.read(cypher.FRAUD_LABEL_TIMES)[0]
    return (
        np.asarray(row["created"], dtype=np.int64),
        np.asarray(row["labelled"], dtype=np.int64),
    )


def read_projection(graph: Graph, chunk: int = 50_000, readers: int = 2) -> Projection:
    """Read accounts and every account-identifier relationship into arrays.

    ``readers`` sessions read the edge chunks side by side: the server's work per relationship
    (seek, expand, property reads) and the driver's decoding overlap, and on two cores two
    readers took the 1M projection's edges 1.7x faster than one (measured). Chunks are
    assembled in their own order, so the arrays do not depend on which reader finished first.
    """
    t0 = time.perf_counter()
    numbered = number_nodes(graph)  # nodes written since the last projection
    t_numbered = time.perf_counter()
    node_col, created_col, kyc_col, label_col = (_Grow(np.int64, 1024) for _ in range(4))
    ids: list[str] = []
    with graph.driver.session(database=graph.database) as session:
        result = session.run(graph.query(cypher.DETECT_ACCOUNTS), {"chunk": 65_536})
        for rec in result:
            ids.extend(rec["id"])
            node_col.extend(rec["node"])
            created_col.extend(rec["created"])
            kyc_col.extend(rec["kyc"])
            label_col.extend(rec["label"])
    nodes = node_col.get()
    # A stable internal order: by business id, so results never depend on store layout.
    order = np.argsort(np.asarray(ids, dtype=object), kind="stable")
    ids = [ids[i] for i in order]
    proj = Projection(
        ids=ids,
        nodes=nodes[order],
        created=created_col.get()[order],
        kyc=kyc_col.get()[order],
        label=label_col.get()[order],
    )
    proj.seconds["accounts"] = time.perf_counter() - t0
    proj.seconds["numbering"] = t_numbered - t0
    proj.numbered = numbered

    flags = {
        "device": _node_set(graph, cypher.DETECT_EMULATOR_DEVICES),
        "phone": _node_set(graph, cypher.DETECT_VIRTUAL_PHONES),
        "payee": _node_set(graph, cypher.DETECT_MERCHANT_PAYEES),
    }
    _read_edges(
        graph, proj, chunk, lambda kind, uniq: np.isin(uniq, flags.get(kind, _NONE)), readers
    )
    return proj


_NONE = np.zeros(0, dtype=np.int64)


def dense_unique(values: I64) -> tuple[I64, I64]:
    """``np.unique(values, return_inverse=True)`` for node numbers: non-negative integers below
    a bound not far above their count (numbers are dense, ``graph.numbering``), found by marking
    a table of the range instead of sorting. Profiled: ``np.unique``'s sort of the 1M
    projection's edges took 4.4 s; the table takes a tenth of that. Other values, and short
    arrays (a local projection's few edges reach internal ids up to the store's size: a table
    of that range per kind cost a screen 2 ms), are sorted."""
    if len(values) < 65_536 or int(values.min()) < 0 or int(values.max()) >= 8 * len(values):
        uniq, inv = np.unique(values, return_inverse=True)
        return uniq, inv.reshape(-1)
    seen = np.zeros(int(values.max()) + 1, dtype=bool)
    seen[values] = True
    rank = np.cumsum(seen, dtype=np.int64) - 1
    return np.flatnonzero(seen).astype(values.dtype), rank[values]


def _kind_edges(
    kind: str,
    acc: I64,
    raw_ident: I64,
    first: I64,
    last: I64,
    count: I64,
    round_count: I64 | None,
    total_e4: F64 | None,
    flag_of: Callable[[str, I64], B],
) -> KindEdges:
    """One kind's edges from what the link queries return: identifiers renumbered 0..m-1 in
    the order of their keys (``nodes``, sorted: numbers, or internal ids in a local
    projection), flagged by ``flag_of``; payments' totals from 1e-4 units."""
    uniq, inv = dense_unique(raw_ident)
    nodes = uniq.astype(np.int64)
    return KindEdges(
        kind=kind,
        acc=acc.astype(np.int32),
        ident=inv.astype(np.int32),
        first=first,
        last=last,
        count=count,
        nodes=nodes,
        flag=flag_of(kind, nodes),
        round_count=round_count,
        total=total_e4 / 10_000.0 if total_e4 is not None else None,
    )


def _read_edges(
    graph: Graph,
    proj: Projection,
    chunk: int,
    flag_of: Callable[[str, I64], B],
    readers: int = 1,
) -> None:
    """Every identifier relationship of ``proj``'s accounts, per kind, into ``proj.kinds``:
    one query per (kind, chunk of accounts), run by ``readers`` sessions at once."""
    tasks = [
        (kind.rel, start)
        for kind in IDENTIFIER_KINDS
        if kind.rel is not None
        for start in range(0, proj.n, chunk)
    ]
    # Chunks are ranges of account numbers: the k-th chunk holds the k-th ``chunk`` accounts in
    # number order, and an edge's account number maps back to the account's position.
    by_number = np.argsort(proj.nodes, kind="stable")
    numbers = proj.nodes[by_number]

    def fetch(task: tuple[str, int]) -> dict[str, Any] | None:
        rel, start = task
        end = min(start + chunk, proj.n) - 1
        bounds = {"low": int(numbers[start]), "high": int(numbers[end])}
        rows = graph.read(cypher.DETECT_LINKS[rel], bounds)
        return dict(rows[0]) if rows else None

    def positions(acc: list[int], ident: list[int]) -> tuple[I64, B | None]:
        """Account positions of an edge list's account numbers; a mask of the edges to keep,
        where some are not: an account the projection does not hold, or an identifier without
        a number (both numbered after the read began)."""
        seq = np.asarray(acc, dtype=np.int64)
        at = np.minimum(np.searchsorted(numbers, seq), max(proj.n - 1, 0))
        held = (numbers[at] == seq) & (np.asarray(ident, dtype=np.int64) >= 0)
        return by_number[at], None if bool(held.all()) else held

    pool = ThreadPoolExecutor(max_workers=readers) if readers > 1 else None
    try:
        # In task order whichever reader ran it: the arrays never depend on timing.
        results = iter(pool.map(fetch, tasks) if pool else map(fetch, tasks))
        t1 = time.perf_counter()
        for kind in IDENTIFIER_KINDS:
            assert kind.rel is not None
            paid = kind.rel == "PAID"
            cap = max(1024, proj.n * 2)
            acc, ident, first, last, count = (_Grow(np.int64, cap) for _ in range(5))
            rnd, tot = _Grow(np.int64, cap if paid else 16), _Grow(np.float64, cap if paid else 16)
            for _ in range(0, proj.n, chunk):
                r = next(results)
                if r is None:
                    continue
                pos, held = positions(r["acc"], r["ident"])
                cols = [(acc, pos), (ident, r["ident"]), (first, r["first"]),
                        (last, r["last"]), (count, r["count"])]  # fmt: skip
                if paid:
                    cols += [(rnd, r["round_count"]), (tot, r["total_e4"])]
                for col, values in cols:
                    col.extend(values if held is None else np.asarray(values)[held])
            proj.kinds[kind.name] = _kind_edges(
                kind.name, acc.get(), ident.get(), first.get(), last.get(), count.get(),
                rnd.get() if paid else None, tot.get() if paid else None, flag_of,
            )  # fmt: skip
            now = time.perf_counter()
            proj.seconds[kind.name] = now - t1
            t1 = now
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)


def read_local_projection(
    graph: Graph,
    account_id: str,
    *,
    data_now: int,
    always: int = 200,
    budget: int = 5_000,
    ring_build: str | None = None,
) -> Projection | None:
    """One account's neighbourhood as a :class:`Projection`: the account, every account sharing
    an identifier with it, and all of their edges; None if the account does not exist.

    What a model computes for the account from this equals what it computes from the whole
    graph (tested), because each identifier carries its whole-graph account count
    (``KindEdges.full_degree``) and ``data_now`` replaces the local "now". Identifiers with at
    most ``always`` accounts are always read (pass the tree model's ``hub_degree``: the tree
    leaves bigger ones out, so it stays exact); bigger ones are read smallest first while the
    accounts read stay within ``budget``. An identifier not read (a big merchant, a carrier IP)
    makes the GNN's message through it approximate (see :func:`unread_identifiers`).

    Four reads: the account; its identifiers with their sizes and flags; the accounts to read;
    their edges of every kind with the sizes and flags of the identifiers they reach. Sizes come
    from Neo4j's degree store (graph/cypher.py ``_LOCAL_DEGREE``), payees' by traversal. With
    ``ring_build``, a fifth: the accounts' ring priors in that build (``Projection.ring``). All
    in one transaction (:meth:`Graph.reads`), since internal node ids pass between them.
    """
    t0 = time.perf_counter()
    with graph.reads() as reads:  # one transaction: node ids pass from read to read
        rows = reads.read(cypher.LOCAL_ACCOUNT, {"id": account_id})
        if not rows:
            return None
        me = rows[0]
        own = reads.read(cypher.LOCAL_ACCOUNT_IDENTIFIERS, {"node": int(me["node"])})
        info = {int(r["node"]): (int(r["degree"]), bool(r["flag"])) for r in own}
        proj = _read_local(reads, me, info, data_now=data_now, always=always, budget=budget, t0=t0)
        proj.names = {int(r["node"]): str(r["id"]) for r in own}
        if ring_build is not None:
            nodes = proj.nodes.tolist()
            found = {
                int(r["node"]): float(r["prior"])
                for r in reads.read(
                    cypher.LOCAL_RING_PRIORS, {"nodes": nodes, "build_id": ring_build}
                )
            }
            proj.ring = np.asarray([found.get(n, 0.0) for n in nodes], np.float64)
    return proj


def _read_local(
    graph: Reads,
    me: Any,
    info: dict[int, tuple[int, bool]],
    *,
    data_now: int,
    always: int,
    budget: int,
    t0: float,
) -> Projection:
    """The accounts on the identifiers of ``info`` (:func:`expand_identifiers`), plus ``me``
    (an account record, or None), with all of their edges. ``info`` gains the size and flag
    of every identifier the edges reach."""
    expand = expand_identifiers(info, always, budget)
    found = {
        str(r["id"]): r
        for r in graph.read(cypher.LOCAL_ACCOUNTS_OF, {"nodes": expand, "rels": LINK_RELS})
    } if expand else {}  # fmt: skip
    if me is not None:
        found[str(me["id"])] = me
    accounts = [found[k] for k in sorted(found)]
    nodes = [int(r["node"]) for r in accounts]
    links = {
        str(r["rel"]): r
        for r in graph.read(
            cypher.LOCAL_LINKS, {"nodes": nodes, "known": sorted(info), "rels": LINK_RELS}
        )
    }
    proj = assemble_local(accounts, links, info, data_now)
    proj.seconds["read"] = time.perf_counter() - t0
    return proj


def expand_identifiers(info: dict[int, tuple[int, bool]], always: int, budget: int) -> list[int]:
    """Which identifiers of ``info`` (internal id -> size, flag) a local projection reads the
    accounts of: all of at most ``always`` accounts, bigger ones smallest first while the
    accounts read stay within ``budget``."""
    expand: list[int] = []
    total = 0
    for x, (degree, _) in sorted(info.items(), key=lambda kv: (kv[1][0], kv[0])):
        if degree <= always or total + degree <= budget:
            expand.append(x)
            total += degree
    return expand


# The relationship types the local reads expand (``$rels``), and the record of a type they
# found no edge of (the reads return none for it).
LINK_RELS = [k.rel for k in IDENTIFIER_KINDS if k.rel is not None]
NO_LINKS: Mapping[str, Any] = {
    c: []
    for c in ("acc", "ident", "first", "last", "count", "round_count", "total_e4", "currency",
              "info_nodes", "degrees", "flags")
}  # fmt: skip


def assemble_local(
    accounts: Sequence[Mapping[str, Any]],
    links: Mapping[str, Mapping[str, Any]],
    info: dict[int, tuple[int, bool]],
    data_now: int,
) -> Projection:
    """A local projection from what the local reads return: account records (in the order
    their edges index them), per relationship type the edges (``LOCAL_LINKS``' columns) and
    the sizes and flags of the identifiers they reach beyond ``info`` (added to it)."""
    proj = Projection(
        ids=[str(r["id"]) for r in accounts],
        nodes=np.asarray([r["node"] for r in accounts], dtype=np.int64),
        created=np.asarray([r["created"] for r in accounts], dtype=np.int64),
        kyc=np.asarray([r["kyc"] for r in accounts], dtype=np.int64),
        label=np.asarray([r["label"] for r in accounts], dtype=np.int64),
        data_now=data_now,
    )
    for kind in IDENTIFIER_KINDS:
        assert kind.rel is not None
        r = links.get(kind.rel, NO_LINKS)  # a type none of the accounts use has no record
        info.update(
            (int(n), (int(d), bool(f)))
            for n, d, f in zip(r["info_nodes"], r["degrees"], r["flags"], strict=True)
        )
        paid = kind.rel == "PAID"
        e = _kind_edges(
            kind.name,
            np.asarray(r["acc"], dtype=np.int64),
            np.asarray(r["ident"], dtype=np.int64),
            np.asarray(r["first"], dtype=np.int64),
            np.asarray(r["last"], dtype=np.int64),
            np.asarray(r["count"], dtype=np.int64),
            np.asarray(r["round_count"], dtype=np.int64) if paid else None,
            np.asarray(r["total_e4"], dtype=np.float64) if paid else None,
            lambda _kind, uniq: np.asarray([info[x][1] for x in uniq.tolist()], dtype=bool),
        )
        e.full_degree = np.asarray([info[x][0] for x in e.nodes.tolist()], dtype=np.int64)
        proj.kinds[kind.name] = e
    return proj


def unread_identifiers(proj: Projection, account_id: str) -> int:
    """How many of the account's identifiers a local projection holds only part of."""
    me = proj.ids.index(account_id)
    unread = 0
    for e in proj.kinds.values():
        if e.full_degree is None:
            continue
        for j in np.unique(e.ident[e.acc == me]).tolist():
            if np.count_nonzero(e.ident == j) < e.full_degree[j]:
                unread += 1
    return unread


def identifier_ids(
    graph: Graph, nodes: list[int], kinds: Mapping[str, I64] | None = None
) -> dict[int, str]:
    """Business ids of a few identifiers of a whole-graph projection, by number (``seq``).

    ``kinds`` (kind -> its numbers, as ``KindEdges.nodes``) says which label to seek each
    number in; a number in none of them, or without ``kinds``, is sought under every label."""
    if not nodes:
        return {}
    left = np.unique(np.asarray(nodes, dtype=np.int64))
    rows: list[Any] = []
    for kind, numbers in (kinds or {}).items():
        mine = np.isin(left, numbers)
        if mine.any():
            part = {"nodes": left[mine].tolist()}
            rows += graph.read(cypher.DETECT_IDENTIFIER_IDS_OF[kind], part)
            left = left[~mine]
    if len(left):
        rows += graph.read(cypher.DETECT_IDENTIFIER_IDS, {"nodes": left.tolist()})
    return {int(r["node"]): str(r["id"]) for r in rows}
