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
from sklearn.linear_model import LogisticRegression

from ringscope.models import clusters as cl
from ringscope.models.projection import F64

LEFT_OUT = ("fraud_label_share", "model_score_mean", "model_score_max")
# What g reads: the prior's signals (each in [0, 1]) less the target and the account model's
# scores, plus the cluster's size (log-scaled), since bigger groups are likelier to be labelled.
FEATURES: tuple[str, ...] = (*(f for f in cl.SCORE_WEIGHTS if f not in LEFT_OUT), "log_size")
EPS = 1e-6

Source = Literal["prior", "learned"]


def _logit(p: F64) -> F64:
    q = np.clip(p, EPS, 1 - EPS)
    return np.asarray(np.log(q / (1 - q)), dtype=np.float64)


@dataclass
class ClusterScorer:
    """Learned, calibrated cluster score: ``fit`` returns self, ``predict_proba`` is a
    probability, ``decision_function`` a raw score; ``contributions`` feed the reasons."""

    min_positives: int = 20  # labelled-positive clusters needed to learn (else the prior)
    c_l2: float = 1.0  # inverse L2 strength of the logistic regression
    seed: int = 0
    # Set by fit.
    source: Source = "prior"
    coef: dict[str, float] = field(default_factory=dict)
    intercept: float = 0.0
    label_frequency: float = 1.0  # Elkan-Noto c
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
        rng = np.random.default_rng(self.seed)
        fold = rng.random(k) < 0.5
        g_oof = np.zeros(k)
        for f in (True, False):
            train = fold != f
            if s[train].sum() == 0 or s[train].all():
                g_oof[~train] = s[train].mean() if train.any() else 0.0
                continue
            g_oof[~train] = self._lr().fit(x[train], s[train]).predict_proba(x[~train])[:, 1]
        self.label_frequency = float(np.clip(g_oof[s].mean(), 0.05, 1.0))
        lr = self._lr().fit(x, s)
        self.coef = {n: float(w) for n, w in zip(FEATURES, lr.coef_[0], strict=True)}
        self.intercept = float(lr.intercept_[0])
        self.source = "learned"
        return self

    def _lr(self) -> LogisticRegression:
        return LogisticRegression(C=self.c_l2, max_iter=1000)

    # -- scoring -------------------------------------------------------------------------------

    def _g_contributions(self, table: cl.ClusterTable) -> dict[str, F64]:
        x = self._matrix(table)
        return {n: self.coef[n] * x[:, j] for j, n in enumerate(FEATURES)}

    def _posterior(self, table: cl.ClusterTable, g_logit: F64) -> F64:
        """P(ring) from the logit of ``g`` and the clusters' labels (see the module doc)."""
        g = np.clip(cl.sigmoid(g_logit), EPS, 1 - EPS)
        c = self.label_frequency
        unlabelled = np.clip((1 - c) / c * g / (1 - g), 0.0, 1.0)
        return np.asarray(np.where(self._labelled(table), 1.0, unlabelled), dtype=np.float64)

    def _g_logit(self, contrib: dict[str, F64], k: int) -> F64:
        return np.asarray(self.intercept + sum(contrib.values(), np.zeros(k)), dtype=np.float64)

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
            "coef": {n: round(w, 4) for n, w in self.coef.items()},
            "intercept": round(self.intercept, 4),
        }
