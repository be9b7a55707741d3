"""Learned account risk: a gradient-boosted tree model on graph-aggregated features and the
heterogeneous GNN, compared on validation AUPRC, calibrated, explained, stored safely.

    model = AccountRiskModel(seed=0).fit(proj)     # proj = models.projection.read_projection(g)
    p = model.predict_proba(proj)                  # probability per account, in proj order
    why = model.explain(proj, "A-000042")          # top features and influential identifiers
    save_model(model, path); load_model(path)      # safetensors + manifest (models.artefacts)

Labels (``docs/models.md``): chargeback-style labels are partial and a little noisy. Labelled
fraud is the positive class; labelled legit accounts are certain negatives; unlabelled accounts
are negatives with a lower weight (positive-unlabelled learning: a classifier of "labelled fraud"
ranks like one of "fraud" when labelling is random given the features). Class imbalance is
handled by weighting the positives ``neg/pos`` (capped), label noise by early stopping on
validation AUPRC, tree regularisation (``min_child_samples``) and down-weighted unlabelled rows.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, roc_auc_score

from ringscope.models.features import (
    F32,
    FEATURE_DESCRIPTIONS,
    FEATURE_SCHEMA,
    LABEL_FEATURES,
    RING_FEATURES,
    account_features,
    edge_label_counts,
    edge_label_features,
    edge_ring_features,
    edge_ring_tops,
    identifier_features,
    identifier_sizes,
    incidence,
    label_features,
    ring_features,
    to_hetero,
)
from ringscope.models.gnn import GNNClassifier, GNNConfig, MeanAdjacency
from ringscope.models.projection import F64, I64, KIND_NAMES, KindEdges, Projection
from ringscope.models.screen_table import TableRows
from ringscope.models.tabular import segment_reduce

__all__ = [
    "AccountRiskModel",
    "Explanation",
    "RiskConfig",
    "TreeScorer",
    "identifier_aggregates",
    "label_exposure",
    "ring_soft_labels",
    "tree_feature_names",
    "tree_rows",
]

MODEL_VERSION_PREFIX = "risk"


@dataclass
class RiskConfig:
    """Settings of the learned account-risk model (defaults measured in docs/models.md)."""

    seed: int = 0
    use_gnn: bool = True
    val_share: float = 0.2
    unlabelled_weight: float = 0.5  # weight of an unlabelled account as a negative
    legit_weight: float = 2.0  # weight of a labelled legit account (a certain negative)
    hub_degree: int = 200  # identifiers above this many accounts are left out of aggregates
    max_pos_weight: float = 20.0
    tree_rounds: int = 400
    tree_learning_rate: float = 0.05
    tree_leaves: int = 31
    tree_min_child_samples: int = 40
    threads: int = 1  # OpenMP threads; 2 only on a quiet machine (contention costs 10x)
    gnn: dict[str, Any] = field(default_factory=dict)  # GNNConfig overrides
    # Label exposure (:func:`label_exposure`): unlabelled accounts too young for a fraud label to
    # have arrived count as fraud with the chance the delay leaves, not as plain negatives.
    label_exposure: bool = False
    exposure_min_labels: int = 30  # fraud labels with times needed to estimate the delay
    exposure_bin_days: int = 7
    # Label frequency (Elkan and Noto's c): not every fraud is ever labelled, so an exposed
    # unlabelled account is fraud with the chance its label never came. Off: exposure assumes
    # every fraud is labelled in the end (c = 1). Measured in docs/models.md.
    label_frequency: bool = False
    # The ring features (models.features.ring_features): the tree reads the previous build's
    # label-free cluster scores around each account. Off, it reads zeros (and never splits on
    # them), whatever the projection carries. Settings.model_ring_prior sets it.
    ring_prior: bool = False
    # Ring soft labels (:func:`ring_soft_labels`): an unlabelled member of a cluster of the
    # previous build counts as fraud with that cluster's label-free probability of being a ring
    # (its ring prior), not as a plain negative. Settings.model_ring_soft_labels sets it.
    ring_soft_labels: bool = False


def tree_feature_names() -> list[str]:
    acc = list(FEATURE_SCHEMA.account)
    ids = list(FEATURE_SCHEMA.identifier)
    return (
        acc
        + [f"id_mean__{n}" for n in ids]
        + [f"id_max__{n}" for n in ids]
        + [f"nbr_mean__{n}" for n in acc]
        + [f"nbr_max__{n}" for n in acc]
        + list(LABEL_FEATURES)
        + list(RING_FEATURES)
    )


def _rownorm(m: sp.csr_matrix) -> sp.csr_matrix:
    deg = np.asarray(m.sum(axis=1)).ravel()
    out: sp.csr_matrix = sp.diags(np.divide(1.0, deg, out=np.zeros_like(deg), where=deg > 0)) @ m
    return out.tocsr()


@dataclass
class _Tables:
    """What the tree features of an account are computed from: the full-graph account and
    identifier features, and per identifier the 1-hop aggregates of its accounts."""

    b: sp.csr_matrix  # accounts x identifiers (hubs left out)
    x_acc: F32
    x_id: F32
    id_mean_acc: F32
    id_max_acc: F32


def _tables(proj: Projection, hub_degree: int) -> _Tables:
    b = incidence(proj, max_degree=hub_degree)
    x_acc = account_features(proj)
    width = len(FEATURE_SCHEMA.identifier)
    parts = []
    for kind in KIND_NAMES:
        e = proj.kinds.get(kind)
        parts.append(identifier_features(e) if e is not None and e.m else np.zeros((0, width)))
    x_id = np.vstack(parts).astype(np.float32)
    id_mean_acc, id_max_acc = identifier_aggregates(b.T.tocsr(), x_acc)
    return _Tables(b, x_acc, x_id, id_mean_acc, id_max_acc)


def identifier_aggregates(bt: sp.csr_matrix, x_acc: F32) -> tuple[F32, F32]:
    """Per identifier (row of ``bt``, identifiers x accounts), the mean and the max of its
    accounts' features: the middle of the tree's two hops (account -> identifier -> account).
    ``bt`` may hold some identifiers only, each with all of its accounts' columns."""
    mean = np.asarray(_rownorm(bt) @ x_acc, dtype=np.float32)
    mx = segment_reduce(x_acc, bt, np.maximum).astype(np.float32)
    return mean, mx


