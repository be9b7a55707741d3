"""Cluster features (vectorised over all clusters), the explainable score, per-cluster analysis
(networkx, on the small account+identifier subgraph) and the reasons in words."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import igraph as ig
import networkx as nx
import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from ringscope.kinds import DEVICE, IDENTIFIER_KINDS, PAYEE, PHONE
from ringscope.models.coactivation import Cohorts
from ringscope.models.linking import LinkParams, eligible
from ringscope.models.projection import F64, I64, KindEdges, Projection

DAY = 86_400
# From the kinds table (ringscope.kinds): which kinds are one person's, which are places, the
# words for each, and the order the reasons cite them in.
PERSONAL = tuple(k.name for k in IDENTIFIER_KINDS if k.personal)
PLACES = tuple(k.name for k in IDENTIFIER_KINDS if k.place)
KIND_WORDS = {k.name: k.words for k in IDENTIFIER_KINDS}
CITE_ORDER = tuple(k.name for k in sorted(IDENTIFIER_KINDS, key=lambda k: k.cite_rank))

# The score is sigmoid(BIAS + sum(weight * signal)); every signal is in [0, 1]. See
# docs/detection.md for why each one is there and what it separates.
SCORE_WEIGHTS: dict[str, float] = {
    "emulator_share": 4.0,
    "virtual_phone_share": 2.5,
    "creation_burst": 2.5,
    "join_burst": 3.0,
    "personal_shared_share": 4.0,
    "quiet_share": 2.5,
    "sparse_structure": 1.5,
    "payee_concentration": 2.0,
    "coactivation_share": 4.0,
    # A dormant ring's shape (cluster_table); rarely labelled (it has done nothing yet), so the
    # labels alone cannot weigh it: the prior does, and the learned scorer rescales it.
    "dormant_chain": 2.0,
    "round_excess": 2.0,
    "low_kyc_share": 1.5,
    "young_share": 1.0,
    "fraud_label_share": 5.0,
    "legit_label_share": -3.0,
    "place_coverage": -0.5,
    "model_score_mean": 3.0,
    "model_score_max": 1.5,
}
SCORE_BIAS = -5.0
ACCOUNT_WEIGHTS: dict[str, float] = {
    "emulator": 2.5,
    "virtual_phone": 1.5,
    "low_kyc": 0.8,
    "young": 0.5,
    "round_excess": 1.0,
    "fraud_label": 5.0,
    "legit_label": -3.0,
    "model_score": 4.0,
}
ACCOUNT_BIAS = -5.0


def sigmoid(z: F64) -> F64:
    return np.asarray(1.0 / (1.0 + np.exp(-z)), dtype=np.float64)


@dataclass
class Evidence:
    """What the reasons of one cluster can cite: per signal, the members and identifiers."""

    shared: dict[str, list[tuple[int, int]]] = field(default_factory=dict)  # kind -> (node, k)
    emulators: list[int] = field(default_factory=list)
    top_payee: tuple[int, int, int] | None = None  # (node, members paying, payers in total)
    burst_payees: list[int] = field(default_factory=list)  # payees the members woke on together


@dataclass
class ClusterTable:
    """Features of every cluster, one array per feature, plus the evidence to cite."""

    n_clusters: int
    features: dict[str, F64]
    counts: dict[str, I64]  # raw member counts behind the shares (for the reasons)
    evidence: list[Evidence]


@dataclass(frozen=True)
class TableRows:
    """A :class:`ClusterTable` and its score contributions as Python lists, for the per-cluster
    reads of the reasons and of the features a build records: reading 50,000 clusters' values
    one numpy scalar at a time took seconds of the 1M detect (profiled); the lists hold the
    same floats."""

    features: dict[str, list[float]]
    counts: dict[str, list[int]]
    contrib: dict[str, list[float]]
    evidence: list[Evidence]

    @classmethod
    def of(cls, table: ClusterTable, contrib: Mapping[str, F64]) -> TableRows:
        return cls(
            features={k: v.tolist() for k, v in table.features.items()},
            counts={k: v.tolist() for k, v in table.counts.items()},
            contrib={k: np.asarray(v, dtype=np.float64).tolist() for k, v in contrib.items()},
            evidence=table.evidence,
        )


def _per_cluster_max_in_window(t: I64, lab: I64, k: int, window: int) -> I64:
    """Per cluster, the most members whose time ``t`` falls in one ``window`` (t < 0 ignored)."""
    out = np.zeros(k, dtype=np.int64)
    ok = (t >= 0) & (lab >= 0)
    order = np.lexsort((t[ok], lab[ok]))
    tt, ll = t[ok][order], lab[ok][order]
    if len(tt) == 0:
        return out
    key = ll.astype(np.int64) * (1 << 34) + tt.astype(np.int64)
    hi = np.searchsorted(key, key + window, side="right")
    np.maximum.at(out, ll, hi - np.arange(len(tt)))
    return out


def upper_links(s: sp.csr_matrix) -> sp.coo_matrix:
    """The strict upper triangle of the (symmetric) link matrix, in coordinates: what
    :func:`cluster_table` counts density from, made once per detection rather than per call."""
    return sp.triu(s, k=1).tocoo()


def _distinct_pairs(major: I64, minor: I64, minor_size: int) -> I64:
    """The ``major`` value of each distinct (``major``, ``minor``) pair, in (major, minor)
    order, with ``0 <= minor < minor_size``: ``np.unique(np.stack(...), axis=1)[0]`` without
    its row-wise sort (profiled: 9 s of the 1M detect), through one combined key when it fits
    in 64 bits and a lexicographic sort otherwise."""
    size = max(minor_size, 1)
    if not len(major):
        return major.copy()
    if int(major.max()) < np.iinfo(np.int64).max // size - 1:
        return np.unique(major * size + minor) // size
    order = np.lexsort((minor, major))
    a, b = major[order], minor[order]
    first = np.ones(len(a), dtype=bool)
    first[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1])
    return a[first]


def _in_sorted(values: I64, sorted_keys: I64) -> npt.NDArray[np.bool_]:
    """``np.isin(values, sorted_keys)`` for an already sorted ``sorted_keys``."""
    if not len(sorted_keys):
        return np.zeros(len(values), dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_keys, values), len(sorted_keys) - 1)
    return np.asarray(sorted_keys[pos] == values)


def _member_flags(edges: KindEdges, n: int) -> npt.NDArray[np.bool_]:
    """Accounts with at least one edge to a flagged identifier."""
    out = np.zeros(n, dtype=bool)
    out[edges.acc[edges.flag[edges.ident]]] = True
    return out


def account_signals(proj: Projection, model: F64 | None) -> dict[str, F64]:
    """Each account's own signals, each in [0, 1]."""
    n = proj.n
    now = proj.now()
    sig: dict[str, F64] = {}
    zero = np.zeros(n, dtype=np.float64)
    dev = proj.kinds.get(DEVICE.name)
    ph = proj.kinds.get(PHONE.name)
    sig["emulator"] = _member_flags(dev, n).astype(np.float64) if dev else zero
    sig["virtual_phone"] = _member_flags(ph, n).astype(np.float64) if ph else zero
    sig["low_kyc"] = ((proj.kyc >= 0) & (proj.kyc <= 1)).astype(np.float64)
    sig["young"] = ((proj.created >= 0) & (now - proj.created < 365 * DAY)).astype(np.float64)
    pay = proj.kinds.get(PAYEE.name)
    if pay is not None and pay.round_count is not None:
        cnt = np.bincount(pay.acc, weights=pay.count, minlength=n)
        rnd = np.bincount(pay.acc, weights=pay.round_count, minlength=n)
        share = np.divide(rnd, cnt, out=np.zeros(n), where=cnt > 0)
        years = np.maximum(now - np.where(proj.created >= 0, proj.created, now), 91 * DAY)
        sig["quiet"] = (cnt / (years / (365 * DAY)) < 2.0).astype(np.float64)
        sig["round_share"] = share
        sig["round_excess"] = np.clip((share - 0.3) / 0.6, 0.0, 1.0)
    else:
        sig["round_share"] = zero
        sig["round_excess"] = zero
        sig["quiet"] = zero
    sig["fraud_label"] = (proj.label == 1).astype(np.float64)
    sig["legit_label"] = (proj.label == 0).astype(np.float64)
    sig["model_score"] = model if model is not None else zero
    return sig


