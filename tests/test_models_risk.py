"""The learned account-risk model: the GNN learns from neighbours, artefacts round-trip safely,
unseen accounts are scored without retraining, and explanations are deterministic.

The graph-backed tests read a generated data set loaded into the real Neo4j.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from safetensors.torch import load_file
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from torch_geometric.data import HeteroData

from ringscope.graph import Graph
from ringscope.kinds import KINDS
from ringscope.models import linking
from ringscope.models.artefacts import ModelSchemaError, load_model, save_model
from ringscope.models.features import (
    FEATURE_SCHEMA,
    account_features,
    identifier_sizes,
    incidence,
    ring_features,
    to_hetero,
)
from ringscope.models.gnn import GNNClassifier, MeanAdjacency
from ringscope.models.projection import (
    KIND_NAMES,
    Projection,
    identifier_ids,
    read_fraud_label_times,
    read_local_projection,
    read_projection,
    unread_identifiers,
)
from ringscope.models.risk import (
    AccountRiskModel,
    Explanation,
    _account_rows,
    _identifier_parts,
    _neighbourhood,
    _tables,
    _tree_matrix,
    _tree_row,
    _tree_row_scipy,
    label_exposure,
    ring_soft_labels,
    tree_feature_names,
)
from ringscope.settings import Settings
from tests.helpers import generated_graph


def neighbour_only_graph(seed: int = 0) -> tuple[HeteroData, np.ndarray]:
    """Accounts whose own features are noise; the label is carried by the group identifier
    each account uses (a flagged group, or not), so only message passing can learn it."""
    rng = np.random.default_rng(seed)
    n, groups = 600, 120
    group = rng.integers(0, groups, n)
    bad = rng.random(groups) < 0.25
    y = bad[group].astype(np.int64)
    data = HeteroData()
    data["account"].x = torch.from_numpy(rng.normal(size=(n, 4)).astype(np.float32))
    data["account"].num_nodes = n
    data["device"].x = torch.from_numpy(
        np.column_stack([bad, rng.normal(size=groups)]).astype(np.float32)
    )
    data["device"].num_nodes = groups
    ei = torch.from_numpy(np.stack([np.arange(n), group]).astype(np.int64))
    data["account", "uses", "device"].edge_index = ei
    data["device", "used_by", "account"].edge_index = ei.flip(0)
    return MeanAdjacency()(data), y


def test_gnn_learns_what_only_neighbours_know() -> None:
    data, y = neighbour_only_graph()
    idx = np.random.default_rng(1).permutation(len(y))
    tr, va, te = idx[:300], idx[300:400], idx[400:]
    gnn = GNNClassifier(seed=0, epochs=150).fit(data, "account", tr, y[tr], va, y[va])
    p_gnn = gnn.predict_proba(data, "account")
    x = data["account"].x.numpy()
    own = LogisticRegression().fit(x[tr], y[tr]).predict_proba(x)[:, 1]
    auc_gnn = roc_auc_score(y[te], p_gnn[te])
    auc_own = roc_auc_score(y[te], own[te])
    assert auc_gnn > 0.95, auc_gnn
    # sklearn's vocabulary: decision_function is the raw score (a logit), predict_proba its
    # probability.
    logit = gnn.decision_function(data, "account")
    np.testing.assert_allclose(1 / (1 + np.exp(-logit)), p_gnn, rtol=1e-6)
    assert logit.min() < 0 < logit.max()
    assert auc_own < 0.7, auc_own  # own features are noise
    assert auc_gnn > auc_own + 0.25


def test_gnn_is_deterministic_for_a_seed() -> None:
    data, y = neighbour_only_graph()
    tr = np.arange(300)
    a = GNNClassifier(seed=3, epochs=20).fit(data, "account", tr, y[tr])
    b = GNNClassifier(seed=3, epochs=20).fit(data, "account", tr, y[tr])
    np.testing.assert_array_equal(
        a.predict_proba(data, "account"), b.predict_proba(data, "account")
    )


def test_gnn_training_stops_at_its_time_budget() -> None:
    data, y = neighbour_only_graph()
    tr, va = np.arange(300), np.arange(300, 400)
    # min_epochs=0: no forecast, so the budget itself is what stops it.
    gnn = GNNClassifier(seed=0, epochs=200, max_seconds=0.0, min_epochs=0).fit(
        data, "account", tr, y[tr], va, y[va]
    )
    assert gnn.report.out_of_time and gnn.report.epochs == 1 and not gnn.report.abandoned
    assert gnn.report.best_epoch == 1 and gnn.report.best_val_auprc is not None
    free = GNNClassifier(seed=0, epochs=12).fit(data, "account", tr, y[tr], va, y[va])
    assert not free.report.out_of_time and free.report.epochs == 12
    assert not free.report.abandoned and free.report.first_epoch_seconds is not None


def test_a_gnn_that_cannot_train_its_minimum_in_the_budget_is_abandoned_after_one_epoch() -> None:
    """A budget that one epoch's pace says cannot hold ``min_epochs`` ends training after that
    epoch, unevaluated; a budget with no forecast (min_epochs 0) or no budget trains on."""
    data, y = neighbour_only_graph()
    tr, va = np.arange(300), np.arange(300, 400)
    # Any real epoch takes more than 1e-9 s, so 50 of them never fit in 50e-9 s.
    cut = GNNClassifier(seed=0, epochs=40, max_seconds=50e-9, min_epochs=50).fit(
        data, "account", tr, y[tr], va, y[va]
    )
    assert cut.report.abandoned and cut.report.epochs == 1
    assert cut.report.best_val_auprc is None and cut.report.first_epoch_seconds is not None
    unbounded = GNNClassifier(seed=0, epochs=10, min_epochs=50).fit(
        data, "account", tr, y[tr], va, y[va]
    )
    assert not unbounded.report.abandoned and unbounded.report.epochs == 10


def test_a_gpu_model_falls_back_to_the_cpu_and_keeps_its_weights_there() -> None:
    data, y = neighbour_only_graph()
    tr = np.arange(300)
    gnn = GNNClassifier(seed=3, epochs=20, device="cuda").fit(data, "account", tr, y[tr])
    assert gnn.model is not None
    assert all(p.device.type == "cpu" for p in gnn.model.parameters())
    cpu = GNNClassifier(seed=3, epochs=20).fit(data, "account", tr, y[tr])
    if not torch.cuda.is_available():  # no GPU here: the same computation on the CPU
        np.testing.assert_array_equal(
            gnn.predict_proba(data, "account"), cpu.predict_proba(data, "account")
        )


# --- on a generated data set in the real Neo4j --------------------------------------------------

ACCOUNTS = 4_000


@pytest.fixture(scope="module")
def loaded(neo4j_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Graph]:
    with generated_graph(neo4j_settings, tmp_path_factory.mktemp("risk-data"), ACCOUNTS, 5) as g:
        yield g


@pytest.fixture(scope="module")
def proj(loaded: Graph) -> Projection:
    return read_projection(loaded)


@pytest.fixture(scope="module")
def model(proj: Projection) -> AccountRiskModel:
    return AccountRiskModel(seed=0, gnn={"epochs": 60}).fit(proj)


@pytest.mark.neo4j
def test_model_scores_every_account_and_ranks_labelled_fraud_high(
    proj: Projection, model: AccountRiskModel
) -> None:
    p = model.predict_proba(proj)
    assert p.shape == (proj.n,) and np.all((p >= 0) & (p <= 1))
    # decision_function is the raw score (calibrated log-odds); predict_proba its sigmoid.
    np.testing.assert_allclose(1 / (1 + np.exp(-model.decision_function(proj))), p, rtol=1e-9)
    assert model.choice in ("tree", "gnn", "blend")
    assert set(model.metrics["validation"]) >= {"tree", "gnn", "blend"}
    assert roc_auc_score(proj.label == 1, p) > 0.9


@pytest.mark.neo4j
def test_an_abandoned_gnn_is_no_candidate_and_the_build_says_so(proj: Projection) -> None:
    """A GNN stopped after one epoch (its minimum would not fit its budget) is neither chosen
    nor blended: the tree serves, and the metrics the build records say why."""
    m = AccountRiskModel(seed=0, gnn={"max_seconds": 50e-9, "min_epochs": 50}).fit(proj)
    assert m.choice == "tree" and m.gnn is None
    assert set(m.metrics["validation"]) == {"tree"}
    assert m.metrics["gnn_abandoned"] is True and m.metrics["gnn_epochs"] == 1
    assert m.metrics["gnn_first_epoch_seconds"] is not None
    tree_only = AccountRiskModel(seed=0, use_gnn=False).fit(proj)
    np.testing.assert_array_equal(m.predict_proba(proj), tree_only.predict_proba(proj))


@pytest.mark.neo4j
def test_artefact_round_trip(proj: Projection, model: AccountRiskModel, tmp_path: Path) -> None:
    path = tmp_path / "risk-test"
    manifest = save_model(model, path, version="risk-test", build_id="b-test")
    assert manifest["feature_schema"]["digest"] == FEATURE_SCHEMA.digest()
    assert manifest["training_build_id"] == "b-test" and manifest["seed"] == 0
    assert {"validation", "chosen"} <= set(manifest["metrics"])
    assert sorted(p.name for p in path.iterdir()) == ["manifest.json", "weights.safetensors"]
    tensors = load_file(str(path / "weights.safetensors"))  # plain tensors, nothing unpickled
    assert "tree.lightgbm" in tensors and tensors["tree.lightgbm"].dtype == torch.uint8
    again = load_model(path)
    assert again.version == "risk-test" and again.choice == model.choice
    np.testing.assert_array_equal(again.predict_proba(proj), model.predict_proba(proj))


@pytest.mark.neo4j
def test_the_tree_alone_scores_with_its_own_calibration(
    proj: Projection, model: AccountRiskModel, tmp_path: Path
) -> None:
    """What the Spark engine scores with (``TreeScorer``): the tree, calibrated on its own when
    the model chose the GNN or a blend, and the model itself when it chose the tree."""
    x = _tree_matrix(_tables(proj, model.config.hub_degree), proj.label, proj.ring_prior())
    tree = model.tree_scorer()
    assert model.platt_tree is not None and tree.platt == model.platt_tree
    p = tree.predict_proba(x)
    np.testing.assert_allclose(1 / (1 + np.exp(-tree.decision_function(x))), p, rtol=1e-12)
    assert roc_auc_score(proj.label == 1, p) > 0.9
    as_tree = copy.copy(model)
    as_tree.choice, as_tree.gnn, as_tree.platt = "tree", None, model.platt_tree
    np.testing.assert_array_equal(p, as_tree.predict_proba(proj))
    # Saved and loaded, it scores the same (the text of the tree travels to Spark's workers).
    save_model(model, tmp_path / "m")
    np.testing.assert_array_equal(load_model(tmp_path / "m").tree_scorer().predict_proba(x), p)
    # A model saved before the tree had its own calibration: usable only if it chose the tree.
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    del manifest["platt_tree"]
    manifest["choice"] = "blend"
    (tmp_path / "m" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="retrain"):
        load_model(tmp_path / "m").tree_scorer()


@pytest.mark.neo4j
def test_mismatched_feature_schema_is_refused(model: AccountRiskModel, tmp_path: Path) -> None:
    path = tmp_path / "risk-old"
    save_model(model, path)
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["feature_schema"]["version"] = "0"
    manifest["feature_schema"]["account"] = ["age_days_log", "an_old_feature"]
    manifest["feature_schema"]["digest"] = "0000000000000000"
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelSchemaError) as err:
        load_model(path)
    text = str(err.value)
    assert str(path) in text and "version '0'" in text and "an_old_feature" in text
    assert "Retrain" in text


@pytest.mark.neo4j
def test_unseen_account_is_scored_from_its_neighbourhood(
    loaded: Graph, proj: Projection, model: AccountRiskModel
) -> None:
    p = model.predict_proba(proj)
    # A newcomer opened on the same devices, phones, IPs and payees as the labelled fraud
    # account the model rates highest: a new member of a known ring.
    fraud = np.flatnonzero(proj.label == 1)
    mate_of = proj.ids[int(fraud[np.argmax(p[fraud])])]
    loaded.write(
        "MATCH (f:Account {id: $f}) "
        "CREATE (a:Account {id: 'ZZ-new-ringmate', created_at: f.created_at, kyc_level: 0}) "
        "CREATE (:Account {id: 'ZZ-new-loner', created_at: f.created_at, kyc_level: 0})",
        {"f": mate_of},
    )
    for kind in KINDS:
        if kind.rel is None:
            continue
        loaded.write(
            f"MATCH (f:Account {{id: $f}})-[r:{kind.rel}]->(x) "
            "MATCH (a:Account {id: 'ZZ-new-ringmate'}) "
            f"CREATE (a)-[n:{kind.rel}]->(x) SET n = properties(r)",
            {"f": mate_of},
        )
    try:
        after = read_projection(loaded)
        q = model.predict_proba(after)  # the same model: no retraining
        mate = q[after.ids.index("ZZ-new-ringmate")]
        loner = q[after.ids.index("ZZ-new-loner")]
        assert mate > loner
        assert mate > np.quantile(p, 0.95), (mate, np.quantile(p, 0.95))
        why = model.explain(after, "ZZ-new-ringmate")
        # What ties it to the ring explains it: removing its top identifier lowers its score.
        assert why.identifiers and why.identifiers[0][2] > 0
        assert why.score == pytest.approx(mate, abs=1e-6)
    finally:
        loaded.write("MATCH (a:Account) WHERE a.id STARTS WITH 'ZZ-new-' DETACH DELETE a")


@pytest.mark.neo4j
def test_explanations_are_deterministic(
    proj: Projection, model: AccountRiskModel, tmp_path: Path
) -> None:
    p = model.predict_proba(proj)
    top = proj.ids[int(np.argmax(np.where(proj.label == 1, -1, p)))]  # an unlabelled high one
    first = model.explain(proj, top)
    assert first == model.explain(proj, top)
    save_model(model, tmp_path / "m")
    assert load_model(tmp_path / "m").explain(proj, top) == first
    assert first.top_features and all(c > 0 for _, _, c, _ in first.top_features)
    assert abs(first.score - float(p[proj.ids.index(top)])) < 1e-6
    with pytest.raises(KeyError):
        model.explain(proj, "no-such-account")


@pytest.mark.neo4j
def test_account_features_follow_the_schema(proj: Projection) -> None:
    x = account_features(proj)
    assert x.shape == (proj.n, len(FEATURE_SCHEMA.account))
    assert np.isfinite(x).all()
    data = to_hetero(proj)
    assert set(data.node_types) == {"account", *FEATURE_SCHEMA.kinds}
    for kind in FEATURE_SCHEMA.kinds:
        assert data[kind].x.shape[1] == len(FEATURE_SCHEMA.identifier)
        assert data[kind, "used_by", "account"].edge_index.shape[0] == 2


def _named(why: Explanation, names: dict[int, str]) -> tuple[Any, ...]:
    """``why``'s fields, each identifier named by its business id."""
    ids = tuple((k, names[n], d) for k, n, d in why.identifiers)
    return (why.account_id, why.score, why.model, why.top_features, ids)


