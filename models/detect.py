"""The structural ring detector: projection, hub-aware linking, communities, cluster features,
scores and reasons. ``docs/detection.md`` explains every step and default.

    detection = detect(graph)
    for cluster in detection.clusters:  # strongest first
        print(cluster.score, cluster.members, cluster.reasons)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import scipy.sparse as sp

from ringscope.graph.connection import Graph
from ringscope.kinds import IDENTIFIER_KINDS
from ringscope.models import cluster_prior
from ringscope.models import clusters as cl
from ringscope.models.boundaries import attached_groups, core_mask
from ringscope.models.builds.records import DEFAULT_FLAG_THRESHOLD
from ringscope.models.cluster_score import C_L2, ClusterScorer
from ringscope.models.coactivation import (
    CoactivationParams,
    Cohorts,
    burst_cohorts,
    coactivation_matrix,
)
from ringscope.models.communities import engine_for, strong_graph
from ringscope.models.linking import LinkParams, eligible, link_matrix
from ringscope.models.projection import F64, I64, Projection, identifier_ids, read_projection
from ringscope.models.reassembly import ReassemblyParams, joined
from ringscope.settings import Settings

__all__ = ["Cluster", "DetectConfig", "Detection", "detect"]


@dataclass(frozen=True)
class Cluster:
    """One candidate ring."""

    members: tuple[str, ...]  # account ids, sorted
    score: float  # cluster risk in [0, 1]
    reasons: tuple[str, ...]  # 1-4 sentences, strongest first
    features: dict[str, float]  # cluster features by name
    key_identifiers: tuple[tuple[str, str, int], ...]  # (kind, identifier id, members using it)
    density: float  # share of member pairs that are linked


@dataclass(frozen=True)
class Detection:
    clusters: tuple[Cluster, ...]  # sorted by score, highest first
    account_scores: dict[str, float]  # account id -> risk in [0, 1]
    stage_seconds: dict[str, float]  # projection, linking, communities, features
    scorer: dict[str, object] = field(default_factory=lambda: {"source": "prior"})


def _default_kind_weights() -> dict[str, float]:
    return {k.name: k.weight for k in IDENTIFIER_KINDS}


def _default_caps() -> dict[str, int]:
    return {k.name: k.degree_cap for k in IDENTIFIER_KINDS}


def _default_time_floors() -> dict[str, float]:
    return {k.name: k.time_floor for k in IDENTIFIER_KINDS if k.time_floor is not None}


@dataclass(frozen=True)
class DetectConfig:
    """Detector settings. The defaults are the ones measured in docs/detection.md."""

    # Per-kind weight of one shared identifier used by exactly two accounts. Documents, cards,
    # emails, phones and devices are personal; an IP or a payee is shared by strangers too.
    # The defaults (weights, caps, time floors) are the kinds table's (ringscope.kinds).
    kind_weights: dict[str, float] = field(default_factory=_default_kind_weights)
    # Identifiers used by more accounts than this are hubs: left out of linking (kept in features).
    degree_caps: dict[str, int] = field(default_factory=_default_caps)
    # Merchants link accounts only while this few accounts pay them (a colluding shop);
    # individual payees link up to degree_caps["payee"].
    merchant_degree_cap: int = 10
    # Time overlap: first/last seen are bucketed by this many days (widened by one bucket each
    # side); a pair that never overlaps keeps only its kind's floor of the identifier's weight.
    # Only kinds that are reissued to strangers are time-aware: numbers are recycled, dynamic IPs
    # reassigned, devices resold. Documents, cards, emails and payees keep their full weight.
    time_bucket_days: int = 120
    time_floors: dict[str, float] = field(default_factory=_default_time_floors)
    # Co-arrival: a pair that first used the identifier within about arrival_days of each other
    # gets up to arrival_bonus times the identifier's weight on top (farms, takeover waves).
    arrival_days: int = 7
    arrival_bonus: float = 0.33
    # A link is strong (used for components) at or above this summed weight.
    link_threshold: float = 0.25
    # Clusters smaller than this are not reported (two accounts are not a ring).
    min_cluster_size: int = 3
    # Components larger than this are split with Leiden (modularity, this resolution).
    max_cluster_size: int = 80
    leiden_resolution: float = 1.0
    seed: int = 0
    # A cluster is "flagged" at or above this score (the evaluation threshold); the build
    # records it, and builds without the record take this default.
    flag_threshold: float = DEFAULT_FLAG_THRESHOLD
    # Components of at least split_min_size members are also cut by Leiden; the parts replace
    # the component when the best part scores at least split_gain higher (risk concentrates).
    split_min_size: int = 6
    split_gain: float = 0.25
    # Co-arrival weight at which a strong link also counts as made in one wave (for splitting).
    wave_threshold: float = 0.3
    # networkx analysis (articulation points, betweenness, diameter) runs for clusters scoring
    # at least this (it is the one per-cluster Python step; benign clusters skip it).
    analyse_min_score: float = 0.2
    # At most this many key identifiers are reported per cluster.
    max_key_identifiers: int = 5
    # Which community engine finds and splits the groups (models.communities.engine_for).
    community_engine: str = "in-process"
    # The cluster score: "prior" (the hand-set weights, clusters.SCORE_WEIGHTS) or "learned"
    # (models.cluster_score: fitted on the platform's labels, calibrated; it falls back to the
    # prior with fewer than cluster_min_positives clusters holding a fraud label, or as few
    # holding only legit labels).
    cluster_scorer: Literal["prior", "learned"] = "learned"
    # The prior either scorer starts from: "worlds" (gradient-boosted trees learned from
    # generated worlds, models.cluster_prior, shipped as models/cluster_prior.txt) or "hand-set"
    # (clusters.SCORE_WEIGHTS, the only prior before session 27).
    cluster_prior: Literal["worlds", "hand-set"] = "worlds"
    cluster_min_positives: int = 8
    # Inverse strength of the penalty on (standardised) deviations from the prior; None: chosen
    # per build by out-of-fold likelihood, which measured worse (models.cluster_score.C_L2).
    cluster_c_l2: float | None = C_L2
    # Ring boundaries (models.boundaries): a cluster scoring at least analyse_min_score keeps
    # only its core (its largest block of at least min_core members); the attached members (a
    # ring member's family, hanging on one member) leave it and inherit nothing from it, and
    # their own groups of min_cluster_size or more become clusters scored on their own.
    trim_attached: bool = True
    min_core: int = 3
    # Co-activation (models.coactivation): accounts open at least quiet_days that first pay the
    # same new payee within burst_days of its first payment are linked with this weight (0: off).
    coactivation_weight: float = 0.3
    burst_days: int = 3
    quiet_days: int = 21
    # Onboarding cohorts (models.coactivation): accounts that first paid the same new small payee
    # within fresh_days of opening, within fresh_burst_days of its first payment, are linked with
    # this weight (0: off). A cash-out ring's colluding merchant.
    fresh_weight: float = 0.3
    fresh_days: int = 7
    fresh_burst_days: int = 30
    # Reassembly (models.reassembly): flagged clusters that share an identifier with at least
    # this share of its accounts in them are one ring (0: off).
    reassemble_share: float = 0.8
    reassemble_min_degree: int = 3
    # ... and flagged chains joined by an identifier only their two ends ever used (sleeper
    # rings that Leiden cut into pieces).
    reassemble_chains: bool = True

    def __post_init__(self) -> None:
        # A kind without a weight or cap would link nothing (or die deep in a rebuild): refuse
        # the config up front, naming what is missing.
        kinds = {k.name for k in IDENTIFIER_KINDS}
        for name, table in (("kind_weights", self.kind_weights), ("degree_caps", self.degree_caps)):
            missing = sorted(kinds - table.keys())
            if missing:
                raise ValueError(f"DetectConfig.{name} has no entry for: {', '.join(missing)}")

    def link_params(self) -> LinkParams:
        return LinkParams(
            kind_weights=dict(self.kind_weights),
            degree_caps=dict(self.degree_caps),
            merchant_degree_cap=self.merchant_degree_cap,
            time_bucket_days=self.time_bucket_days,
            time_floors=dict(self.time_floors),
            arrival_days=self.arrival_days,
            arrival_bonus=self.arrival_bonus,
        )

    def reassembly_params(self) -> ReassemblyParams:
        return ReassemblyParams(
            share=self.reassemble_share,
            min_degree=self.reassemble_min_degree,
            chains=self.reassemble_chains,
        )

    def coactivation_params(self) -> CoactivationParams:
        return CoactivationParams(
            burst_days=self.burst_days,
            quiet_days=self.quiet_days,
            min_members=self.min_cluster_size,
            weight=self.coactivation_weight,
            fresh_days=self.fresh_days,
            fresh_burst_days=self.fresh_burst_days,
            fresh_weight=self.fresh_weight,
        )


class _Lap:
    """Sub-stage timer for the features stage: ``lap(name)`` records the seconds since the last
    lap as ``features.<name>``, so a bench shows where the detector's biggest stage goes."""

    def __init__(self, seconds: dict[str, float], start: float) -> None:
        self.seconds, self.last = seconds, start

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[f"features.{name}"] = now - self.last
        self.last = now