def cluster_table(
    proj: Projection,
    clusters: list[I64],
    upper: sp.coo_matrix,
    params: LinkParams,
    sig: dict[str, F64],
    model: F64 | None,
    cohorts: Cohorts | None = None,
) -> ClusterTable:
    n, k = proj.n, len(clusters)
    lab = np.full(n, -1, dtype=np.int64)
    for c, members in enumerate(clusters):
        lab[members] = c
    size = np.bincount(lab[lab >= 0], minlength=k).astype(np.float64)
    feats: dict[str, F64] = {"size": size}
    counts: dict[str, I64] = {}
    evidence = [Evidence() for _ in range(k)]

    def mean_of(x: F64) -> F64:
        m = lab >= 0
        return np.asarray(np.bincount(lab[m], weights=x[m], minlength=k) / np.maximum(size, 1))

    def count_of(x: F64) -> I64:
        m = lab >= 0
        return np.bincount(lab[m], weights=x[m], minlength=k).round().astype(np.int64)

    # Density of the account link graph inside each cluster (``upper``: the link matrix's
    # strict upper triangle, made once per detection by :func:`upper_links`).
    coo = upper
    same = (lab[coo.row] >= 0) & (lab[coo.row] == lab[coo.col])
    links = np.bincount(lab[coo.row[same]], minlength=k).astype(np.float64)
    feats["density"] = links / np.maximum(size * (size - 1) / 2, 1)

    # Shared identifiers per kind; personal ones (documents, cards, emails); place coverage.
    personal_member = np.zeros(n, dtype=bool)
    # Per member, when it started using the last of the identifiers it shares in its cluster.
    join = np.full(n, -1, dtype=np.int64)
    coverage = np.zeros(k, dtype=np.float64)
    common = np.zeros(k, dtype=np.float64)  # most members behind any one shared identifier
    for name, edges in proj.kinds.items():
        in_c = lab[edges.acc] >= 0
        ok = eligible(edges, params)
        deg = edges.degree()
        c_of = lab[edges.acc[in_c]]
        ident = edges.ident[in_c].astype(np.int64)
        acc = edges.acc[in_c].astype(np.int64)
        key = _distinct_pairs(c_of * max(edges.m, 1) + ident, acc, n)
        pair, members = np.unique(key, return_counts=True)
        pc, pi = pair // max(edges.m, 1), pair % max(edges.m, 1)
        shared = (members >= 2) & ok[pi]
        feats[f"shared_{name}"] = np.bincount(pc[shared], minlength=k).astype(np.float64)
        cov = members / np.maximum(size[pc], 1)
        np.maximum.at(common, pc[shared], cov[shared])
        if name in PLACES:
            np.maximum.at(coverage, pc[shared], cov[shared])
        sel = _in_sorted(c_of * max(edges.m, 1) + ident, pair[shared])
        np.maximum.at(join, acc[sel], edges.first[in_c][sel])
        kind_member = np.zeros(n, dtype=np.float64)
        kind_member[acc[sel]] = 1.0
        feats[f"member_share_{name}"] = mean_of(kind_member)
        if name in PERSONAL:
            personal_member[acc[sel]] = True
        for c, node, mem in zip(
            pc[shared].tolist(),
            edges.nodes[pi[shared]].tolist(),
            members[shared].tolist(),
            strict=True,
        ):
            evidence[c].shared.setdefault(name, []).append((int(node), int(mem)))
        if name == DEVICE.name:
            emu = edges.flag[pi]
            for c, node in zip(pc[emu].tolist(), edges.nodes[pi[emu]].tolist(), strict=True):
                evidence[c].emulators.append(int(node))
        if name == PAYEE.name:
            # Concentration: members paying one payee, times that payee's share of payers
            # inside the cluster; a colluding merchant or collector scores 1, a popular shop ~0.
            conc = cov * members / np.maximum(deg[pi], 1)
            best = np.full(k, -1.0)
            np.maximum.at(best, pc, conc)
            feats["payee_concentration"] = np.maximum(best, 0.0)
            for j in np.flatnonzero(conc >= best[pc] - 1e-12):
                c = int(pc[j])
                if evidence[c].top_payee is None and members[j] >= 2:
                    evidence[c].top_payee = (
                        int(edges.nodes[pi[j]]),
                        int(members[j]),
                        int(deg[pi[j]]),
                    )
    for name in KIND_WORDS:
        feats.setdefault(f"shared_{name}", np.zeros(k))
        feats.setdefault(f"member_share_{name}", np.zeros(k))
    feats.setdefault("payee_concentration", np.zeros(k))
    feats["place_coverage"] = coverage
    feats["no_common_identifier"] = (common < 1.0 - 1e-9).astype(np.float64)
    feats["personal_shared_share"] = mean_of(personal_member.astype(np.float64))
    counts["personal_shared"] = count_of(personal_member.astype(np.float64))

    # Account signals, as shares of members.
    for sname, fname in (
        ("emulator", "emulator_share"),
        ("virtual_phone", "virtual_phone_share"),
        ("low_kyc", "low_kyc_share"),
        ("young", "young_share"),
        ("fraud_label", "fraud_label_share"),
        ("legit_label", "legit_label_share"),
    ):
        feats[fname] = mean_of(sig[sname])
        counts[sname] = count_of(sig[sname])
    feats["quiet_share"] = mean_of(sig["quiet"])
    counts["quiet"] = count_of(sig["quiet"])
    feats["sparse_structure"] = (1.0 - feats["density"]) * np.clip((size - 2) / 3, 0.0, 1.0)
    feats["kyc_mean"] = mean_of(np.maximum(proj.kyc, 0).astype(np.float64))
    pay = proj.kinds.get(PAYEE.name)
    if pay is not None and pay.round_count is not None:
        m = lab[pay.acc] >= 0
        cnt = np.bincount(lab[pay.acc[m]], weights=pay.count[m], minlength=k)
        rnd = np.bincount(lab[pay.acc[m]], weights=pay.round_count[m], minlength=k)
        feats["round_share"] = np.divide(rnd, cnt, out=np.zeros(k), where=cnt > 0)
        feats["payments_per_member"] = cnt / np.maximum(size, 1)
    else:
        feats["round_share"] = np.zeros(k)
        feats["payments_per_member"] = np.zeros(k)
    feats["round_excess"] = np.clip((feats["round_share"] - 0.3) / 0.6, 0.0, 1.0)

    # Time: creation burst, the spread of ages, and the burst of first use of shared things.
    now = proj.now()
    c3 = _per_cluster_max_in_window(proj.created, lab, k, 3 * DAY)
    counts["created_3d"] = c3
    feats["creation_burst"] = np.clip((c3 - 1) / np.maximum(size - 1, 1), 0.0, 1.0)
    created = np.where(proj.created >= 0, proj.created, now).astype(np.float64)
    m = lab >= 0
    age = (now - created) / DAY
    feats["age_mean_days"] = mean_of(age)
    cmin = np.full(k, np.inf)
    cmax = np.full(k, -np.inf)
    np.minimum.at(cmin, lab[m], created[m])
    np.maximum.at(cmax, lab[m], created[m])
    feats["age_spread_days"] = np.where(size > 0, (cmax - cmin) / DAY, 0.0)
    # 1 when every member opened within the same day, 0 at a year apart or more: a ring's
    # accounts are opened for it within weeks, a family's over years.
    feats["opened_together"] = np.clip(1.0 - feats["age_spread_days"] / 365.0, 0.0, 1.0)
    # A dormant ring before it strikes (a sleeper that has not woken yet): accounts opened within
    # months, held together only by pairwise links (no identifier shared by all, unlike a
    # family's card or home IP), and quiet. Each part alone is common among honest groups (carrier
    # NAT clusters are pairwise too, families quiet); the product is rare. A modest prior weight
    # (SCORE_WEIGHTS): such rings are rarely labelled before they strike, so a platform's labels
    # alone seldom weigh it; the learned scorer rescales and corrects it where they do.
    feats["dormant_chain"] = (
        feats["no_common_identifier"] * feats["opened_together"] * feats["quiet_share"]
    )
    j3 = _per_cluster_max_in_window(join, lab, k, 3 * DAY)
    counts["joined_3d"] = j3
    feats["join_burst"] = np.clip((j3 - 1) / np.maximum(size - 1, 1), 0.0, 1.0)

    _coactivation(proj, lab, k, cohorts, feats, counts, evidence, mean_of, count_of)

    if model is not None:
        feats["model_score_mean"] = mean_of(model)
        mx = np.zeros(k)
        np.maximum.at(mx, lab[m], model[m])
        feats["model_score_max"] = mx
    return ClusterTable(k, feats, counts, evidence)


