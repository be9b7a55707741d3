"""The cluster score learned from the platform's own labels, with the hand-set weights as a prior.

Why: the hand-set score (``clusters.SCORE_WEIGHTS``) encodes one generator's base rates. On a
platform where parents' cards are bound to their children's accounts, low KYC is common and app
cloners look like emulators, a household of three scores 0.95 with those weights. The platform's
labels say how common such groups are among its honest customers; this scorer learns the weights
from them, so the score means the same thing on any platform's data.

The evidence is both kinds of label. Fraud labels (imported, or investigators' verdicts) land on
members of rings; legit labels (reviews, cleared alerts, investigators' LEGIT verdicts) land on
honest customers, households and offices included. So the clusters holding a label are a
case-control sample: rings found through their fraud labels, and benign groups found through
their legit labels. Unlabelled clusters are left out of the fit. Treating them as negatives (the
positive-unlabelled reading, used here before) taught the scorer that whole typologies which are
labelled late or rarely, such as young synthetic-identity rings, look benign.

**The label model.** With ``n`` members (young ones counted half: labels take months), ``f``
fraud and ``l`` legit labels:

- a ring is *discovered* with probability ``q``; then its members carry fraud labels at a rate
  drawn per ring from ``Beta(alpha, beta)`` (one ring is worked through by investigators,
  another has one chargeback on file), and its attached family legit labels at ``rho_ring``;
- an honest member carries a (false) fraud label at ``e`` and a legit label at ``rho``.

So ``A = P(f, l | ring) = ((1 - q)[f = 0] + q BetaBin(f; n, alpha, beta)) Bin(l; n, rho_ring)``
and ``B = P(f, l | benign) = Bin(f; n, e) Bin(l; n, rho)`` (binomial coefficients cancel).

**The fit, by EM.** ``p = P(ring | x) = sigmoid(a z0 + b + x @ w)``, where ``z0`` is the prior's
logit, alternates with the label model, four rounds from a start read off the prior:

1. ``p`` by maximum likelihood of the labelled clusters' labels *given that they are
   labelled*: ``log(p A + (1 - p) B) - log(p A0 + (1 - p) B0)``, with ``A0`` and ``B0`` the
   chances of holding any label. Its gradient in the logit is the posterior given the labels
   less the posterior given only that some label is there. The deviations ``w`` from the
   prior's weights are L2-penalised on *standardised* signals (each divided by its standard
   deviation over the platform's clusters, at least ``STD_FLOOR``), so that the penalty costs
   every signal alike: on raw values a signal that rarely exceeds 0.13 (``dormant_chain``) needed
   a deviation eight times larger than one that reaches 1 to move the score as much, and the
   penalty all but forbade it. The penalty's strength is fixed (``C_L2``, chosen on development
   worlds); choosing it per build by out-of-fold likelihood on the labelled clusters
   (``c_l2=None``) measured worse, because the labelled clusters are the easy ones: the
   likelihood there asked for a weak penalty whose scores were badly calibrated on the
   unlabelled rest. ``a`` and ``b`` have weak Gaussian priors around 1 and 0, so that perfectly
   separable labels cannot send them to infinity. Each signal's whole weight (``a`` times the
   prior's plus the deviation) keeps the prior's sign (:class:`Signs`): the labels say how much
   a signal weighs on this platform, down to nothing, the prior which way it points. With a
   dozen labelled rings the fit stays a recalibration of the prior.
2. The label model from every cluster, each counted as a ring with its posterior weight (the
   E step) and as benign with the rest: ``rho``, ``rho_ring`` and ``e`` as weighted rates, and
   ``(q, alpha, beta)`` jointly by weighted likelihood. A ring without labels may be undiscovered
   or discovered with few labels; the rings that hold labels tell the two apart by how their
   counts spread.

Labels are partial (most rings and most honest customers carry none) and noisy (``e``, and
``rho_ring`` for legit labels on rings); both are in the model rather than cleaned. Labels
arrive late, so young clusters are labelled less: ``young_share`` gets a fitted deviation (it
explains selection) that scoring leaves out. "Shares a personal identifier" gets no deviation of
its own, only per kind (``member_share_<kind>``): a platform's families share cards, its
synthetic rings documents.

**Scoring.** A labelled cluster gets the Bayes posterior ``p A / (p A + (1 - p) B)``: a fraud
label on a ring-like cluster makes it near certain, a legit label on a family lowers it, and a
lone fraud label on a big benign-looking group is read as likely noise. An unlabelled cluster
gets ``p``. Having no label is evidence too, in principle, but how much depends on how long the
cluster has been open to labelling and on which typologies a platform labels at all; used, it
sank young rings and rarely labelled typologies on the development worlds, so it is not used. A
score of 0.6 therefore means about 60% of such clusters are rings, as far as the labelled
clusters resemble the unlabelled ones (``bench/worlds.py`` reports the reliability table on
worlds nobody tuned on).

The account model's scores (``model_score_*``) are left out: on the accounts it trained on they
are in-sample and would leak the same labels.

With fewer than ``min_positives`` clusters holding a fraud label, or as few holding a legit label,
the fit is not trusted and the scorer falls back to the prior (the hand-set weights); ``source``
says which was used and the rebuild records it on the build. The reasons read the learned model's
top contributions (weight x value), in the same sentences as the prior's; a labelled cluster's
labels contribute the rest of its logit.

Shapes: a :class:`~ringscope.models.clusters.ClusterTable` of ``k`` clusters (its features and
its per-cluster label counts) gives ``predict_proba -> (k,)`` in [0, 1] and
``decision_function -> (k,)``, the logit of that probability.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
from scipy.optimize import minimize
from scipy.special import betaln

from ringscope.kinds import IDENTIFIER_KINDS
from ringscope.models import clusters as cl
from ringscope.models.cluster_prior import BIAS, ClusterPrior
from ringscope.models.projection import F64

# The targets (labels), and the account model's in-sample scores, are not features.
LEFT_OUT = ("fraud_label_share", "legit_label_share", "model_score_mean", "model_score_max")
# What p reads: the prior's signals (each in [0, 1]) less those left out, plus the cluster's size
# (log-scaled) and how close together its accounts were opened (a ring's within weeks, a
# family's over years), learned only.
# Per identifier kind, the share of members sharing one: the prior does not tell a family's card
# from a farm's document, but a platform's labels can (no prior weight: learned deviations only).
FEATURES: tuple[str, ...] = (
    *(f for f in cl.SCORE_WEIGHTS if f not in LEFT_OUT),
    "log_size",
    "opened_together",
    *(f"member_share_{k.name}" for k in IDENTIFIER_KINDS),
)
EPS = 1e-9
# Features through which labels are selected rather than fraud shown: a label comes weeks to
# months after the fraud, so young clusters are labelled less often than old ones. The fit learns
# a deviation for them (or it would be biased), but scoring keeps only the prior's weight: the
# score is that of a cluster old enough to have been labelled.
SELECTION = ("young_share",)
# Aggregates whose deviation is learned per identifier kind instead (``member_share_<kind>``): a
# platform's families share cards, its synthetic rings documents, and one deviation on "shares a
# personal identifier" would tar both with the same brush.
BY_KIND = ("personal_shared_share",)
# The L2 penalty's inverse strength on the standardised deviations. On ten development worlds
# (1, 3-5, 170-175 at 100k) 0.2, 0.3 and 0.5 gave the same recall at precision 0.9 (0.922-0.924,
# against 0.907 with raw signals and the penalty chosen per build) and traded recall against
# precision at the flag point (0.913/0.928, 0.920/0.916, 0.929/0.882): 0.3 balances the two.
C_L2 = 0.3
# With c_l2=None the penalty is chosen per build from this grid by out-of-fold likelihood.
C_L2_GRID = (0.03, 0.1, 0.3, 1.0, 3.0)
# A signal's standard deviation is floored here before standardising: a signal that is almost
# constant on one platform must not get an almost free deviation.
STD_FLOOR = 0.05
EM_STEPS = 4
# Gaussian priors on the prior's scale (around 1) and the intercept (around 0): when the labelled
# rings and families are perfectly separable, the likelihood alone would send both to infinity.
SCALE_SD, INTERCEPT_SD = 1.0, 10.0
# The logit of a ring's discovery chance q is searched in this range (q from 0.02 to 0.999); the
# per-member label rates are clipped to NOISE_RANGE.
Q_LOGIT = (-4.0, 7.0)
NOISE_RANGE = (1e-5, 0.05)
START_NOISE = 1e-3  # the false-label rate EM starts from, at most (see _initial_labels)
# Labels take months to arrive, so an account under a year old has been open to labelling for
# about half as long as an old one: it counts as half a member in the label model.
YOUNG_EXPOSURE = 0.5

Source = Literal["prior", "learned"]


def _logit(p: F64) -> F64:
    q = np.clip(p, EPS, 1 - EPS)
    return np.asarray(np.log(q / (1 - q)), dtype=np.float64)


@dataclass(frozen=True)
class LabelModel:
    """How labels land on rings and on honest groups (see the module doc); rates per member."""

    discovered: float  # q: the chance that a ring is found at all
    # A found ring's members carry fraud labels at a rate drawn per ring from Beta(alpha, beta):
    # one ring is worked through by investigators, another has one chargeback on file.
    alpha: float
    beta: float
    ring_legit_rate: float  # rho_ring: legit labels on a ring's attached members
    false_label_rate: float  # e: a false fraud label on an honest member
    legit_rate: float  # rho: a legit label on an honest member

    @property
    def member_rate(self) -> float:
        """r: the mean chance that a found ring's member carries a fraud label."""
        return self.alpha / (self.alpha + self.beta)

    def log_found(self, f: F64, n: F64) -> F64:
        """``log P(f fraud labels | found ring of n)``, beta-binomial, coefficient left out."""
        return np.asarray(
            betaln(f + self.alpha, n - f + self.beta) - betaln(self.alpha, self.beta),
            dtype=np.float64,
        )

    def log_ring_fraud(self, f: F64, n: F64) -> F64:
        """``log P(f fraud labels | ring of n)``: undiscovered (``f = 0``) or found."""
        q = min(self.discovered, 1.0 - 1e-12)
        found = np.log(q) + self.log_found(f, n)
        lost = np.where(f == 0, np.log1p(-q), -np.inf)
        return np.asarray(np.logaddexp(found, lost), dtype=np.float64)

    def log_likelihoods(self, f: F64, ll: F64, n: F64) -> tuple[F64, F64]:
        """``(log A, log B)``: the chance of ``f`` fraud and ``ll`` legit labels on ``n``
        members of a ring, and of a benign group (binomial coefficients left out: they cancel)."""
        log_a = self.log_ring_fraud(f, n) + _binom(ll, n, self.ring_legit_rate)
        log_b = _binom(f, n, self.false_label_rate) + _binom(ll, n, self.legit_rate)
        return np.asarray(log_a, dtype=np.float64), np.asarray(log_b, dtype=np.float64)

    def log_labelled(self, n: F64) -> tuple[F64, F64]:
        """``(log A0, log B0)``: the chance that a ring, and a benign group, of ``n`` members
        holds any label."""
        zero = np.zeros_like(n)
        log_a, log_b = self.log_likelihoods(zero, zero, n)
        return _log1mexp(log_a), _log1mexp(log_b)