def _disjoint(rows: list[int], groups: list[np.ndarray]) -> list[list[int]]:
    """``rows`` in batches whose groups share no account (first fit, order kept)."""
    batches: list[tuple[list[int], set[int]]] = []
    for r in rows:
        members = set(groups[r].tolist())
        for batch, used in batches:
            if not used & members:
                batch.append(r)
                used |= members
                break
        else:
            batches.append(([r], members))
    return [b for b, _ in batches]


def _proposal_scores(
    proj: Projection,
    parts: list[np.ndarray],
    upper: sp.coo_matrix,
    params: LinkParams,
    signals: dict[str, F64],
    cohorts: Cohorts | None,
) -> F64:
    """The structural score of each proposed part, judged on its own members.

    A group's two split proposals overlap (both cover its members) and the feature table
    labels each account with one cluster, so they are scored in passes that share no account.
    Scored in one pass, the later proposal took the shared accounts from the earlier one's
    parts, whose sizes and shares were then wrong (measured on dev world 5 at 100k: 6 of 42
    synthetic-identity rings were lost to it)."""
    out = np.zeros(len(parts), dtype=np.float64)
    for batch in _disjoint(list(range(len(parts))), parts):
        sub = cl.cluster_table(
            proj, [parts[i] for i in batch], upper, params, signals, None, cohorts
        )
        out[batch] = cl.score(sub)[0]
    return out