def _coactivation(
    proj: Projection,
    lab: I64,
    k: int,
    cohorts: Cohorts | None,
    feats: dict[str, F64],
    counts: dict[str, I64],
    evidence: list[Evidence],
    mean_of: Callable[[F64], F64],
    count_of: Callable[[F64], I64],
) -> None:
    """Members that woke together with another member (a shared burst cohort, see
    models.coactivation), the least days they had been quiet, and the payees they woke on."""
    woke = np.zeros(proj.n, dtype=np.float64)
    quiet = np.full(k, -1, dtype=np.int64)
    if cohorts is not None and cohorts.n_cohorts:
        coo = cohorts.members.tocoo()
        inside = lab[coo.row] >= 0
        acc, coh = coo.row[inside].astype(np.int64), coo.col[inside].astype(np.int64)
        key = lab[acc] * cohorts.n_cohorts + coh
        uniq, inv, cnt = np.unique(key, return_inverse=True, return_counts=True)
        hit = cnt[inv.ravel()] >= 2
        woke[acc[hit]] = 1.0
        least = np.full(k, np.inf)
        np.minimum.at(least, lab[acc[hit]], cohorts.quiet_days[acc[hit]])
        quiet = np.where(np.isinf(least), -1, np.floor(least)).astype(np.int64)
        payees = proj.kinds[PAYEE.name].nodes
        for u in uniq[cnt >= 2].tolist():
            c, j = divmod(int(u), cohorts.n_cohorts)
            evidence[c].burst_payees.append(int(payees[cohorts.payee[j]]))
    feats["coactivation_share"] = mean_of(woke)
    counts["coactivated"] = count_of(woke)
    counts["quiet_days_before_wake"] = quiet


