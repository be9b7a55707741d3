"""The GADBench harness and the tree models it runs: aggregates, splits, metrics, storage."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.metrics import average_precision_score

from ringscope.errors import RingScopeError
from ringscope.models import gad
from ringscope.models.tabular import (
    RFGraph,
    TreeClassifier,
    adjacency,
    feature_names,
    neighbour_features,
)

# -- neighbour_features ---------------------------------------------------------------------------


def _path_graph() -> tuple[np.ndarray, sp.csr_matrix]:
    """0 - 1 - 2 plus an isolated node 3; one feature per node: 1, 2, 4, 8."""
    x = np.array([[1.0], [2.0], [4.0], [8.0]])
    return x, adjacency(np.array([[0, 1], [1, 2]]), 4)


def test_neighbour_features_exact_values() -> None:
    x, a = _path_graph()
    f = neighbour_features(x, a, hops=2, aggs=("mean", "max"))
    assert f.shape == (4, 5)
    np.testing.assert_allclose(f[:, 0], [1, 2, 4, 8])  # own features
    np.testing.assert_allclose(f[:, 1], [2, 2.5, 2, 0])  # mean1; isolated node -> 0
    np.testing.assert_allclose(f[:, 2], [2, 4, 2, 0])  # max1
    np.testing.assert_allclose(f[:, 3], [2.5, 2, 2.5, 0])  # mean2 = mean of neighbours' mean1
    np.testing.assert_allclose(f[:, 4], [4, 2, 4, 0])  # max2 = max of neighbours' max1


def test_neighbour_features_directed_and_negative_values() -> None:
    # directed 0 -> 1, 0 -> 2: row 0 aggregates 1 and 2; rows 1, 2 are empty until symmetrised
    a = sp.csr_matrix((np.ones(2), ([0, 0], [1, 2])), shape=(3, 3))
    x = np.array([[0.0], [-3.0], [-1.0]])
    f = neighbour_features(x, a, hops=1, aggs=("mean", "max", "min"))
    np.testing.assert_allclose(f[:, 1:], [[-2, -1, -3], [0, 0, 0], [0, 0, 0]])
    f = neighbour_features(x, a, hops=1, aggs=("max",), undirected=True)
    np.testing.assert_allclose(f[:, 1], [-1, 0, 0])


def test_adjacency_drops_loops_and_duplicates() -> None:
    a = adjacency(np.array([[0, 0, 1, 2], [1, 1, 0, 2]]), 3)  # (2, E): dup, reverse, loop
    assert a.nnz == 2
    np.testing.assert_array_equal(a.toarray(), [[0, 1, 0], [1, 0, 0], [0, 0, 0]])


def test_feature_names_follow_columns() -> None:
    names = feature_names(["a", "b"], hops=2, aggs=("mean", "max"))
    assert names == [
        "a", "b", "mean1:a", "mean1:b", "max1:a", "max1:b",
        "mean2:a", "mean2:b", "max2:a", "max2:b",
    ]  # fmt: skip
    x = np.zeros((3, 2))
    assert neighbour_features(x, sp.csr_matrix((3, 3))).shape[1] == len(names)


# -- splits ---------------------------------------------------------------------------------------


def _toy_dataset(n: int = 1000, pos_rate: float = 0.1, seed: int = 0) -> gad.GadDataset:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < pos_rate).astype(np.int64)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    edges = rng.integers(0, n, size=(2, 3 * n))
    adj = adjacency(edges, n)
    coo = adj.tocoo()
    return gad.GadDataset("toy", x, y, np.vstack([coo.row, coo.col]), adj, None)


def _assert_partition(s: gad.Split, n: int) -> None:
    parts = np.concatenate([s.train, s.val, s.test])
    assert len(parts) == n == len(np.unique(parts))


def test_semi_split_is_20_80_and_disjoint() -> None:
    ds = _toy_dataset()
    s = gad.split(ds, "semi", 0)
    for part in (s.train, s.val):
        assert int(ds.y[part].sum()) == 20
        assert int((ds.y[part] == 0).sum()) == 80
    _assert_partition(s, ds.n)
    again, other = gad.split(ds, "semi", 0), gad.split(ds, "semi", 1)
    np.testing.assert_array_equal(s.train, again.train)  # seeded
    assert not np.array_equal(s.train, other.train)  # one seed per trial


def test_full_split_random_is_40_20_40_stratified() -> None:
    ds = _toy_dataset(n=2000)
    s = gad.split(ds, "full", 0)
    _assert_partition(s, ds.n)
    assert (len(s.train), len(s.val), len(s.test)) == (800, 400, 800)
    rate = ds.y.mean()
    for part in (s.train, s.val, s.test):
        assert abs(ds.y[part].mean() - rate) < 0.005  # stratified


def test_full_split_uses_official_masks() -> None:
    ds = _toy_dataset(n=10)
    masks = np.zeros((3, 2, 10), dtype=bool)
    masks[0, 1, :5], masks[1, 1, 5:8], masks[2, 1, 8:] = True, True, True
    ds.official = (masks[0], masks[1], masks[2])
    s = gad.split(ds, "full", 1)
    assert (s.train.tolist(), s.val.tolist(), s.test.tolist()) == (
        [0, 1, 2, 3, 4],
        [5, 6, 7],
        [8, 9],
    )
    with pytest.raises(gad.BenchmarkError):
        gad.split(ds, "full", 2)


# -- metrics --------------------------------------------------------------------------------------


def test_rec_at_k_by_hand() -> None:
    y = np.array([1, 0, 1, 0, 0, 1])
    s = np.array([0.9, 0.8, 0.1, 0.7, 0.2, 0.6])
    # K = 3 positives; top 3 = nodes 0 (pos), 1 (neg), 3 (neg) -> 1 of 3
    assert gad.rec_at_k(y, s) == pytest.approx(1 / 3)
    assert gad.rec_at_k(y, s, k=4) == pytest.approx(2 / 3)  # node 5 joins
    assert gad.rec_at_k(y, -s) == pytest.approx(2 / 3)  # reversed: 2 (pos), 4, 5 (pos)
    assert gad.rec_at_k(np.zeros(3), s[:3]) == 0.0  # no positives: defined as 0
    m = gad.evaluate_scores(y, s)
    assert m["auprc"] == pytest.approx(average_precision_score(y, s))


# -- TreeClassifier -------------------------------------------------------------------------------


def _tabular(n: int = 600, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    y = ((x[:, 0] + 0.5 * x[:, 1] ** 2 + rng.normal(scale=0.5, size=n)) > 1.2).astype(int)
    return x, y


def test_tree_model_string_round_trip_is_exact() -> None:
    x, y = _tabular()
    clf = TreeClassifier(n_estimators=200, num_leaves=7, seed=1, feature_names=list("abcd"))
    clf.fit(x[:400], y[:400], x[400:500], y[400:500])
    assert 0 < clf.best_iteration <= 200
    text = clf.to_model_string()
    assert "pickle" not in text and text.startswith("tree")
    back = TreeClassifier.from_model_string(text)
    np.testing.assert_array_equal(back.predict_proba(x), clf.predict_proba(x))
    np.testing.assert_array_equal(back.predict(x), clf.predict(x))
    assert back.feature_names == list("abcd")


def test_tree_contributions_sum_to_margin_and_rank_the_signal() -> None:
    x, y = _tabular()
    clf = TreeClassifier(n_estimators=50, num_leaves=7, seed=0).fit(x, y)
    c = clf.contributions(x[:20])
    assert c.shape == (20, 5)
    np.testing.assert_allclose(c.sum(axis=1), clf.decision_function(x[:20]), atol=1e-9)
    imp = clf.feature_importances
    assert imp.sum() == pytest.approx(1.0)
    assert set(np.argsort(imp)[-2:]) == {0, 1}  # the two informative columns


def test_tree_is_deterministic_and_weights_positives() -> None:
    x, y = _tabular()
    a = TreeClassifier(n_estimators=30, seed=3).fit(x, y).predict_proba(x)
    b = TreeClassifier(n_estimators=30, seed=3).fit(x, y).predict_proba(x)
    np.testing.assert_array_equal(a, b)
    ratio = (len(y) - y.sum()) / y.sum()
    assert TreeClassifier().params(y)["scale_pos_weight"] == pytest.approx(ratio)
    assert TreeClassifier(scale_pos_weight="sqrt").params(y)["scale_pos_weight"] == pytest.approx(
        np.sqrt(ratio)
    )


# -- RFGraph --------------------------------------------------------------------------------------


def test_rf_graph_sees_labels_only_visible_through_neighbours() -> None:
    """Nodes sit in cliques of 10; a node is positive when its clique-mates' mean feature is
    high. Its own features are independent of that, so a forest on them is at chance, while the
    1-hop mean is exactly the quantity the label thresholds."""
    rng = np.random.default_rng(0)
    n, size = 1200, 10
    group = np.arange(n) // size
    x = rng.normal(size=(n, 3))
    sums = np.bincount(group, weights=x[:, 0])[group]
    y = ((sums - x[:, 0]) / (size - 1) > 0.3).astype(int)  # mean of the others
    src, dst = np.nonzero(group[:, None] == group[None, :])
    a = adjacency(np.vstack([src, dst]), n)  # self-loops dropped: cliques without the node
    perm = rng.permutation(n)
    train, test = perm[: n // 2], perm[n // 2 :]
    plain, graph = RFGraph(hops=0, seed=0), RFGraph(hops=2, seed=0)
    fp, fg = plain.transform(x, a), graph.transform(x, a)
    assert fp.shape[1] == 3 and fg.shape[1] == 9
    p_plain = plain.fit(fp[train], y[train]).predict_proba(fp[test])
    p_graph = graph.fit(fg[train], y[train]).predict_proba(fg[test])
    ap_plain = average_precision_score(y[test], p_plain)
    ap_graph = average_precision_score(y[test], p_graph)
    assert ap_graph > 0.9
    assert ap_graph > ap_plain + 0.4


# -- the harness ----------------------------------------------------------------------------------


def test_missing_data_names_the_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(gad.DatasetMissingError, match=r"tolokers\.npz") as err:
        gad.load_dataset("tolokers", tmp_path)
    assert isinstance(err.value, RingScopeError)
    assert str(tmp_path) in str(err.value)
    monkeypatch.setenv("RINGSCOPE_SHARED_DATA", str(tmp_path / "elsewhere"))
    assert gad.resolve_data_dir() == tmp_path / "elsewhere"
    with pytest.raises(gad.BenchmarkError):
        gad.run_gad("tolokers", "sideways", data_dir=tmp_path)
    with pytest.raises(gad.BenchmarkError):
        gad.run_gad("tolokers", "full", models=["xgb"], data_dir=tmp_path)


def test_real_data_one_trial() -> None:
    """One semi-supervised Reddit trial of both tree models on the shared reference data."""
    folder = gad.resolve_data_dir()
    if not (folder / "reddit.npz").is_file():
        pytest.skip(f"reference data not found at {folder} (set RINGSCOPE_SHARED_DATA)")
    result = gad.run_gad("reddit", "semi", models=["tree_graph", "rf_graph"], trials=1)
    assert result["dataset"] == "reddit" and result["setting"] == "semi"
    assert set(result["models"]) == {"tree_graph", "rf_graph"}
    for row in result["models"].values():
        for key in ("auroc", "auprc", "rec_at_k", "auroc_std"):
            assert isinstance(row[key], float)
        assert 50.0 < row["auroc"] <= 100.0  # better than chance on a real graph
        assert 0.0 < row["auprc"] <= 100.0
        assert row["auroc_std"] == 0.0  # one trial
    assert json.loads(json.dumps(result)) == result  # what `--json` prints
    table = gad.render_table(result)
    assert table.row_count == 2