@dataclass
class Links:
    """The linking step's output: the weighted link matrix ``s`` (shared identifiers, time terms,
    co-arrival bonus and co-activation), its co-arrival part ``arrival`` (waves, for splitting),
    and the burst cohorts (for the co-activation features). All ``n x n`` over the projection."""

    s: sp.csr_matrix
    arrival: sp.csr_matrix
    cohorts: Cohorts | None


@dataclass
class Proposal:
    """Candidate clusters with their feature table, before the (global) scorer.

    Every step that makes it (components, Leiden, risk splits, trimming) works within one
    connected component of the strong links, so a proposal of the whole graph is the union of
    the proposals of its components (the Spark engine relies on this). ``origin`` gives each
    group's place in the whole graph's order: ``(phase, parent, j)``, phase 0 for the groups of
    the untrimmed order (sorted by smallest member), phase 1 for the groups the trim made of
    what a core left out, ``parent`` the untrimmed group they came from (index into
    ``parents``), ``j`` their order within it. ``parents`` holds each untrimmed group's
    smallest member (an index into the projection)."""

    groups: list[I64]
    table: cl.ClusterTable
    prior: F64  # the structural (or prior) score of each group, which the trim used
    strong: sp.csr_matrix
    sig: dict[str, F64]
    origin: list[tuple[int, int, int]]
    parents: list[int]
    upper: sp.coo_matrix  # the link matrix's strict upper triangle (cl.upper_links), for density