def splice(table: ClusterTable, k: int, rows: list[int], sub: ClusterTable) -> ClusterTable:
    """``table`` grown to ``k`` clusters with ``rows`` taken from ``sub`` (row ``i`` of ``sub``
    is cluster ``rows[i]``); the others keep ``table``'s. Every feature is a function of one
    cluster's members (and the whole graph), so recomputing only the clusters that changed gives
    the same table as recomputing all of them, for a fraction of the time."""
    idx = np.asarray(rows, dtype=np.int64)

    def grow(old: npt.NDArray[Any], new: npt.NDArray[Any]) -> npt.NDArray[Any]:
        out = np.zeros(k, dtype=old.dtype)
        out[: len(old)] = old
        out[idx] = new
        return out

    evidence = list(table.evidence) + [Evidence() for _ in range(k - table.n_clusters)]
    for i, r in enumerate(rows):
        evidence[r] = sub.evidence[i]
    return ClusterTable(
        k,
        {n: grow(v, sub.features[n]) for n, v in table.features.items()},
        {n: grow(v, sub.counts[n]) for n, v in table.counts.items()},
        evidence,
    )


def take(tables: list[ClusterTable], picks: list[tuple[int, int]]) -> ClusterTable:
    """A table whose cluster ``i`` is row ``picks[i][1]`` of ``tables[picks[i][0]]``: rows
    already computed, reordered and combined without recomputing (see :func:`splice` for why
    a row stays valid on its own)."""
    base = np.cumsum([0] + [t.n_clusters for t in tables[:-1]])
    idx = np.asarray([int(base[t]) + r for t, r in picks], dtype=np.int64)

    def cat(columns: list[npt.NDArray[Any]]) -> npt.NDArray[Any]:
        return np.concatenate(columns)[idx] if len(idx) else np.zeros(0, columns[0].dtype)

    evidence = [e for t in tables for e in t.evidence]
    first = tables[0]
    return ClusterTable(
        len(picks),
        {n: cat([t.features[n] for t in tables]) for n in first.features},
        {n: cat([t.counts[n] for t in tables]) for n in first.counts},
        [evidence[i] for i in idx.tolist()],
    )


