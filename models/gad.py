"""External benchmark: the GADBench protocol (NeurIPS 2023) on Tolokers and Reddit.

Our models are judged against published baselines only when both run in the same harness, on the
same splits, with the same metrics (``../shared/data/README.md``). This module is that harness:

* data: ``tolokers.npz`` (10 official 50/25/25 splits) and ``reddit.npz``, read from the shared
  data folder (``RINGSCOPE_SHARED_DATA`` or the ``data_dir`` argument overrides it);
* splits: *full* = Tolokers' official splits, Reddit stratified 40/20/40 with seed 3407+10·i;
  *semi* = 20 positives + 80 negatives to train, as many to validate, the rest to test, seeded
  3407+10·i on both data sets;
* metrics: AUROC, AUPRC (average precision), Rec@K with K = positives in the test set, in percent,
  mean ± std over trials (population std, ``ddof=0``);
* models (``MODELS``): ``rf`` (random forest, own features), ``rf_graph`` (GADBench's RF-Graph),
  ``tree_graph`` (our LightGBM on mean+max neighbour aggregates) and ``gnn`` (``models.gnn``).
  Hyperparameters are chosen per trial on validation AUPRC only; the test set is scored once.

    result = run_gad("tolokers", "full", models=["rf_graph", "tree_graph"], trials=5)
    console.print(render_table(result))

``trials`` defaults to 5 (not GADBench's 10) to keep a run of every model in minutes on two cores.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from rich.table import Table
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import train_test_split

from ringscope.errors import RingScopeError
from ringscope.models.tabular import RFGraph, TreeClassifier, adjacency, neighbour_features

__all__ = [
    "DATASETS",
    "MODELS",
    "SETTINGS",
    "BenchmarkError",
    "DatasetMissingError",
    "GadDataset",
    "Split",
    "evaluate_scores",
    "load_dataset",
    "rec_at_k",
    "render_table",
    "resolve_data_dir",
    "run_gad",
    "split",
    "tree_features",
]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

DATASETS = ("tolokers", "reddit")
SETTINGS = ("full", "semi")
SEED_BASE = 3407
SEMI_POS, SEMI_NEG = 20, 80  # per semi-supervised train (and validation) set


class BenchmarkError(RingScopeError):
    """A benchmark was asked for something it does not have (data set, setting, model)."""


class DatasetMissingError(BenchmarkError):
    """The reference data file is not where the harness looks for it."""


# -- data ----------------------------------------------------------------------------------------


def resolve_data_dir(override: Path | str | None = None) -> Path:
    """Where the reference data lives: the argument, else ``RINGSCOPE_SHARED_DATA``, else
    ``../shared/data`` next to the project root."""
    if override is not None:
        return Path(override)
    env = os.environ.get("RINGSCOPE_SHARED_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1].parent / "shared" / "data"


@dataclass
class GadDataset:
    """One benchmark graph: features, binary labels, the undirected adjacency without
    self-loops, and the official splits where the data set ships them."""

    name: str
    x: npt.NDArray[np.float32]
    y: I64
    edge_index: I64  # (2, E), both directions, no self-loops: what every model sees
    adj: sp.csr_matrix
    official: tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_], npt.NDArray[np.bool_]] | None
    cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def n(self) -> int:
        return int(self.x.shape[0])

    def cached(self, key: str, build: Callable[[], Any]) -> Any:
        """Label-free derived inputs (neighbour aggregates, the PyG graph) built once per run."""
        if key not in self.cache:
            self.cache[key] = build()
        return self.cache[key]


def load_dataset(name: str, data_dir: Path | str | None = None) -> GadDataset:
    """Read ``tolokers.npz`` or ``reddit.npz``; a missing file raises ``DatasetMissingError``."""
    if name not in DATASETS:
        raise BenchmarkError(f"unknown data set {name!r}; choose from {', '.join(DATASETS)}")
    path = resolve_data_dir(data_dir) / f"{name}.npz"
    if not path.is_file():
        raise DatasetMissingError(
            f"{path} not found: the GAD benchmark reads the shared reference data "
            "(../shared/data next to the project, or set RINGSCOPE_SHARED_DATA)"
        )
    with np.load(path, allow_pickle=False) as d:
        if name == "tolokers":
            x, y, edges = d["node_features"], d["node_labels"], d["edges"]
            official = (d["train_masks"], d["val_masks"], d["test_masks"])
        else:
            x, y, edges = d["x"], d["y"], d["edge_index"]
            official = None
    x = np.asarray(x, dtype=np.float32)
    adj = adjacency(edges, x.shape[0], undirected=True, self_loops=False)
    coo = adj.tocoo()
    ei = np.vstack([coo.row, coo.col]).astype(np.int64)
    return GadDataset(name, x, np.asarray(y).astype(np.int64), ei, adj, official)


# -- splits --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Split:
    train: I64
    val: I64
    test: I64


def split(ds: GadDataset, setting: str, trial: int, seed_base: int = SEED_BASE) -> Split:
    """The node indices of one trial; disjoint, sorted, covering every labelled node."""
    seed = seed_base + 10 * trial
    idx = np.arange(ds.n)
    if setting == "full":
        if ds.official is not None:
            masks = ds.official
            if trial >= masks[0].shape[0]:
                raise BenchmarkError(f"{ds.name} ships {masks[0].shape[0]} splits, not {trial + 1}")
            return Split(*(np.flatnonzero(m[trial]).astype(np.int64) for m in masks))
        train, rest = train_test_split(idx, train_size=0.4, stratify=ds.y, random_state=seed)
        val, test = train_test_split(rest, train_size=1 / 3, stratify=ds.y[rest], random_state=seed)
        return Split(np.sort(train), np.sort(val), np.sort(test))
    if setting == "semi":
        rng = np.random.default_rng(seed)
        pos = rng.permutation(np.flatnonzero(ds.y == 1))
        neg = rng.permutation(np.flatnonzero(ds.y == 0))
        if len(pos) < 2 * SEMI_POS or len(neg) < 2 * SEMI_NEG:
            raise BenchmarkError(f"{ds.name} has too few labelled nodes for the semi setting")
        train = np.concatenate([pos[:SEMI_POS], neg[:SEMI_NEG]])
        val = np.concatenate([pos[SEMI_POS : 2 * SEMI_POS], neg[SEMI_NEG : 2 * SEMI_NEG]])
        test = np.setdiff1d(idx, np.concatenate([train, val]))
        return Split(np.sort(train), np.sort(val), test)
    raise BenchmarkError(f"unknown setting {setting!r}; choose from {', '.join(SETTINGS)}")


# -- metrics -------------------------------------------------------------------------------------


def rec_at_k(y: npt.NDArray[Any], scores: npt.NDArray[Any], k: int | None = None) -> float:
    """Share of the positives found among the ``k`` highest scores; ``k`` defaults to the number
    of positives (then it equals precision at k). Ties are broken by position (stable sort)."""
    y = np.asarray(y)
    pos = int(np.sum(y == 1))
    k = pos if k is None else k
    if pos == 0 or k <= 0:
        return 0.0
    top = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")[:k]
    return float(np.sum(y[top] == 1)) / pos


def evaluate_scores(y: npt.NDArray[Any], scores: npt.NDArray[Any]) -> dict[str, float]:
    """AUROC, AUPRC and Rec@K as fractions (0..1)."""
    return {
        "auroc": float(roc_auc_score(y, scores)),
        "auprc": float(average_precision_score(y, scores)),
        "rec_at_k": rec_at_k(y, scores),
    }


def _val_auprc(y: npt.NDArray[Any], scores: npt.NDArray[Any]) -> float:
    return float(average_precision_score(y, scores)) if len(np.unique(y)) == 2 else 0.0


# -- models --------------------------------------------------------------------------------------
# Each model takes the data set, one split and a seed, and returns scores for every node plus a
# short description of what validation chose. Grids are deliberately tiny: two cores, five trials.


Scored = tuple[F64, str]
ModelFn = Callable[[GadDataset, Split, str, int], Scored]

# RF: the forest defaults GADBench's RF uses (100 trees, sqrt features), with the leaf size
# chosen on validation so the baselines get the same selection budget as our model.
RF_GRID: dict[str, list[dict[str, Any]]] = {
    "full": [{"min_samples_leaf": 1}, {"min_samples_leaf": 5}],
    "semi": [{"min_samples_leaf": 1}, {"min_samples_leaf": 3}],
}
# LightGBM: tree count by early stopping on validation AUPRC; shape and class weighting from this
# grid (picked from a validation-only sweep, docs/gad.md). Full: 15 leaves with the three ways of
# weighting positives. Semi (100 labels): shallow trees, few samples per leaf.
TREE_GRID: dict[str, list[dict[str, Any]]] = {
    "full": [
        {"num_leaves": 15},
        {"num_leaves": 15, "scale_pos_weight": 1.0},
        {"num_leaves": 15, "scale_pos_weight": "sqrt", "colsample": 0.5, "min_child_samples": 50},
    ],
    "semi": [
        {"num_leaves": 4, "min_child_samples": 5},
        {"num_leaves": 8, "min_child_samples": 3},
        {"num_leaves": 4, "min_child_samples": 10, "colsample": 0.3},
    ],
}
TREE_AGGS = ("mean", "max")
GNN_GRID: list[dict[str, Any]] = [{"hidden": 64, "epochs": 200}]


def _best(trials: list[tuple[float, F64, str]]) -> Scored:
    """The candidate with the highest validation AUPRC (the first one on a tie)."""
    best = max(range(len(trials)), key=lambda i: (trials[i][0], -i))
    _, scores, desc = trials[best]
    return scores, desc


def _forest(hops: int) -> ModelFn:
    def run(ds: GadDataset, sp_: Split, setting: str, seed: int) -> Scored:
        feats: F64 = ds.cached(f"rf{hops}", lambda: RFGraph(hops=hops).transform(ds.x, ds.adj))
        out = []
        for params in RF_GRID[setting]:
            rf = RFGraph(hops=hops, seed=seed, **params).fit(feats[sp_.train], ds.y[sp_.train])
            scores = rf.predict_proba(feats)
            desc = ",".join(f"{k}={v}" for k, v in params.items())
            out.append((_val_auprc(ds.y[sp_.val], scores[sp_.val]), scores, desc))
        return _best(out)

    return run


def tree_features(ds: GadDataset) -> F64:
    """``tree_graph``'s input: own features, mean and max over 1 and 2 hops, and log-degree
    (how many neighbours a node has is itself a signal the aggregates hide)."""
    deg = np.log1p(np.diff(ds.adj.indptr).astype(np.float64))[:, None]
    return np.hstack([neighbour_features(ds.x, ds.adj, hops=2, aggs=TREE_AGGS), deg])


def _tree_graph(ds: GadDataset, sp_: Split, setting: str, seed: int) -> Scored:
    feats: F64 = ds.cached("tree_graph", lambda: tree_features(ds))
    out = []
    for params in TREE_GRID[setting]:
        clf = TreeClassifier(seed=seed, **params).fit(
            feats[sp_.train], ds.y[sp_.train], feats[sp_.val], ds.y[sp_.val]
        )
        scores = clf.predict_proba(feats)
        desc = ",".join(f"{k}={v}" for k, v in params.items()) + f",trees={clf.best_iteration}"
        out.append((_val_auprc(ds.y[sp_.val], scores[sp_.val]), scores, desc))
    return _best(out)


def _gnn(ds: GadDataset, sp_: Split, setting: str, seed: int) -> Scored:
    """Our GNN (``models.gnn``)."""
    # torch and torch-geometric: heavy; the tree and RF-Graph rows of the harness need neither.
    from ringscope.models.gnn import GNNClassifier, homogeneous

    data = ds.cached("gnn", lambda: homogeneous(ds.x, ds.edge_index))
    out = []
    for params in GNN_GRID:
        clf = GNNClassifier(seed=seed, **params).fit(
            data, "node", sp_.train, ds.y[sp_.train], sp_.val, ds.y[sp_.val]
        )
        scores = np.asarray(clf.predict_proba(data, "node"), dtype=np.float64)
        desc = ",".join(f"{k}={v}" for k, v in params.items())
        out.append((_val_auprc(ds.y[sp_.val], scores[sp_.val]), scores, desc))
    return _best(out)


MODELS: dict[str, tuple[str, ModelFn]] = {
    "rf": ("random forest, own features", _forest(0)),
    "rf_graph": ("RF-Graph (own + mean 1-, 2-hop)", _forest(2)),
    "tree_graph": ("LightGBM, own + mean/max 1-, 2-hop", _tree_graph),
    "gnn": ("GNN (GraphSAGE, models.gnn)", _gnn),
}
DEFAULT_MODELS = ("rf", "rf_graph", "tree_graph", "gnn")


# -- the run -------------------------------------------------------------------------------------


def _summary(values: Sequence[float]) -> tuple[float, float]:
    arr = 100.0 * np.asarray(values, dtype=np.float64)
    return round(float(arr.mean()), 2), round(float(arr.std()), 2)


def run_gad(
    dataset: str,
    setting: str = "full",
    models: Sequence[str] | None = None,
    trials: int = 5,
    data_dir: Path | str | None = None,
    seed_base: int = SEED_BASE,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run ``models`` (default: all) for ``trials`` trials; metrics in percent.

    Returns ``{"dataset", "setting", "models": {name: {"auroc", "auprc", "rec_at_k",
    "auroc_std", "auprc_std", "rec_at_k_std", "trials", "seconds", "selected", "per_trial"}}}``;
    ``seconds`` is the model's wall time over all trials (selection grid included), ``selected``
    what validation chose in each trial, ``per_trial`` each metric per trial (same splits for
    every model, so differences can be paired).
    """
    if setting not in SETTINGS:
        raise BenchmarkError(f"unknown setting {setting!r}; choose from {', '.join(SETTINGS)}")
    names = list(models) if models else list(DEFAULT_MODELS)
    unknown = [m for m in names if m not in MODELS]
    if unknown:
        raise BenchmarkError(f"unknown model(s) {unknown}; choose from {', '.join(MODELS)}")
    if trials < 1:
        raise BenchmarkError("trials must be at least 1")
    ds = load_dataset(dataset, data_dir)
    splits = [split(ds, setting, i, seed_base) for i in range(trials)]
    out: dict[str, Any] = {"dataset": dataset, "setting": setting, "models": {}}
    for name in names:
        fn = MODELS[name][1]
        per: dict[str, list[float]] = {"auroc": [], "auprc": [], "rec_at_k": []}
        chosen: list[str] = []
        t0 = time.perf_counter()
        for i, s in enumerate(splits):
            scores, desc = fn(ds, s, setting, seed_base + 10 * i)
            for k, v in evaluate_scores(ds.y[s.test], scores[s.test]).items():
                per[k].append(v)
            chosen.append(desc)
            if progress is not None:
                progress(f"{dataset}/{setting} {name} trial {i + 1}/{trials}")
        row: dict[str, Any] = {}
        for k, vals in per.items():
            row[k], row[f"{k}_std"] = _summary(vals)
        row["trials"] = trials
        row["seconds"] = round(time.perf_counter() - t0, 1)
        row["selected"] = chosen
        row["per_trial"] = {k: [round(100.0 * v, 2) for v in vals] for k, vals in per.items()}
        out["models"][name] = row
    return out


def render_table(result: dict[str, Any]) -> Table:
    """The terminal view of one ``run_gad`` result: mean ± std in percent, wall time."""
    table = Table(title=f"GADBench {result['dataset']} ({result['setting']}-supervised)")
    table.add_column("model")
    for col in ("AUROC", "AUPRC", "Rec@K"):
        table.add_column(col, justify="right")
    table.add_column("trials", justify="right")
    table.add_column("seconds", justify="right")
    for name, row in result["models"].items():
        table.add_row(
            name,
            *(f"{row[k]:.1f} ± {row[f'{k}_std']:.1f}" for k in ("auroc", "auprc", "rec_at_k")),
            str(row.get("trials", "")),
            f"{row['seconds']:.1f}" if "seconds" in row else "",
        )
    return table