@pytest.mark.neo4j
def test_local_projection_scores_and_explains_like_the_whole_graph(
    loaded: Graph, proj: Projection, model: AccountRiskModel
) -> None:
    """An account's neighbourhood, read on its own, gives the same score and explanation as the
    whole graph: what the API's ``explain`` relies on to stay cheap on a big graph."""
    p = model.predict_proba(proj)
    fraud = np.flatnonzero(proj.label == 1)
    unlabelled = np.flatnonzero(proj.label == -1)
    picks = {
        proj.ids[int(fraud[np.argmax(p[fraud])])],
        proj.ids[int(unlabelled[np.argmax(p[unlabelled])])],
        proj.ids[int(np.argmin(p))],
        proj.ids[0],
    }
    for account in sorted(picks):
        # No budget: every identifier read whole, so the GNN part is exact too.
        local = read_local_projection(loaded, account, data_now=proj.now(), budget=10**9)
        assert local is not None and account in local.ids and local.n < proj.n
        assert unread_identifiers(local, account) == 0
        whole = model.explain(proj, account)
        # Identifiers compared by business id: the whole graph's projection keys them by node
        # number, a local one by internal id within its transaction (models/projection.py).
        names = identifier_ids(loaded, [n for _, n, _ in whole.identifiers])
        assert _named(model.explain(local, account), local.names) == _named(whole, names), account
        assert whole.score == pytest.approx(float(p[proj.ids.index(account)]), abs=1e-6)
    assert read_local_projection(loaded, "no-such-account", data_now=0) is None


