"""The GraphQL API end to end: a real uvicorn server on loopback, the real Neo4j, HTTP calls.

Covers every query and mutation, each role's allowed and refused fields, PII masking, one audit
record per entity, authentication, query limits, the hub cap, GET, health and metrics.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import ringscope.api.execution
from ringscope.api.auth import revoke_key
from ringscope.graph import Graph, connect, cypher, init_schema
from ringscope.models.verdicts import verdict_labels
from ringscope.settings import Settings
from tests.api_support import (
    EMAIL,
    HUB_DEGREE,
    PHONE,
    RING_1,
    RING_2,
    Keys,
    LiveServer,
    api_settings,
    first_build,
    ids,
    load_small_graph,
    make_keys,
)

pytestmark = pytest.mark.neo4j

CLUSTERS_OP = """
query Clusters($minScore: Float!, $first: Int!, $after: String) {
  clusters(minScore: $minScore, first: $first, after: $after) {
    buildId
    edges { node { id score size reasons members { id riskScore } } }
    pageInfo { hasNextPage endCursor }
  }
}
"""


@pytest.fixture(scope="module")
def world(neo4j_settings: Settings) -> Iterator[tuple[Graph, Keys, str]]:
    with connect(neo4j_settings) as g:
        g.write(cypher.DELETE_ALL)
        init_schema(g)
        load_small_graph(g)
        build = first_build(g)
        yield g, make_keys(g), build


@pytest.fixture(scope="module")
def server(
    neo4j_settings: Settings, world: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    settings = api_settings(neo4j_settings, tmp_path_factory.mktemp("api"))
    with LiveServer(settings) as srv:
        yield srv


@pytest.fixture
def keys(world: tuple[Graph, Keys, str]) -> Keys:
    return world[1]


@pytest.fixture
def build_id(world: tuple[Graph, Keys, str]) -> str:
    return world[2]


# --- the risk engine's queries ----------------------------------------------------------------


def test_clusters_operation_pages_through_one_build(
    server: LiveServer, keys: Keys, build_id: str
) -> None:
    seen: list[dict[str, Any]] = []
    after = None
    while True:
        body = server.gql(
            CLUSTERS_OP, keys.risk_engine, {"minScore": 0.6, "first": 2, "after": after}
        )
        assert "errors" not in body, body
        page = body["data"]["clusters"]
        assert page["buildId"] == build_id
        seen.extend(e["node"] for e in page["edges"])
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    scores = [c["score"] for c in seen]
    assert scores == sorted(scores, reverse=True) and min(scores) >= 0.6
    assert len(seen) == 4  # ring 1, ring 2, two singletons >= 0.6
    ring1 = seen[0]
    assert ring1["size"] == 4 and ring1["reasons"] == ["4 accounts share device D1"]
    assert {m["id"]: m["riskScore"] for m in ring1["members"]} == dict.fromkeys(RING_1, 0.92)


def test_account_risk_and_current_build(server: LiveServer, keys: Keys, build_id: str) -> None:
    body = server.gql(
        '{ accountRisk(ids: ["A000", "A020", "A029", "nobody"]) { id riskScore buildId } '
        "currentBuild { id finishedAt modelVersion } }",
        keys.risk_engine,
    )
    assert "errors" not in body, body
    risks = {r["id"]: r["riskScore"] for r in body["data"]["accountRisk"]}
    assert risks == {"A000": 0.92, "A020": 0.7, "A029": 0.05, "nobody": None}
    assert {r["buildId"] for r in body["data"]["accountRisk"]} == {build_id}
    cur = body["data"]["currentBuild"]
    assert cur["id"] == build_id and cur["modelVersion"] == "test-1" and cur["finishedAt"]


def test_account_risk_is_capped(server: LiveServer, keys: Keys) -> None:
    many = [f"X{i}" for i in range(1001)]
    body = server.gql(
        "query R($ids: [ID!]!) { accountRisk(ids: $ids) { id } }", keys.risk_engine, {"ids": many}
    )
    assert body["data"] is None
    assert "at most 1000" in body["errors"][0]["message"]


def test_page_size_and_cursor_errors_are_named(server: LiveServer, keys: Keys) -> None:
    body = server.gql(CLUSTERS_OP, keys.risk_engine, {"minScore": 0, "first": 10_000})
    assert "first is between" in body["errors"][0]["message"]
    body = server.gql(CLUSTERS_OP, keys.risk_engine, {"minScore": 0, "first": 5, "after": "zzz"})
    assert "Invalid cursor" in body["errors"][0]["message"]


# --- the investigators' queries ---------------------------------------------------------------


def test_entity_account(server: LiveServer, keys: Keys, build_id: str) -> None:
    body = server.gql(
        '{ entity(kind: ACCOUNT, id: "A000") { kind id masked riskScore label kycLevel degree '
        "degrees { kind count } clusters { id ringId score } } }",
        keys.investigator,
    )
    assert "errors" not in body, body
    e = body["data"]["entity"]
    assert (e["kind"], e["id"], e["masked"], e["riskScore"]) == ("ACCOUNT", "A000", False, 0.92)
    degrees = {d["kind"]: d["count"] for d in e["degrees"]}
    assert degrees["DEVICE"] == 2 and degrees["PHONE"] == 1 and degrees["PAYEE"] == 1
    assert e["degree"] == 4
    assert [c["id"].split("/")[0] for c in e["clusters"]] == [build_id]


def test_entity_identifier_and_missing(server: LiveServer, keys: Keys) -> None:
    body = server.gql(
        '{ d: entity(kind: DEVICE, id: "D1") { id riskScore degree clusters { size } } '
        'x: entity(kind: DEVICE, id: "nope") { id } }',
        keys.investigator,
    )
    assert "errors" not in body, body
    d = body["data"]["d"]
    assert (d["id"], d["riskScore"], d["degree"]) == ("D1", 0.92, 4)
    assert [c["size"] for c in d["clusters"]] == [4]
    assert body["data"]["x"] is None


def test_cluster_detail(server: LiveServer, keys: Keys, build_id: str) -> None:
    body = server.gql('{ cluster(id: "A000") { id } }', keys.investigator)  # not a cluster id
    assert body["data"]["cluster"] is None
    page = server.gql(CLUSTERS_OP, keys.investigator, {"minScore": 0.9, "first": 1})
    cid = page["data"]["clusters"]["edges"][0]["node"]["id"]
    ring = cid.split("/")[1]
    for ident in (cid, ring):
        body = server.gql(
            "query C($id: ID!) { cluster(id: $id) { id ringId buildId score size density "
            "reasons firstSeenBuild features { name value } "
            "sharedIdentifiers { kind id masked members } "
            "history { buildId size score } labels { verdict } notes { text } "
            "members { id riskScore } } }",
            keys.investigator,
            {"id": ident},
        )
        assert "errors" not in body, body
        c = body["data"]["cluster"]
        assert c["id"] == cid and c["ringId"] == ring and c["buildId"] == build_id
        assert c["firstSeenBuild"] == build_id
        assert [h["buildId"] for h in c["history"]] == [build_id]
        assert {(s["kind"], s["id"], s["masked"]) for s in c["sharedIdentifiers"]} == {
            ("DEVICE", "D1", False),
            ("PHONE", PHONE, False),
        }
        assert sorted(ids(c["members"])) == list(RING_1)


def test_risk_neighbourhood_two_hops_with_paths(server: LiveServer, keys: Keys) -> None:
    body = server.gql(
        '{ riskNeighbourhood(kind: ACCOUNT, id: "A003", hops: 2) { buildId truncated hops '
        "center { key riskScore } nodes { key kind id hop hub degree riskScore flagged label } "
        "edges { source target kind firstSeen lastSeen count } "
        "paths { nodes via flaggedAccount riskScore } } }",
        keys.investigator,
    )
    assert "errors" not in body, body
    nb = body["data"]["riskNeighbourhood"]
    nodes = {n["key"]: n for n in nb["nodes"]}
    assert nb["center"]["key"] == "account:A003"
    assert {k for k, n in nodes.items() if n["hop"] == 1} == {
        "device:D1",
        "device:D2",
        "id_document:ID-1",
    }
    assert {k for k, n in nodes.items() if n["hop"] == 2} == {
        "account:A000", "account:A001", "account:A002", "account:A020",
    }  # fmt: skip
    edge = next(
        e for e in nb["edges"] if e["target"] == "device:D2" and e["source"] == "account:A003"
    )
    assert edge["kind"] == "DEVICE" and edge["count"] == 3
    assert edge["firstSeen"].startswith("2024-02-01") and edge["lastSeen"].startswith("2024-03-01")
    # A020 is flagged by its fraud label and 0.7 score; ring 1 members by their 0.92 score.
    assert nodes["account:A020"]["flagged"] and nodes["account:A020"]["label"] == "fraud"
    path = next(p for p in nb["paths"] if p["flaggedAccount"] == "account:A020")
    assert path["nodes"] == ["account:A003", "device:D2", "account:A020"]
    assert path["via"] == ["device:D2"]
    # The center is a ring member (0.92): it is flagged too, but no path leads to itself.
    assert nodes["account:A003"]["riskScore"] >= 0.6 and nodes["account:A003"]["flagged"]
    assert all(p["flaggedAccount"] != "account:A003" for p in nb["paths"])


def test_scores_are_served_from_the_app_score_cache(
    server: LiveServer, keys: Keys, build_id: str
) -> None:
    """The app's ScoreCache is the one requests use: after a neighbourhood and an accountRisk
    request, the build's score chunks are held in the app (not re-read in Cypher per request)."""
    assert server.app.scores is not None
    body = server.gql(
        '{ riskNeighbourhood(kind: ACCOUNT, id: "A003", hops: 1) { center { riskScore } } '
        'accountRisk(ids: ["A003"]) { riskScore } }',
        keys.investigator,
    )
    assert "errors" not in body, body
    assert server.app.scores.held_chunks(build_id) >= 1
    data = body["data"]
    assert data["riskNeighbourhood"]["center"]["riskScore"] == data["accountRisk"][0]["riskScore"]