def tree_rows(
    b: sp.csr_matrix,
    x_acc: F32,
    x_id: F32,
    id_mean_acc: F32,
    id_max_acc: F32,
    labels: F32,
    rings: F32 | None = None,
) -> F32:
    """The tree's input, one row per account of ``b`` (accounts x identifiers, hubs left out),
    columns as in :func:`tree_feature_names`: the account's own features, the mean and max of its
    identifiers' features, the mean and max over its identifiers of their accounts' features
    (:func:`identifier_aggregates`), the neighbour-label features (``labels``) and the ring
    features (``rings``, :func:`models.features.ring_features`; zeros when None).

    ``b``'s rows may be some accounts only (the Spark engine's buckets) as long as its columns
    carry every identifier they use, with whole-graph ``x_id`` and aggregates."""
    r = _rownorm(b)
    cols: list[npt.NDArray[np.floating]] = [
        x_acc,
        np.asarray(r @ x_id, dtype=np.float32),
        segment_reduce(x_id, b, np.maximum),
        np.asarray(r @ id_mean_acc, dtype=np.float32),
        segment_reduce(id_max_acc, b, np.maximum),
        labels,
        rings if rings is not None else np.zeros((b.shape[0], len(RING_FEATURES)), np.float32),
    ]
    return np.hstack(cols).astype(np.float32)


def _tree_matrix(t: _Tables, known: I64, ring: F64) -> F32:
    return tree_rows(
        t.b,
        t.x_acc,
        t.x_id,
        t.id_mean_acc,
        t.id_max_acc,
        label_features(t.b, known),
        ring_features(t.b, ring),
    )


_BOOSTERS: dict[int, lgb.Booster] = {}


@dataclass(frozen=True)
class TreeScorer:
    """The account model's tree alone, calibrated on its own: what scores accounts where the
    GNN does not run (the Spark engine, ``docs/scaling.md``). Plain data (the LightGBM model's
    text and two numbers), so it pickles small to Spark's workers; each process parses the text
    once.

    ``predict_proba(x)`` is ``sigmoid(a * logit(tree(x)) + b)`` with ``platt = (a, b)``: the
    model's own calibration when it chose the tree, else the tree's, fitted on the same
    validation accounts (``AccountRiskModel.platt_tree``)."""

    model_str: str
    platt: tuple[float, float]
    hub_degree: int  # identifiers on more accounts are left out of the tree's aggregates
    threads: int = 1

    def booster(self) -> lgb.Booster:
        key = hash(self.model_str)
        if key not in _BOOSTERS:
            _BOOSTERS.clear()  # one model per process at a time
            _BOOSTERS[key] = lgb.Booster(model_str=self.model_str)
        return _BOOSTERS[key]

    def decision_function(self, x: F32) -> F64:
        """The calibrated log-odds per row of ``x`` (:func:`tree_rows`)."""
        raw = np.asarray(self.booster().predict(x, num_threads=self.threads), dtype=np.float64)
        return _platt_log_odds(raw, self.platt)

    def predict_proba(self, x: F32) -> F64:
        """The calibrated probability per row of ``x`` (:func:`tree_rows`)."""
        out: F64 = 1.0 / (1.0 + np.exp(-self.decision_function(x)))
        return out


@dataclass(frozen=True)
class Explanation:
    """Why an account scored what it did. Deterministic for a given model and graph."""

    account_id: str
    score: float
    model: str  # which model produced the score: tree, gnn or blend
    top_features: tuple[tuple[str, float, float, str], ...]  # (name, value, contribution, words)
    identifiers: tuple[tuple[str, int, float], ...]  # (kind, internal node, score drop if removed)


@dataclass(frozen=True)
class _Validation:
    """What the candidates are judged and calibrated on: the validation accounts' labels and
    weights (``rows`` None; the metrics unweighted, as ever), or with label exposure the rows the
    kept booster was stopped on (``rows``: positions into the validation accounts, an unlabelled
    one twice) with their soft labels and weights, so that every candidate is judged by the same
    corrected labels, not the delayed ones the tree was corrected for."""

    y: F64
    w: F64
    rows: I64 | None = None

    def metric(self, fn: Any, p: F64) -> float:
        if self.rows is None:
            return float(fn(self.y, p))
        return float(fn(self.y, p[self.rows], sample_weight=self.w))

    def platt(self, p: F64, seed: int) -> tuple[float, float]:
        return _platt(p if self.rows is None else p[self.rows], self.y, self.w, seed)