def score(table: ClusterTable) -> tuple[F64, dict[str, F64]]:
    """Cluster scores and each signal's contribution (weight * value) to the logit."""
    contrib = {
        name: w * table.features[name]
        for name, w in SCORE_WEIGHTS.items()
        if name in table.features
    }
    z = np.full(table.n_clusters, SCORE_BIAS) + sum(contrib.values(), np.zeros(table.n_clusters))
    return sigmoid(z), contrib


def account_own_scores(sig: dict[str, F64], n: int) -> F64:
    z = np.full(n, ACCOUNT_BIAS)
    for name, w in ACCOUNT_WEIGHTS.items():
        z = z + w * sig[name]
    return sigmoid(z)


# --- per-cluster analysis (networkx on the small bipartite subgraph) ---------------------------


@dataclass
class Analysis:
    diameter: int
    articulation_identifiers: list[tuple[str, int]]  # (kind, node)
    bridge_members: list[int]  # account indices whose removal splits the ring
    betweenness: dict[tuple[str, int], float]


def analyse(
    members: I64,
    proj: Projection,
    elig: Mapping[str, npt.NDArray[np.bool_]],
    orders: Mapping[str, tuple[I64, npt.NDArray[np.int32]]],
) -> Analysis:
    """The account+identifier subgraph of one cluster: what holds it together.

    Nodes are the members, then each shared eligible identifier in order of its first edge;
    the analysis runs on the largest connected part (the first, on a tie). It runs in igraph
    (C): at 1M accounts the same in networkx was the detector's largest per-cluster cost
    (profiled: 15 s of betweenness and 7 s of eccentricities over 2,000 clusters). Betweenness
    is normalised as networkx normalises it (by the pairs not involving the node), and the
    diameter of a part over 400 nodes is networkx's two-sweep lower bound, as before.
    """
    names: list[tuple[str, int]] = [("a", int(a)) for a in members.tolist()]
    index: dict[tuple[str, int], int] = {}
    links: set[tuple[int, int]] = set()
    edge_list: list[tuple[int, int]] = []
    pos = {a: i for i, a in enumerate(members.tolist())}  # member -> node
    for name, edges in proj.kinds.items():
        idx = _edge_index(orders[name], members)
        ok = elig[name][edges.ident[idx]]
        idx = idx[ok]
        if not len(idx):
            continue
        ident = edges.ident[idx]
        uniq, cnt = np.unique(ident, return_counts=True)
        shared = set(uniq[cnt >= 2].tolist())
        for a, x in zip(edges.acc[idx].tolist(), ident.tolist(), strict=True):
            if x in shared and a in pos:
                node = (name, int(edges.nodes[x]))
                j = index.get(node)
                if j is None:
                    j = index[node] = len(names)
                    names.append(node)
                if (pos[a], j) not in links:
                    links.add((pos[a], j))
                    edge_list.append((pos[a], j))
    g = ig.Graph(n=len(names), edges=edge_list)
    membership = np.asarray(g.connected_components().membership, dtype=np.int64)
    part = np.flatnonzero(membership == int(np.argmax(np.bincount(membership))))
    sub = g.induced_subgraph(part.tolist())
    label = [names[v] for v in part.tolist()]
    n = sub.vcount()
    if n <= 1:
        diameter = 0
    elif n <= 400:
        diameter = int(sub.diameter(directed=False)) // 2
    else:  # exact diameter is O(n*m): the fast two-sweep lower bound instead
        big = nx.Graph()
        big.add_nodes_from(range(n))  # in the order networkx saw them before (the seed's draw)
        big.add_edges_from(sub.get_edgelist())
        diameter = nx.approximation.diameter(big, seed=0) // 2
    arts = [label[v] for v in sub.articulation_points()]
    bet: dict[tuple[str, int], float] = {}
    if n <= 400:
        scale = 2.0 / ((n - 1) * (n - 2)) if n > 2 else 1.0
        bet = {label[v]: float(b) * scale for v, b in enumerate(sub.betweenness(directed=False))}
    art_ids = sorted((n for n in arts if n[0] != "a"), key=lambda n: (-bet.get(n, 0.0), n[0], n[1]))
    art_members = sorted(n[1] for n in arts if n[0] == "a")
    return Analysis(
        diameter=diameter,
        articulation_identifiers=[(str(n[0]), int(n[1])) for n in art_ids],
        bridge_members=art_members,
        betweenness={(str(k[0]), int(k[1])): float(v) for k, v in bet.items() if k[0] != "a"},
    )