def _binom(k: F64, n: F64, p: float) -> F64:
    return np.asarray(k * np.log(p) + (n - k) * np.log1p(-p), dtype=np.float64)


def _log1mexp(x: F64) -> F64:
    """``log(1 - e^x)`` for ``x < 0``, stably."""
    x = np.minimum(x, -1e-12)
    return np.asarray(
        np.where(x > -0.693, np.log(-np.expm1(x)), np.log1p(-np.exp(x))), dtype=np.float64
    )


@dataclass
class ClusterScorer:
    """Learned, calibrated cluster score: ``fit`` returns self, ``predict_proba`` is a
    probability, ``decision_function`` a raw score; ``contributions`` feed the reasons."""

    min_positives: int = 8  # clusters with a fraud label (and with a legit one) needed to learn
    # The prior: None for the hand-set linear one (clusters.SCORE_WEIGHTS), or one learned from
    # generated worlds (models.cluster_prior), whose logit the fit rescales and corrects.
    prior: ClusterPrior | None = None
    # Inverse L2 strength on the standardised deviations; None: chosen per build by CV.
    c_l2: float | None = C_L2
    seed: int = 0
    # Set by fit.
    chosen_c_l2: float = 1.0
    source: Source = "prior"
    coef: dict[str, float] = field(default_factory=dict)
    intercept: float = 0.0
    prior_scale: float = 1.0  # a: the weight of the prior's logit
    labels: LabelModel | None = None
    n_positive: int = 0
    n_negative: int = 0
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
    def _counts(table: cl.ClusterTable) -> tuple[F64, F64, F64]:
        """``(f, l, n)``: fraud labels, legit labels and members per cluster, young members
        counted by their exposure to labelling (``YOUNG_EXPOSURE``)."""
        k = table.n_clusters
        f = table.counts.get("fraud_label", np.zeros(k, dtype=np.int64))
        ll = table.counts.get("legit_label", np.zeros(k, dtype=np.int64))
        size = np.maximum(table.features["size"], 1.0)
        young = table.features.get("young_share", np.zeros(k))
        n = np.maximum(size * (1.0 - (1.0 - YOUNG_EXPOSURE) * young), np.maximum(f, ll))
        return f.astype(np.float64), ll.astype(np.float64), np.asarray(n, dtype=np.float64)

    # -- fitting -------------------------------------------------------------------------------

    def fit(self, table: cl.ClusterTable) -> ClusterScorer:
        """Learn from the clusters' labels; fall back to the prior when too few."""
        k = table.n_clusters
        self.n_clusters = k
        f, ll, n = self._counts(table)
        labelled = (f > 0) | (ll > 0)
        self.n_positive, self.n_negative = int((f > 0).sum()), int(((ll > 0) & (f == 0)).sum())
        if min(self.n_positive, self.n_negative) < self.min_positives:
            self.source = "prior"
            return self
        full = self._matrix(table)
        x = full * np.array([name not in BY_KIND for name in FEATURES])  # what deviates
        # Standardised, so that the penalty costs every signal alike (see the module doc); the
        # deviations are mapped back to the raw signals below, which is what scoring reads.
        unit = np.maximum(x.std(axis=0), STD_FLOOR)
        x = x / unit
        signs = Signs.of(unit) if self.prior is None else Signs.free(len(FEATURES))
        z0 = self._prior_logit(table, full)
        model = _initial_labels(f, ll, n, cl.sigmoid(z0))
        idx = np.flatnonzero(labelled)
        fold = np.random.default_rng(self.seed).random(len(idx)) < 0.5
        scored = np.array([name not in SELECTION for name in FEATURES], dtype=np.float64)
        theta = np.zeros(2 + x.shape[1])
        for step in range(EM_STEPS):
            # p given the label model (the labelled clusters), then the label model given p
            # (every cluster, weighted by its posterior of being a ring): EM.
            obs = _Observed(model, f[idx], ll[idx], n[idx], signs)
            if step == 0:
                self.chosen_c_l2 = self.c_l2 if self.c_l2 is not None else max(
                    C_L2_GRID, key=lambda c: obs.out_of_fold(z0[idx], x[idx], fold, c)
                )  # fmt: skip
            theta = obs.fit(z0[idx], x[idx], self.chosen_c_l2)
            z = theta[0] * z0 + theta[1] + x @ (theta[2:] * scored)
            log_a, log_b = model.log_likelihoods(f, ll, n)
            model = _m_step(cl.sigmoid(z + log_a - log_b), f, ll, n, model)
        self.labels = model
        self.prior_scale, self.intercept = float(theta[0]), float(theta[1])
        raw = theta[2:] / unit
        self.coef = {name: float(v) for name, v in zip(FEATURES, raw, strict=True)}
        self.source = "learned"
        return self

    def _prior_logit(self, table: cl.ClusterTable, x: F64) -> F64:
        """The prior's logit on the features ``p`` reads (labels and model scores left out):
        the learned prior's, or the hand-set weights' on ``x`` (``_matrix(table)``)."""
        if self.prior is not None:
            return self.prior.decision_function(table)
        w = np.array([cl.SCORE_WEIGHTS.get(n, 0.0) for n in FEATURES])
        return np.asarray(cl.SCORE_BIAS + x @ w, dtype=np.float64)

    # -- scoring -------------------------------------------------------------------------------

    def _p_parts(self, table: cl.ClusterTable) -> tuple[F64, dict[str, F64]]:
        """``p``'s logit split: the part no feature carries, and per feature ``a * prior
        weight + learned deviation`` times the value; with a learned prior, ``a`` times the
        feature's TreeSHAP share of the prior's logit plus the deviation times the value."""
        k = table.n_clusters
        x = self._matrix(table)
        if self.prior is None:
            bias = np.full(k, self.intercept + self.prior_scale * cl.SCORE_BIAS)
            return bias, {
                n: (self.prior_scale * cl.SCORE_WEIGHTS.get(n, 0.0) + self._deviation(n)) * x[:, j]
                for j, n in enumerate(FEATURES)
            }
        shap = self.prior.contributions(table)
        out = {n: self._deviation(n) * x[:, j] for j, n in enumerate(FEATURES)}
        for n, v in shap.items():
            if n != BIAS:
                out[n] = out.get(n, np.zeros(k)) + self.prior_scale * v
        return self.intercept + self.prior_scale * shap[BIAS], out

    def _deviation(self, name: str) -> float:
        """The learned deviation from the prior's weight, except where it is about labelling."""
        return 0.0 if name in SELECTION else self.coef[name]

    @staticmethod
    def _logit_of(parts: tuple[F64, dict[str, F64]]) -> F64:
        bias, contrib = parts
        return np.asarray(bias + sum(contrib.values(), np.zeros(len(bias))), dtype=np.float64)

    def _p_logit(self, table: cl.ClusterTable) -> F64:
        """``p``'s logit, the sum of :meth:`_p_parts` without splitting it: a learned prior's
        TreeSHAP split costs far more than its logit, and only the reasons need it."""
        if self.prior is None:
            return self._logit_of(self._p_parts(table))
        x = self._matrix(table)
        dev = np.array([self._deviation(n) for n in FEATURES])
        z = self.intercept + self.prior_scale * self.prior.decision_function(table) + x @ dev
        return np.asarray(z, dtype=np.float64)

    def _prior_only(self, table: cl.ClusterTable) -> tuple[F64, dict[str, F64]]:
        """Too few labels to learn from: the prior's logit and contributions, labels included
        (the learned prior's, with the labels and model scores at the hand-set prior's weights)."""
        if self.prior is None:
            score, contrib = cl.score(table)
            return _logit(score), contrib
        shap = self.prior.contributions(table)
        contrib = {n: v for n, v in shap.items() if n != BIAS}
        contrib |= self._label_terms(table)
        return self._logit_of((shap[BIAS], contrib)), contrib

    @staticmethod
    def _label_terms(table: cl.ClusterTable) -> dict[str, F64]:
        """What the learned prior does not read, at the hand-set prior's weights: the labels
        and the account model's scores (``LEFT_OUT``), as the hand-set fallback counts them."""
        k = table.n_clusters
        return {
            n: cl.SCORE_WEIGHTS[n] * np.asarray(table.features.get(n, np.zeros(k)), np.float64)
            for n in LEFT_OUT
        }

    def _posterior_logit(self, table: cl.ClusterTable, z: F64) -> F64:
        """The logit of P(ring | x, labels): ``z`` plus the labels' log likelihood ratio."""
        assert self.labels is not None
        f, ll, n = self._counts(table)
        log_a, log_b = self.labels.log_likelihoods(f, ll, n)
        evidence = np.where((f > 0) | (ll > 0), log_a - log_b, 0.0)  # no label: no evidence
        return np.asarray(z + evidence, dtype=np.float64)

    def predict_proba(self, table: cl.ClusterTable) -> F64:
        """P(ring) per cluster given its signals and its labels, or the prior's score."""
        if self.source == "prior" and self.prior is None:
            return cl.score(table)[0]
        return cl.sigmoid(self.decision_function(table))

    def decision_function(self, table: cl.ClusterTable) -> F64:
        """Raw score: the logit of ``predict_proba``."""
        if self.source == "prior":
            if self.prior is not None:
                z = self.prior.decision_function(table)
                return np.asarray(z + sum(self._label_terms(table).values()), dtype=np.float64)
            return self._prior_only(table)[0]
        return self._posterior_logit(table, self._p_logit(table))

    def unlabelled_proba(self, table: cl.ClusterTable) -> F64:
        """P(ring) per cluster from its signals alone, its own labels left out: ``p`` above,
        or the prior's score with the label and model-score signals at 0.

        What the next build's account model reads as a *ring prior* (``ring_features``): the
        posterior would carry a labelled member's own label into its neighbours' features and
        back into its own, which a new account, with no label, never has."""
        if self.source == "prior":
            if self.prior is not None:
                return cl.sigmoid(self.prior.decision_function(table))
            zero = np.zeros(table.n_clusters)
            blank = {n: zero if n in LEFT_OUT else v for n, v in table.features.items()}
            return cl.score(replace(table, features=blank))[0]
        return cl.sigmoid(self._p_logit(table))

    def contributions(self, table: cl.ClusterTable) -> dict[str, F64]:
        """Each signal's contribution to the score's logit, named as the reasons expect: the
        prior's weights, or the learned weights with the labels' share of the logit under
        ``fraud_label_share`` (when it raises it) or ``legit_label_share`` (when it lowers it)."""
        if self.source == "prior":
            return self._prior_only(table)[1]
        bias, out = self._p_parts(table)
        z = self._logit_of((bias, out))
        f, ll, _ = self._counts(table)
        rest = self._posterior_logit(table, z) - z
        out["fraud_label_share"] = np.where(f > 0, np.maximum(rest, 0.0), 0.0)
        out["legit_label_share"] = np.where(ll > 0, np.minimum(rest, 0.0), 0.0)
        return out

    def describe(self) -> dict[str, object]:
        """What the build records: which scorer, and on what evidence."""
        out: dict[str, object] = {
            "source": self.source,
            "positives": self.n_positive,
            "negatives": self.n_negative,
            "clusters": self.n_clusters,
            "min_positives": self.min_positives,
            "prior": "hand-set"
            if self.prior is None
            else f"generated worlds ({self.prior.version})",
        }
        if self.source == "learned" and self.labels is not None:
            m = self.labels
            out |= {
                "discovered": round(m.discovered, 4),
                "member_rate": round(m.member_rate, 4),
                "member_rate_alpha_beta": [round(m.alpha, 4), round(m.beta, 4)],
                "ring_legit_rate": round(m.ring_legit_rate, 6),
                "false_label_rate": round(m.false_label_rate, 6),
                "legit_rate": round(m.legit_rate, 6),
                "prior_scale": round(self.prior_scale, 4),
                "c_l2": self.chosen_c_l2,
                "coef": {n: round(w, 4) for n, w in self.coef.items()},
                "intercept": round(self.intercept, 4),
            }
        return out


