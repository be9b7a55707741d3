"""The cluster score learned from the platform's own labels, with the hand-set weights as a prior.

Why: the hand-set score (``clusters.SCORE_WEIGHTS``) encodes one generator's base rates. On a
platform where parents' cards are bound to their children's accounts, low KYC is common and app
cloners look like emulators, a household of three scores 0.95 with those weights. The platform's
labels say how common such groups are among its honest customers; this scorer learns the weights
from them, so the score means the same thing on any platform's data.

The learning problem is positive-unlabelled (PU). A cluster is *labelled* (``s = 1``) when one
of its members carries a fraud label (imported, or an investigator's verdict); every other
cluster is unlabelled, rings that nobody has labelled yet included. Following Elkan and Noto
(2008), with labels assumed selected at random among rings:

1. Fit a logistic regression ``g(x) = P(s = 1 | x)`` on the cluster's signals, fraud labels
   left out of ``x`` (they are the target). Legit labels stay in: they are evidence, not target.
2. Estimate the label frequency ``c = P(s = 1 | ring)`` as the mean out-of-fold ``g`` over the
   labelled clusters (two folds by cluster): calibration on labels held out from the fit.
3. An unlabelled cluster is a ring with ``P(ring | x, s = 0) = (1 - c) / c * g / (1 - g)``; a
   labelled one is a ring, unless its legit labels are at least as many as its fraud labels
   (conflicting labels: noise is likelier), when it is scored as if unlabelled.

So the score of 0.6 means about 60% of such clusters are rings on whatever platform the labels
come from, as far as its labelled rings resemble its unlabelled ones. Known limits: ``c`` is one
number, while a big ring is likelier to hold a labelled member than a small one (the cluster's
size is a feature of ``g``, which absorbs part of it); and labels that arrive late make ``c``
small, which the estimate follows.

The account model's scores (``model_score_*``) are left out: on the accounts it trained on they
are in-sample and would leak the same labels.

With fewer than ``min_positives`` labelled clusters the fit is not trusted and the scorer falls
back to the prior (the hand-set weights); ``source`` says which was used and the rebuild records
it on the build. The reasons read the learned model's top contributions (weight x value), in the
same sentences as the prior's; a labelled cluster's labels contribute the rest of its logit.

Shapes: a :class:`~ringscope.models.clusters.ClusterTable` of ``k`` clusters (its features and
its per-cluster label counts) gives ``predict_proba -> (k,)`` in [0, 1] and
``decision_function -> (k,)``, the logit of that probability.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy.optimize import minimize

from ringscope.kinds import IDENTIFIER_KINDS
from ringscope.models import clusters as cl
from ringscope.models.projection import F64

LEFT_OUT = ("fraud_label_share", "model_score_mean", "model_score_max")
# What g reads: the prior's signals (each in [0, 1]) less the target and the account model's
# scores, plus the cluster's size (log-scaled), since bigger groups are likelier to be labelled.
# Per identifier kind, the share of members sharing one: the prior does not tell a family's card
# from a farm's document, but a platform's labels can (no prior weight: learned deviations only).
FEATURES: tuple[str, ...] = (
    *(f for f in cl.SCORE_WEIGHTS if f not in LEFT_OUT),
    "log_size",
    *(f"member_share_{k.name}" for k in IDENTIFIER_KINDS),
)
EPS = 1e-6
# Features through which labels are selected rather than fraud shown: a label comes weeks to
# months after the fraud, so young rings are unlabelled more often than old ones. g learns a
# deviation for them (or it would be biased), but P(ring) keeps only the prior's weight: the
# score is that of a cluster old enough to have been labelled.
SELECTION = ("young_share",)
C_L2_GRID = (0.03, 0.1, 0.3, 1.0, 3.0)

Source = Literal["prior", "learned"]


def _logit(p: F64) -> F64:
    q = np.clip(p, EPS, 1 - EPS)
    return np.asarray(np.log(q / (1 - q)), dtype=np.float64)


@dataclass
class ClusterScorer:
    """Learned, calibrated cluster score: ``fit`` returns self, ``predict_proba`` is a
    probability, ``decision_function`` a raw score; ``contributions`` feed the reasons."""

    min_positives: int = 8  # labelled-positive clusters needed to learn (else the prior)
    c_l2: float | None = None  # inverse L2 strength on the deviations; None: chosen by CV
    seed: int = 0
    # Set by fit.
    chosen_c_l2: float = 1.0
    source: Source = "prior"
    coef: dict[str, float] = field(default_factory=dict)
    intercept: float = 0.0
    prior_scale: float = 1.0  # a: the weight of the prior's logit in g
    label_frequency: float = 1.0  # Elkan-Noto c, averaged over the labelled clusters
    discovered: float = 1.0  # q: the share of rings that get labels at all
    member_rate: float = 1.0  # r: the chance that one member of a discovered ring is labelled
    false_label_rate: float = 0.0  # e: the chance that an honest account carries a fraud label
    n_positive: int = 0
    n_clusters: int = 0

    # -- features ------------------------------------------------------------------------------

    @staticmethod
    def _matrix(table: cl.ClusterTable) -> F64:
        k = table.n_clusters
        cols = [
            np.log2(np.maximum(table.features["size"], 1.0)) / 6.0
            if name == "log_size"
            else np.asarray(table.features.get(name, np.zeros(k)), dtype=np.float64)
            for name in FEATURES
        ]
        return np.stack(cols, axis=1)

    @staticmethod
    def _labelled(table: cl.ClusterTable) -> np.ndarray:
        """s: the clusters holding a fraud label that no more legit labels contradict."""
        fraud = table.counts.get("fraud_label")
        legit = table.counts.get("legit_label")
        if fraud is None:
            return np.zeros(table.n_clusters, dtype=bool)
        legit = legit if legit is not None else np.zeros_like(fraud)
        return np.asarray((fraud > 0) & (fraud > legit), dtype=bool)

    # -- fitting -------------------------------------------------------------------------------

    def fit(self, table: cl.ClusterTable) -> ClusterScorer:
        """Learn from the clusters' labels; fall back to the prior when too few."""
        k = table.n_clusters
        self.n_clusters = k
        x, s = self._matrix(table), self._labelled(table)
        self.n_positive = int(s.sum())
        if self.n_positive < self.min_positives or s.all():
            self.source = "prior"
            return self
        z0, size = self._prior_logit(x), table.features["size"]
        rng = np.random.default_rng(self.seed)
        fold = rng.random(k) < 0.5
        # The penalty is chosen by the out-of-fold log-loss: with a dozen labelled clusters the
        # deviations from the prior stay small, with hundreds they may grow.
        best: tuple[float, float, F64] | None = None
        for c_l2 in (self.c_l2,) if self.c_l2 is not None else C_L2_GRID:
            g = self._out_of_fold(z0, x, s, fold, c_l2)
            q = np.clip(g, EPS, 1 - EPS)
            nll = float(-np.mean(np.where(s, np.log(q), np.log(1 - q))))
            if best is None or nll < best[0]:
                best = (nll, c_l2, g)
        assert best is not None
        _, self.chosen_c_l2, g_oof = best
        self.discovered, self.member_rate = _fit_label_frequency(g_oof[s], size[s])
        self.label_frequency = float(np.mean(self._c(size[s])))
        a, b, w = _fit_anchored(z0, x, s, self.chosen_c_l2)
        self.prior_scale, self.intercept = a, b
        self.coef = {n: float(v) for n, v in zip(FEATURES, w, strict=True)}
        self.source = "learned"
        # Label noise: the rate of fraud labels on members of clusters the model deems benign
        # (P(ring | x) under 5%) estimates how often an honest account carries a false one.
        p = self._p_ring(table, self._g_logit(self._g_contributions(table), k))
        benign = p < 0.05
        fraud = table.counts.get("fraud_label", np.zeros(k, dtype=np.int64))
        if benign.any():
            rate = float(fraud[benign].sum()) / max(float(size[benign].sum()), 1.0)
            self.false_label_rate = float(np.clip(rate, 1e-5, 0.5))
        return self

    @staticmethod
    def _out_of_fold(z0: F64, x: F64, s: np.ndarray, fold: np.ndarray, c_l2: float) -> F64:
        """g on each half of the clusters from a fit on the other half."""
        g = np.zeros(len(s))
        for f in (True, False):
            train = fold != f
            if s[train].sum() == 0 or s[train].all():
                g[~train] = s[train].mean() if train.any() else 0.0
                continue
            a, b, w = _fit_anchored(z0[train], x[train], s[train], c_l2)
            g[~train] = cl.sigmoid(a * z0[~train] + b + x[~train] @ w)
        return g

    def _p_ring(self, table: cl.ClusterTable, g_logit: F64) -> F64:
        """``P(ring | x) = g / c`` (Elkan and Noto), before looking at the cluster's labels."""
        g = cl.sigmoid(g_logit)
        return np.asarray(np.clip(g / self._c(table.features["size"]), 0.0, 1.0))

    @staticmethod
    def _prior_logit(x: F64) -> F64:
        """The prior's logit on the features ``g`` reads (labels and model scores left out)."""
        w = np.array([cl.SCORE_WEIGHTS.get(n, 0.0) for n in FEATURES])
        return np.asarray(cl.SCORE_BIAS + x @ w, dtype=np.float64)

    def _c(self, size: F64) -> F64:
        """Label frequency of a ring of ``size`` members: ``q * (1 - (1 - r) ** size)``."""
        r = self.member_rate
        return np.asarray(
            np.clip(self.discovered * (1.0 - (1.0 - r) ** np.maximum(size, 1.0)), 0.02, 1.0),
            dtype=np.float64,
        )

    # -- scoring -------------------------------------------------------------------------------

    def _g_contributions(self, table: cl.ClusterTable) -> dict[str, F64]:
        """Per feature: ``a * prior weight + learned deviation``, times the value."""
        x = self._matrix(table)
        return {
            n: (self.prior_scale * cl.SCORE_WEIGHTS.get(n, 0.0) + self._deviation(n)) * x[:, j]
            for j, n in enumerate(FEATURES)
        }

    def _deviation(self, name: str) -> float:
        """The learned deviation from the prior's weight, except where it is about labelling."""
        return 0.0 if name in SELECTION else self.coef[name]

    def _posterior(self, table: cl.ClusterTable, g_logit: F64) -> F64:
        """P(ring) from the logit of ``g`` and the clusters' labels (see the module doc)."""
        g = np.clip(cl.sigmoid(g_logit), EPS, 1 - EPS)
        c = self._c(table.features["size"])
        unlabelled = np.clip((1 - c) / c * g / (1 - g), 0.0, 1.0)
        # A labelled cluster is a ring unless its label is one of the noisy ones: Bayes with
        # P(s | ring) = c(n) and P(s | not a ring) = 1 - (1 - e)^n for n honest members.
        p = np.clip(g / c, 0.0, 1.0)
        noise = 1.0 - (1.0 - self.false_label_rate) ** np.maximum(table.features["size"], 1.0)
        labelled = c * p / np.maximum(c * p + noise * (1.0 - p), EPS)
        return np.asarray(np.where(self._labelled(table), labelled, unlabelled), dtype=np.float64)

    def _g_logit(self, contrib: dict[str, F64], k: int) -> F64:
        bias = self.intercept + self.prior_scale * cl.SCORE_BIAS
        return np.asarray(bias + sum(contrib.values(), np.zeros(k)), dtype=np.float64)

    def predict_proba(self, table: cl.ClusterTable) -> F64:
        """P(ring) per cluster: the PU posterior (learned) or the prior's score."""
        if self.source == "prior":
            return cl.score(table)[0]
        contrib = self._g_contributions(table)
        return self._posterior(table, self._g_logit(contrib, table.n_clusters))

    def decision_function(self, table: cl.ClusterTable) -> F64:
        """Raw score: the logit of ``predict_proba``."""
        return _logit(self.predict_proba(table))

    def contributions(self, table: cl.ClusterTable) -> dict[str, F64]:
        """Each signal's contribution to the score's logit, named as the reasons expect: the
        prior's weights, or the learned weights with the labels' share of a labelled cluster's
        logit under ``fraud_label_share``."""
        if self.source == "prior":
            return cl.score(table)[1]
        out = self._g_contributions(table)
        z = self._g_logit(out, table.n_clusters)
        rest = _logit(self._posterior(table, z)) - z
        out["fraud_label_share"] = np.where(self._labelled(table), np.maximum(rest, 0.0), 0.0)
        return out

    def describe(self) -> dict[str, object]:
        """What the build records: which scorer, and on what evidence."""
        return {
            "source": self.source,
            "positives": self.n_positive,
            "clusters": self.n_clusters,
            "min_positives": self.min_positives,
            "label_frequency": round(self.label_frequency, 4),
            "discovered": round(self.discovered, 4),
            "member_rate": round(self.member_rate, 4),
            "false_label_rate": round(self.false_label_rate, 6),
            "prior_scale": round(self.prior_scale, 4),
            "c_l2": self.chosen_c_l2,
            "coef": {n: round(w, 4) for n, w in self.coef.items()},
            "intercept": round(self.intercept, 4),
        }