def edge_orders(proj: Projection) -> dict[str, tuple[I64, npt.NDArray[np.int32]]]:
    """Per kind, the edge order by account and the accounts in that order, computed once per
    run for :func:`analyse` (per cluster, gathering them again cost O(edges): at 1M accounts
    that was most of the detector's time)."""
    out = {}
    for name, e in proj.kinds.items():
        order = np.argsort(e.acc, kind="stable").astype(np.int64)
        out[name] = (order, e.acc[order])
    return out


def _edge_index(by_account: tuple[I64, npt.NDArray[np.int32]], members: I64) -> I64:
    """Indices of the edges whose account is in ``members``."""
    if not len(members):
        return np.zeros(0, dtype=np.int64)
    order, sacc = by_account
    keys = members.astype(sacc.dtype)  # same dtype, or searchsorted converts all of sacc
    lo = np.searchsorted(sacc, keys, side="left")
    hi = np.searchsorted(sacc, keys, side="right")
    return np.concatenate([order[a:b] for a, b in zip(lo.tolist(), hi.tolist(), strict=True)])


# --- reasons ------------------------------------------------------------------------------------


def _ids(nodes: list[int], names: Mapping[int, str], limit: int = 3) -> str:
    shown = [names.get(x, f"#{x}") for x in nodes[:limit]]
    more = f" and {len(nodes) - limit} more" if len(nodes) > limit else ""
    return ", ".join(shown) + more