class _Observed:
    """The labelled clusters' label likelihoods under one label model, for fitting ``p``."""

    def __init__(self, model: LabelModel, f: F64, ll: F64, n: F64, signs: Signs) -> None:
        self.signs = signs
        self.log_a, self.log_b = model.log_likelihoods(f, ll, n)
        self.log_a0, self.log_b0 = model.log_labelled(n)

    def loglik(self, z: F64, rows: np.ndarray) -> tuple[F64, F64]:
        """Per cluster in ``rows``, ``log P(labels | x, labelled)`` and its derivative in the
        logit ``z``: the posterior given the labels less the posterior given only that some
        label is there."""
        lp, lq = -np.logaddexp(0.0, -z), -np.logaddexp(0.0, z)  # log p, log (1 - p)
        log_a, log_b = self.log_a[rows], self.log_b[rows]
        log_a0, log_b0 = self.log_a0[rows], self.log_b0[rows]
        num = np.logaddexp(lp + log_a, lq + log_b)
        den = np.logaddexp(lp + log_a0, lq + log_b0)
        grad = np.exp(lp + log_a - num) - np.exp(lp + log_a0 - den)
        return np.asarray(num - den, dtype=np.float64), np.asarray(grad, dtype=np.float64)

    def fit(self, z0: F64, x: F64, c_l2: float, rows: np.ndarray | None = None) -> F64:
        """``theta = (a, b, w)`` maximising the penalised likelihood over ``rows`` (a bool mask;
        all by default). ``a >= 0``; ``w`` is penalised towards 0 and ``a``, ``b`` towards
        1 and 0 (``SCALE_SD``, ``INTERCEPT_SD``), so with few labels the fit stays a
        recalibration of the prior; each signal's whole weight ``a * prior + w`` keeps the
        prior's sign (:class:`Signs`).

        Solved in ``v = w + a * m`` (``m``: the prior's weights on the standardised scale, for
        the signed signals), the whole weight, so that the sign is a box bound on ``v``; the
        logit is ``a (z0 - x m) + b + x v`` and the penalty ``|v - a m|^2 / 2C``."""
        sel = np.arange(len(z0)) if rows is None else np.flatnonzero(rows)
        z0s, xs = z0[sel], x[sel]
        m = self.signs.prior
        z0m = z0s - xs @ m

        def loss(theta: F64) -> tuple[float, F64]:
            a, b, v = theta[0], theta[1], theta[2:]
            w = v - a * m
            ll, g = self.loglik(a * z0m + b + xs @ v, sel)
            pa, pb = (a - 1.0) / SCALE_SD**2, b / INTERCEPT_SD**2
            grad_a = g @ z0m - pa + float(m @ w) / c_l2
            grad = -np.concatenate([[grad_a, g.sum() - pb], xs.T @ g - w / c_l2])
            penalty = float(w @ w) / (2 * c_l2) + pa * (a - 1.0) / 2 + pb * b / 2
            return -float(ll.sum()) + penalty, grad

        theta0 = np.concatenate([[1.0, 0.0], m])
        bounds = [(0.0, None), (None, None), *self.signs.bounds]
        res = minimize(loss, theta0, jac=True, method="L-BFGS-B", bounds=bounds)
        a, b, v = res.x[0], res.x[1], res.x[2:]
        return np.asarray(np.concatenate([[a, b], v - a * m]), dtype=np.float64)

    def out_of_fold(self, z0: F64, x: F64, fold: np.ndarray, c_l2: float) -> float:
        """The held-out log likelihood of each half from a fit on the other half."""
        total = 0.0
        for half in (True, False):
            theta = self.fit(z0, x, c_l2, rows=fold != half)
            test = np.flatnonzero(fold == half)
            z = theta[0] * z0[test] + theta[1] + x[test] @ theta[2:]
            total += float(self.loglik(z, test)[0].sum())
        return total