def test_neighbourhood_json_form_matches_the_typed_lists(server: LiveServer, keys: Keys) -> None:
    """nodesJson / edgesJson carry exactly what nodes / edges carry, masking included."""
    q = (
        '{ riskNeighbourhood(kind: ACCOUNT, id: "A003", hops: 2) { nodesJson edgesJson '
        "nodes { key kind id masked hop degree hub riskScore label flagged } "
        "edges { source target kind firstSeen lastSeen count } } }"
    )
    for key in (keys.investigator, keys.risk_engine):
        body = server.gql(q, key)
        assert "errors" not in body, body
        nb = body["data"]["riskNeighbourhood"]
        assert len(nb["nodes"]) > 5 and len(nb["edges"]) > 5
        assert nb["nodesJson"] == nb["nodes"]
        assert nb["edgesJson"] == nb["edges"]
        masked = [n for n in nb["nodesJson"] if n["masked"]]
        assert bool(masked) == (key == keys.risk_engine)  # ID-1 is an ID document: PII


def test_leaf_object_fast_path_answers_as_graphql_core_does(
    server: LiveServer, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """api/execution.py completes leaf-only objects itself; every answer (data and errors, for
    each role) must be the one graphql-core's own completion gives."""
    from ringscope.api.schema import build_schema

    queries = [
        '{ riskNeighbourhood(kind: ACCOUNT, id: "A003", hops: 2) { truncated '
        "center { __typename id riskScore flagged } "
        "nodes { __typename k: key kind id masked hop degree hub riskScore label flagged } "
        "edges { source target kind firstSeen lastSeen count } "
        "paths { nodes via flaggedAccount riskScore } } }",
        '{ entity(kind: PHONE, id: "' + PHONE + '") { id kind masked riskScore '
        "degrees { kind count } clusters { id score } } }",
        "{ clusters(minScore: 0, first: 2) { buildId edges { node { id score size reasons "
        "members { id riskScore } } } pageInfo { hasNextPage endCursor } } }",
        '{ accountRisk(ids: ["A000", "A010", "nope"]) { id riskScore flagged } '
        "currentBuild { id modelVersion } }",
        '{ cluster(id: "' + "missing" + '") { id } }',
    ]  # fmt: skip
    completed = 0
    real = ringscope.api.execution._complete

    def counting(steps: Any, source: Any) -> Any:
        nonlocal completed
        completed += 1
        return real(steps, source)

    monkeypatch.setattr(ringscope.api.execution, "_complete", counting)
    fast = [server.gql(q, k) for q in queries for k in (keys.investigator, keys.risk_engine)]
    assert completed > 20  # the fast path did the leaf objects
    assert any("errors" in body for body in fast)  # refusals and domain errors are compared too
    fast_schema = server.app.schema
    server.app.schema = build_schema(server.settings.model_copy(update={"api_fast_leaves": False}))
    try:
        slow = [server.gql(q, k) for q in queries for k in (keys.investigator, keys.risk_engine)]
    finally:
        server.app.schema = fast_schema
    assert fast == slow


def test_hub_is_one_node_never_expanded(server: LiveServer, keys: Keys) -> None:
    body = server.gql(
        '{ riskNeighbourhood(kind: ACCOUNT, id: "A000", hops: 3, limit: 1000) '
        "{ truncated limit nodes { key hub degree hop } } }",
        keys.investigator,
    )
    assert "errors" not in body, body
    nb = body["data"]["riskNeighbourhood"]
    nodes = {n["key"]: n for n in nb["nodes"]}
    hub = nodes["device:DHUB"]
    assert hub["hub"] and hub["degree"] == 16 > HUB_DEGREE
    assert not any(k.startswith("account:H") for k in nodes)  # the hub's accounts stay out
    assert nb["limit"] == 500  # capped at api_neighbourhood_max_nodes
    # A hub asked for directly is returned alone, with its degree.
    body = server.gql(
        '{ riskNeighbourhood(kind: DEVICE, id: "DHUB") { center { hub degree } nodes { key } } }',
        keys.investigator,
    )
    nb = body["data"]["riskNeighbourhood"]
    assert nb["center"] == {"hub": True, "degree": 16} and len(nb["nodes"]) == 1


def test_neighbourhood_limit_min_score_and_hops(server: LiveServer, keys: Keys) -> None:
    body = server.gql(
        '{ riskNeighbourhood(kind: ACCOUNT, id: "A000", hops: 2, limit: 3) '
        "{ truncated nodes { key } } }",
        keys.investigator,
    )
    nb = body["data"]["riskNeighbourhood"]
    assert nb["truncated"] and len(nb["nodes"]) == 3
    body = server.gql(
        '{ riskNeighbourhood(kind: DEVICE, id: "D2", hops: 1, minScore: 0.8) { nodes { key } } }',
        keys.investigator,
    )
    assert ids(body["data"]["riskNeighbourhood"]["nodes"], "key") == ["device:D2", "account:A003"]
    body = server.gql(
        '{ riskNeighbourhood(kind: ACCOUNT, id: "A000", hops: 4) { hops } }', keys.investigator
    )
    assert "hops is 1, 2 or 3" in body["errors"][0]["message"]


# --- mutations --------------------------------------------------------------------------------


def test_verdicts_and_case_notes(server: LiveServer, keys: Keys, world: Any) -> None:
    graph: Graph = world[0]
    body = server.gql(
        'mutation { labelAccount(accountId: "A011", verdict: LEGIT, note: "known customer") '
        "{ id targetKind targetId verdict note author createdAt } }",
        keys.investigator,
    )
    assert "errors" not in body, body
    v = body["data"]["labelAccount"]
    assert (v["targetKind"], v["targetId"], v["verdict"], v["author"]) == (
        "account", "A011", "LEGIT", "alice",
    )  # fmt: skip
    assert v["createdAt"]
    page = server.gql(CLUSTERS_OP, keys.investigator, {"minScore": 0.8, "first": 5})
    ring2 = next(
        e["node"]["id"]
        for e in page["data"]["clusters"]["edges"]
        if sorted(ids(e["node"]["members"])) == list(RING_2)
    )
    body = server.gql(
        'mutation L($id: ID!) { labelCluster(clusterId: $id, verdict: FRAUD, note: "mule ring") '
        '{ targetKind targetId verdict } addCaseNote(clusterId: $id, text: "called the bank") '
        "{ ringId text author } }",
        keys.investigator,
        {"id": ring2},
    )
    assert "errors" not in body, body
    ring_id = ring2.split("/")[1]
    assert body["data"]["labelCluster"] == {
        "targetKind": "ring", "targetId": ring_id, "verdict": "FRAUD",
    }  # fmt: skip
    assert body["data"]["addCaseNote"]["ringId"] == ring_id
    body = server.gql(
        "query C($id: ID!) { cluster(id: $id) { labels { verdict note author } notes { text } } }",
        keys.investigator,
        {"id": ring_id},
    )
    c = body["data"]["cluster"]
    assert c["labels"] == [{"verdict": "FRAUD", "note": "mule ring", "author": "alice"}]
    assert c["notes"] == [{"text": "called the bank"}]
    body = server.gql(
        '{ entity(kind: ACCOUNT, id: "A011") { verdicts { verdict note } } }', keys.investigator
    )
    assert body["data"]["entity"]["verdicts"] == [{"verdict": "LEGIT", "note": "known customer"}]
    # The rebuild's labels: A011's own verdict beats the ring's; the other members get fraud.
    labels = {a: lab for a, (lab, _) in verdict_labels(graph).items()}
    assert labels["A011"] == "legit" and labels["A010"] == labels["A012"] == "fraud"
    body = server.gql(
        'mutation { labelAccount(accountId: "ghost", verdict: FRAUD, note: "") { id } }',
        keys.investigator,
    )
    assert body["errors"][0]["message"] == "No account 'ghost'."


# --- roles, PII and audit ---------------------------------------------------------------------


def test_risk_engine_sees_pii_masked(server: LiveServer, keys: Keys) -> None:
    q = (
        "query C($id: ID!, $id2: ID!) { cluster(id: $id) { sharedIdentifiers { kind id masked } } "
        "entity(kind: EMAIL, id: $id2) { id masked } "
        'riskNeighbourhood(kind: ACCOUNT, id: "A000", hops: 1) { nodes { key kind id masked } } }'
    )
    page = server.gql(CLUSTERS_OP, keys.investigator, {"minScore": 0.9, "first": 1})
    cid = page["data"]["clusters"]["edges"][0]["node"]["id"]
    masked = server.gql(q, keys.risk_engine, {"id": cid, "id2": EMAIL})["data"]
    raw = server.gql(q, keys.investigator, {"id": cid, "id2": EMAIL})["data"]
    phone_m = next(s for s in masked["cluster"]["sharedIdentifiers"] if s["kind"] == "PHONE")
    phone_r = next(s for s in raw["cluster"]["sharedIdentifiers"] if s["kind"] == "PHONE")
    assert phone_r == {"kind": "PHONE", "id": PHONE, "masked": False}
    assert phone_m["masked"] and PHONE not in phone_m["id"] and phone_m["id"].endswith("01")
    assert masked["entity"]["masked"] and masked["entity"]["id"] != EMAIL
    assert raw["entity"] == {"id": EMAIL, "masked": False}
    node_m = next(n for n in masked["riskNeighbourhood"]["nodes"] if n["kind"] == "PHONE")
    assert node_m["masked"] and PHONE not in node_m["key"] + node_m["id"]
    device = next(n for n in masked["riskNeighbourhood"]["nodes"] if n["key"] == "device:D1")
    assert not device["masked"]  # devices are not personal data


def test_risk_engine_denied_fields_and_mutations(server: LiveServer, keys: Keys) -> None:
    resp = server.post(
        '{ cluster(id: "x") { id } entity(kind: ACCOUNT, id: "A010") { id verdicts { note } } }',
        keys.risk_engine,
    )
    body = resp.json()
    assert body["errors"][0]["message"].startswith("Forbidden")
    assert body["errors"][0]["path"] == ["entity", "verdicts"]
    rid = resp.headers["x-request-id"]
    assert {"kind": "account", "id": "A010", "outcome": "denied"}.items() <= next(
        r for r in server.audit_for(rid) if r["outcome"] == "denied"
    ).items()
    for mutation in (
        'labelAccount(accountId: "A001", verdict: FRAUD, note: "x") { id }',
        'labelCluster(clusterId: "x", verdict: FRAUD, note: "x") { id }',
        'addCaseNote(clusterId: "x", text: "x") { id }',
    ):
        body = server.gql("mutation { " + mutation + " }", keys.risk_engine)
        assert body["data"] is None and body["errors"][0]["message"].startswith("Forbidden")
    body = server.gql("{ apiKeys { id role } }", keys.investigator)
    assert body["errors"][0]["message"].startswith("Forbidden")
    body = server.gql("{ apiKeys { id role name } }", keys.admin)
    assert {"investigator", "risk_engine", "admin"} <= set(ids(body["data"]["apiKeys"], "role"))
    body = server.gql(
        '{ entity(kind: PHONE, id: "' + PHONE + '") { id masked verdicts { note } } }', keys.admin
    )
    assert body["data"]["entity"] == {"id": PHONE, "masked": False, "verdicts": []}


def test_one_audit_record_per_entity(server: LiveServer, keys: Keys) -> None:
    resp = server.post(
        '{ a: entity(kind: ACCOUNT, id: "A001") { id } b: entity(kind: ACCOUNT, id: "A001") '
        '{ id } c: entity(kind: DEVICE, id: "none") { id } '
        'accountRisk(ids: ["A002", "A003"]) { id } }',
        keys.investigator,
    )
    assert resp.status_code == 200 and "errors" not in resp.json()
    records = server.audit_for(resp.headers["x-request-id"])
    got = sorted((r["kind"], r["id"], r["outcome"]) for r in records)
    assert got == [
        ("account", "A001", "returned"),
        ("account", "A002", "returned"),
        ("account", "A003", "returned"),
        ("device", "none", "not_found"),
    ]
    r = records[0]
    assert r["role"] == "investigator" and r["key_id"] == keys.investigator_id and r["ts"]
    # A clusters page logs each cluster and each member once.
    resp = server.post(
        "{ clusters(minScore: 0.8) { edges { node { id members { id } } } } }", keys.risk_engine
    )
    records = server.audit_for(resp.headers["x-request-id"])
    assert sorted(r["kind"] for r in records) == ["account"] * 7 + ["cluster"] * 2


def test_audit_failure_fails_the_request(
    neo4j_settings: Settings, world: Any, keys: Keys, tmp_path: Path
) -> None:
    settings = api_settings(neo4j_settings, tmp_path)
    with LiveServer(settings) as srv:
        srv.app.audit_log.path_for().mkdir(parents=True)  # a directory where the file goes
        resp = srv.post('{ entity(kind: ACCOUNT, id: "A001") { id } }', keys.investigator)
        assert resp.status_code == 500
        assert "audit log" in resp.json()["errors"][0]["message"]
        assert "A001" not in resp.text


# --- authentication ---------------------------------------------------------------------------


def test_missing_wrong_and_revoked_keys_get_401(server: LiveServer, keys: Keys, world: Any) -> None:
    q = "{ currentBuild { id } }"
    assert server.post(q, None).status_code == 401
    assert server.post(q, "rsk_000000000000_" + "x" * 43).status_code == 401
    wrong_secret = keys.investigator[:-4] + "abcd"
    assert server.post(q, wrong_secret).status_code == 401
    resp = httpx.post(
        server.url, json={"query": q}, headers={"Authorization": "Basic Zm9vOmJhcg=="}
    )
    assert resp.status_code == 401 and resp.headers["www-authenticate"].startswith("Bearer")
    from ringscope.api.auth import create_key

    temp = create_key(world[0], "risk_engine", "temp")
    assert server.post(q, temp.key).status_code == 200
    revoke_key(world[0], temp.key_id)
    assert server.post(q, temp.key).status_code == 401


# --- limits and transport ---------------------------------------------------------------------


def test_too_deep_too_aliased_and_oversized_queries_are_rejected(
    server: LiveServer, keys: Keys
) -> None:
    deep = (
        '{ entity(kind: ACCOUNT, id: "A000") { clusters { members { clusters { members { '
        "clusters { members { clusters { members { clusters { members { id } } } } } } } } } } } }"
    )
    body = server.gql(deep, keys.investigator)
    assert (
        body["data"] is None and "exceeds maximum operation depth" in body["errors"][0]["message"]
    )
    aliased = "{ " + " ".join(f"a{i}: currentBuild {{ id }}" for i in range(20)) + " }"
    body = server.gql(aliased, keys.investigator)
    assert body["data"] is None and "aliases" in body["errors"][0]["message"]
    big = "{ currentBuild { " + " ".join(["id"] * 3000) + " } }"
    body = server.gql(big, keys.investigator)
    assert body["data"] is None and "token" in body["errors"][0]["message"].lower()
    huge = server.post("{ currentBuild { id } }" + " " * 200_000, keys.investigator)
    assert huge.status_code == 413


def test_get_cannot_run_queries_and_no_batching(server: LiveServer, keys: Keys) -> None:
    auth = {"Authorization": f"Bearer {keys.admin}"}
    resp = httpx.get(server.url, params={"query": "{ currentBuild { id } }"}, headers=auth)
    assert resp.status_code == 405 and "data" not in resp.json()
    resp = httpx.get(server.url, headers={"Accept": "text/html"})
    assert resp.status_code == 200 and "graphiql" in resp.text.lower()  # development: GraphiQL
    resp = httpx.post(server.url, json=[{"query": "{ currentBuild { id } }"}] * 2, headers=auth)
    assert resp.status_code == 400 and "Batched" in resp.text


def test_introspection_on_in_development(server: LiveServer, keys: Keys) -> None:
    body = server.gql("{ __schema { queryType { name } } }", keys.investigator)
    assert body["data"]["__schema"]["queryType"]["name"] == "Query"


def test_production_turns_off_introspection_and_graphiql(
    neo4j_settings: Settings, keys: Keys, tmp_path: Path
) -> None:
    settings = api_settings(neo4j_settings, tmp_path, api_env="production")
    with LiveServer(settings) as srv:
        body = srv.gql("{ __schema { queryType { name } } }", keys.investigator)
        assert body["data"] is None and "introspection" in body["errors"][0]["message"].lower()
        assert httpx.get(srv.url, headers={"Accept": "text/html"}).status_code == 405
        assert "errors" not in srv.gql("{ currentBuild { id } }", keys.investigator)


def test_healthz_and_metrics(server: LiveServer, build_id: str) -> None:
    base = server.url.removesuffix("/graphql")
    health = httpx.get(base + "/healthz").json()
    assert {k: health[k] for k in ("status", "neo4j", "build")} == {
        "status": "ok",
        "neo4j": True,
        "build": build_id,
    }
    assert health["build_age_s"] >= 0
    metrics = httpx.get(base + "/metrics").text
    assert "ringscope_api_requests_total" in metrics
    assert "ringscope_api_graphql_seconds_bucket" in metrics


def test_unexpected_errors_are_masked(
    server: LiveServer, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ringscope.api import service

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(service, "find_cluster", boom)
    body = server.gql('{ cluster(id: "x") { id } }', keys.investigator)
    assert body["errors"][0]["message"] == "Internal server error."
    assert "secret" not in str(body)


def test_repeated_queries_are_validated_once(server: LiveServer, keys: Keys) -> None:
    """The validation cache is keyed by the rule classes; the limits' rules must be the same
    objects on every request, or every request is validated again."""
    from strawberry.extensions.validation_cache import _get_validate_cache

    cache = _get_validate_cache(1_000)
    query = '{ entity(kind: ACCOUNT, id: "A001") { id riskScore } }'
    server.gql(query, keys.investigator)
    before = cache.cache_info()
    for _ in range(3):
        assert "errors" not in server.gql(query, keys.investigator)
    after = cache.cache_info()
    assert after.hits - before.hits == 3 and after.misses == before.misses