def _plural(k: int, words: tuple[str, str]) -> str:
    return f"{k} {words[0] if k == 1 else words[1]}"


def reasons(
    c: int,
    table: TableRows,
    names: Mapping[int, str],
    analysis: Analysis | None,
) -> tuple[str, ...]:
    """1-4 sentences, strongest factor first, with numbers and identifier ids."""
    f = {k: float(v[c]) for k, v in table.features.items()}
    cnt = {k: int(v[c]) for k, v in table.counts.items()}
    ev = table.evidence[c]
    contrib = table.contrib
    n = int(f["size"])
    out: list[tuple[float, str]] = []

    def shared_text(kinds: tuple[str, ...]) -> str:
        parts = []
        for kind in kinds:
            items = sorted(ev.shared.get(kind, []), key=lambda t: (-t[1], t[0]))
            if items:
                nodes = [x for x, _ in items]
                parts.append(f"{_plural(len(items), KIND_WORDS[kind])} ({_ids(nodes, names)})")
        return " and ".join(parts)

    for name, value in sorted(contrib.items(), key=lambda t: (-float(t[1][c]), t[0])):
        v = float(value[c])
        if v <= 0.05:
            continue
        text = ""
        if name == "emulator_share":
            emus = sorted(set(ev.emulators))
            text = (
                f"{cnt['emulator']} of {n} accounts use "
                f"{_plural(len(emus), ('emulator device', 'emulator devices'))} "
                f"({_ids(emus, names)})"
            )
        elif name == "virtual_phone_share":
            text = f"{cnt['virtual_phone']} of {n} accounts use virtual phone numbers"
        elif name == "creation_burst":
            text = f"{cnt['created_3d']} of {n} accounts were opened within 3 days"
        elif name == "join_burst":
            text = (
                f"{cnt['joined_3d']} of {n} accounts started using the shared identifiers "
                "within 3 days"
            )
        elif name == "personal_shared_share":
            text = f"{cnt['personal_shared']} of {n} accounts share " + shared_text(PERSONAL)
        elif name == "payee_concentration" and ev.top_payee is not None:
            node, k, deg = ev.top_payee
            pid = names.get(node, f"#{node}")
            whose = "its only payers" if k == deg else f"{k} of its {deg} payers"
            text = f"{k} of {n} accounts paid payee {pid} ({whose})"
            if f["round_share"] >= 0.6:
                text += f", {round(100 * f['round_share'])}% of payments in round amounts"
        elif name == "coactivation_share" and ev.burst_payees:
            burst = sorted(set(ev.burst_payees))
            text = (
                f"{cnt['coactivated']} of {n} accounts woke together: they first paid the same "
                f"new {_plural(len(burst), ('payee', 'payees'))} ({_ids(burst, names)}) within "
                f"days of each other, after at least {cnt['quiet_days_before_wake']} days open"
            )
        elif name == "opened_together":
            days = round(f["age_spread_days"])
            text = f"all {n} accounts were opened within {_plural(days, ('day', 'days'))}"
        elif name == "round_excess":
            text = f"{round(100 * f['round_share'])}% of the accounts' payments are round amounts"
        elif name == "quiet_share":
            text = f"{cnt['quiet']} of {n} accounts make fewer than 2 payments a year"
        elif name == "no_common_identifier":
            text = (
                f"no identifier is shared by all {n} accounts: they are held together by "
                "pairwise links"
            )
        elif name == "dormant_chain":
            days = round(f["age_spread_days"])
            text = (
                f"{cnt['quiet']} of {n} accounts are quiet, all were opened within "
                f"{_plural(days, ('day', 'days'))}, and only pairwise links hold them together "
                "(no identifier shared by all): the shape of a dormant ring"
            )
        elif name == "sparse_structure":
            text = (
                f"the {n} accounts form a sparse chain: only {round(100 * f['density'])}% of "
                "pairs share anything directly"
            )
        elif name == "low_kyc_share":
            text = f"{cnt['low_kyc']} of {n} accounts have KYC level 0 or 1"
        elif name == "young_share":
            text = f"{cnt['young']} of {n} accounts are less than a year old"
        elif name == "fraud_label_share":
            text = f"{cnt['fraud_label']} of {n} accounts are already labelled fraud"
        elif name in ("model_score_mean", "model_score_max"):
            text = (
                f"the model scores the accounts {f.get('model_score_mean', 0):.2f} on average "
                f"(highest {f.get('model_score_max', 0):.2f})"
            )
        if text and all(text != t for _, t in out):
            out.append((v, text))
    sentences = [t[0].upper() + t[1:] for _, t in out[:3]]
    # Always say what holds the cluster together (the key identifiers).
    structure = shared_text(CITE_ORDER)
    if analysis is not None and analysis.articulation_identifiers:
        kind, node = analysis.articulation_identifiers[0]
        structure += (
            f"; {KIND_WORDS[kind][0]} {names.get(node, f'#{node}')} holds the group together"
        )
    if structure:
        sentences.append(f"{n} accounts share {structure}")
    if not sentences:
        sentences.append(f"{n} accounts are linked by shared identifiers")
    return tuple(sentences[:4])


def round_features(features: Mapping[str, list[float]], c: int) -> dict[str, float]:
    out = {}
    for k, v in features.items():
        x = float(v[c])
        out[k] = round(x, 6) if math.isfinite(x) else 0.0
    return out