@pytest.mark.neo4j
def test_local_projection_leaves_big_hubs_unread_and_stays_exact_for_trees(
    loaded: Graph, proj: Projection
) -> None:
    """Identifiers bigger than ``always`` and past the ``budget`` are not expanded (a merchant
    paid by half the platform), yet carry their whole-graph size: the tree is still exact."""
    tree = AccountRiskModel(seed=0, use_gnn=False).fit(proj)
    hub_degree = tree.config.hub_degree
    pay = proj.kinds["payee"]
    deg = np.bincount(linking.dedupe_pairs(pay)[1], minlength=pay.m)
    big = int(np.argmax(deg))
    assert deg[big] > 20, "the generated graph should have a popular payee"
    account = proj.ids[int(pay.acc[np.flatnonzero(pay.ident == big)[0]])]
    local = read_local_projection(loaded, account, data_now=proj.now(), always=10, budget=10)
    assert local is not None
    lp = local.kinds["payee"]
    name = identifier_ids(loaded, [int(pay.nodes[big])])[int(pay.nodes[big])]
    j = int(np.flatnonzero([local.names.get(int(n)) == name for n in lp.nodes])[0])
    assert lp.full_degree is not None and lp.full_degree[j] == deg[big]
    assert np.count_nonzero(lp.ident == j) < deg[big]  # its accounts were not all read
    assert unread_identifiers(local, account) >= 1
    tree.config.hub_degree = 10  # the tree leaves identifiers above 10 accounts out too
    full = tree.predict_proba(proj)[proj.ids.index(account)]
    assert tree.predict_proba(local)[local.ids.index(account)] == pytest.approx(full, abs=1e-9)
    tree.config.hub_degree = hub_degree