class AccountRiskModel:
    """The learned account scorer: ``fit``, ``predict_proba``, ``decision_function``, ``predict``,
    ``explain``."""

    def __init__(self, config: RiskConfig | None = None, **overrides: Any) -> None:
        self.config = RiskConfig(**{**asdict(config or RiskConfig()), **overrides})
        self.booster: lgb.Booster | None = None
        self.gnn: GNNClassifier | None = None
        self.choice: str = "tree"  # tree, gnn or blend
        self.blend_weight: float = 1.0  # weight of the tree in a blend (of probabilities)
        self.platt: tuple[float, float] = (1.0, 0.0)  # calibration on the chosen raw score
        # The tree's own calibration (TreeScorer): equal to ``platt`` when the tree is chosen.
        self.platt_tree: tuple[float, float] | None = None
        self.metrics: dict[str, Any] = {}
        self.train_seconds: float = 0.0
        self.version: str | None = None  # set when saved or loaded (models.artefacts)

    # -- fitting -------------------------------------------------------------------------------

    def _split(self, proj: Projection) -> tuple[I64, I64, F64, F64]:
        """A stratified train/validation split, fixed by the seed."""
        rng = np.random.default_rng(self.config.seed)
        y = (proj.label == 1).astype(np.float64)
        val = np.zeros(proj.n, dtype=bool)
        for cls in (0, 1):
            idx = np.flatnonzero(y == cls)
            take = rng.permutation(idx)[: round(len(idx) * self.config.val_share)]
            val[take] = True
        w = np.where(proj.label == 1, 1.0, self.config.unlabelled_weight)
        w = np.where(proj.label == 0, self.config.legit_weight, w)
        return np.flatnonzero(~val), np.flatnonzero(val), y, w

    def fit(self, proj: Projection, label_times: tuple[I64, I64] | None = None) -> AccountRiskModel:
        """Fit on ``proj``'s labels. ``label_times``: the opening and labelling times (epoch
        seconds) of the accounts labelled fraud, read by
        :func:`models.projection.read_fraud_label_times`; with ``label_exposure`` on and enough
        of them, young unlabelled accounts are weighed by their exposure (:func:`label_exposure`).
        """
        c = self.config
        t0 = time.perf_counter()
        soft = ring_soft_labels(proj) if c.ring_soft_labels else None
        proj = self._ringed(proj)
        tr, va, y, w = self._split(proj)
        if y[tr].sum() < 2 or y[va].sum() < 1:
            raise ValueError("too few accounts labelled fraud to train on (need 3 or more)")
        tables = _tables(proj, c.hub_degree)
        known = proj.label.copy()
        known[va] = -1  # validation labels are hidden from the features while fitting
        x = _tree_matrix(tables, known, proj.ring_prior())
        exposure = None
        if c.label_exposure and label_times is not None:
            created, labelled = label_times
            if len(created) >= c.exposure_min_labels:
                exposure = label_exposure(
                    created, labelled, proj.created, proj.now(), c.exposure_bin_days
                )
        if exposure is not None:
            self.booster, val, info = self._fit_exposed(x, y, w, tr, va, proj.label, exposure, soft)
        else:
            (self.booster, val), info = self._fit_soft(x, y, w, tr, va, soft), None
        self._fit_rest(proj, x, y, w, tr, va, t0, val)
        if info is not None:
            self.metrics["label_exposure"] = info
        if soft is not None:
            self.metrics["ring_soft_labels"] = {
                "accounts": int((soft > SOFT_MIN).sum()),
                "soft_positives_train": round(float((w[tr] * soft[tr]).sum()), 2),
            }
        return self

    def _ringed(self, proj: Projection) -> Projection:
        """``proj`` as this model reads it: without its ring priors if it was fitted without."""
        return proj if self.config.ring_prior or proj.ring is None else replace(proj, ring=None)

    def _params(self, pos_weight: float, metric: str) -> dict[str, Any]:
        c = self.config
        return {
            "objective": "binary",
            "learning_rate": c.tree_learning_rate,
            "num_leaves": c.tree_leaves,
            "min_child_samples": c.tree_min_child_samples,
            "feature_fraction": 0.8,
            "bagging_fraction": 0.8,
            "bagging_freq": 1,
            "lambda_l2": 1.0,
            "scale_pos_weight": pos_weight,
            "metric": metric,
            "seed": c.seed,
            "deterministic": True,
            "num_threads": c.threads,
            "verbosity": -1,
        }

    def _train(
        self,
        x: F32,
        tr: I64,
        y: F64,
        w: F64,
        x_va: F32,
        y_va: F64,
        w_va: F64,
        metric: str = "average_precision",
        balanced: bool = True,
    ) -> lgb.Booster:
        """One booster on rows ``tr`` of ``x`` (labels ``y``, weights ``w`` per row of ``tr``),
        stopped early on the validation rows ``x_va`` by ``metric``; ``balanced``: positives
        weighted ``neg/pos`` (capped)."""
        pos = float((w * y).sum())
        neg = float((w * (1 - y)).sum())
        spw = min(self.config.max_pos_weight, neg / max(pos, 1.0)) if balanced else 1.0
        names = tree_feature_names()
        dtrain = lgb.Dataset(x[tr], y, weight=w, feature_name=names, free_raw_data=True)
        dval = lgb.Dataset(x_va, y_va, weight=w_va, reference=dtrain)
        return lgb.train(
            self._params(spw, metric),
            dtrain,
            num_boost_round=self.config.tree_rounds,
            valid_sets=[dval],
            callbacks=[lgb.early_stopping(30, verbose=False)],
        )

    def _fit_tree(
        self, x: F32, y: F64, w: F64, tr: I64, va: I64
    ) -> tuple[lgb.Booster, _Validation]:
        booster = self._train(x, tr, y[tr], w[tr], x[va], y[va], w[va])
        return booster, _Validation(y[va], w[va])

    def _fit_soft(
        self, x: F32, y: F64, w: F64, tr: I64, va: I64, soft: F64 | None
    ) -> tuple[lgb.Booster, _Validation]:
        """One booster with the unlabelled accounts split by ``soft`` (:func:`ring_soft_labels`):
        a negative of weight ``w (1 - r)`` and a positive of weight ``w r``; validation alike.
        Without ``soft``, :meth:`_fit_tree`."""
        if soft is None:
            return self._fit_tree(x, y, w, tr, va)
        tr1, y_tr, w_tr = _soft_rows(tr, y, w, soft[tr])
        va1, y_va, w_va = _soft_rows(va, y, w, soft[va])
        booster = self._train(x, tr1, y_tr, w_tr, x[va1], y_va, w_va)
        return booster, _Validation(y_va, w_va, np.searchsorted(va, va1))

    def _fit_exposed(
        self,
        x: F32,
        y: F64,
        w: F64,
        tr: I64,
        va: I64,
        label: I64,
        exposure: F64,
        ring_soft: F64 | None = None,
    ) -> tuple[lgb.Booster, _Validation, dict[str, Any]]:
        """Two boosters (see :func:`label_exposure`). The first learns from the accounts whose
        labels have had time to arrive (labelled ones, and unlabelled ones with exposure of at
        least ``EXPOSED``), so that its calibrated score estimates P(fraud) free of "young means
        unlabelled". Each unlabelled account of exposure ``F`` is then fraud with the posterior
        ``r = q (1 - F) / (1 - q F)`` (``q`` that score: no label though exposed ``F`` is that
        much evidence), and the second booster learns from every account, an unlabelled one as a
        negative of weight ``w (1 - r)`` and a positive of weight ``w r``. Calibration and early
        stopping use the validation accounts the same way. Returns the kept booster, its
        validation rows and what the fit did (``metrics["label_exposure"]``). With ``ring_soft``
        (:func:`ring_soft_labels`), an unlabelled account's ``r`` is the larger of the two."""
        unl = label == -1
        seen = ~unl | (exposure >= EXPOSED)
        tr0, va0 = tr[seen[tr]], va[seen[va]]
        # A probability, not a ranking: unweighted classes, stopped by log-loss. Stopped by
        # AUPRC, where few unlabelled accounts are exposed (the set is then mostly labelled) its
        # AUPRC was flat from the first round: one round, a constant ``q`` that lifted every
        # young account alike; stopped by log-loss with the classes balanced, the inflated
        # probabilities' log-loss rose after four rounds (both measured).
        first = self._train(
            x, tr0, y[tr0], w[tr0], x[va0], y[va0], w[va0], "binary_logloss", balanced=False
        )
        rounds = int(first.best_iteration or self.config.tree_rounds)
        if rounds < MIN_FIRST_ROUNDS:  # it learnt nothing to correct with: fit as without
            booster, val = self._fit_soft(x, y, w, tr, va, ring_soft)
            return booster, val, {"abandoned": f"first booster stopped at round {rounds}"}
        raw0 = np.asarray(first.predict(x[va0], num_iteration=first.best_iteration))
        platt0 = _platt(raw0.astype(np.float64), y[va0], w[va0], self.config.seed)
        # Elkan and Noto's e1: the labelled validation accounts' mean P(labelled | x), the
        # share of fraud that carries a label once exposed. 1 leaves exposure as it was.
        freq = 1.0
        if self.config.label_frequency and (y[va0] == 1).any():
            g = 1.0 / (1.0 + np.exp(-_platt_log_odds(raw0.astype(np.float64), platt0)))
            freq = float(np.clip(g[y[va0] == 1].mean(), 0.05, 1.0))

        def soft(rows: I64) -> tuple[I64, F64, F64]:
            p = np.asarray(first.predict(x[rows], num_iteration=first.best_iteration))
            q = 1.0 / (1.0 + np.exp(-_platt_log_odds(p.astype(np.float64), platt0)))
            if freq < 1.0:  # P(labelled) -> P(fraud); c = 1 leaves the fit as it was
                q = np.minimum(q / freq, 1.0 - 1e-6)
            f = exposure[rows] * freq
            r = np.where(unl[rows], q * (1 - f) / np.maximum(1 - q * f, 1e-9), 0.0)
            if ring_soft is not None:
                r = np.maximum(r, ring_soft[rows])
            return _soft_rows(rows, y, w, r)

        tr1, y_tr, w_tr = soft(tr)
        va1, y_va, w_va = soft(va)
        booster = self._train(x, tr1, y_tr, w_tr, x[va1], y_va, w_va)
        return (
            booster,
            _Validation(y_va, w_va, np.searchsorted(va, va1)),
            {
                "first_rounds": rounds,
                "label_frequency": round(freq, 4),
                "soft_positives_train": round(float(w_tr[len(tr) :].sum()), 2),
                "rows_added_train": int(len(tr1) - len(tr)),
                "exposure_median_unlabelled": round(float(np.median(exposure[unl])), 4)
                if unl.any()
                else None,
            },
        )

    def _fit_rest(
        self,
        proj: Projection,
        x: F32,
        y: F64,
        w: F64,
        tr: I64,
        va: I64,
        t0: float,
        check: _Validation,
    ) -> None:
        """The GNN and blend candidates, the choice among them and the calibration, all judged
        on ``check``, and the metrics."""
        c = self.config
        assert self.booster is not None
        t_tree = time.perf_counter() - t0
        p_tree = self.booster.predict(x[va], num_iteration=self.booster.best_iteration)
        cand: dict[str, F64] = {"tree": np.asarray(p_tree, dtype=np.float64)}
        t_gnn = 0.0
        if c.use_gnn:
            t1 = time.perf_counter()
            data = MeanAdjacency()(to_hetero(proj))
            gcfg = GNNConfig(**{**asdict(GNNConfig(seed=c.seed, threads=c.threads)), **c.gnn})
            gcfg.max_pos_weight = c.max_pos_weight
            self.gnn = GNNClassifier(gcfg).fit(
                data, "account", tr, y[tr], va, y[va], sample_weight=w[tr]
            )
            if not self.gnn.report.abandoned:  # too slow here to train: not a candidate
                p_gnn = self.gnn.predict_proba(data, "account")[va]
                cand["gnn"] = p_gnn
                best_w, best_ap = 0.5, -1.0
                for wt in (0.25, 0.5, 0.75):
                    ap = check.metric(average_precision_score, wt * cand["tree"] + (1 - wt) * p_gnn)
                    if ap > best_ap:
                        best_w, best_ap = wt, ap
                self.blend_weight = best_w
                cand["blend"] = best_w * cand["tree"] + (1 - best_w) * p_gnn
            t_gnn = time.perf_counter() - t1
        val: dict[str, dict[str, float]] = {}
        for name, p in cand.items():
            val[name] = {
                "auprc": round(check.metric(average_precision_score, p), 4),
                "auroc": round(check.metric(roc_auc_score, p), 4),
            }
        self.choice = max(val, key=lambda k: (val[k]["auprc"], k == "tree"))
        self.platt = check.platt(cand[self.choice], c.seed)
        self.platt_tree = self.platt if self.choice == "tree" else check.platt(cand["tree"], c.seed)
        gnn_report = self.gnn.report if self.gnn is not None else None
        if self.choice == "tree":
            self.gnn = None
        self.train_seconds = time.perf_counter() - t0
        self.metrics = {
            "validation": val,
            "chosen": self.choice,
            "blend_weight": self.blend_weight,
            "train_accounts": len(tr),
            "validation_accounts": len(va),
            "labelled_fraud": int((proj.label == 1).sum()),
            "labelled_legit": int((proj.label == 0).sum()),
            "tree_rounds": int(self.booster.best_iteration or c.tree_rounds),
            "tree_seconds": round(t_tree, 2),
            "gnn_seconds": round(t_gnn, 2),
            "gnn_epochs": gnn_report.epochs if gnn_report else 0,
            "gnn_out_of_time": gnn_report.out_of_time if gnn_report else False,
            # The GNN stopped after one epoch: its ``min_epochs`` would not fit in its budget.
            "gnn_abandoned": gnn_report.abandoned if gnn_report else False,
            "gnn_first_epoch_seconds": (
                round(gnn_report.first_epoch_seconds, 2)
                if gnn_report and gnn_report.first_epoch_seconds is not None
                else None
            ),
        }

    # -- scoring -------------------------------------------------------------------------------

    def _raw(self, proj: Projection, tables: _Tables | None = None) -> F64:
        if self.booster is None:
            raise RuntimeError("the model is not fitted")
        proj = self._ringed(proj)
        tables = tables or _tables(proj, self.config.hub_degree)
        p_tree = np.asarray(
            self.booster.predict(_tree_matrix(tables, proj.label, proj.ring_prior())),
            dtype=np.float64,
        )
        if self.choice == "tree":
            return p_tree
        assert self.gnn is not None
        p_gnn = self.gnn.predict_proba(MeanAdjacency()(to_hetero(proj)), "account")
        if self.choice == "gnn":
            return p_gnn
        return self.blend_weight * p_tree + (1 - self.blend_weight) * p_gnn

    def tree_scorer(self) -> TreeScorer:
        """The tree alone with its own calibration (see :class:`TreeScorer`)."""
        if self.booster is None:
            raise RuntimeError("the model is not fitted")
        platt = self.platt_tree  # fit and load_model set it (to platt when the tree is chosen)
        if platt is None:
            raise ValueError(
                f"model {self.version}: its tree has no calibration of its own (saved before "
                f"tree-only scoring existed, and it chose the {self.choice}); retrain it"
            )
        text = self.booster.model_to_string(num_iteration=self.booster.best_iteration or None)
        return TreeScorer(text, platt, self.config.hub_degree, self.config.threads)

    def _calibrate(self, raw: F64) -> F64:
        out: F64 = 1.0 / (1.0 + np.exp(-self._log_odds(raw)))
        return out

    def _log_odds(self, raw: F64) -> F64:
        return _platt_log_odds(raw, self.platt)

    def predict_proba(self, proj: Projection) -> F64:
        """Calibrated probability that each account (in ``proj`` order) is labelled fraud."""
        return self._calibrate(self._raw(proj))

    def decision_function(self, proj: Projection) -> F64:
        """Raw score: the calibrated log-odds per account; ``predict_proba`` is its sigmoid."""
        return self._log_odds(self._raw(proj))

    def predict(self, proj: Projection, threshold: float = 0.5) -> npt.NDArray[np.int64]:
        return (self.predict_proba(proj) >= threshold).astype(np.int64)

    def assess(
        self,
        proj: Projection,
        account_id: str,
        top: int = 3,
        rows: Mapping[str, F32] | None = None,
    ) -> tuple[float, tuple[tuple[str, float, float, str], ...]]:
        """One account's calibrated probability, and its top tree-SHAP features, from a
        projection that holds its neighbourhood (a local one, with whole-graph sizes and "now").

        The tree reads only the account's row (:func:`_neighbourhood`, :func:`_tree_row`), the
        same number ``predict_proba`` gives for it on the whole graph; the GNN and the blend
        score the projection given. ``rows`` (account id -> ``account_features`` row) stands
        in for accounts whose edges the projection holds only in part: those on the account's
        identifiers, whose rows a build kept (``models.screen_table``).
        """
        if self.booster is None:
            raise RuntimeError("the model is not fitted")
        proj = self._ringed(proj)
        i = proj.ids.index(account_id)
        hub = self.config.hub_degree
        near, k = _neighbourhood(proj, i, hub, proj.now())
        row = _tree_row(near, k, hub, _account_rows(near, k, rows), _identifier_parts(near))
        if self.choice == "tree":
            score = float(self._calibrate(self._predict_tree(row))[0])
        else:
            score = float(self.predict_proba(proj)[i])
        return score, self._top_features(row[0], top)

    # -- explanations --------------------------------------------------------------------------

    def explain(self, proj: Projection, account_id: str, top: int = 5) -> Explanation:
        """Top tree-SHAP features and the identifiers whose removal lowers the score most.

        Identifier influence is occlusion: the account's edge to that identifier is removed and
        the account rescored with the same model (aggregates and, for the GNN, message passing
        recomputed). No randomness is involved, so the answer is fixed for a model and graph.
        """
        if self.booster is None:
            raise RuntimeError("the model is not fitted")
        try:
            i = proj.ids.index(account_id)
        except ValueError:
            raise KeyError(f"account {account_id!r} is not in the graph") from None
        proj = self._ringed(proj)
        if self.choice == "tree":
            return self._explain_tree(proj, i, top)
        return self._explain_whole(proj, i, top)

    def _explain_whole(self, proj: Projection, i: int, top: int) -> Explanation:
        """``explain`` by rescoring the whole projection per occlusion (any model)."""
        tables = _tables(proj, self.config.hub_degree)
        x = _tree_matrix(tables, proj.label, proj.ring_prior())
        base = float(self._calibrate(self._raw(proj, tables))[i])
        feats = self._top_features(x[i], top)
        drops: list[tuple[str, int, float]] = []
        for kind, ident, sub in _occlusions(proj, i):
            score = float(self._calibrate(self._raw(sub))[i])
            drops.append((kind, int(proj.kinds[kind].nodes[ident]), round(base - score, 6)))
        return self._explanation(proj.ids[i], base, feats, drops, top)

    def _explain_tree(self, proj: Projection, i: int, top: int) -> Explanation:
        """``explain`` for the tree alone, from the only rows its answer depends on.

        The tree scores account ``i`` from its own features, its (non-hub) identifiers' features
        and the features of those identifiers' accounts, each a function of that account's own
        edges, the identifiers' whole-graph sizes and "now". So the account, the accounts on its
        non-hub identifiers and all of their edges (:func:`_neighbourhood`, sizes and "now"
        pinned) give bit for bit the row the whole projection gives. An occlusion changes the
        features of the account and of the removed identifier's accounts only (its size drops by
        one), and of that identifier: those are recomputed, the rest reused, only the account's
        row is assembled (:func:`_tree_row`), and the tree scores all the rows in one call. The
        same numbers as rescoring the whole projection per occlusion (tested) at a fraction of
        the cost.
        """
        assert self.booster is not None
        hub = self.config.hub_degree
        near, k = _neighbourhood(proj, i, hub, proj.now())
        x_acc = account_features(near)
        x_ids = _identifier_parts(near)
        rows = [_tree_row(near, k, hub, x_acc, x_ids)]
        occluded: list[tuple[str, int]] = []
        for kind, ident, sub in _occlusions(near, k):
            e = near.kinds[kind]
            sub.data_now = _now_without(proj, kind, i, ident)
            if sub.data_now == near.data_now:
                touched = np.zeros(near.n, dtype=bool)
                touched[k] = True
                touched[e.acc[e.ident == ident]] = True
                x_sub = x_acc.copy()
                x_sub[touched] = account_features(_restrict(sub, touched))
            else:  # the edge held the latest timestamp: every account's age moves
                x_sub = account_features(sub)
            parts = {**x_ids, kind: _identifier_parts(sub, kind)[kind]}
            rows.append(_tree_row(sub, k, hub, x_sub, parts))
            occluded.append((kind, int(e.nodes[ident])))
        x = np.vstack(rows)
        p = self._calibrate(self._predict_tree(x))
        base = float(p[0])
        feats = self._top_features(x[0], top)
        drops = [
            (kind, node, round(base - float(score), 6))
            for (kind, node), score in zip(occluded, p[1:].tolist(), strict=True)
        ]
        return self._explanation(proj.ids[i], base, feats, drops, top)

    def _predict_tree(self, x: F32) -> F64:
        assert self.booster is not None
        # One thread for a few rows: OpenMP's team start and barrier cost milliseconds per call
        # on a busy machine, for microseconds of tree walking (screen and explain score 1-30).
        threads = 1 if len(x) < 1_000 else self.config.threads
        return np.asarray(self.booster.predict(x, num_threads=threads), dtype=np.float64)

    def _top_features(self, row: F32, top: int) -> tuple[tuple[str, float, float, str], ...]:
        assert self.booster is not None
        contrib = self.booster.predict(row.reshape(1, -1), pred_contrib=True, num_threads=1)[0][:-1]
        names = tree_feature_names()
        order = np.argsort(-contrib, kind="stable")[:top]
        return tuple(
            (
                names[j],
                round(float(row[j]), 4),
                round(float(contrib[j]), 4),
                _describe(names[j]),
            )
            for j in order.tolist()
            if contrib[j] > 0
        )

    def _explanation(
        self,
        account_id: str,
        base: float,
        feats: tuple[tuple[str, float, float, str], ...],
        drops: list[tuple[str, int, float]],
        top: int,
    ) -> Explanation:
        drops.sort(key=lambda d: (-d[2], d[0], d[1]))
        return Explanation(account_id, round(base, 6), self.choice, feats, tuple(drops[:top]))