def link(proj: Projection, cfg: DetectConfig) -> Links:
    """Hub-aware linking plus co-activation (``docs/detection.md`` sections 1-2)."""
    params = cfg.link_params()
    s, arrival = link_matrix(proj, params)
    cohorts = None
    if cfg.coactivation_weight > 0:
        # Waking together is a link like sharing an identifier, and a wave (for splitting).
        cparams = cfg.coactivation_params()
        cohorts = burst_cohorts(proj, params, cparams)
        if cohorts.n_cohorts:
            co = coactivation_matrix(cohorts, cparams)
            s = sp.csr_matrix(s + co)
            arrival = sp.csr_matrix(arrival + co)
    if cfg.fresh_weight > 0:
        # Arriving together on a new payee is a wave too; its cohorts feed no cluster feature.
        cparams = cfg.coactivation_params()
        fresh = burst_cohorts(proj, params, cparams, fresh=True)
        if fresh.n_cohorts:
            co = coactivation_matrix(fresh, cparams, fresh=True)
            s = sp.csr_matrix(s + co)
            arrival = sp.csr_matrix(arrival + co)
    return Links(s, arrival, cohorts)


def propose(
    proj: Projection,
    links: Links,
    cfg: DetectConfig,
    model: F64 | None = None,
    seconds: dict[str, float] | None = None,
) -> Proposal:
    """Communities, risk splits and ring boundaries, with every group's feature table.

    ``proj`` may be the whole graph or one strong component of it (with the whole graph's
    identifier sizes and "now", see :class:`Proposal`); ``model`` the learned account scores."""
    params = cfg.link_params()
    seconds = seconds if seconds is not None else {}
    t = time.perf_counter()
    s, arrival, cohorts = links.s, links.arrival, links.cohorts
    strong = strong_graph(s, cfg.link_threshold)
    engine = engine_for(cfg.community_engine)
    groups = engine.communities(
        strong,
        min_size=cfg.min_cluster_size,
        max_size=cfg.max_cluster_size,
        resolution=cfg.leiden_resolution,
        seed=cfg.seed,
    )
    seconds["communities"] = time.perf_counter() - t

    t = time.perf_counter()
    sig = cl.account_signals(proj, model)
    upper = cl.upper_links(s)
    table = cl.cluster_table(proj, groups, upper, params, sig, model, cohorts)
    scores, _ = cl.score(table)
    lap = _Lap(seconds, t)
    lap("table")
    wave = strong.multiply(strong_graph(arrival, cfg.wave_threshold) > 0).tocsr()
    splits = engine.risk_splits(
        strong, groups, min_size=cfg.min_cluster_size, split_min_size=cfg.split_min_size,
        seed=cfg.seed, wave=wave,
    )  # fmt: skip
    if splits:
        # Whether a split concentrates risk is judged on structure alone: a learned score on one
        # member raises the whole component as much as the part, hiding the gain (measured:
        # judging with model scores kept 4% of the planted rings glued to benign neighbours).
        flat = [p for _, parts in splits for p in parts]
        plain = cl.account_signals(proj, None)
        part_scores = _proposal_scores(proj, flat, upper, params, plain, cohorts)
        whole = (
            scores
            if model is None
            else cl.score(cl.cluster_table(proj, groups, upper, params, plain, None, cohorts))[0]
        )
        replace: dict[int, list[np.ndarray]] = {}
        gain: dict[int, float] = {}
        i = 0
        for gi, parts in splits:
            best = float(part_scores[i : i + len(parts)].max())
            if best >= float(whole[gi]) + cfg.split_gain and best > gain.get(gi, -1.0):
                replace[gi] = list(parts)
                gain[gi] = best
            i += len(parts)
        if replace:
            # Only the new parts are computed; every other row is the old table's.
            new_parts = [(gi, j) for gi in sorted(replace) for j in range(len(replace[gi]))]
            parts_table = cl.cluster_table(
                proj, [replace[gi][j] for gi, j in new_parts], upper, params, sig, model, cohorts
            )
            row_of = {(gi, j): i for i, (gi, j) in enumerate(new_parts)}
            placed = [
                (p, (1, row_of[gi, j]) if gi in replace else (0, gi))
                for gi, grp in enumerate(groups)
                for j, p in enumerate(replace.get(gi, [grp]))
            ]
            placed.sort(key=lambda t: (int(t[0][0]), len(t[0])))
            groups = [p for p, _ in placed]
            table = cl.take([table, parts_table], [src for _, src in placed])
            scores, _ = cl.score(table)
    lap("splits")

    parents = [int(g[0]) for g in groups]
    origin = [(0, c, 0) for c in range(len(groups))]
    if cfg.trim_attached:
        cores: list[np.ndarray] = []
        left: list[int] = []
        rest_groups: list[np.ndarray] = []
        for c, members in enumerate(groups):
            mask = (
                core_mask(members, strong, cfg.min_core)
                if scores[c] >= cfg.analyse_min_score
                else np.ones(len(members), dtype=bool)
            )
            cores.append(members[mask])
            left.append(int((~mask).sum()))
            # What the core left out is scored on its own where it holds together.
            rest = attached_groups(
                members[~mask], strong, cfg.min_cluster_size, core=members[mask], wave=wave
            )
            origin += [(1, c, j) for j in range(len(rest))]
            rest_groups += rest
        attached = np.array(left + [0] * len(rest_groups), dtype=np.int64)
        if attached.any():
            # Only the trimmed clusters and the new ones are recomputed.
            redo = [c for c, n_left in enumerate(left) if n_left]
            redo += list(range(len(groups), len(groups) + len(rest_groups)))
            groups = cores + rest_groups
            # A group extended by the core member it hangs on shares that member with the core:
            # the feature table is per account, so overlapping clusters go in separate passes.
            for batch in _disjoint(redo, groups):
                sub = cl.cluster_table(
                    proj, [groups[c] for c in batch], upper, params, sig, model, cohorts
                )
                table = cl.splice(table, len(groups), batch, sub)
            scores, _ = cl.score(table)
        else:
            origin = origin[: len(groups)]
        # Reported per cluster: members left out as attached, and the core's share of the whole.
        table.features["attached"] = attached.astype(np.float64)
        table.features["core_share"] = table.features["size"] / (table.features["size"] + attached)
    lap("trim")
    return Proposal(groups, table, scores, strong, sig, origin, parents, upper)


