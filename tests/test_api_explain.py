"""``explain(accountId)`` end to end: a generated graph, a real rebuild that trains the model,
a live server, HTTP calls. The answer must match the model run on the whole graph, mask PII for
the risk engine, audit every entity it names, and pick up verdicts written since the rebuild.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ringscope.graph import Graph, connect, cypher, init_schema
from ringscope.ingest import load
from ringscope.jobs.rebuild import rebuild
from ringscope.kinds import KINDS
from ringscope.models.artefacts import current_model, load_model
from ringscope.models.projection import Projection, read_local_projection, read_projection
from ringscope.models.risk import (
    AccountRiskModel,
    _neighbourhood,
    _tables,
    _tree_matrix,
)
from ringscope.settings import Settings
from ringscope.synth.generate import generate
from tests.api_support import Keys, LiveServer, api_settings, make_keys

pytestmark = pytest.mark.neo4j

ACCOUNTS = 2_000

EXPLAIN = """
query Explain($id: ID!, $top: Int!) {
  explain(accountId: $id, top: $top) {
    accountId score model modelVersion buildId accountsRead approximate
    topFeatures { name value contribution meaning }
    identifiers { key kind id masked scoreDrop }
  }
}
"""


@pytest.fixture(scope="module")
def world(
    neo4j_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Graph, Settings, Keys, Projection]]:
    root = tmp_path_factory.mktemp("explain")
    generate(root / "data", root / "truth", ACCOUNTS, 3)
    settings = api_settings(neo4j_settings, root, model_dir=root / "models", model_use_gnn=False)
    with connect(settings) as g:
        g.write(cypher.DELETE_ALL)
        init_schema(g)
        load(root / "data", g, settings, report_dir=root / "report", progress=False)
        rebuild(g, settings, retrain=True)
        yield g, settings, make_keys(g), read_projection(g)


@pytest.fixture(scope="module")
def server(world: Any) -> Iterator[LiveServer]:
    with LiveServer(world[1]) as srv:
        yield srv


def _whole_graph_scores(settings: Settings, proj: Projection) -> dict[str, float]:
    path = current_model(settings.models_dir)
    assert path is not None
    p = load_model(path).predict_proba(proj)
    return dict(zip(proj.ids, p.tolist(), strict=True))


def _top_unlabelled(proj: Projection, scores: dict[str, float]) -> str:
    return max((a for i, a in enumerate(proj.ids) if proj.label[i] == -1), key=scores.__getitem__)


def test_explain_matches_the_model_on_the_whole_graph(server: LiveServer, world: Any) -> None:
    _, settings, keys, proj = world
    scores = _whole_graph_scores(settings, proj)
    account = _top_unlabelled(proj, scores)
    body = server.gql(EXPLAIN, keys.investigator, {"id": account, "top": 20})
    assert "errors" not in body, body
    why = body["data"]["explain"]
    assert why["accountId"] == account
    assert why["score"] == pytest.approx(scores[account], abs=1e-6)
    assert why["model"] == "tree" and why["modelVersion"]
    assert why["buildId"] and why["approximate"] is False
    assert 1 < why["accountsRead"] < proj.n  # its neighbourhood, not the whole graph
    assert why["topFeatures"] and all(f["contribution"] > 0 for f in why["topFeatures"])
    assert all(f["meaning"] for f in why["topFeatures"])
    drops = [i["scoreDrop"] for i in why["identifiers"]]
    assert drops == sorted(drops, reverse=True) and drops[0] > 0
    assert not any(i["masked"] for i in why["identifiers"])  # investigators see PII
    # Deterministic: the same answer twice.
    assert server.gql(EXPLAIN, keys.investigator, {"id": account, "top": 20}) == body


def test_the_tree_explains_from_the_account_s_own_rows_exactly(world: Any) -> None:
    """The tree's explanation is computed from the account, the accounts on its non-hub
    identifiers and their edges alone (models/risk.py ``_explain_tree``), each occlusion
    rescoring that, not the whole projection: the same feature rows bit for bit, so the same
    score, features and score drops as rescoring the whole projection per occlusion, on the
    whole graph and on local projections alike."""
    g, settings, _, proj = world
    path = current_model(settings.models_dir)
    assert path is not None
    model = load_model(path)
    assert model.choice == "tree"
    hub = model.config.hub_degree
    x_whole = _tree_matrix(_tables(proj, hub), proj.label, proj.ring_prior())
    scores = _whole_graph_scores(settings, proj)
    rng = np.random.default_rng(0)
    ranked = sorted(scores, key=scores.__getitem__, reverse=True)
    picks = ranked[:15] + [proj.ids[int(k)] for k in rng.choice(proj.n, 15, replace=False)]
    for account in picks:
        i = proj.ids.index(account)
        near, k = _neighbourhood(proj, i, hub, proj.now())
        assert near.n < proj.n
        x_near = _tree_matrix(_tables(near, hub), near.label, near.ring_prior())
        np.testing.assert_array_equal(x_near[k], x_whole[i])
        assert model._explain_tree(proj, i, 20) == model._explain_whole(proj, i, 20), account
    for account in picks[:4] + picks[-4:]:
        local = read_local_projection(g, account, data_now=proj.now(), always=hub, budget=300)
        assert local is not None
        i = local.ids.index(account)
        assert model._explain_tree(local, i, 20) == model._explain_whole(local, i, 20), account


def test_risk_engine_sees_identifiers_masked_and_every_entity_is_audited(
    server: LiveServer, world: Any
) -> None:
    _, settings, keys, proj = world
    scores = _whole_graph_scores(settings, proj)
    pii = {k.name for k in KINDS if k.pii}  # phone, email, id_document, bank_card, ip
    # A flagged account whose explanation names a piece of PII.
    for account in sorted(scores, key=scores.__getitem__, reverse=True)[:50]:
        plain = server.gql(EXPLAIN, keys.investigator, {"id": account, "top": 20})
        named = plain["data"]["explain"]["identifiers"]
        if any(i["kind"].lower() in pii for i in named):
            break
    else:
        pytest.fail("no explanation among the top 50 names a phone, email, document or card")
    resp = server.post(EXPLAIN, keys.risk_engine, {"id": account, "top": 20})
    masked = resp.json()["data"]["explain"]["identifiers"]
    for p, m in zip(named, masked, strict=True):
        assert m["kind"] == p["kind"] and m["scoreDrop"] == p["scoreDrop"]
        if p["kind"].lower() in pii:
            assert m["masked"] and m["id"] != p["id"] and m["key"].split(":")[1].startswith("~")
            assert m["id"].endswith(p["id"][-2:])
        else:
            assert not m["masked"] and m["id"] == p["id"]
    records = server.audit_for(resp.headers["x-request-id"])
    # PII is audited by the token its masked key shows, never in clear (api/audit.py).
    audited = {
        (m["kind"].lower(), m["key"].split(":", 1)[1] if m["masked"] else m["id"]) for m in masked
    }
    assert {(r["kind"], r["id"]) for r in records} == {("account", account)} | audited
    assert all(r["outcome"] == "returned" and r["field"] == "explain" for r in records)
    assert all(r["role"] == "risk_engine" for r in records)


def test_verdicts_since_the_rebuild_count_as_labels(
    server: LiveServer, world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Investigators confirm an account's neighbours as fraud after the rebuild: the model
    explains it with those labels (label features read them), as the next rebuild would.
    Neighbours through an identifier the tree reads (at most ``hub_degree`` accounts): for the
    tree, explain reads no account beyond those."""
    g, _, keys, proj = world
    seen: list[Projection] = []
    original = AccountRiskModel.explain

    def spy(self: AccountRiskModel, p: Projection, account_id: str, top: int = 5) -> Any:
        seen.append(p)
        return original(self, p, account_id, top)

    monkeypatch.setattr(AccountRiskModel, "explain", spy)
    account = proj.ids[int(np.flatnonzero(proj.label == -1)[0])]
    mates = [
        r["id"]
        for r in g.read(
            "MATCH (a:Account {id: $id})-->(x) "
            "WHERE COUNT { MATCH (x)<--(c:Account) RETURN DISTINCT c } <= $hub "
            "MATCH (x)<--(b:Account) WHERE b.label IS NULL "
            "AND b.id <> $id RETURN DISTINCT b.id AS id ORDER BY id LIMIT 5",
            {"id": account, "hub": AccountRiskModel().config.hub_degree},
        )
    ]
    assert mates
    server.gql(EXPLAIN, keys.investigator, {"id": account, "top": 5})
    assert all(seen[-1].label[seen[-1].ids.index(m)] == -1 for m in mates)
    mark = (
        "mutation($id: ID!, $v: VerdictValue!) "
        '{ labelAccount(accountId: $id, verdict: $v, note: "checked") { id } }'
    )
    for i, m in enumerate(mates):
        v = "FRAUD" if i % 2 == 0 else "LEGIT"
        assert "errors" not in server.gql(mark, keys.investigator, {"id": m, "v": v})
    server.gql(EXPLAIN, keys.investigator, {"id": account, "top": 5})
    labels = [int(seen[-1].label[seen[-1].ids.index(m)]) for m in mates]
    assert labels == [1 if i % 2 == 0 else 0 for i in range(len(mates))]


def test_unknown_account_and_bad_arguments(server: LiveServer, world: Any) -> None:
    keys: Keys = world[2]
    resp = server.post(EXPLAIN, keys.investigator, {"id": "no-such-account", "top": 5})
    assert resp.json()["data"]["explain"] is None
    records = server.audit_for(resp.headers["x-request-id"])
    assert [(r["id"], r["outcome"]) for r in records] == [("no-such-account", "not_found")]
    body = server.gql(EXPLAIN, keys.investigator, {"id": "no-such-account", "top": 99})
    assert "top is between 1 and 20" in body["errors"][0]["message"]


def test_no_model_is_a_named_error(neo4j_settings: Settings, world: Any, tmp_path: Path) -> None:
    keys: Keys = world[2]
    bare = api_settings(neo4j_settings, tmp_path, model_dir=tmp_path / "no-models")
    with LiveServer(bare) as srv:
        body = srv.gql(EXPLAIN, keys.investigator, {"id": "A0000001", "top": 5})
    assert "No trained model yet" in body["errors"][0]["message"]