def _neighbourhood(proj: Projection, i: int, hub_degree: int, now: int) -> tuple[Projection, int]:
    """Account ``i``, the accounts on its identifiers of at most ``hub_degree`` accounts, and all
    of their edges, as a projection of its own (and ``i``'s index in it).

    Accounts keep their relative order and identifiers their indices, so every sum the tree's
    features take runs over the same values in the same order as in ``proj``: account ``i``'s
    tree row is bit for bit the one ``proj`` gives. Identifiers carry their size in ``proj``
    (``full_degree``, whole-graph already in a local projection) and "now" is ``proj``'s, since
    neither can be counted from a part of the graph.
    """
    near = np.zeros(proj.n, dtype=bool)
    near[i] = True
    sized: dict[str, KindEdges] = {}
    for kind, e in proj.kinds.items():
        deg = identifier_sizes(e)
        sized[kind] = replace(e, full_degree=deg)
        ids = np.unique(e.ident[e.acc == i])
        on = np.zeros(e.m, dtype=bool)
        on[ids[deg[ids] <= hub_degree]] = True
        near[e.acc[on[e.ident]]] = True
    whole = replace(proj, kinds=sized, data_now=now)
    if near.all():  # a screen reads just this neighbourhood: nothing to take out
        return whole, i
    return _restrict(whole, near), int(np.count_nonzero(near[:i]))