def test_label_exposure_undoes_the_truncation_of_label_delays() -> None:
    """Delays from opening to a fraud label of 20-199 days (uniform), seen only when the label
    has arrived by "now": the estimate follows the true distribution, including for delays
    that the youngest labelled accounts could not have shown, and is 1 for accounts whose
    opening is unknown or older than every delay."""
    rng = np.random.default_rng(0)
    day, now = 86_400, 400 * 86_400
    created = rng.integers(0, now, 40_000)
    labelled = created + rng.integers(20, 200, len(created)) * day
    seen = labelled <= now
    ages = np.array([0, 10, 60, 110, 150, 250, 900])
    opened = np.append(now - ages * day, -1)
    f = label_exposure(created[seen], labelled[seen], opened, now, bin_days=7)
    truth = np.append(np.clip((ages - 20) / 180, 0, 1), 1.0)
    np.testing.assert_allclose(f, truth, atol=0.06)
    # The plain share of seen delays is biased short where few accounts are old enough: with
    # a short history (accounts opened over 220 days), it overstates exposure at 150 days.
    short = created < 220 * day
    c2, l2, now2 = created[short], labelled[short], 220 * day
    ok = l2 <= now2
    naive = float(np.mean(l2[ok] - c2[ok] <= 150 * day))
    est = float(label_exposure(c2[ok], l2[ok], np.array([now2 - 150 * day]), now2)[0])
    assert abs(est - (150 - 20) / 180) < 0.06 < naive - (150 - 20) / 180