def fit_scorer(table: cl.ClusterTable, cfg: DetectConfig) -> ClusterScorer:
    """The cluster scorer, fitted on every cluster of the graph (the labels are global)."""
    scorer = ClusterScorer(
        min_positives=cfg.cluster_min_positives,
        c_l2=cfg.cluster_c_l2,
        seed=cfg.seed,
        prior=cluster_prior.shipped() if cfg.cluster_prior == "worlds" else None,
    )
    if cfg.cluster_scorer == "learned":
        scorer.fit(table)
    return scorer


def final_scores(scorer: ClusterScorer, proposal: Proposal) -> tuple[F64, dict[str, F64]]:
    """Each cluster's score and contributions: the learned scorer's where it was fitted, the
    configured prior's otherwise (the scorer's own fallback: the learned prior's trees, or the
    hand-set weights). Row by row, so a component's rows score as they do in the whole table."""
    return scorer.predict_proba(proposal.table), scorer.contributions(proposal.table)


def merged_rows(
    proj: Projection,
    merged: list[I64],
    left: F64 | None,
    upper: sp.coo_matrix,
    sig: dict[str, F64],
    model: F64 | None,
    cohorts: Cohorts | None,
    scorer: ClusterScorer,
    cfg: DetectConfig,
) -> tuple[cl.ClusterTable, F64, dict[str, F64]]:
    """Reassembled clusters' rows, computed on their members, and their scores and
    contributions from the fitted scorer (the prior's where it fell back). ``left``: per merged
    cluster, the members its pieces' cores left out (None without trimming); they stay out, the
    merged ring's core is the union of the pieces' cores."""
    sub = cl.cluster_table(proj, merged, upper, cfg.link_params(), sig, model, cohorts)
    if left is not None:
        sub.features["attached"] = left
        sub.features["core_share"] = sub.features["size"] / (sub.features["size"] + left)
    return sub, scorer.predict_proba(sub), scorer.contributions(sub)