@dataclass(frozen=True)
class Signs:
    """Which way each signal may point: a signal the prior counts for fraud may lose its whole
    weight (``a * prior + deviation``) down to zero, but not turn into evidence of honesty, and
    one it counts against fraud the other way round. The labels say how much a signal weighs on
    this platform, the prior which way it points. Without the bound, a rare signal (cheap to
    deviate on once standardised) could swing: on one development world a ring with a legit
    label on a member took round-amount payments to -5.4 logits, and young cash-out rings on
    emulators scored under the flag. Learned-only signals and ``SELECTION`` are free.

    ``prior``: per feature, the prior's weight on the standardised scale where it is signed (0
    elsewhere); ``bounds``: the box on the whole weight (``v`` in :meth:`_Observed.fit`)."""

    prior: F64
    bounds: list[tuple[float | None, float | None]]

    @classmethod
    def free(cls, n: int) -> Signs:
        """No bound: a learned prior's deviations may point either way (its own direction is
        kept by its monotone constraints, models.cluster_prior.DIRECTION)."""
        return cls(np.zeros(n), [(None, None)] * n)

    @classmethod
    def of(cls, unit: F64) -> Signs:
        prior = np.zeros(len(FEATURES))
        bounds: list[tuple[float | None, float | None]] = []
        for j, name in enumerate(FEATURES):
            w = cl.SCORE_WEIGHTS.get(name, 0.0)
            if name in SELECTION or w == 0.0:
                bounds.append((None, None))
                continue
            prior[j] = w * float(unit[j])
            bounds.append((0.0, None) if w > 0 else (None, 0.0))
        return cls(prior, bounds)