@pytest.mark.neo4j
def test_label_exposure_lifts_young_accounts_that_look_like_labelled_fraud(
    loaded: Graph, proj: Projection
) -> None:
    """With exposure on, unlabelled accounts too young for a label to have arrived count as
    fraud with the chance the delay leaves: the model's scores of young accounts that are fraud
    in truth rise against a model that reads them as negatives, and the fit says what it did."""
    times = read_fraud_label_times(loaded)
    assert len(times[0]) >= 20  # a small world: the default asks for 30
    plain = AccountRiskModel(seed=0, use_gnn=False).fit(proj, times)
    exposed = AccountRiskModel(
        seed=0, use_gnn=False, label_exposure=True, exposure_min_labels=20
    ).fit(proj, times)
    assert "label_exposure" not in plain.metrics
    info = exposed.metrics["label_exposure"]
    assert info["rows_added_train"] > 0 and info["soft_positives_train"] > 0
    young = (proj.label == -1) & (proj.created >= proj.now() - 30 * 86_400)
    assert young.sum() > 20
    p0, p1 = plain.predict_proba(proj)[young], exposed.predict_proba(proj)[young]
    assert float(np.median(p1)) > float(np.median(p0))


def test_ring_features_read_the_other_accounts_priors_only() -> None:
    """``ring_features`` against a brute force: per account, over its identifiers, the largest
    and the sum of the ring priors of the *other* accounts on them; ties at the top included
    (two accounts at 0.9 on a device each read the other's 0.9)."""
    rng = np.random.default_rng(7)
    n, m = 80, 30
    rows, cols = rng.integers(0, n, 200), rng.integers(0, m, 200)
    b = sp.csr_matrix((np.ones(200), (rows, cols)), shape=(n, m))
    b.data[:] = 1.0
    ring = np.round(rng.random(n) * (rng.random(n) < 0.4), 6)
    ring[[3, 4]] = 0.9
    b[3, 0] = b[4, 0] = 1.0
    got = ring_features(b, ring)
    dense = b.toarray() > 0
    for a in range(n):
        others = [
            ring[o] for j in np.flatnonzero(dense[a]) for o in np.flatnonzero(dense[:, j]) if o != a
        ]
        assert got[a, 0] == pytest.approx(max(others, default=0.0), abs=1e-6)
        assert got[a, 1] == pytest.approx(np.log1p(sum(others)), abs=1e-5)
    assert got[3, 0] == pytest.approx(0.9) and got[4, 0] == pytest.approx(0.9)
    # A lone account on its identifiers reads nothing, whatever its own prior.
    assert ring_features(sp.csr_matrix(np.eye(3)), np.array([0.9, 0.8, 0.7])).max() == 0.0