def reassemble(
    proj: Projection,
    links: Links,
    proposal: Proposal,
    scores: F64,
    contrib: dict[str, F64],
    scorer: ClusterScorer,
    cfg: DetectConfig,
    model: F64 | None = None,
) -> tuple[Proposal, F64, dict[str, F64]]:
    """The flagged pieces of one ring merged (``models.reassembly``), each merged cluster's row
    computed on its members and scored by the fitted scorer; every other row is kept.

    Across strong components: a mule ring's card and document groups are strong components of
    their own, held together only by the collector they all pay (a payee of 10-100 payers links
    weakly), and reassembly within a component left a 71-account ring as 11 flagged pieces.
    Engines that propose per component reassemble afterwards, in one pass over every flagged
    cluster: ``models.partition`` on the whole graph's proposal pieced together, the Spark
    engine on the flagged clusters' own rows (their accounts, edges and links)."""
    groups = proposal.groups
    flagged = scores >= cfg.flag_threshold
    if cfg.reassemble_share <= 0 or int(flagged.sum()) < 2:
        return proposal, scores, contrib
    merges = joined(proj, groups, flagged, cfg.reassembly_params())
    if not merges:
        return proposal, scores, contrib
    merged = [np.unique(np.concatenate([groups[g] for g in m])) for m in merges]
    table = proposal.table
    left = (
        np.array([table.features["attached"][m].sum() for m in merges])
        if "attached" in table.features
        else None
    )
    sub, sub_scores, sub_contrib = merged_rows(
        proj, merged, left, proposal.upper, proposal.sig, model, links.cohorts, scorer, cfg
    )
    gone = {g for m in merges for g in m}
    keep = [g for g in range(len(groups)) if g not in gone]
    picks = [(0, g) for g in keep] + [(1, j) for j in range(len(merges))]
    out = replace(
        proposal,
        groups=[groups[g] for g in keep] + merged,
        table=cl.take([table, sub], picks),
        prior=np.concatenate([proposal.prior[keep], [proposal.prior[m].max() for m in merges]]),
        origin=[proposal.origin[g] for g in keep] + [proposal.origin[m[0]] for m in merges],
    )
    new_contrib = {
        name: np.concatenate([v[keep], sub_contrib.get(name, np.zeros(len(merges)))])
        for name, v in contrib.items()
    }
    return out, np.concatenate([scores[keep], sub_scores]), new_contrib


def describe(
    proj: Projection,
    proposal: Proposal,
    scores: F64,
    contrib: dict[str, F64],
    cfg: DetectConfig,
    names_of: Callable[[list[int]], dict[int, str]],
    seconds: dict[str, float] | None = None,
    *,
    scorer: ClusterScorer | None = None,
) -> list[Cluster]:
    """The reported clusters: networkx analysis for those worth explaining, key identifiers,
    reasons in sentences. ``names_of`` maps identifier nodes (``KindEdges.nodes``) to their ids.
    With the fitted ``scorer``, each cluster's features carry ``score_unlabelled``, its score
    without its own labels (``ClusterScorer.unlabelled_proba``): the next build's ring prior."""
    params = cfg.link_params()
    groups, table = proposal.groups, proposal.table
    unlabelled = scorer.unlabelled_proba(table) if scorer is not None else None
    lap = _Lap(seconds if seconds is not None else {}, time.perf_counter())
    elig = {name: eligible(e, params) for name, e in proj.kinds.items()}
    analyses: dict[int, cl.Analysis] = {}
    orders = cl.edge_orders(proj)
    for c in np.flatnonzero(scores >= cfg.analyse_min_score).tolist():
        analyses[c] = cl.analyse(groups[c], proj, elig, orders)
    lap("analyse")
    wanted: list[int] = []
    keys: dict[int, list[tuple[str, int, int]]] = {}
    for c in range(len(groups)):
        ev = table.evidence[c]
        ranked: list[tuple[float, str, int, int]] = []
        art = {}
        bet: dict[tuple[str, int], float] = {}
        if c in analyses:
            art = {x: i for i, x in enumerate(analyses[c].articulation_identifiers)}
            bet = analyses[c].betweenness
            # The reasons say which identifier holds the group together (the first of these),
            # whether or not it is among the cluster's shared identifiers.
            wanted.extend(node for _, node in analyses[c].articulation_identifiers[:1])
        for kind, items in ev.shared.items():
            w = params.kind_weights.get(kind, 0.0)
            for node, k in items:
                is_art = (kind, node) in art
                strength = is_art * 10.0 + bet.get((kind, node), 0.0) + w * k
                ranked.append((-strength, kind, node, k))
        ranked.sort()
        keys[c] = [(kind, node, k) for _, kind, node, k in ranked[: cfg.max_key_identifiers]]
        # Every identifier a cluster's reasons can cite is named, whatever its score: a reason
        # reads the same in every build and engine (it once fell back to Neo4j's internal ids
        # for clusters under analyse_min_score, unless another cluster happened to cite them).
        wanted.extend(node for _, node, _ in keys[c])
        wanted.extend(ev.emulators[:3])
        for items in ev.shared.values():
            wanted.extend(x for x, _ in sorted(items, key=lambda t: (-t[1], t[0]))[:3])
        if ev.top_payee is not None:
            wanted.append(ev.top_payee[0])
        wanted.extend(ev.burst_payees[:3])
    unique = sorted(set(wanted))
    names: dict[int, str] = {}
    for lo in range(0, len(unique), 50_000):  # one bounded read per 50,000 identifiers
        names.update(names_of(unique[lo : lo + 50_000]))

    out: list[Cluster] = []
    rows = cl.TableRows.of(table, contrib)
    for c, members in enumerate(groups):
        a = analyses.get(c)
        feats = cl.round_features(rows.features, c)
        feats["diameter"] = float(a.diameter) if a else -1.0
        feats["articulation_identifiers"] = float(len(a.articulation_identifiers)) if a else -1.0
        if unlabelled is not None:
            feats["score_unlabelled"] = round(float(unlabelled[c]), 6)
        out.append(
            Cluster(
                members=tuple(sorted(proj.ids[i] for i in members.tolist())),
                score=round(float(scores[c]), 6),
                reasons=cl.reasons(c, rows, names, a),
                features=feats,
                key_identifiers=tuple(
                    (kind, names.get(node, f"#{node}"), k) for kind, node, k in keys[c]
                ),
                density=round(float(rows.features["density"][c]), 6),
            )
        )
    return out


