"""The cluster score's prior, learned from many generated worlds rather than set by hand.

Why: the learned cluster score (:mod:`models.cluster_score`) adapts a prior to the platform's
own labels, and where labels are silent (sleeper rings that have not struck, young synthetic
rings whose labels are months away) the prior is all it has. The hand-set prior
(``clusters.SCORE_WEIGHTS``) is one linear guess: on twelve development worlds a logistic
regression fitted to the worlds' *truth* on the same signals was no better than the learned
score (recall at precision 0.9 per world 0.75-0.96), so the ceiling was the linear form, not the
labels. Gradient-boosted trees on the same cluster table, trained on eleven worlds' truth and
scored on the twelfth (each in turn; no label of that world read), reached 0.99: the evidence
was in the table, in how the signals combine (accounts opened together *and* held together by
pairwise links only; a shared place that is a home for three and a farm for sixteen).

What it is: the hand-set prior's logit plus a LightGBM booster's corrections
(``cluster_prior.txt`` beside this module, text format, behind a header line) over
:data:`FEATURES`, scale-free signals of the cluster table (shares, ratios, 0-1 shapes; no
absolute ages, KYC scales or payment counts, which differ by platform), trained on the clusters
that detection proposes in generated worlds (``bench/cluster_prior.py``: which worlds, the
parameters, the truth target). The trees are boosted from the hand-set logit (``init_score``),
so that where the worlds taught them nothing the hand-set weights still speak (:data:`HEADER`).
Monotone constraints keep each signal's direction where the hand-set prior states one
(:data:`DIRECTION`): the trees say how signals combine, not that an emulator makes a cluster
safer.

How it is used: :class:`~models.cluster_score.ClusterScorer` fits ``a * prior + b + x @ w`` to
the platform's labels as before, with this logit as the prior: a platform whose rings look
unlike any generated world shrinks ``a`` and leans on its own deviations. With too few labels
the score is this prior plus the labels' (and model scores') hand-set weights. The reasons read
its per-cluster split (hand-set terms plus LightGBM's TreeSHAP ``pred_contrib``), scaled by
``a``, in the same sentences.

Shapes: a table of ``k`` clusters gives :func:`matrix` ``(k, len(FEATURES))``, :func:`base_logit`
``(k,)``, :meth:`ClusterPrior.decision_function` ``(k,)`` (a logit) and
:meth:`ClusterPrior.contributions` a ``(k,)`` array per feature plus ``BIAS`` (summing to the
logit).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import lightgbm as lgb
import numpy as np

from ringscope.models import clusters as cl
from ringscope.models.projection import F64

# The table's signals the prior reads: each a share, a ratio or a 0-1 shape, so that a platform
# with other account ages, KYC scales or payment volumes reads the same. (Absolute ages, KYC means
# and payment counts measured no better on held-out worlds and would carry one platform's scale.)
FEATURES: tuple[str, ...] = (
    "emulator_share",
    "virtual_phone_share",
    "creation_burst",
    "join_burst",
    "personal_shared_share",
    "coactivation_share",
    "dormant_chain",
    "payee_concentration",
    "round_excess",
    "quiet_share",
    "sparse_structure",
    "low_kyc_share",
    "young_share",
    "place_coverage",
    "opened_together",
    "no_common_identifier",
    "density",
    "core_share",
    "member_share_device",
    "member_share_phone",
    "member_share_ip",
    "member_share_email",
    "member_share_id_document",
    "member_share_bank_card",
    "member_share_payee",
    "shared_device",
    "shared_phone",
    "shared_ip",
    "shared_email",
    "shared_id_document",
    "shared_bank_card",
    "shared_payee",
)
# +1: more of it never lowers the prior; -1: never raises it; 0: free. The hand-set prior's signs
# (clusters.SCORE_WEIGHTS), and accounts opened together (rings are opened for the purpose).
DIRECTION: dict[str, int] = {
    **{n: (1 if w > 0 else -1) for n, w in cl.SCORE_WEIGHTS.items() if n in FEATURES},
    "opened_together": 1,
}
BIAS = "bias"
MODEL_FILE = Path(__file__).with_name("cluster_prior.txt")
# Training: small trees, shrunk, subsampled, deterministic (one thread, fixed seed).
PARAMS: dict[str, object] = {
    "objective": "binary",
    "learning_rate": 0.05,
    "num_leaves": 15,
    "max_depth": 4,
    "min_data_in_leaf": 50,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "feature_fraction": 0.8,
    "lambda_l2": 1.0,
    "deterministic": True,
    "num_threads": 1,
    "seed": 7,
    "verbosity": -1,
}
ROUNDS = 200


def matrix(table: cl.ClusterTable) -> F64:
    """``(k, len(FEATURES))``: the signals the prior reads (0 where a table lacks one)."""
    k = table.n_clusters
    cols = [np.asarray(table.features.get(n, np.zeros(k)), dtype=np.float64) for n in FEATURES]
    return np.stack(cols, axis=1)


# The trees are boosted from the hand-set prior's logit on the same signals (its weights on
# FEATURES, its bias): they learn corrections to it, not a score from nothing. Where the training
# worlds had no example (a typology the generator never made), the hand-set weights still speak;
# trained from nothing, the trees called such rings safe. Development check (session 28, 18 worlds,
# each scored by trees trained on the other 17 with one typology's clusters left out): sleeper
# rings flagged 0.27 -> 0.41 of the unseen typology's, synthetic identities 0.37 -> 0.56; with
# every typology seen, 0.948 -> 0.950 (precision 0.992 -> 0.987).
BASE_WEIGHTS: dict[str, float] = {n: w for n, w in cl.SCORE_WEIGHTS.items() if n in FEATURES}
# The model file's first line: what the trees were boosted from. A file without it was trained
# from nothing (session 27) and would be read wrongly; ``read`` refuses it.
HEADER = "# ringscope cluster prior: trees boosted from the hand-set prior (clusters.SCORE_WEIGHTS)"


_BASE_W = np.array([BASE_WEIGHTS.get(n, 0.0) for n in FEATURES])


def base_logit(table: cl.ClusterTable) -> F64:
    """``(k,)``: the hand-set prior's logit on :data:`FEATURES` (no labels, no model scores)."""
    return _base(matrix(table))