def _incidence_per_kind(proj: Projection, max_degree: int | None) -> sp.csr_matrix:
    """The incidence matrix the way it was first built: one matrix per kind, times the
    diagonal hub mask, stacked (the layout sums over a row follow)."""
    blocks = []
    for kind in KIND_NAMES:
        e = proj.kinds.get(kind)
        m = e.m if e is not None else 0
        if e is None or m == 0:
            blocks.append(sp.csr_matrix((proj.n, 0)))
            continue
        pairs = (e.acc.astype(np.int64), e.ident.astype(np.int64))
        b = sp.csr_matrix((np.ones(len(e.acc)), pairs), shape=(proj.n, m))
        b.data[:] = 1.0
        if max_degree is not None:
            b = b @ sp.diags((identifier_sizes(e) <= max_degree).astype(np.float64))
        blocks.append(b)
    out: sp.csr_matrix = sp.hstack(blocks, format="csr")
    out.eliminate_zeros()
    return out


@pytest.mark.neo4j
def test_the_incidence_matrix_keeps_the_per_kind_layout(proj: Projection) -> None:
    """``incidence`` is built in one pass, but in the per-kind build's layout, entry for entry
    (rows, column order within each row, values), for the whole graph and for the
    neighbourhoods a screen and ``explain`` read, hubs masked or not: the tree's sums over a
    row follow that order, so the rebuild's rows and a screen's stay bit for bit."""
    hub = AccountRiskModel().config.hub_degree
    rng = np.random.default_rng(5)
    cases = [proj] + [_neighbourhood(proj, i, hub, proj.now())[0]
                      for i in rng.choice(proj.n, 25, replace=False).tolist()]  # fmt: skip
    for p in cases:
        for max_degree in (None, hub, 2):
            got, want = incidence(p, max_degree), _incidence_per_kind(p, max_degree)
            assert got.shape == want.shape
            np.testing.assert_array_equal(got.indptr, want.indptr)
            np.testing.assert_array_equal(got.indices, want.indices)
            np.testing.assert_array_equal(got.data, want.data)