def account_scores(
    proj: Projection, sig: dict[str, F64], groups: list[I64], scores: F64
) -> dict[str, float]:
    """Each account's score: its own signals' score, raised to its clusters' scores."""
    acc = cl.account_own_scores(sig, proj.n).copy()
    for c, members in enumerate(groups):
        acc[members] = np.maximum(acc[members], scores[c])
    return {a: round(float(v), 6) for a, v in zip(proj.ids, acc.tolist(), strict=True)}


def detect(
    graph: Graph,
    settings: Settings | None = None,
    *,
    config: DetectConfig | None = None,
    account_model_scores: Mapping[str, float] | None = None,
    projection: Projection | None = None,
) -> Detection:
    """Find candidate rings in the graph and score clusters and accounts.

    ``projection`` is the graph already read (the rebuild reads it once for the learned model
    and the detector); ``account_model_scores`` are the learned model's probabilities.
    """
    del settings  # the connection already carries what the detector needs
    cfg = config or DetectConfig()
    seconds: dict[str, float] = {}

    t = time.perf_counter()
    proj = projection if projection is not None else read_projection(graph)
    seconds["projection"] = time.perf_counter() - t

    t = time.perf_counter()
    links = link(proj, cfg)
    seconds["linking"] = time.perf_counter() - t

    t = time.perf_counter()
    model: F64 | None = None
    if account_model_scores is not None:
        model = np.asarray(
            [float(account_model_scores.get(a, 0.0)) for a in proj.ids], dtype=np.float64
        )
    proposal = propose(proj, links, cfg, model, seconds)
    lap = _Lap(seconds, time.perf_counter())
    scorer = fit_scorer(proposal.table, cfg)
    scores, contrib = final_scores(scorer, proposal)
    lap("scorer")
    proposal, scores, contrib = reassemble(
        proj, links, proposal, scores, contrib, scorer, cfg, model
    )
    lap("reassemble")
    out = describe(
        proj,
        proposal,
        scores,
        contrib,
        cfg,
        lambda nodes: identifier_ids(graph, nodes, {k: e.nodes for k, e in proj.kinds.items()}),
        seconds,
        scorer=scorer,
    )
    out.sort(key=lambda x: (-x.score, x.members))
    acc = account_scores(proj, proposal.sig, proposal.groups, scores)
    # "features": everything after the communities (table, splits, trim, scorer, reasons).
    seconds["features"] = time.perf_counter() - t - seconds["communities"]
    return Detection(tuple(out), acc, seconds, scorer.describe())
