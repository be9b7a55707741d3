"""Detection one strong component at a time: the local projection of a component, and the
whole graph's cluster order rebuilt from the components' proposals.

Why: past one machine (issue #18, the Spark engine) no process holds the whole graph. Every
step of :func:`models.detect.propose` (components, Leiden, risk splits, trimming, the feature
table) works inside one connected component of the strong links, given three whole-graph facts
that a component cannot count itself: each identifier's size (``KindEdges.full_degree``), the
data's "now" (``Projection.data_now``), and the burst cohorts of co-activation (made per payee
over every payer). :func:`local_projection` builds a component's projection with those facts
attached, and :func:`restrict` cuts one out of a whole projection (the in-process reference the
tests compare with). Only the cluster scorer is fitted on every cluster at once
(:func:`models.detect.fit_scorer`), then applied row by row where the components are.

Order matters for determinism: within a component, accounts are in business-id order (as
``read_projection`` orders the whole graph), so Leiden sees the same vertex numbering; and
:func:`global_order` sorts the components' clusters into the order the whole-graph detector
gives them, so the scorer's cross-validation folds see the same rows in the same places.

Shapes: a component of ``k`` accounts -> ``Projection`` with ``n = k`` and, per kind, its
members' edges only (``m_local`` identifiers, ``full_degree (m_local,)`` whole-graph sizes);
``Links`` with ``k x k`` matrices; ``Cohorts`` with ``(k, c_local)`` members.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from ringscope.kinds import PAYEE
from ringscope.models import clusters as cl
from ringscope.models.cluster_score import ClusterScorer
from ringscope.models.coactivation import Cohorts
from ringscope.models.communities import strong_components, strong_graph
from ringscope.models.detect import (
    Cluster,
    DetectConfig,
    Detection,
    Links,
    Proposal,
    account_scores,
    describe,
    final_scores,
    fit_scorer,
    link,
    merged_rows,
    propose,
)
from ringscope.models.projection import F64, I64, KindEdges, Projection
from ringscope.models.reassembly import joined
from ringscope.models.subgraph import submatrix

__all__ = [
    "LocalEdges",
    "Reassembled",
    "apply_reassembled",
    "components",
    "detect_partitioned",
    "global_order",
    "local_projection",
    "origin_keys",
    "reassemble_flagged",
    "restrict",
    "table_of",
]


@dataclass(frozen=True)
class LocalEdges:
    """One kind's edges of a component: ``acc`` indexes the component's accounts; ``ident``
    is any integer key of the identifier (the whole graph's node id, or a key made up by the
    caller), with its whole-graph ``degree`` and ``flag`` per edge (equal on every edge of one
    identifier)."""

    acc: I64
    ident: I64
    first: I64
    last: I64
    count: I64
    degree: I64
    flag: npt.NDArray[np.bool_]
    round_count: I64 | None = None
    total: F64 | None = None


def local_projection(
    ids: Sequence[str],
    created: I64,
    kyc: I64,
    label: I64,
    edges: Mapping[str, LocalEdges],
    data_now: int,
) -> Projection:
    """A component's projection: its accounts (``ids`` in business-id order) and their edges,
    identifiers numbered ``0..m-1`` in key order, each with its whole-graph size."""
    order = np.argsort(np.asarray(ids, dtype=object), kind="stable")
    if not np.array_equal(order, np.arange(len(ids))):
        raise ValueError("local_projection: ids must be sorted (business-id order)")
    proj = Projection(
        ids=list(ids),
        nodes=np.arange(len(ids), dtype=np.int64),
        created=np.asarray(created, dtype=np.int64),
        kyc=np.asarray(kyc, dtype=np.int64),
        label=np.asarray(label, dtype=np.int64),
        data_now=int(data_now),
    )
    for kind, e in edges.items():
        uniq, first_at, inv = np.unique(e.ident, return_index=True, return_inverse=True)
        proj.kinds[kind] = KindEdges(
            kind=kind,
            acc=np.asarray(e.acc, dtype=np.int32),
            ident=inv.ravel().astype(np.int32),
            first=np.asarray(e.first, dtype=np.int64),
            last=np.asarray(e.last, dtype=np.int64),
            count=np.asarray(e.count, dtype=np.int64),
            nodes=uniq.astype(np.int64),
            flag=np.asarray(e.flag, dtype=bool)[first_at],
            round_count=None if e.round_count is None else np.asarray(e.round_count, np.int64),
            total=None if e.total is None else np.asarray(e.total, dtype=np.float64),
            full_degree=np.asarray(e.degree, dtype=np.int64)[first_at],
        )
    return proj


def restrict(proj: Projection, members: I64, links: Links) -> tuple[Projection, Links]:
    """Component ``members`` (sorted indices into ``proj``) cut out of a whole projection, with
    its links; identifiers keep their node ids and whole-graph sizes."""
    members = np.sort(np.asarray(members, dtype=np.int64))
    local = np.full(proj.n, -1, dtype=np.int64)
    local[members] = np.arange(len(members))
    edges: dict[str, LocalEdges] = {}
    for kind, e in proj.kinds.items():
        keep = local[e.acc] >= 0
        ident = e.ident[keep]
        edges[kind] = LocalEdges(
            acc=local[e.acc[keep]],
            ident=e.nodes[ident],
            first=e.first[keep],
            last=e.last[keep],
            count=e.count[keep],
            degree=e.degree()[ident],
            flag=e.flag[ident],
            round_count=None if e.round_count is None else e.round_count[keep],
            total=None if e.total is None else e.total[keep],
        )
    sub = local_projection(
        [proj.ids[i] for i in members.tolist()],
        proj.created[members],
        proj.kyc[members],
        proj.label[members],
        edges,
        proj.now(),
    )
    cohorts = None
    if links.cohorts is not None:
        c = links.cohorts
        m = sp.csr_matrix(c.members[members])
        used = np.flatnonzero(np.asarray(m.sum(axis=0)).ravel() > 0)
        payees = proj.kinds[PAYEE.name].nodes[c.payee[used]]
        sub_nodes = sub.kinds[PAYEE.name].nodes
        cohorts = Cohorts(
            sp.csr_matrix(m[:, used]),
            np.searchsorted(sub_nodes, payees).astype(np.int64),
            c.quiet_days[members],
        )
    return sub, Links(submatrix(links.s, members), submatrix(links.arrival, members), cohorts)


def global_order(keys: Sequence[tuple[int, str, int]]) -> list[int]:
    """The whole graph's order of clusters gathered from components: ``keys`` per cluster are
    ``(phase, parent's smallest member id, j)`` (``Proposal.origin`` with the parent's smallest
    member as a business id); untrimmed groups come in order of their smallest member, then the
    groups the trim made, by parent and position (what :func:`models.detect.propose` gives on
    the whole graph)."""
    return sorted(range(len(keys)), key=lambda i: keys[i])


def components(links: Links, cfg: DetectConfig) -> list[I64]:
    """The connected components of the strong links with at least ``min_cluster_size``
    accounts (sorted indices): the units that detect one at a time."""
    return strong_components(strong_graph(links.s, cfg.link_threshold), cfg.min_cluster_size)


def origin_keys(proposal: Proposal, ids: Sequence[str]) -> list[tuple[int, str, int]]:
    """Each cluster's place in the whole graph's order (:func:`global_order`), from a
    component's proposal and the component's account ids."""
    return [(ph, ids[proposal.parents[p]], j) for ph, p, j in proposal.origin]


def table_of(rows: Sequence[cl.ClusterTable], picks: Sequence[tuple[int, int]]) -> cl.ClusterTable:
    """The components' tables combined in the order ``picks`` (table, row) gives."""
    if not rows:
        return cl.ClusterTable(0, {"size": np.zeros(0)}, {}, [])
    return cl.take(list(rows), list(picks))