def _base(x: F64) -> F64:
    return np.asarray(cl.SCORE_BIAS + x @ _BASE_W, dtype=np.float64)


@dataclass(frozen=True)
class ClusterPrior:
    """A trained prior: ``decision_function`` is its logit (the hand-set prior's plus the trees'
    corrections), ``contributions`` that logit split per feature (each one's hand-set term plus
    its TreeSHAP share of the trees)."""

    booster: lgb.Booster
    version: str  # which trees: the model file's digest, recorded on the build

    @classmethod
    def train(
        cls, tables: Sequence[cl.ClusterTable], targets: Sequence[F64], weights: Sequence[F64]
    ) -> ClusterPrior:
        """Fit on clusters (rows of ``tables``) with 0/1 ``targets`` and row ``weights``."""
        x = np.concatenate([matrix(t) for t in tables])
        y = np.concatenate([np.asarray(t, dtype=np.float64) for t in targets])
        w = np.concatenate([np.asarray(t, dtype=np.float64) for t in weights])
        base = _base(x)
        params = {**PARAMS, "monotone_constraints": [DIRECTION.get(n, 0) for n in FEATURES]}
        data = lgb.Dataset(
            x, y, weight=w, init_score=base, feature_name=list(FEATURES), free_raw_data=True
        )
        booster = lgb.train(params, data, num_boost_round=ROUNDS)
        return cls(booster, f"trees={ROUNDS} leaves={PARAMS['num_leaves']}")

    @classmethod
    def read(cls, path: Path = MODEL_FILE) -> ClusterPrior:
        text = path.read_text()
        head, _, body = text.partition("\n")
        if head != HEADER:
            raise ValueError(f"{path}: not a cluster prior boosted from the hand-set prior")
        booster = lgb.Booster(model_str=body)
        if list(booster.feature_name()) != list(FEATURES):
            raise ValueError(f"{path}: trained on other features than models.cluster_prior reads")
        digest = hashlib.sha256(text.encode()).hexdigest()[:12]
        return cls(booster, f"cluster_prior.txt sha256 {digest}")

    def write(self, path: Path = MODEL_FILE) -> None:
        path.write_text(HEADER + "\n" + self.booster.model_to_string())

    def decision_function(self, table: cl.ClusterTable) -> F64:
        if table.n_clusters == 0:
            return np.zeros(0)
        x = matrix(table)
        trees = np.asarray(self.booster.predict(x, raw_score=True), dtype=np.float64)
        return _base(x) + trees

    def contributions(self, table: cl.ClusterTable) -> dict[str, F64]:
        """Per feature, its hand-set term plus its TreeSHAP share of the trees; ``BIAS``, the
        hand-set bias plus the trees' expected value. They sum to the logit."""
        k = table.n_clusters
        if k == 0:
            return {n: np.zeros(0) for n in (*FEATURES, BIAS)}
        x = matrix(table)
        shap = np.asarray(self.booster.predict(x, pred_contrib=True))
        out = {n: shap[:, j] + _BASE_W[j] * x[:, j] for j, n in enumerate(FEATURES)}
        out[BIAS] = shap[:, -1] + cl.SCORE_BIAS
        return out


@cache
def shipped() -> ClusterPrior | None:
    """The prior shipped with this code (``cluster_prior.txt``), or None when absent."""
    return ClusterPrior.read() if MODEL_FILE.exists() else None
