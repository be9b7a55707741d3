"""Evaluating a build against the generator's ground truth (``truth/*.csv``).

Definitions (also in ``docs/builds.md``); a cluster is **flagged** when its score is at least the
flag threshold:

* **ring recall**: share of planted rings (``rings.csv``) that some flagged cluster matches with
  Jaccard overlap >= 0.5;
* **precision**: share of flagged clusters that are true positives, i.e. at least half of their
  members are fraud accounts (``accounts.csv`` ``is_fraud``; accounts absent from the truth count
  as not fraud);
* **benign false-positive rate**: share of benign groups (``benign_groups.csv``) that are
  *flagged*: some flagged cluster matches the group with Jaccard >= 0.5, or more than half of the
  group's members are inside flagged clusters;
* **AUROC / AUPRC**: the build's account risk scores against ``is_fraud`` over every account in
  the truth; an account the build did not score counts as score 0.

Per ring typology: recall, and AUROC/AUPRC of that typology's accounts against the legitimate
accounts (other fraud left out). Per benign kind: the false-positive rate.

Per typology too, **why each missed ring was missed** (``MISS_CAUSES``), because the remedies
differ: a ring cut into flagged pieces, or swallowed into a bigger flagged cluster, needs better
boundaries (reassembly, trimming); a ring grouped exactly but scored under the flag needs a
better score; a ring never grouped needs linking. In that order, a missed ring is

* ``boundary``: at least half of its members are inside flagged clusters, none of which matches
  it (pieces of it, or a cluster that holds others as well);
* ``scored_low``: some cluster matches it (Jaccard >= 0.5) but scores under the flag;
* ``partial``: some of its members are in clusters, none matching and too few flagged;
* ``unclustered``: none of its members is in any cluster.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
from rich.table import Table
from sklearn.metrics import average_precision_score, roc_auc_score

from ringscope.errors import RingScopeError
from ringscope.graph.connection import Graph
from ringscope.models.builds import ClusterInfo, account_scores, all_clusters, overlaps

MATCH_JACCARD = 0.5  # a cluster matches a ring or benign group at this Jaccard overlap
TRUE_POSITIVE_FRAUD_SHARE = 0.5  # a flagged cluster is a true positive at this fraud share
BENIGN_INSIDE_SHARE = (
    0.5  # a benign group is flagged when MORE than this share is in flagged clusters
)
# Why a planted ring was missed, in the order they are tested (see the module doc).
MISS_CAUSES = ("boundary", "scored_low", "partial", "unclustered")


class TruthError(RingScopeError):
    """The ground-truth directory is missing a file or a column."""


@dataclass(frozen=True)
class TypologyMetrics:
    typology: str
    rings: int
    rings_found: int
    recall: float | None  # None when the truth has no ring of this typology (e.g. lone)
    accounts: int
    auroc: float | None  # None when undefined (no accounts of the typology, or no legit ones)
    auprc: float | None
    # Sleeper rings only (truth column ``woke_together``): how many woke together inside the
    # data (a shared burst of first payments after a long quiet), and how many of those were
    # found. The rest leave only a chain of single shared identifiers.
    woke: int = 0
    woke_found: int = 0
    # Missed rings by cause (MISS_CAUSES; causes with no ring left out).
    missed: dict[str, int] = field(default_factory=dict)

    @property
    def recall_woke(self) -> float | None:
        return _ratio(self.woke_found, self.woke)

    @property
    def recall_not_woke(self) -> float | None:
        return _ratio(self.rings_found - self.woke_found, self.rings - self.woke)


@dataclass(frozen=True)
class BenignKindMetrics:
    kind: str
    groups: int
    flagged: int
    fpr: float | None


@dataclass(frozen=True)
class Evaluation:
    build_id: str
    flag_threshold: float
    accounts: int
    fraud_accounts: int
    accounts_unscored: int  # truth accounts the build has no score for (counted as 0)
    rings: int
    rings_found: int
    ring_recall: float | None
    clusters: int
    flagged_clusters: int
    flagged_true: int
    precision: float | None
    benign_groups: int
    benign_flagged: int
    benign_fpr: float | None
    auroc: float | None
    auprc: float | None
    typologies: tuple[TypologyMetrics, ...]
    benign_kinds: tuple[BenignKindMetrics, ...]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)

    def render(self) -> Table:
        """A rich table: headline metrics, then per typology, then per benign kind."""
        table = Table(
            title=f"Evaluation of build {self.build_id} (flag threshold {self.flag_threshold:g})"
        )
        table.add_column("scope")
        table.add_column("metric")
        table.add_column("value", justify="right")
        table.add_column("of", justify="right")
        rows: list[tuple[str, str, str, str]] = [
            (
                "all",
                "ring recall",
                _fmt(self.ring_recall),
                f"{self.rings_found}/{self.rings} rings",
            ),
            (
                "all",
                "precision",
                _fmt(self.precision),
                f"{self.flagged_true}/{self.flagged_clusters} flagged clusters",
            ),
            (
                "all",
                "benign FPR",
                _fmt(self.benign_fpr),
                f"{self.benign_flagged}/{self.benign_groups} groups",
            ),
            ("all", "account AUROC", _fmt(self.auroc), f"{self.fraud_accounts}/{self.accounts}"),
            ("all", "account AUPRC", _fmt(self.auprc), f"{self.accounts_unscored} unscored"),
        ]
        for r in rows:
            table.add_row(*r)
        table.add_section()
        for t in self.typologies:
            if t.rings:
                table.add_row(
                    t.typology, "ring recall", _fmt(t.recall), f"{t.rings_found}/{t.rings}"
                )
            if t.woke:
                table.add_row(
                    t.typology, "  woke together", _fmt(t.recall_woke), f"{t.woke_found}/{t.woke}"
                )
                table.add_row(
                    t.typology,
                    "  not woken",
                    _fmt(t.recall_not_woke),
                    f"{t.rings_found - t.woke_found}/{t.rings - t.woke}",
                )
            if t.missed:
                why = ", ".join(f"{n} {c.replace('_', ' ')}" for c, n in t.missed.items())
                table.add_row(t.typology, "  missed", why, f"{t.rings - t.rings_found}")
            table.add_row(t.typology, "account AUROC", _fmt(t.auroc), f"{t.accounts} accounts")
        table.add_section()
        for k in self.benign_kinds:
            table.add_row(k.kind, "benign FPR", _fmt(k.fpr), f"{k.flagged}/{k.groups}")
        return table


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def _read(path: Path, columns: Sequence[str], optional: Sequence[str] = ()) -> dict[str, list[str]]:
    """The ``columns`` of one truth CSV as strings, and those of ``optional`` it has (a column
    it lacks reads as all empty)."""
    if not path.is_file():
        raise TruthError(f"Ground truth file {path} is missing; pass the generator's truth dir.")
    table = pacsv.read_csv(
        path,
        convert_options=pacsv.ConvertOptions(
            column_types={c: pa.string() for c in (*columns, *optional)},
            strings_can_be_null=True,
        ),
    )
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise TruthError(f"{path} lacks the column(s) {', '.join(missing)}.")
    out = {c: table.column(c).to_pylist() for c in columns}
    for c in optional:
        out[c] = table.column(c).to_pylist() if c in table.column_names else [None] * len(table)
    return out


def _woke(ring_ids: Sequence[str], woke: Sequence[str | None], names: Sequence[str]) -> np.ndarray:
    """Per ring of ``names``, whether the truth's optional ``woke_together`` column says it woke
    together (older truth files lack the column: none did)."""
    yes = {r for r, v in zip(ring_ids, woke, strict=True) if str(v).strip().lower() == "true"}
    return np.array([r in yes for r in names], dtype=bool)


def _groups(
    ids: Sequence[str], kinds: Sequence[str], members: Sequence[str]
) -> tuple[list[str], list[str], list[list[str]]]:
    by: dict[str, list[str]] = defaultdict(list)
    kind: dict[str, str] = {}
    for g, k, m in zip(ids, kinds, members, strict=True):
        by[g].append(m)
        kind.setdefault(g, k or "unknown")
    names = sorted(by)
    return names, [kind[g] for g in names], [by[g] for g in names]


def _auc(y: np.ndarray, s: np.ndarray) -> tuple[float | None, float | None]:
    if y.size == 0 or y.all() or not y.any():
        return None, None
    return float(roc_auc_score(y, s)), float(average_precision_score(y, s))


def _matched(
    groups: Sequence[Sequence[str]], flagged: Sequence[Sequence[str]]
) -> tuple[np.ndarray, np.ndarray]:
    """Per group: matched by a flagged cluster (Jaccard >= 0.5); per cluster: the same."""
    gi, ci, inter, gs, cs = overlaps(groups, flagged)
    ok = inter / np.maximum(gs[gi] + cs[ci] - inter, 1) >= MATCH_JACCARD
    g_hit = np.zeros(len(groups), dtype=bool)
    g_hit[gi[ok]] = True
    c_hit = np.zeros(len(flagged), dtype=bool)
    c_hit[ci[ok]] = True
    return g_hit, c_hit


def miss_causes(
    rings: Sequence[Sequence[str]],
    clusters: Sequence[Sequence[str]],
    scores: Sequence[float],
    flag_threshold: float,
    found: np.ndarray,
) -> list[str | None]:
    """Per ring, why it was missed (``MISS_CAUSES``), or None when it was found."""
    gi, ci, inter, gs, cs = overlaps(rings, clusters)
    jac = inter / np.maximum(gs[gi] + cs[ci] - inter, 1)
    matched = np.zeros(len(rings), dtype=bool)
    matched[gi[jac >= MATCH_JACCARD]] = True
    touched = np.zeros(len(rings), dtype=bool)
    touched[gi] = True
    flagged = {m for c, s in zip(clusters, scores, strict=True) if s >= flag_threshold for m in c}
    out: list[str | None] = []
    for r, members in enumerate(rings):
        if found[r]:
            out.append(None)
        elif sum(m in flagged for m in members) >= 0.5 * len(members):
            out.append("boundary")
        elif matched[r]:
            out.append("scored_low")
        else:
            out.append("partial" if touched[r] else "unclustered")
    return out


def evaluate(
    graph: Graph,
    truth_dir: Path,
    *,
    build_id: str | None = None,
    flag_threshold: float = 0.5,
) -> Evaluation:
    """Compare a build (the current one by default) with the ground truth in ``truth_dir``."""
    truth_dir = Path(truth_dir)
    acc = _read(truth_dir / "accounts.csv", ("account_id", "is_fraud", "typology"))
    rings_t = _read(
        truth_dir / "rings.csv", ("ring_id", "typology", "account_id"), ("woke_together",)
    )
    benign_t = _read(truth_dir / "benign_groups.csv", ("group_id", "kind", "account_id"))

    bid, clusters = all_clusters(graph, build_id)
    _, scores = account_scores(graph, bid)
    flagged = [c.members for c in clusters if c.score >= flag_threshold]

    ids: list[str] = acc["account_id"]
    is_fraud = np.array(
        [str(v).strip().lower() in ("true", "1", "t", "yes") for v in acc["is_fraud"]], dtype=bool
    )
    typ = np.array([t or "" for t in acc["typology"]], dtype=object)
    fraud_ids = {a for a, f in zip(ids, is_fraud, strict=True) if f}
    s = np.array([scores.get(a, 0.0) for a in ids], dtype=np.float64)
    unscored = sum(1 for a in ids if a not in scores)
    auroc, auprc = _auc(is_fraud, s)

    # Rings: recall overall and per typology.
    ring_names, ring_typ, ring_members = _groups(
        rings_t["ring_id"], rings_t["typology"], rings_t["account_id"]
    )
    ring_found, _ = _matched(ring_members, flagged)
    woke = _woke(rings_t["ring_id"], rings_t["woke_together"], ring_names)
    why = np.array(
        miss_causes(
            ring_members,
            [c.members for c in clusters],
            [c.score for c in clusters],
            flag_threshold,
            ring_found,
        ),
        dtype=object,
    )

    # Precision of flagged clusters.
    flagged_true = sum(
        1
        for members in flagged
        if members
        and sum(m in fraud_ids for m in members) >= TRUE_POSITIVE_FRAUD_SHARE * len(members)
    )

    # Benign groups.
    group_names, group_kind, group_members = _groups(
        benign_t["group_id"], benign_t["kind"], benign_t["account_id"]
    )
    group_match, _ = _matched(group_members, flagged)
    in_flagged = {m for members in flagged for m in members}
    group_hit = np.array(
        [
            bool(match) or sum(m in in_flagged for m in gm) > BENIGN_INSIDE_SHARE * len(gm)
            for match, gm in zip(group_match, group_members, strict=True)
        ],
        dtype=bool,
    )

    ring_typ_arr = np.array(ring_typ, dtype=object)
    typologies = []
    for t in sorted((set(ring_typ) | {str(x) for x in typ[is_fraud]}) - {""}):
        in_t = ring_typ_arr == t
        accounts_t = typ == t
        mask = accounts_t | ~is_fraud
        a_roc, a_prc = _auc(accounts_t[mask], s[mask])
        typologies.append(
            TypologyMetrics(
                typology=t,
                rings=int(in_t.sum()),
                rings_found=int(ring_found[in_t].sum()),
                recall=_ratio(int(ring_found[in_t].sum()), int(in_t.sum())),
                accounts=int(accounts_t.sum()),
                auroc=a_roc,
                auprc=a_prc,
                woke=int((in_t & woke).sum()),
                woke_found=int((in_t & woke & ring_found).sum()),
                missed={c: n for c in MISS_CAUSES if (n := int((in_t & (why == c)).sum()))},
            )
        )
    kind_arr = np.array(group_kind, dtype=object)
    kinds = [
        BenignKindMetrics(
            kind=k,
            groups=int((kind_arr == k).sum()),
            flagged=int(group_hit[kind_arr == k].sum()),
            fpr=_ratio(int(group_hit[kind_arr == k].sum()), int((kind_arr == k).sum())),
        )
        for k in sorted(set(group_kind))
    ]
    return Evaluation(
        build_id=bid,
        flag_threshold=flag_threshold,
        accounts=len(ids),
        fraud_accounts=int(is_fraud.sum()),
        accounts_unscored=unscored,
        rings=len(ring_names),
        rings_found=int(ring_found.sum()),
        ring_recall=_ratio(int(ring_found.sum()), len(ring_names)),
        clusters=len(clusters),
        flagged_clusters=len(flagged),
        flagged_true=flagged_true,
        precision=_ratio(flagged_true, len(flagged)),
        benign_groups=len(group_names),
        benign_flagged=int(group_hit.sum()),
        benign_fpr=_ratio(int(group_hit.sum()), len(group_names)),
        auroc=auroc,
        auprc=auprc,
        typologies=tuple(typologies),
        benign_kinds=tuple(kinds),
    )


def evaluation_from_json(text: str | Mapping[str, Any]) -> Evaluation:
    """The inverse of :meth:`Evaluation.to_json` (for reports that compare runs)."""
    d = dict(json.loads(text) if isinstance(text, str) else text)
    d["typologies"] = tuple(TypologyMetrics(**t) for t in d["typologies"])
    d["benign_kinds"] = tuple(BenignKindMetrics(**k) for k in d["benign_kinds"])
    return Evaluation(**d)


def _truth_and_clusters(
    graph: Graph, truth_dir: Path | str, build_id: str | None
) -> tuple[set[str], list[list[str]], list[ClusterInfo]]:
    """The truth's fraud accounts and ring memberships, and the build's clusters."""
    truth_dir = Path(truth_dir)
    acc = _read(truth_dir / "accounts.csv", ("account_id", "is_fraud"))
    rings_t = _read(truth_dir / "rings.csv", ("ring_id", "typology", "account_id"))
    fraud_ids = {
        a
        for a, f in zip(acc["account_id"], acc["is_fraud"], strict=True)
        if str(f).strip().lower() in ("true", "1", "t", "yes")
    }
    _, clusters = all_clusters(graph, build_id)
    _, _, ring_members = _groups(rings_t["ring_id"], rings_t["typology"], rings_t["account_id"])
    return fraud_ids, ring_members, clusters


def _true_positives(members: Sequence[Sequence[str]], fraud_ids: set[str]) -> np.ndarray:
    """Per cluster: at least TRUE_POSITIVE_FRAUD_SHARE of its members are fraud."""
    return np.array(
        [
            bool(m) and sum(x in fraud_ids for x in m) >= TRUE_POSITIVE_FRAUD_SHARE * len(m)
            for m in members
        ],
        dtype=bool,
    )


def recall_at_precision(
    graph: Graph, truth_dir: Path, *, precision: float = 0.9, build_id: str | None = None
) -> tuple[float, float | None]:
    """The best ring recall over flag thresholds whose cluster precision is at least
    ``precision``, and the lowest such threshold (None when none reaches it).

    Comparing detectors at a fixed precision is fair where their scores are on different
    scales: a ring counts as found at threshold ``t`` when a cluster scoring at least ``t``
    matches it (Jaccard >= 0.5), and a cluster is a true positive as in :func:`evaluate`.
    """
    fraud_ids, ring_members, clusters = _truth_and_clusters(graph, truth_dir, build_id)
    return recall_at_precision_of(
        [c.members for c in clusters], [c.score for c in clusters], fraud_ids, ring_members,
        precision=precision,
    )  # fmt: skip


def recall_at_precision_of(
    members: Sequence[Sequence[str]],
    scores: Sequence[float],
    fraud_ids: set[str],
    ring_members: Sequence[Sequence[str]],
    *,
    precision: float = 0.9,
) -> tuple[float, float | None]:
    """:func:`recall_at_precision` on clusters given as member lists and scores (a detection not
    written to the graph, e.g. ``bench/worlds_offline.py``)."""
    if not ring_members or not members:
        return 0.0, None
    score = np.asarray(scores, dtype=np.float64)
    tp = _true_positives(members, fraud_ids)
    gi, ci, inter, gs, cs = overlaps(ring_members, members)
    ok = inter / np.maximum(gs[gi] + cs[ci] - inter, 1) >= MATCH_JACCARD
    best = np.full(len(ring_members), -np.inf)
    np.maximum.at(best, gi[ok], score[ci[ok]])
    order = np.argsort(-score, kind="stable")
    prec = np.cumsum(tp[order]) / np.arange(1, len(order) + 1)
    top_recall, top_t = 0.0, None
    for k, t in enumerate(score[order].tolist()):
        if k + 1 < len(order) and score[order[k + 1]] == t:
            continue  # evaluate each distinct threshold once, with all its ties flagged
        if prec[k] >= precision:
            r = float((best >= t).mean())
            if r >= top_recall:
                top_recall, top_t = r, t
    return top_recall, top_t


@dataclass(frozen=True)
class ReliabilityBin:
    """Clusters whose score lies in ``[lo, hi)`` (the last bin includes 1.0) and what they are."""

    lo: float
    hi: float
    clusters: int
    rings: int  # clusters that match a planted ring (Jaccard >= 0.5, as ring recall counts)
    true_positives: int  # clusters at least half fraud (as precision counts)
    mean_score: float | None
    ring_share: float | None
    true_positive_share: float | None


def reliability(
    graph: Graph, truth_dir: Path, *, bins: int = 10, build_id: str | None = None
) -> tuple[ReliabilityBin, ...]:
    """The reliability (calibration) table of the cluster score: every cluster of the build,
    binned by score into ``bins`` equal bins of [0, 1], with the share of each bin that is a
    planted ring and the share that is a true positive, by the rules :func:`evaluate` uses.

    A calibrated score has each bin's ring share near its mean score; a score tuned on one
    world often is not on another, which a recall/precision pair at one threshold hides.
    Scores outside [0, 1] fall into the first or the last bin.
    """
    fraud_ids, ring_members, clusters = _truth_and_clusters(graph, truth_dir, build_id)
    members = [c.members for c in clusters]
    score = np.array([c.score for c in clusters], dtype=np.float64)
    _, is_ring = _matched(ring_members, members)
    tp = _true_positives(members, fraud_ids)
    which = np.clip((score * bins).astype(np.int64), 0, bins - 1) if len(score) else score
    out = []
    for b in range(bins):
        sel = which == b
        n = int(sel.sum())
        out.append(
            ReliabilityBin(
                lo=b / bins,
                hi=(b + 1) / bins,
                clusters=n,
                rings=int(is_ring[sel].sum()),
                true_positives=int(tp[sel].sum()),
                mean_score=float(score[sel].mean()) if n else None,
                ring_share=_ratio(int(is_ring[sel].sum()), n),
                true_positive_share=_ratio(int(tp[sel].sum()), n),
            )
        )
    return tuple(out)