@pytest.mark.neo4j
def test_an_accounts_ring_features_come_from_its_neighbourhood(proj: Projection) -> None:
    """With ring priors on the accounts, the tree's row of an account from its neighbourhood
    alone (what a screen and ``explain`` compute) is the whole graph's row, bit for bit."""
    rng = np.random.default_rng(3)
    ringed = replace(proj, ring=np.round(rng.random(proj.n) * (rng.random(proj.n) < 0.2), 6))
    hub = AccountRiskModel().config.hub_degree
    whole = _tree_matrix(_tables(ringed, hub), ringed.label, ringed.ring_prior())
    names = tree_feature_names()
    cols = [names.index("ring_nbr_max"), names.index("ring_nbr_log")]
    assert whole[:, cols].max() > 0
    for i in rng.choice(proj.n, 40, replace=False).tolist():
        near, k = _neighbourhood(ringed, i, hub, ringed.now())
        row = _tree_row(near, k, hub, account_features(near), _identifier_parts(near))
        np.testing.assert_array_equal(row[0], whole[i])


@pytest.mark.neo4j
def test_the_tree_row_in_numpy_is_scipys_bit_for_bit(proj: Projection) -> None:
    """``_tree_row`` (numpy only, a screen's and explain's row) against the scipy products it
    replaced, on the neighbourhoods of 150 accounts, with labels and ring priors on some
    accounts and four hub caps (none masked, the model's, 2, which masks most, and 0, which
    leaves the account no identifier at all): equal bit for bit, as the float32 words show."""
    rng = np.random.default_rng(11)
    label = np.where(rng.random(proj.n) < 0.1, rng.integers(0, 2, proj.n), -1)
    ring = np.round(rng.random(proj.n) * (rng.random(proj.n) < 0.3), 6)
    marked = replace(proj, label=label, ring=ring)
    hub = AccountRiskModel().config.hub_degree
    for i in rng.choice(proj.n, 150, replace=False).tolist():
        for cap in (10**9, hub, 2, 0):
            near, k = _neighbourhood(marked, i, cap, marked.now())
            x_acc, x_ids = account_features(near), _identifier_parts(near)
            got = _tree_row(near, k, cap, x_acc, x_ids)
            want = _tree_row_scipy(near, k, cap, x_acc, x_ids)
            assert got.dtype == want.dtype == np.float32 and got.shape == want.shape
            np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
            if cap == 0:  # no identifier under the cap: every aggregate is 0
                assert not got[0, x_acc.shape[1] :].any()


def test_rows_given_leave_the_rest_of_the_account_features_as_computed(proj: Projection) -> None:
    """``_account_rows`` (a screen's, with the build's table rows) computes the features of the
    accounts no row is given for from them alone: bit for bit those of the whole neighbourhood,
    and the given rows (never the account's own) in place, on 100 neighbourhoods with a random
    half of the rows given."""
    rng = np.random.default_rng(5)
    hub = AccountRiskModel().config.hub_degree
    for i in rng.choice(proj.n, 100, replace=False).tolist():
        near, k = _neighbourhood(proj, i, hub, proj.now())
        whole = account_features(near)
        given = {a: np.full(whole.shape[1], 7.0, dtype=np.float32)
                 for j, a in enumerate(near.ids) if rng.random() < 0.5}  # fmt: skip
        got = _account_rows(near, k, given)
        for j, a in enumerate(near.ids):
            want = given[a] if a in given and j != k else whole[j]
            np.testing.assert_array_equal(got[j].view(np.uint32), want.view(np.uint32))
    np.testing.assert_array_equal(_account_rows(near, k, None), whole)


