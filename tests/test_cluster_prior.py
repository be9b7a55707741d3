"""The cluster score's learned prior (models.cluster_prior): the shipped trees, their TreeSHAP
reasons, their directions, and reproducible training."""

from __future__ import annotations

import numpy as np
import pytest

from ringscope.models import cluster_prior as cp
from ringscope.models import clusters as cl
from ringscope.models.cluster_score import ClusterScorer


def table(rows: int, seed: int = 0) -> cl.ClusterTable:
    """Clusters with every signal the prior reads drawn in [0, 1], plus sizes and labels."""
    rng = np.random.default_rng(seed)
    feats = {n: rng.random(rows) for n in cp.FEATURES}
    feats |= {n: np.zeros(rows) for n in cl.SCORE_WEIGHTS if n not in feats}
    feats["size"] = rng.integers(3, 20, rows).astype(np.float64)
    counts = {"fraud_label": np.zeros(rows, np.int64), "legit_label": np.zeros(rows, np.int64)}
    return cl.ClusterTable(rows, feats, counts, [])


def test_the_shipped_prior_reads_its_features_and_its_reasons_add_up() -> None:
    prior = cp.shipped()
    assert prior is not None and prior.version.startswith("cluster_prior.txt sha256 ")
    assert list(prior.booster.feature_name()) == list(cp.FEATURES)
    t = table(300)
    z = prior.decision_function(t)
    parts = prior.contributions(t)
    assert set(parts) == {*cp.FEATURES, cp.BIAS}
    np.testing.assert_allclose(sum(parts.values()), z, rtol=0, atol=1e-9)


@pytest.mark.parametrize("name", sorted(n for n, d in cp.DIRECTION.items() if d))
def test_the_shipped_prior_keeps_each_signals_direction(name: str) -> None:
    """More of a signal the hand-set prior counts for fraud never lowers the learned prior's
    logit, and the reverse: the trees say how signals combine, not which way one points."""
    prior = cp.shipped()
    assert prior is not None
    t = table(400, seed=1)
    low, high = table(400, seed=1), table(400, seed=1)
    low.features[name] = np.zeros(t.n_clusters)
    high.features[name] = np.ones(t.n_clusters)
    step = prior.decision_function(high) - prior.decision_function(low)
    assert (step * cp.DIRECTION[name] >= -1e-9).all()


def test_training_is_reproducible_and_the_feature_list_is_checked(tmp_path: object) -> None:
    t = table(2000, seed=2)
    y = (t.features["opened_together"] * t.features["sparse_structure"] > 0.3).astype(float)
    a = cp.ClusterPrior.train([t], [y], [np.ones(len(y))])
    b = cp.ClusterPrior.train([t], [y], [np.ones(len(y))])
    assert a.booster.model_to_string() == b.booster.model_to_string()
    path = tmp_path / "prior.txt"  # type: ignore[operator]
    a.write(path)
    np.testing.assert_array_equal(
        cp.ClusterPrior.read(path).decision_function(t), a.decision_function(t)
    )
    text = path.read_text().replace("emulator_share", "emulator_flag")
    path.write_text(text)
    with pytest.raises(ValueError, match="other features"):
        cp.ClusterPrior.read(path)


def test_the_trees_correct_the_hand_set_prior_and_keep_what_the_worlds_never_showed(
    tmp_path: object,
) -> None:
    """The trees are boosted from the hand-set prior: a signal the training worlds never varied
    (here no training cluster used an emulator, as if the generator had no device farm) still
    counts at its hand-set weight, where trees trained from nothing were blind to it. A model
    file without the header (trained from nothing) is refused, not read wrongly."""
    t = table(2000, seed=5)
    t.features["emulator_share"][:] = 0.0
    y = (t.features["opened_together"] * t.features["sparse_structure"] > 0.3).astype(float)
    prior = cp.ClusterPrior.train([t], [y], [np.ones(len(y))])
    farm = table(200, seed=6)
    farm.features["emulator_share"][:] = 1.0
    plain = table(200, seed=6)
    plain.features["emulator_share"][:] = 0.0
    step = prior.decision_function(farm) - prior.decision_function(plain)
    np.testing.assert_allclose(step, cl.SCORE_WEIGHTS["emulator_share"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(
        prior.decision_function(t) - cp.base_logit(t),
        prior.booster.predict(cp.matrix(t), raw_score=True),
        rtol=0,
        atol=1e-9,
    )
    path = tmp_path / "prior.txt"  # type: ignore[operator]
    path.write_text(prior.booster.model_to_string())
    with pytest.raises(ValueError, match="not a cluster prior boosted"):
        cp.ClusterPrior.read(path)


def test_the_learned_score_rescales_the_learned_prior_and_explains_itself() -> None:
    """With labels, the score is ``a * prior + b + x @ w``; its contributions (``a`` times each
    feature's TreeSHAP share, plus the deviations, plus the labels' share) and the part no
    feature carries add up to its logit. Without enough labels it is the prior's score."""
    prior = cp.shipped()
    assert prior is not None
    t = table(600, seed=3)
    rings = prior.decision_function(t) > np.quantile(prior.decision_function(t), 0.8)
    rng = np.random.default_rng(4)
    t.counts["fraud_label"][:] = (rings & (rng.random(600) < 0.5)).astype(np.int64)
    t.counts["legit_label"][:] = (~rings & (rng.random(600) < 0.2)).astype(np.int64)
    scorer = ClusterScorer(prior=prior).fit(t)
    assert scorer.source == "learned" and scorer.prior_scale > 0
    contrib = scorer.contributions(t)
    bias, _ = scorer._p_parts(t)
    np.testing.assert_allclose(
        bias + sum(contrib.values()), scorer.decision_function(t), rtol=0, atol=1e-9
    )
    few = ClusterScorer(prior=prior, min_positives=10_000).fit(t)
    assert few.source == "prior"
    np.testing.assert_allclose(
        few.decision_function(t),
        prior.decision_function(t)
        + cl.SCORE_WEIGHTS["fraud_label_share"] * t.features["fraud_label_share"]
        + cl.SCORE_WEIGHTS["legit_label_share"] * t.features["legit_label_share"],
        rtol=0,
        atol=1e-9,
    )