def _account_rows(near: Projection, k: int, rows: Mapping[str, F32] | None) -> F32:
    """``account_features(near)``, with ``rows`` standing in for the accounts they hold (all but
    ``k``), computed for the rest alone: on a screen's neighbourhood the table holds nearly
    every row, and the features of all of them were a tenth of a screen's server time. The
    rest's rows are the same bit for bit (their own edges, in their order, and identifier
    sizes the projection carries: :func:`_restrict`)."""
    if not rows:
        return account_features(near)
    if not isinstance(rows, TableRows):  # a plain mapping: one matrix, taken in one indexing
        rows = TableRows({a: i for i, a in enumerate(rows)}, np.stack(list(rows.values())))
    at = np.fromiter((rows.at.get(a, -1) for a in near.ids), dtype=np.int64, count=near.n)
    at[k] = -1
    given = at >= 0
    x = np.empty((near.n, len(FEATURE_SCHEMA.account)), dtype=np.float32)
    if not given.all():
        x[~given] = account_features(_restrict(near, ~given))
    if given.any():
        x[given] = rows.x[at[given]]
    return x


def _restrict(proj: Projection, accounts: npt.NDArray[np.bool_]) -> Projection:
    """Some accounts of ``proj`` (a mask) with all of their edges, in their order; identifiers
    keep their indices, sizes (``full_degree``, which must be set) and flags."""
    index = np.cumsum(accounts) - 1
    rows = np.flatnonzero(accounts)
    kinds: dict[str, KindEdges] = {}
    for kind, e in proj.kinds.items():
        keep = accounts[e.acc]
        kinds[kind] = replace(
            e,
            acc=index[e.acc[keep]].astype(np.int32),
            ident=e.ident[keep],
            first=e.first[keep],
            last=e.last[keep],
            count=e.count[keep],
            round_count=e.round_count[keep] if e.round_count is not None else None,
            total=e.total[keep] if e.total is not None else None,
        )
    return Projection(
        ids=[proj.ids[r] for r in rows.tolist()],
        nodes=proj.nodes[rows],
        created=proj.created[rows],
        kyc=proj.kyc[rows],
        label=proj.label[rows],
        kinds=kinds,
        data_now=proj.data_now,
        ring=proj.ring[rows] if proj.ring is not None else None,
    )