@pytest.mark.neo4j
def test_label_frequency_reads_old_unlabelled_look_alikes_as_partly_fraud(
    loaded: Graph, proj: Projection
) -> None:
    """With the label frequency on, exposure no longer assumes every fraud is labelled in the
    end: the fit estimates the share that is (Elkan and Noto's e1, under 1 here), and old
    unlabelled accounts that look like labelled fraud count partly as fraud, so the ones the
    exposure-only model ranks highest score higher than there."""
    times = read_fraud_label_times(loaded)
    kw: dict[str, Any] = {"seed": 0, "use_gnn": False, "label_exposure": True}
    kw["exposure_min_labels"] = 20
    exposed = AccountRiskModel(**kw).fit(proj, times)
    freq = AccountRiskModel(**kw, label_frequency=True).fit(proj, times)
    e, f = exposed.metrics["label_exposure"], freq.metrics["label_exposure"]
    assert e["label_frequency"] == 1.0 and 0.05 <= f["label_frequency"] < 1.0
    assert f["soft_positives_train"] > e["soft_positives_train"]
    old = (proj.label == -1) & (proj.created < proj.now() - 365 * 86_400)
    p0 = exposed.predict_proba(proj)
    top = np.flatnonzero(old)[np.argsort(-p0[old])[: max(5, int(old.sum()) // 100)]]
    assert float(np.median(freq.predict_proba(proj)[top])) > float(np.median(p0[top]))


def _unlabelled_farms(proj: Projection, most: int = 40) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """Accounts on devices of 3 to 8 accounts none of which is labelled: a stand-in for the
    members of rings a build found and no label has reached."""
    e = proj.kinds["device"]
    size = np.bincount(e.ident, minlength=e.m)
    labelled = np.bincount(e.ident, weights=(proj.label[e.acc] != -1), minlength=e.m)
    farms = np.flatnonzero((size >= 3) & (size <= 8) & (labelled == 0))[:most]
    members = np.zeros(proj.n, dtype=bool)
    members[e.acc[np.isin(e.ident, farms)]] = True
    return members


@pytest.mark.neo4j
def test_ring_soft_labels_teach_the_model_what_the_builds_rings_know(
    loaded: Graph, proj: Projection
) -> None:
    """Unlabelled members of the previous build's clusters count as fraud with their cluster's
    probability (``ring_soft_labels``), not as plain negatives. Here 0.9 is put on the accounts
    of unlabelled devices of 3-8 accounts: read with the ring features, a model trained without
    soft labels learns nothing from them (every such member is a negative), one trained with
    them scores the members far higher, on both fits (with label exposure and without), and the
    fit says how many accounts it softened. A labelled account's label stands."""
    members = _unlabelled_farms(proj)
    assert members.sum() >= 60
    ring = np.where(members, 0.9, 0.0)
    ringed = replace(proj, ring=ring)
    labelled = replace(ringed, label=np.where(members, 0, ringed.label))
    soft = ring_soft_labels(ringed)
    np.testing.assert_array_equal(soft, np.where(members, 0.9, 0.0))
    assert not ring_soft_labels(labelled).any()  # labelled: the label stands
    assert not ring_soft_labels(proj).any()  # no build's priors read: nothing to soften
    times = read_fraud_label_times(loaded)
    for exposure in (False, True):
        kw: dict[str, Any] = {"seed": 0, "use_gnn": False, "ring_prior": True}
        kw.update(label_exposure=exposure, exposure_min_labels=20)
        plain = AccountRiskModel(**kw).fit(ringed, times)
        taught = AccountRiskModel(**kw, ring_soft_labels=True).fit(ringed, times)
        assert "ring_soft_labels" not in plain.metrics
        info = taught.metrics["ring_soft_labels"]
        assert info["accounts"] == int(members.sum()) and info["soft_positives_train"] > 0
        p0, p1 = plain.predict_proba(ringed)[members], taught.predict_proba(ringed)[members]
        assert float(np.median(p1)) > 3 * float(np.median(p0)), (exposure, p0, p1)