def _initial_labels(f: F64, ll: F64, n: F64, prior: F64) -> LabelModel:
    """A starting label model read off the prior: legit labels per member of clusters without a
    fraud label, fraud labels per member of clusters the prior calls benign (at most
    ``START_NOISE``), and a found ring's members labelled at about 0.25."""
    benign, rings = prior < 0.05, (f > 0) & (prior >= 0.5)
    rho = float(np.clip(ll[f == 0].sum() / n[f == 0].sum(), *NOISE_RANGE))
    # The false-label rate starts small whatever the prior says: where the prior misses a
    # typology altogether, its labelled rings all sit under 0.05 and their fraud labels would
    # start as noise, a fixed point EM never left (test_a_typology_the_prior_misses_...).
    noise = float(np.clip(f[benign].sum() / max(n[benign].sum(), 1.0), *NOISE_RANGE))
    noise = min(noise, START_NOISE)
    rho_ring = float(np.clip((ll[rings].sum() + 20 * rho) / (n[rings].sum() + 20), *NOISE_RANGE))
    return LabelModel(0.5, 1.0, 3.0, rho_ring, noise, rho)


def _m_step(w: F64, f: F64, ll: F64, n: F64, start: LabelModel) -> LabelModel:
    """The label model that best explains every cluster's labels, each cluster counted as a ring
    with weight ``w`` (its posterior) and as benign with ``1 - w``. The rings' part, ``q`` and
    the beta-binomial member rate, is fitted jointly: a ring without labels may be undiscovered
    (``1 - q``) or discovered with few labels, and the rings that do hold labels tell the two
    apart by how their counts spread."""
    ben = 1.0 - w

    def rate(num: F64, den: F64, bounds: tuple[float, float]) -> float:
        return float(np.clip(num.sum() / max(float(den.sum()), 1e-9), *bounds))

    def rings(theta: F64) -> LabelModel:
        q, a, b = 1.0 / (1.0 + np.exp(-theta[0])), np.exp(theta[1]), np.exp(theta[2])
        return replace(start, discovered=float(q), alpha=float(a), beta=float(b))

    def nll(theta: F64) -> float:
        return -float(np.sum(w * rings(theta).log_ring_fraud(f, n)))

    q0 = float(np.clip(start.discovered, 0.05, 0.95))
    theta0 = np.array([np.log(q0 / (1 - q0)), np.log(start.alpha), np.log(start.beta)])
    res = minimize(nll, theta0, method="L-BFGS-B", bounds=[Q_LOGIT, (-3.0, 5.0), (-3.0, 5.0)])
    return replace(
        rings(res.x),
        ring_legit_rate=rate(w * ll, w * n, NOISE_RANGE),
        false_label_rate=rate(ben * f, ben * n, NOISE_RANGE),
        legit_rate=rate(ben * ll, ben * n, NOISE_RANGE),
    )