def _identifier_parts(proj: Projection, only: str | None = None) -> dict[str, F32]:
    """Identifier features per kind (all kinds, or ``only``), as :func:`_tables` stacks them."""
    width = len(FEATURE_SCHEMA.identifier)
    out: dict[str, F32] = {}
    for kind in KIND_NAMES if only is None else (only,):
        e = proj.kinds.get(kind)
        out[kind] = (
            identifier_features(e)
            if e is not None and e.m
            else np.zeros((0, width), dtype=np.float32)
        )
    return out


def _tree_row(proj: Projection, k: int, hub_degree: int, x_acc: F32, x_ids: dict[str, F32]) -> F32:
    """Row ``k`` of ``_tree_matrix(_tables(proj, hub_degree), proj.label)``, bit for bit, given
    ``proj``'s account features and identifier features per kind.

    Only the account's identifiers (``cols``, the columns of its row of ``b``) and the entries
    of ``b`` on them are touched, with numpy alone: on a screen's neighbourhood of a few dozen
    accounts scipy's per-call cost (format checks, index dtypes, transposes) was most of the
    row's time. Every sum is taken in the order scipy's products take it, so the row is the
    same bit for bit (tests/test_models_risk.py): ``np.add.at`` adds its values one at a time in
    the order given, as ``csr @ dense`` adds a row's entries (``np.add.reduceat`` and
    ``sum`` would sum pairwise); a product of the row-normalised matrix is ``0 + w*x_1 + w*x_2
    ...`` in float64, its rows in the reverse of the order they had before normalising (scipy's
    sparse product emits a row's entries in reverse): an identifier's accounts descending, the
    account's identifiers last to first. The neighbour-label and ring sums follow ``b``'s own
    order. Maxima and integer counts do not depend on order.
    """
    b = incidence(proj, max_degree=hub_degree)
    indptr, indices = b.indptr, b.indices.astype(np.int64)
    mine = indices[indptr[k] : indptr[k + 1]]  # the account's identifiers, in b's row order
    cols = np.unique(mine)
    c = len(cols)
    x_id = np.vstack([x_ids[kind] for kind in KIND_NAMES]).astype(np.float32)[cols]
    # b's entries on the account's identifiers (identifier position in cols, account), each
    # identifier's accounts ascending: b is row-major, so a stable sort by identifier keeps them.
    where = np.full(b.shape[1], -1, dtype=np.int64)
    where[cols] = np.arange(c)
    pos_all = where[indices]
    on = pos_all >= 0
    acc_all = np.repeat(np.arange(b.shape[0], dtype=np.int64), np.diff(indptr))
    order = np.argsort(pos_all[on], kind="stable")
    pos, acc = pos_all[on][order], acc_all[on][order]
    counts = edge_label_counts(acc, pos, proj.label, c)
    deg = counts[0]  # each identifier's accounts (every one holds account k)
    # identifier_aggregates: mean and max of each identifier's accounts' features. The mean
    # is a product of the row-normalised matrix, whose rows scipy's product left reversed.
    down = np.lexsort((-acc, pos))
    mean = _weighted_sums(pos[down], 1.0 / deg[pos[down]], x_acc[acc[down]], c)
    id_mean_acc = mean.astype(np.float32)
    id_max_acc = _maxima(pos, x_acc[acc], c)
    # tree_rows over the account's own row: its identifiers in b's row order.
    p = np.searchsorted(cols, mine)
    if len(p) == 0:  # no identifier under the hub cap: every aggregate is 0
        rest = len(tree_feature_names()) - x_acc.shape[1]
        return np.hstack([x_acc[k : k + 1], np.zeros((1, rest), np.float32)]).astype(np.float32)
    at = np.zeros(len(p), dtype=np.int64)
    w = np.full(len(p), 1.0 / len(p))
    back = p[::-1]  # the row-normalised row, reversed as for the aggregates
    # label_features and ring_features of row k: its entries in b's row order, the counts and
    # tops of its identifiers from all of their entries (accounts ascending, as b's coo).
    ring = proj.ring_prior()
    tops = edge_ring_tops(acc, pos, ring, c)
    row = [
        x_acc[k : k + 1],
        _weighted_sums(at, w, x_id[back], 1).astype(np.float32),
        _maxima(at, x_id[p], 1),
        _weighted_sums(at, w, id_mean_acc[back], 1).astype(np.float32),
        _maxima(at, id_max_acc[p], 1),
        edge_label_features(at, p, 1, proj.label[k : k + 1], counts),
        edge_ring_features(at, p, 1, ring[k : k + 1], tops),
    ]
    return np.hstack(row).astype(np.float32)