@dataclass
class Reassembled:
    """What :func:`reassemble_flagged` found: per merge, the pieces it joins (indices into the
    flagged clusters given); the merged clusters, described; and each merged member's score
    from them (its own signals' score raised to its merged cluster's)."""

    merges: list[list[int]]
    clusters: list[Cluster]
    member_scores: dict[str, float]


def reassemble_flagged(
    sub: Projection,
    sub_links: Links,
    pieces: Sequence[I64],
    attached: Sequence[float],
    scorer: ClusterScorer,
    cfg: DetectConfig,
    names_of: Callable[[list[int]], dict[int, str]],
    model: F64 | None = None,
) -> Reassembled:
    """Reassembly (``models.reassembly``) over the whole graph's flagged clusters at once, after
    they were proposed, scored and described component by component: what
    :func:`models.detect.reassemble` does in one process. ``sub`` holds exactly the flagged
    clusters' accounts (their edges, with whole-graph sizes; the links among them, across
    components too; their cohorts), ``pieces`` the clusters as indices into it, ``attached``
    the members each one's core left out. A merged cluster's row is computed on its members as
    in one process, so its score, reasons and features are the same."""
    k = len(pieces)
    none = Reassembled([], [], {})
    if cfg.reassemble_share <= 0 or k < 2:
        return none
    groups = [np.asarray(g, dtype=np.int64) for g in pieces]
    flagged = np.ones(k, dtype=bool)
    merges = joined(sub, groups, flagged, cfg.reassembly_params())
    if not merges:
        return none
    merged = [np.unique(np.concatenate([groups[g] for g in m])) for m in merges]
    sig = cl.account_signals(sub, model)
    upper = cl.upper_links(sub_links.s)
    left = (
        np.array([sum(float(attached[g]) for g in m) for m in merges])
        if cfg.trim_attached
        else None
    )
    table, scores, contrib = merged_rows(
        sub, merged, left, upper, sig, model, sub_links.cohorts, scorer, cfg
    )
    proposal = Proposal(
        merged, table, np.zeros(len(merged)), strong_graph(sub_links.s, cfg.link_threshold),
        sig, [(0, j, 0) for j in range(len(merged))], [int(g[0]) for g in merged], upper,
    )  # fmt: skip
    clusters = describe(sub, proposal, scores, contrib, cfg, names_of, scorer=scorer)
    members = {int(i) for g in merged for i in g.tolist()}
    acc = account_scores(sub, sig, merged, scores)
    return Reassembled(
        merges, clusters, {a: v for i, (a, v) in enumerate(acc.items()) if i in members}
    )