def _fit_anchored(z0: F64, x: F64, s: np.ndarray, c_l2: float) -> tuple[float, float, F64]:
    """Logistic regression ``g = sigmoid(a * z0 + b + x @ w)``, penalising only ``w``.

    ``z0`` is the prior's logit: with few labels the fit is a recalibration of the prior (two
    free numbers, ``a`` and ``b``); the deviations ``w`` from its weights need evidence to grow
    (L2, strength ``1 / c_l2`` against the summed log-loss). Returns ``(a, b, w)``.
    """
    y = s.astype(np.float64)
    d = x.shape[1]

    def loss(theta: F64) -> tuple[float, F64]:
        a, b, w = theta[0], theta[1], theta[2:]
        z = a * z0 + b + x @ w
        # log(1 + e^z) - y z, stably; its gradient is sigmoid(z) - y.
        nll = float(np.sum(np.logaddexp(0.0, z) - y * z))
        r = cl.sigmoid(z) - y
        grad = np.concatenate([[r @ z0, r.sum()], x.T @ r + w / c_l2])
        return nll + float(w @ w) / (2 * c_l2), grad

    theta0 = np.concatenate([[1.0, 0.0], np.zeros(d)])
    bounds = [(0.0, None), (None, None)] + [(None, None)] * d
    res = minimize(loss, theta0, jac=True, method="L-BFGS-B", bounds=bounds)
    t = np.asarray(res.x, dtype=np.float64)
    return float(t[0]), float(t[1]), t[2:]


def _fit_label_frequency(g: F64, size: F64) -> tuple[float, float]:
    """``(q, r)`` with ``c(n) = q (1 - (1 - r)^n)`` closest (least squares) to the out-of-fold
    ``g`` of the labelled clusters: Elkan and Noto's ``c = E[g | s = 1]``, letting a ring of
    20 be likelier labelled than a ring of 3. Falls back to a constant ``c`` (``r = 1``)."""
    if len(g) == 0:
        return 1.0, 1.0

    def err(theta: F64) -> float:
        q, r = theta
        return float(np.sum((g - q * (1.0 - (1.0 - r) ** size)) ** 2))

    res = minimize(err, np.array([0.5, 0.2]), method="L-BFGS-B",
                   bounds=[(0.05, 1.0), (0.005, 1.0)])  # fmt: skip
    if not res.success:
        return float(np.clip(np.mean(g), 0.05, 1.0)), 1.0
    return float(res.x[0]), float(res.x[1])