def _weighted_sums(seg: I64, w: F64, x: F32, n: int) -> F64:
    """Per segment, ``0 + w_1*x_1 + w_2*x_2 ...`` in float64, in the order given: one row of
    a row-normalised sparse matrix times a dense one, as scipy computes it."""
    out = np.zeros((n, x.shape[1]), dtype=np.float64)
    np.add.at(out, seg, w[:, None] * x.astype(np.float64))
    return out


def _maxima(seg: I64, x: F32, n: int) -> F32:
    """Per segment, the column-wise max of its rows (every segment holds at least one)."""
    out = np.full((n, x.shape[1]), -np.inf, dtype=np.float64)
    np.maximum.at(out, seg, x.astype(np.float64))
    return out.astype(np.float32)


def _tree_row_scipy(
    proj: Projection, k: int, hub_degree: int, x_acc: F32, x_ids: dict[str, F32]
) -> F32:
    """:func:`_tree_row` through scipy's products, as it was written first: kept for the tests,
    which hold the two equal bit for bit."""
    b = incidence(proj, max_degree=hub_degree)
    mine = b[k]
    cols = np.unique(mine.indices)
    # The account's row over its own identifiers only (same entries, same order).
    mine = sp.csr_matrix(
        (mine.data, np.searchsorted(cols, mine.indices), mine.indptr), shape=(1, len(cols))
    )
    x_id = np.vstack([x_ids[kind] for kind in KIND_NAMES]).astype(np.float32)[cols]
    id_mean_acc, id_max_acc = identifier_aggregates(b.T.tocsr()[cols], x_acc)
    labels = label_features(b, proj.label)[k : k + 1]
    rings = ring_features(b, proj.ring_prior())[k : k + 1]
    return tree_rows(mine, x_acc[k : k + 1], x_id, id_mean_acc, id_max_acc, labels, rings)


def _now_without(proj: Projection, kind: str, i: int, ident: int) -> int:
    """``proj``'s "now" once account ``i``'s edges to one identifier are gone."""
    if proj.data_now is not None:
        return proj.data_now
    e = proj.kinds[kind]
    last = e.last[~((e.acc == i) & (e.ident == ident))]
    return replace(proj, kinds={**proj.kinds, kind: replace(e, last=last)}).now()


def _occlusions(proj: Projection, i: int) -> Iterator[tuple[str, int, Projection]]:
    """Each identifier of account ``i`` (kind, index), with the projection that lacks the
    account's edges to it: what ``explain``'s identifier influence rescores, in a fixed order."""
    for kind in KIND_NAMES:
        e = proj.kinds.get(kind)
        if e is None:
            continue
        for ident in np.unique(e.ident[e.acc == i]).tolist():
            yield kind, ident, _without(proj, kind, ~((e.acc == i) & (e.ident == ident)))


def _without(proj: Projection, kind: str, keep: npt.NDArray[np.bool_]) -> Projection:
    """The projection with one account's edges to some identifiers of one kind removed
    (identifier indices unchanged)."""
    e = proj.kinds[kind]
    full_degree = e.full_degree
    if full_degree is not None:  # one account's edges go: its identifiers lose them
        full_degree = full_degree.copy()
        np.subtract.at(full_degree, e.ident[~keep], 1)
    sub = replace(
        e,
        full_degree=full_degree,
        acc=e.acc[keep],
        ident=e.ident[keep],
        first=e.first[keep],
        last=e.last[keep],
        count=e.count[keep],
        round_count=e.round_count[keep] if e.round_count is not None else None,
        total=e.total[keep] if e.total is not None else None,
    )
    return replace(proj, kinds={**proj.kinds, kind: sub})