def apply_reassembled(
    out: list[Cluster],
    acc: dict[str, float],
    flagged_at: list[int],
    done: Reassembled,
) -> list[Cluster]:
    """The clusters with the merged pieces replaced by their merged clusters, and ``acc``
    updated in place: a merged member's score is its merged cluster's (raised to its own) or
    that of another cluster it is in, whichever is higher, as in one process."""
    gone = {flagged_at[g] for m in done.merges for g in m}
    kept = [c for i, c in enumerate(out) if i not in gone]
    best: dict[str, float] = {}
    for c in kept:
        for a in c.members:
            if a in done.member_scores:
                best[a] = max(best.get(a, 0.0), c.score)
    for a, v in done.member_scores.items():
        acc[a] = max(v, best.get(a, 0.0))
    return kept + done.clusters


def detect_partitioned(
    proj: Projection, cfg: DetectConfig, names_of: Callable[[list[int]], dict[int, str]]
) -> Detection:
    """The detector run one strong component at a time, in this process: the reference for
    engines that distribute the components (the Spark engine) and the test that the detector
    is separable (it must equal :func:`models.detect.detect` exactly; rings only, no account
    model)."""
    links = link(proj, cfg)
    comps = components(links, cfg)
    locals_: list[tuple[Projection, Links, Proposal]] = []
    keys: list[tuple[int, str, int]] = []
    picks: list[tuple[int, int]] = []
    for t, members in enumerate(comps):
        sub, sub_links = restrict(proj, members, links)
        proposal = propose(sub, sub_links, cfg)
        locals_.append((sub, sub_links, proposal))
        keys += origin_keys(proposal, sub.ids)
        picks += [(t, r) for r in range(len(proposal.groups))]
    order = global_order(keys)
    table = table_of([p.table for _, _, p in locals_], [picks[i] for i in order])
    scorer = fit_scorer(table, cfg)
    out: list[Cluster] = []
    own = cl.account_own_scores(cl.account_signals(proj, None), proj.n)
    acc = {a: round(float(v), 6) for a, v in zip(proj.ids, own.tolist(), strict=True)}
    pieces: list[I64] = []  # the flagged clusters, as whole-graph account indices
    attached: list[float] = []
    flagged_at: list[int] = []  # their places in ``out``
    for (sub, _, proposal), members in zip(locals_, comps, strict=True):
        scores, contrib = final_scores(scorer, proposal)
        left = proposal.table.features.get("attached")  # None without trimming
        for c in np.flatnonzero(scores >= cfg.flag_threshold).tolist():
            pieces.append(members[proposal.groups[c]])  # restrict keeps the members' order
            attached.append(float(left[c]) if left is not None else 0.0)
            flagged_at.append(len(out) + c)
        out += describe(sub, proposal, scores, contrib, cfg, names_of, scorer=scorer)
        acc.update(account_scores(sub, proposal.sig, proposal.groups, scores))
    # Reassembly across components: the flagged clusters' accounts cut out together.
    if pieces:
        accounts = np.unique(np.concatenate(pieces))
        fsub, fsub_links = restrict(proj, accounts, links)
        local = [np.searchsorted(accounts, p) for p in pieces]
        done = reassemble_flagged(fsub, fsub_links, local, attached, scorer, cfg, names_of)
        out = apply_reassembled(out, acc, flagged_at, done)
    out.sort(key=lambda x: (-x.score, x.members))
    return Detection(tuple(out), acc, {}, scorer.describe())
