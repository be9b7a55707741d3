"""Tree models on tabular node features, and the neighbour aggregates that make them graph-aware.

GADBench (NeurIPS 2023) found that tree ensembles on a node's own features plus aggregated
neighbour features beat specialised fraud GNNs; this module is that recipe, kept generic so the
external benchmarks (``models.gad``) and the account-risk model on our own graph share it:

    feats = neighbour_features(x, adj, hops=2, aggs=("mean", "max"))  # [x, mean1, max1, ...]
    clf = TreeClassifier(seed=0).fit(feats[tr], y[tr], feats[va], y[va])
    p = clf.predict_proba(feats)                  # positive-class probability per node
    why = clf.contributions(feats[:5])            # TreeSHAP, last column = bias

Nothing here pickles: a fitted ``TreeClassifier`` round-trips through LightGBM's text format.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from sklearn.ensemble import RandomForestClassifier

__all__ = [
    "AGGREGATIONS",
    "RFGraph",
    "TreeClassifier",
    "adjacency",
    "feature_names",
    "neighbour_features",
]

F64 = npt.NDArray[np.float64]
AGGREGATIONS = ("mean", "max", "min", "sum")
_JSON_CHARS = re.compile(r'[",:\[\]{}]')  # LightGBM refuses these in feature names


# -- neighbour aggregates -----------------------------------------------------------------------


def adjacency(
    edge_index: npt.NDArray[Any], n: int, undirected: bool = True, self_loops: bool = False
) -> sp.csr_matrix:
    """Binary CSR adjacency (n by n) from a (2, E) or (E, 2) edge list, duplicates collapsed.

    ``undirected`` adds the reverse of every edge; self-loops are dropped unless asked for, so a
    node's "neighbour" aggregates never contain its own features (Reddit's file has a loop on
    every node).
    """
    ei = np.asarray(edge_index, dtype=np.int64)
    if ei.ndim != 2 or 2 not in ei.shape:
        raise ValueError(f"edge_index must be (2, E) or (E, 2), got {ei.shape}")
    if ei.shape[0] != 2:  # (E, 2); a 2x2 array is read as (2, E)
        ei = ei.T
    src, dst = ei[0], ei[1]
    if undirected:
        src, dst = np.concatenate([src, dst]), np.concatenate([dst, src])
    if not self_loops:
        keep = src != dst
        src, dst = src[keep], dst[keep]
    a = sp.csr_matrix((np.ones(len(src), dtype=np.float64), (src, dst)), shape=(n, n))
    a.sum_duplicates()
    a.data[:] = 1.0
    return a


def _binary(adj: sp.spmatrix | sp.sparray, undirected: bool) -> sp.csr_matrix:
    a = sp.csr_matrix(adj, dtype=np.float64, copy=True)
    if undirected:
        a = sp.csr_matrix(a + a.T)
    a.sum_duplicates()
    a.eliminate_zeros()
    a.data[:] = 1.0
    a.sort_indices()
    return a


def segment_reduce(h: npt.NDArray[Any], a: sp.csr_matrix, ufunc: np.ufunc) -> F64:
    """Row-wise ``ufunc`` (max/min) of ``h`` over each row's nonzero columns; 0 for empty rows.

    A gather plus ``ufunc.reduceat`` over the CSR row starts: no loop per node. One column at a
    time, so the gather holds ``nnz`` values, never ``nnz x d`` (1M accounts: 20M edges). Empty
    rows are left out of the start list (reduceat would otherwise return the next row's value).
    """
    out = np.zeros((a.shape[0], h.shape[1]), dtype=np.float64)
    if a.nnz == 0:
        return out
    rows = np.flatnonzero(np.diff(a.indptr) > 0)
    starts = a.indptr[rows]
    for j in range(h.shape[1]):
        out[rows, j] = ufunc.reduceat(h[a.indices, j], starts)
    return out


def neighbour_features(
    x: npt.NDArray[Any],
    adj: sp.spmatrix | sp.sparray,
    hops: int = 2,
    aggs: Sequence[str] = ("mean", "max"),
    undirected: bool = False,
) -> F64:
    """``[x, agg1_1hop, agg2_1hop, ..., agg1_2hop, ...]`` column-stacked: d*(1 + hops*len(aggs))
    columns.

    The adjacency is used as a binary pattern (weights and duplicates ignored); pass
    ``undirected=True`` to symmetrise it here. Hop k aggregates hop k-1's aggregate of the same
    kind (GADBench style): ``mean2 = mean over neighbours of mean1`` (= Â²x with Â row-normalised),
    ``max2 = max over neighbours of max1``, so hop 2 reaches every node two steps away, the node
    itself included when it has a neighbour. A node with no neighbours gets 0 in every aggregate.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    unknown = [g for g in aggs if g not in AGGREGATIONS]
    if unknown:
        raise ValueError(f"unknown aggregation(s) {unknown}; choose from {AGGREGATIONS}")
    if adj.shape != (x.shape[0], x.shape[0]):
        raise ValueError(f"adjacency is {adj.shape}, features have {x.shape[0]} rows")
    a = _binary(adj, undirected)
    deg = np.diff(a.indptr).astype(np.float64)
    norm = sp.diags(1.0 / np.maximum(deg, 1.0)) @ a  # row-normalised: one spmm = mean
    blocks = [x]
    prev = dict.fromkeys(aggs, x)
    for _ in range(hops):
        cur: dict[str, F64] = {}
        for g in aggs:
            if g == "mean":
                cur[g] = np.asarray(norm @ prev[g])
            elif g == "sum":
                cur[g] = np.asarray(a @ prev[g])
            elif g == "max":
                cur[g] = segment_reduce(prev[g], a, np.maximum)
            else:
                cur[g] = segment_reduce(prev[g], a, np.minimum)
            blocks.append(cur[g])
        prev = cur
    return np.hstack(blocks)


def feature_names(
    base_names: Sequence[str], hops: int = 2, aggs: Sequence[str] = ("mean", "max")
) -> list[str]:
    """Column names of ``neighbour_features``, same order: ``degree``, ``mean1:degree``, ..."""
    names = list(base_names)
    for h in range(1, hops + 1):
        for g in aggs:
            names += [f"{g}{h}:{b}" for b in base_names]
    return names


# -- gradient-boosted trees --------------------------------------------------------------------


def _as_2d(x: npt.NDArray[Any]) -> F64:
    arr = np.asarray(x, dtype=np.float64)
    return arr[:, None] if arr.ndim == 1 else arr


class TreeClassifier:
    """LightGBM binary classifier with the choices a fraud model needs made explicit.

    * imbalance: ``scale_pos_weight="balanced"`` weighs positives by neg/pos, so a 3% class still
      shapes the first splits; ``"sqrt"`` is the milder sqrt(neg/pos), a float sets it directly
      and 1.0 turns it off;
    * stopping: with a validation set, the number of trees is chosen on validation AUPRC
      (``average_precision``), the metric that matters when positives are rare;
    * reproducible: fixed seed, ``deterministic=True``, at most ``num_threads`` threads;
    * explainable: ``contributions`` is TreeSHAP (``pred_contrib``), summing to the raw margin;
    * storable: ``to_model_string``/``from_model_string``, LightGBM's text format, never pickle.
    """

    def __init__(
        self,
        n_estimators: int = 1000,
        learning_rate: float = 0.05,
        num_leaves: int = 31,
        min_child_samples: int = 20,
        seed: int = 0,
        scale_pos_weight: float | Literal["balanced", "sqrt"] = "balanced",
        colsample: float = 0.8,
        subsample: float = 0.8,
        reg_lambda: float = 1.0,
        early_stopping_rounds: int = 50,
        num_threads: int = 2,
        feature_names: Sequence[str] | None = None,
    ) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.seed = seed
        self.scale_pos_weight = scale_pos_weight
        self.colsample = colsample
        self.subsample = subsample
        self.reg_lambda = reg_lambda
        self.early_stopping_rounds = early_stopping_rounds
        self.num_threads = num_threads
        self.feature_names = list(feature_names) if feature_names is not None else None
        self.booster: Any = None
        self.best_iteration: int = 0
        self.best_val_auprc: float | None = None

    def params(self, y: npt.NDArray[Any] | None = None) -> dict[str, Any]:
        """LightGBM parameters; ``y`` (training labels) resolves ``"balanced"`` to neg/pos and
        ``"sqrt"`` to its square root."""
        spw = self.scale_pos_weight
        if isinstance(spw, str):
            pos = float(np.sum(y)) if y is not None else 0.0
            neg = float(len(y)) - pos if y is not None else 0.0
            ratio = neg / pos if pos > 0 else 1.0
            spw = ratio if spw == "balanced" else float(np.sqrt(ratio))
        return {
            "objective": "binary",
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_child_samples": self.min_child_samples,
            "min_sum_hessian_in_leaf": 1e-3,
            "feature_fraction": self.colsample,
            "bagging_fraction": self.subsample,
            "bagging_freq": 1 if self.subsample < 1.0 else 0,
            "lambda_l2": self.reg_lambda,
            "scale_pos_weight": float(spw),
            "metric": "average_precision",
            "seed": self.seed,
            "deterministic": True,
            "force_row_wise": True,
            "num_threads": self.num_threads,
            "verbosity": -1,
        }

    def _names(self, d: int) -> list[str] | Literal["auto"]:
        if self.feature_names is None:
            return "auto"
        if len(self.feature_names) != d:
            raise ValueError(f"{len(self.feature_names)} feature names for {d} columns")
        return [_JSON_CHARS.sub("_", n) for n in self.feature_names]

    def fit(
        self,
        X: npt.NDArray[Any],
        y: npt.NDArray[Any],
        X_val: npt.NDArray[Any] | None = None,
        y_val: npt.NDArray[Any] | None = None,
    ) -> TreeClassifier:
        X = _as_2d(X)
        y = np.asarray(y, dtype=np.float64)
        names = self._names(X.shape[1])
        train = lgb.Dataset(X, label=y, feature_name=names, free_raw_data=True)
        params = self.params(y)
        callbacks: list[Any] = []
        valid: list[Any] = []
        has_val = X_val is not None and y_val is not None and len(np.unique(y_val)) == 2
        if has_val:
            assert X_val is not None and y_val is not None
            valid = [lgb.Dataset(_as_2d(X_val), label=np.asarray(y_val, float), reference=train)]
            callbacks = [lgb.early_stopping(self.early_stopping_rounds, verbose=False)]
        self.booster = lgb.train(
            params,
            train,
            num_boost_round=self.n_estimators,
            valid_sets=valid,
            valid_names=["val"] if valid else None,
            callbacks=callbacks,
        )
        if has_val:
            self.best_iteration = int(self.booster.best_iteration) or self.booster.num_trees()
            self.best_val_auprc = float(self.booster.best_score["val"]["average_precision"])
        else:
            self.best_iteration = int(self.booster.num_trees())
        return self

    def _booster(self) -> Any:
        if self.booster is None:
            raise RuntimeError("the model is not fitted")
        return self.booster

    def predict_proba(self, X: npt.NDArray[Any]) -> F64:
        """Positive-class probability per row, shape (n,)."""
        p = self._booster().predict(_as_2d(X), num_iteration=self.best_iteration)
        return np.asarray(p, dtype=np.float64)

    def decision_function(self, X: npt.NDArray[Any]) -> F64:
        """Raw margin (log-odds) per row; ranks the same as ``predict_proba``."""
        m = self._booster().predict(_as_2d(X), num_iteration=self.best_iteration, raw_score=True)
        return np.asarray(m, dtype=np.float64)

    def predict(self, X: npt.NDArray[Any], threshold: float = 0.5) -> npt.NDArray[np.int64]:
        return (self.predict_proba(X) >= threshold).astype(np.int64)

    def contributions(self, X: npt.NDArray[Any]) -> F64:
        """TreeSHAP per row, (n, d+1): one column per feature, the last the expected margin.
        Each row sums to ``decision_function`` for that row."""
        c = self._booster().predict(_as_2d(X), num_iteration=self.best_iteration, pred_contrib=True)
        return np.asarray(c, dtype=np.float64)

    @property
    def feature_importances(self) -> F64:
        """Total gain per feature, normalised to sum to 1 (0 everywhere for a stump-only model)."""
        gain = np.asarray(
            self._booster().feature_importance("gain", iteration=self.best_iteration), float
        )
        total = gain.sum()
        return gain / total if total > 0 else gain

    def to_model_string(self) -> str:
        """LightGBM's text model, trimmed to the chosen number of trees."""
        return str(self._booster().model_to_string(num_iteration=self.best_iteration))

    @classmethod
    def from_model_string(cls, text: str) -> TreeClassifier:
        """Rebuild a classifier that predicts exactly as the one that wrote ``text``. Feature
        names come back as LightGBM stored them (``"mean1:deg"`` as ``"mean1_deg"``)."""
        booster = lgb.Booster(model_str=text)
        clf = cls(feature_names=None)
        clf.booster = booster
        clf.best_iteration = int(booster.num_trees())
        names = booster.feature_name()
        if names and not all(re.fullmatch(r"Column_\d+", n) for n in names):
            clf.feature_names = list(names)
        return clf


# -- the GADBench RF-Graph baseline --------------------------------------------------------------


class RFGraph:
    """GADBench's RF-Graph: a random forest on own features plus mean-aggregated 1- and 2-hop
    neighbour features. ``hops=0`` is the plain random forest on own features.

    Build the matrix once per graph with ``transform(x, adj)`` (transductive: the aggregates use
    every node's features, never a label), then ``fit``/``predict_proba`` on its rows.
    """

    def __init__(
        self,
        hops: int = 2,
        n_estimators: int = 100,
        max_features: float | str = "sqrt",
        min_samples_leaf: int = 1,
        seed: int = 0,
        n_jobs: int = 2,
    ) -> None:
        self.hops = hops
        self.model = RandomForestClassifier(
            n_estimators=n_estimators,
            max_features=max_features,
            min_samples_leaf=min_samples_leaf,
            random_state=seed,
            n_jobs=n_jobs,
        )

    def transform(self, x: npt.NDArray[Any], adj: sp.spmatrix | sp.sparray) -> F64:
        return neighbour_features(x, adj, hops=self.hops, aggs=("mean",))

    def fit(self, X: npt.NDArray[Any], y: npt.NDArray[Any]) -> RFGraph:
        self.model.fit(_as_2d(X), np.asarray(y).astype(np.int64))
        return self

    def predict_proba(self, X: npt.NDArray[Any]) -> F64:
        """Positive-class probability per row, shape (n,)."""
        p = self.model.predict_proba(_as_2d(X))
        classes = list(self.model.classes_)
        if 1 not in classes:
            return np.zeros(p.shape[0])
        return np.asarray(p[:, classes.index(1)], dtype=np.float64)

    def predict(self, X: npt.NDArray[Any], threshold: float = 0.5) -> npt.NDArray[np.int64]:
        return (self.predict_proba(X) >= threshold).astype(np.int64)