def _soft_rows(rows: I64, y: F64, w: F64, r: F64) -> tuple[I64, F64, F64]:
    """``rows`` with each row of soft label ``r > SOFT_MIN`` (unlabelled ones only: 0
    elsewhere) split in two: itself as a negative of weight ``w (1 - r)`` and a copy after them
    as a positive of weight ``w r``. Returns the rows, their labels and weights."""
    r = np.where(r > SOFT_MIN, r, 0.0)
    dup = rows[r > 0]
    idx = np.concatenate([rows, dup])
    yy = np.concatenate([y[rows], np.ones(len(dup))])
    ww = np.concatenate([w[rows] * (1 - r), w[dup] * r[r > 0]])
    return idx, yy, ww


def ring_soft_labels(proj: Projection) -> F64:
    """Per account, the chance that an unlabelled one is fraud as the previous build's rings
    tell it: its ring prior (``Projection.ring``: the label-free probability, learned from the
    platform's labels and calibrated, that its cluster is a ring; 0 outside any cluster); 0 for
    a labelled account, whose label stands, and for all where no build's priors were read.

    Why: the account model learns labels, and most members of a ring the detector found carry
    none yet (labels come months late, and some rings are never worked). As plain negatives they
    teach the model that an account next to a flagged ring is as safe as any unlabelled one,
    and an arriving member on the ring's device (its ring features say so) scores low although
    the screen links it to the ring (docs/screening.md, sessions 25 and 37). Counted as fraud
    with the cluster's probability, they teach it what the detector knows, at the strength the
    labels calibrated. The cluster score does not read the account model, so no loop (the
    rebuild trains with them only on cluster scores learned from the labels). Shape: (n,)."""
    if proj.ring is None:
        return np.zeros(proj.n, dtype=np.float64)
    return np.where(proj.label == -1, np.clip(proj.ring, 0.0, 1.0), 0.0).astype(np.float64)


# Label exposure: an unlabelled account whose fraud label would have arrived by now with at
# least this chance counts as seen (the first booster learns from it); soft positives below
# SOFT_MIN are dropped (they only cost rows).
EXPOSED = 0.9
SOFT_MIN = 1e-3
MIN_FIRST_ROUNDS = 5


def label_exposure(created: I64, labelled: I64, opened: I64, now: int, bin_days: int = 7) -> F64:
    """Per account (opened at ``opened``, epoch seconds, -1 unknown), the chance that a fraud
    label would have arrived by ``now`` were it fraud: ``F(now - opened)``, with ``F`` the
    distribution of the delay from opening to a fraud label.

    Why: labels arrive weeks to months after the fraud, so the youngest accounts are unlabelled
    whatever they are, and a model that reads unlabelled as negative learns "new means safe",
    the one thing a decision-time screen cannot afford (docs/screening.md).

    ``F`` is estimated from the accounts labelled fraud (``created``, ``labelled``): a delay
    ``d = labelled - created`` is only seen when ``d <= now - created``, so the sample is
    right-truncated and its plain histogram is biased toward short delays. The product-limit
    estimator for right truncation (Lynden-Bell 1971) undoes that, in bins of ``bin_days``:
    ``F(t) = prod_{s > t} (1 - N(s) / R(s))``, ``N(s)`` the delays in bin ``s`` and ``R(s)``
    the labelled accounts that could have shown one there (``d <= s <= now - created``).
    ``F`` is 1 past the longest delay seen, and for accounts whose opening is unknown.
    """
    day = 86_400 * bin_days
    ok = (created >= 0) & (labelled >= created) & (labelled <= now)
    d = ((labelled[ok] - created[ok]) // day).astype(np.int64)
    trunc = ((now - created[ok]) // day).astype(np.int64)
    out = np.ones(len(opened), dtype=np.float64)
    if not len(d):
        return out
    top = int(d.max())
    n = np.bincount(d, minlength=top + 1).astype(np.float64)
    # R(s) = #{d_i <= s} - #{trunc_i < s}: the delays seen by s, less those no longer at risk.
    at_most = np.cumsum(n)
    gone = np.cumsum(np.bincount(np.minimum(trunc, top + 1), minlength=top + 2))[: top + 1]
    gone = np.concatenate([[0.0], gone[:-1]])  # trunc_i < s
    r = at_most - gone
    factor = np.where(r > 0, 1.0 - n / np.maximum(r, 1.0), 1.0)
    # F(t) for bins t = 0..top: the product of the factors of the bins after t.
    after = np.concatenate([np.cumprod(factor[::-1])[::-1][1:], [1.0]])
    age = (now - opened) // day
    known = opened >= 0
    idx = np.clip(age, 0, top + 1)
    table = np.concatenate([after, [1.0]])
    out[known] = table[idx[known]]
    return out


def _platt(p: F64, y: F64, w: F64, seed: int) -> tuple[float, float]:
    """Platt scaling of probabilities ``p``: (a, b) of ``sigmoid(a * logit(p) + b)``."""
    lr = LogisticRegression(C=1e4, random_state=seed)
    lr.fit(_logit(p).reshape(-1, 1), y, sample_weight=w)
    return float(lr.coef_[0, 0]), float(lr.intercept_[0])


def _platt_log_odds(raw: F64, platt: tuple[float, float]) -> F64:
    """``a * logit(raw) + b``: the calibrated log-odds of probabilities ``raw``."""
    a, b = platt
    out: F64 = a * _logit(raw) + b
    return out


def _logit(p: F64) -> F64:
    q = np.clip(p, 1e-6, 1 - 1e-6)
    out: F64 = np.log(q / (1 - q))
    return out


def _describe(name: str) -> str:
    if name in LABEL_FEATURES:
        return {
            "fraud_nbr_share_max": "largest share of known-fraud accounts on one shared identifier",
            "fraud_nbr_log": "known-fraud accounts sharing its identifiers",
            "legit_nbr_share_max": "largest share of known-legit accounts on a shared identifier",
            "legit_nbr_log": "known-legit accounts sharing its identifiers",
        }[name]
    if name in RING_FEATURES:
        return {
            "ring_nbr_max": "strongest ring cluster (last build) among accounts sharing its "
            "identifiers",
            "ring_nbr_log": "ring clusters (last build) of the accounts sharing its identifiers",
        }[name]
    prefix, _, base = name.rpartition("__")
    words = {
        "id_mean": "mean over its identifiers of: ",
        "id_max": "max over its identifiers of: ",
        "nbr_mean": "mean over accounts sharing its identifiers of: ",
        "nbr_max": "max over accounts sharing its identifiers of: ",
    }
    if prefix in ("id_mean", "id_max"):
        return words[prefix] + FEATURE_DESCRIPTIONS.get(f"id:{base}", base)
    return words.get(prefix, "") + FEATURE_DESCRIPTIONS.get(base, base)
