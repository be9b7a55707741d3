"""The API's limits against the attacks of issue #19, on a real server and a real Neo4j.

Each attack is sent as an attacker would, over HTTP: nested fan-out queries (refused by the cost
limit before any resolver runs), a hub identifier's thousand clusters (paged), aliased and
repeated ``explain`` calls (one per request, a token bucket per key, 429 with Retry-After), a
query one level over the documented depth, bodies that used to end in a 500 and a traceback
(deep nesting, lone surrogates), 80 kB inputs echoed back in errors, NaN cursors, and IPs shown
to the risk engine. While an operation completes, ``/healthz`` and other requests are answered
(checked by the order of events, not by timings).
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ringscope.api.auth import create_key
from ringscope.api.schema import types as schema_types
from ringscope.graph import Graph, connect, cypher, init_schema
from ringscope.models.builds import write_build
from ringscope.settings import Settings
from tests.api_support import Keys, LiveServer, TCluster, api_settings, detection, make_keys

pytestmark = pytest.mark.neo4j

RING = tuple(f"R{i:02d}" for i in range(26))  # the 26-member ring
HUB_IP = "10.9.8.7"
HUB_CLUSTERS = 60  # pairs of accounts, every one on the hub IP
PAIRS = [(f"P{i:02d}a", f"P{i:02d}b") for i in range(HUB_CLUSTERS)]
SINGLE = "S00"  # a cluster of one: deep queries through it do not fan out
EXPLAIN_BURST = 2

# The reproduction: nine levels, members -> clusters -> members ... on the ring.
FANOUT9_BODY = (
    "cluster(id: $id) { members { clusters { members { clusters { members { clusters { "
    "members { id } } } } } } } }"
)
FANOUT9 = f"query F($id: ID!) {{ {FANOUT9_BODY} }}"
FANOUT9_X3 = f"query F($id: ID!) {{ a: {FANOUT9_BODY} b: {FANOUT9_BODY} c: {FANOUT9_BODY} }}"
HUB = "query H($ip: ID!) { entity(kind: IP, id: $ip) { clusters { id members { id } } } }"
EXPLAIN = "query E($id: ID!) { explain(accountId: $id) { score } }"
CLUSTERS_500 = """
query Clusters($minScore: Float!, $first: Int!, $after: String) {
  clusters(minScore: $minScore, first: $first, after: $after) {
    buildId
    edges { node { id ringId buildId score size reasons members { id riskScore } } }
    pageInfo { hasNextPage endCursor }
  }
}
"""


def deep(levels: int, first: bool = False) -> str:
    """``entity { clusters { members { clusters ... { id } } } }``, ``levels`` field levels deep
    (the entity is level 1, ``id`` the last), through the one-member cluster."""
    page = "(first: 1)" if first else ""
    lists = [("clusters", "members")[i % 2] + page for i in range(levels - 2)]
    inner = "id"
    for name in reversed(lists):
        inner = f"{name} {{ {inner} }}"
    return f'{{ entity(kind: ACCOUNT, id: "{SINGLE}") {{ {inner} }} }}'


@pytest.fixture(scope="module")
def world(neo4j_settings: Settings) -> Iterator[tuple[Graph, Keys, str]]:
    with connect(neo4j_settings) as g:
        g.write(cypher.DELETE_ALL)
        init_schema(g)
        accounts = [*RING, *(a for p in PAIRS for a in p), SINGLE]
        g.write("UNWIND $ids AS id CREATE (:Account {id: id})", {"ids": accounts})
        g.write(
            "UNWIND $ids AS id MATCH (a:Account {id: id}) MERGE (d:Device {id: 'D-RING'}) "
            "CREATE (a)-[:USES_DEVICE {count: 1}]->(d)",
            {"ids": list(RING)},
        )
        g.write(
            "UNWIND $ids AS id MATCH (a:Account {id: id}) MERGE (x:IP {id: $ip}) "
            "CREATE (a)-[:USES_IP {count: 1}]->(x)",
            {"ids": [a for p in PAIRS for a in p], "ip": HUB_IP},
        )
        clusters = [
            TCluster(RING, 0.9),
            *(TCluster(p, 0.5 + i / 1000) for i, p in enumerate(PAIRS)),
            TCluster((SINGLE,), 0.3),
        ]
        build = write_build(g, detection(clusters, {}), model_version="t").id
        yield g, make_keys(g), build


@pytest.fixture(scope="module")
def server(
    neo4j_settings: Settings, world: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    settings = api_settings(
        neo4j_settings,
        tmp_path_factory.mktemp("limits"),
        api_explain_burst=EXPLAIN_BURST,
        api_explain_per_minute=1.0,
    )
    with LiveServer(settings) as srv:
        yield srv


@pytest.fixture
def keys(world: tuple[Graph, Keys, str]) -> Keys:
    return world[1]


@pytest.fixture(scope="module")
def ring_id(server: LiveServer, world: tuple[Graph, Keys, str]) -> str:
    body = server.gql(
        f'{{ entity(kind: ACCOUNT, id: "{RING[0]}") {{ clusters {{ id size }} }} }}', world[1].admin
    )
    (cluster,) = body["data"]["entity"]["clusters"]
    assert cluster["size"] == len(RING)
    return str(cluster["id"])


def post(
    server: LiveServer, key: str, query: str, variables: dict[str, Any] | None = None
) -> tuple[httpx.Response, str]:
    """POST an operation; the response and the server's request id (the audit log's)."""
    resp = httpx.post(
        server.url,
        json={"query": query, "variables": variables or {}},
        headers={"Authorization": f"Bearer {key}"},
        timeout=120,
    )
    return resp, resp.headers["x-request-id"]


def post_raw(server: LiveServer, key: str, body: bytes) -> httpx.Response:
    return httpx.post(
        server.url,
        content=body,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        timeout=60,
    )


def only_error(resp: httpx.Response) -> str:
    body = resp.json()
    assert body.get("data") is None, str(body)[:500]
    (error,) = body["errors"]
    return str(error["message"])


# --- HIGH: nested fan-out --------------------------------------------------------------------


def test_nested_fan_out_is_refused_before_anything_runs(
    server: LiveServer, keys: Keys, ring_id: str
) -> None:
    for key in (keys.investigator, keys.risk_engine):
        resp, rid = post(server, key, FANOUT9, {"id": ring_id})
        assert resp.status_code == 200
        message = only_error(resp)
        assert "over the budget of 200,000 (RINGSCOPE_API_MAX_COST)" in message
        assert "cost is 12,627,525,505,111" in message  # ~ 100 * 50 * 100 * 50 * 100 * 50 * 100
        # Refused before execution: not even the cluster was read, so nothing was audited.
        assert server.audit_for(rid) == []
    resp, _ = post(server, keys.admin, FANOUT9_X3, {"id": ring_id})
    assert "over the budget" in only_error(resp)
    # Without an operationName the first operation runs, and it is the one costed.
    two = f"{FANOUT9} query B {{ currentBuild {{ id }} }}"
    resp, _ = post(server, keys.admin, two, {"id": ring_id})
    assert "over the budget" in only_error(resp)
    # The same cluster asked for plainly is read, and audited under the same kind of id.
    resp, rid = post(server, keys.investigator, "query C($id: ID!) { cluster(id: $id) { id } }",
                     {"id": ring_id})  # fmt: skip
    assert resp.json()["data"]["cluster"]["id"] == ring_id and server.audit_for(rid) != []


def test_bounded_fan_out_and_the_risk_engines_page_still_answer(
    server: LiveServer, keys: Keys, ring_id: str
) -> None:
    body = server.gql(
        "query F($id: ID!) { cluster(id: $id) { size members { id clusters { id } } "
        "few: members(first: 5) { id } } }",
        keys.investigator,
        {"id": ring_id},
    )
    assert "errors" not in body, body
    cluster = body["data"]["cluster"]
    assert sorted(m["id"] for m in cluster["members"]) == sorted(RING)  # the default covers it
    assert {c["id"] for m in cluster["members"] for c in m["clusters"]} == {ring_id}
    assert len(cluster["few"]) == 5
    body = server.gql(CLUSTERS_500, keys.risk_engine, {"minScore": 0, "first": 500})
    assert "errors" not in body, body
    assert len(body["data"]["clusters"]["edges"]) == 1 + HUB_CLUSTERS + 1


def test_the_cost_reads_page_sizes_from_variables(server: LiveServer, keys: Keys) -> None:
    query = (
        "query C($first: Int!) { clusters(minScore: 0, first: $first) { edges { node { "
        "members { clusters(first: 1) { members(first: 10) { id } } } } } } }"
    )
    resp, _ = post(server, keys.risk_engine, query, {"first": 1})
    assert resp.status_code == 200 and "errors" not in resp.json(), resp.text
    resp, _ = post(server, keys.risk_engine, query, {"first": 500})
    # 500 clusters x 100 members x 1 cluster x 10 members, and the fields between them
    assert "cost is 601,011," in only_error(resp)


def test_a_hub_identifiers_clusters_are_paged(server: LiveServer, keys: Keys) -> None:
    body = server.gql(HUB, keys.investigator, {"ip": HUB_IP})
    assert "errors" not in body, body
    assert len(body["data"]["entity"]["clusters"]) == 50  # the default page, riskiest first
    body = server.gql(
        "query H($ip: ID!) { entity(kind: IP, id: $ip) { clusters(first: 500) { score } } }",
        keys.investigator,
        {"ip": HUB_IP},
    )
    scores = [c["score"] for c in body["data"]["entity"]["clusters"]]
    assert len(scores) == HUB_CLUSTERS and scores == sorted(scores, reverse=True)
    body = server.gql(
        "query H($ip: ID!) { entity(kind: IP, id: $ip) { clusters(first: 501) { id } } }",
        keys.investigator,
        {"ip": HUB_IP},
    )
    assert body["errors"][0]["message"] == "clusters: first is between 1 and 500."


def test_healthz_and_other_requests_answer_while_an_operation_completes(
    server: LiveServer, keys: Keys, ring_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first member the operation completes holds it there (as a large answer's CPU work
    would) until the test has had /healthz and another query answered. On the event loop, as
    before, neither could be answered until the hold gave up."""
    events: list[str] = []
    held, release = threading.Event(), threading.Event()
    make = schema_types.Entity.make

    def held_make(cls: type, *args: Any, **kwargs: Any) -> Any:
        if not held.is_set():
            events.append("operation held in completion")
            held.set()
            events.append("operation resumed" if release.wait(30) else "hold gave up")
        return make(*args, **kwargs)

    monkeypatch.setattr(schema_types.Entity, "make", classmethod(held_make))
    answers: dict[str, httpx.Response] = {}

    def heavy() -> None:
        answers["heavy"], _ = post(server, keys.investigator, HEAVY, {"id": ring_id})

    thread = threading.Thread(target=heavy)
    thread.start()
    assert held.wait(60)
    health = httpx.get(server.url.removesuffix("/graphql") + "/healthz", timeout=120)
    events.append("healthz answered")
    other = server.post("{ currentBuild { id } }", keys.risk_engine)
    events.append("another query answered")
    release.set()
    thread.join(120)
    assert events == [
        "operation held in completion",
        "healthz answered",
        "another query answered",
        "operation resumed",
    ]
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert other.status_code == 200 and "errors" not in other.json()
    heavy_body = answers["heavy"].json()
    assert "errors" not in heavy_body and len(heavy_body["data"]["a"]["members"]) == 26


# Three aliased pages of 500 members: a cost bound (6,033) over api_inline_max_cost (5,000), so
# it completes on an execution thread; each page alone (2,011) would run on the server's loop.
HEAVY = (
    "query F($id: ID!) { "
    + " ".join(
        f"{a}: cluster(id: $id) {{ members(first: 500) {{ id riskScore kycLevel createdAt }} }}"
        for a in "abc"
    )
    + " }"
)


def test_small_operations_run_on_the_servers_loop_and_large_ones_off_it(
    server: LiveServer, keys: Keys, ring_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where each operation completes: one whose cost bound is at most api_inline_max_cost on
    the server's own loop (handing it to an execution thread and back cost a neighbourhood a
    sixth of its server CPU), a larger one on an execution thread (the test above)."""
    where: list[str] = []
    make = schema_types.Entity.make

    def noted_make(cls: type, *args: Any, **kwargs: Any) -> Any:
        here = threading.current_thread()
        where.append("server loop" if here is server.thread else here.name.rstrip("0123456789"))
        return make(*args, **kwargs)

    monkeypatch.setattr(schema_types.Entity, "make", classmethod(noted_make))
    small = "query S($id: ID!) { cluster(id: $id) { members { id riskScore } } }"
    for query, expected in ((small, "server loop"), (HEAVY, "ringscope-graphql-")):
        where.clear()
        resp, _ = post(server, keys.investigator, query, {"id": ring_id})
        assert resp.status_code == 200 and "errors" not in resp.json()
        assert where and set(where) == {expected}, (query, set(where))


# --- MEDIUM: explain --------------------------------------------------------------------------


def test_one_explain_per_request(server: LiveServer, world: tuple[Graph, Keys, str]) -> None:
    key = create_key(world[0], "investigator", "explain-aliases").key
    resp, rid = post(
        server,
        key,
        "query E($id: ID!) { a: explain(accountId: $id) { score } "
        "b: explain(accountId: $id) { score } }",
        {"id": RING[0]},
    )
    assert resp.status_code == 200
    assert only_error(resp) == (
        "At most one `explain` per request (2 in this one): send one request per account."
    )
    assert server.audit_for(rid) == []


def test_explain_has_a_token_bucket_per_key(
    server: LiveServer, world: tuple[Graph, Keys, str]
) -> None:
    graph = world[0]
    first = create_key(graph, "investigator", "explain-bucket").key
    for _ in range(EXPLAIN_BURST):
        resp, _ = post(server, first, EXPLAIN, {"id": RING[0]})
        assert resp.status_code == 200, resp.text  # "No trained model yet" here: no model
    resp, _ = post(server, first, EXPLAIN, {"id": RING[0]})
    assert resp.status_code == 429
    assert 1 <= int(resp.headers["retry-after"]) <= 60  # 1 a minute after the burst
    assert only_error(resp).startswith("Too many explain calls: this API key may make 2 at once")
    # Other keys have buckets of their own, and the key's other queries are not limited.
    other = create_key(graph, "risk_engine", "explain-bucket-2").key
    resp, _ = post(server, other, EXPLAIN, {"id": RING[0]})
    assert resp.status_code == 200
    resp, _ = post(server, first, "{ currentBuild { id } }")
    assert resp.status_code == 200 and "errors" not in resp.json()


# --- LOW ------------------------------------------------------------------------------------


def test_the_depth_limit_is_the_documented_number(server: LiveServer, keys: Keys) -> None:
    assert Settings().api_max_depth == 10  # docs/api.md: RINGSCOPE_API_MAX_DEPTH, 10
    resp, _ = post(server, keys.investigator, deep(11))  # Strawberry's limiter let this run
    assert only_error(resp) == (
        "'anonymous' exceeds maximum operation depth of 10: it nests fields 11 levels deep "
        "(RINGSCOPE_API_MAX_DEPTH)."
    )
    body = server.gql(deep(10, first=True), keys.investigator)  # pages of 1: within the cost
    assert "errors" not in body, body


def test_deeply_nested_variables_are_a_400(
    server: LiveServer, keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    query = "query R($ids: [ID!]!) { accountRisk(ids: $ids) { id } }"
    for levels in (3_000, 20_000):
        nested = "[" * levels + '"A"' + "]" * levels
        body = f'{{"query": {json.dumps(query)}, "variables": {{"ids": {nested}}}}}'
        resp = post_raw(server, keys.risk_engine, body.encode())
        assert resp.status_code == 400
        assert only_error(resp) == "The body nests arrays or objects more than 1,024 levels deep."
    # Within the body's limit, graphql-core refuses it as a variable of the wrong shape.
    nested = "[" * 1_000 + '"A"' + "]" * 1_000
    body = f'{{"query": {json.dumps(query)}, "variables": {{"ids": {nested}}}}}'
    resp = post_raw(server, keys.risk_engine, body.encode())
    assert resp.status_code == 200 and len(only_error(resp)) <= 400
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


def test_a_lone_surrogate_is_a_400_without_a_traceback(
    server: LiveServer, keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    in_variable = (
        b'{"query": "query C($id: ID!) { cluster(id: $id) { id } }", '
        b'"variables": {"id": "\\ud800"}}'
    )
    in_query = b'{"query": "{ entity(kind: IP, id: \\"\\ud800\\") { id } }"}'
    in_note = (
        b'{"query": "mutation { labelAccount(accountId: \\"R00\\", verdict: FRAUD, '
        b'note: \\"x\\ud800\\") { id } }"}'
    )
    for body in (in_variable, in_query, in_note):
        resp = post_raw(server, keys.investigator, body)
        assert resp.status_code == 400, resp.text
        assert "lone UTF-16 surrogate" in only_error(resp)
    # As a GraphQL escape in the query text, graphql-core's lexer refuses it: a syntax error.
    resp = post_raw(
        server, keys.investigator, b'{"query": "{ cluster(id: \\"\\\\ud800\\") { id } }"}'
    )
    assert resp.status_code == 200 and "Invalid Unicode escape" in only_error(resp)
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    assert server.gql("{ currentBuild { id } }", keys.investigator)["data"]["currentBuild"]


def test_nothing_to_run_is_a_400(server: LiveServer, keys: Keys) -> None:
    """Strawberry raises these before execution; they used to end in a 500 and a traceback."""
    cases = [
        ({"query": ""}, "The body needs a non-empty `query` string."),
        (
            {"query": "query A { currentBuild { id } }", "operationName": "B"},
            "The document has no operation named 'B'.",
        ),
        (
            {"query": "fragment F on Query { currentBuild { id } }"},
            "The document has no operation to run.",
        ),
    ]
    for body, message in cases:
        resp = httpx.post(
            server.url, json=body, headers={"Authorization": f"Bearer {keys.investigator}"}
        )
        assert resp.status_code == 400, (body, resp.text)
        assert resp.json() == {"errors": [{"message": message}]}


def test_errors_do_not_echo_large_inputs(server: LiveServer, keys: Keys) -> None:
    big = "x" * 80_000
    resp, _ = post(server, keys.investigator, f'{{ cluster(id: "x") {{ {big} }} }}')
    message = only_error(resp)  # graphql-core's "Cannot query field 'xxx...' on type ..."
    assert len(message) <= 400 and "characters cut" in message
    resp, _ = post(
        server,
        keys.investigator,
        'mutation L($id: ID!) { labelAccount(accountId: $id, verdict: FRAUD, note: "") { id } }',
        {"id": big},
    )
    message = only_error(resp)
    assert message == f"No account {'x' * 200!r}... (80,000 characters)."
    resp, _ = post(
        server,
        keys.risk_engine,
        "query C($after: String) { clusters(after: $after) { buildId } }",
        {"after": big},
    )
    message = only_error(resp)
    assert message.startswith("Invalid cursor (80,000 characters)") and len(message) < 200


def _cursor(build_id: str, score: str, cluster_id: str) -> str:
    raw = f'["{build_id}",{score},"{cluster_id}"]'.encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_a_cursor_with_a_nan_score_is_an_error(
    server: LiveServer, keys: Keys, world: tuple[Graph, Keys, str]
) -> None:
    build_id = world[2]
    query = "query C($after: String) { clusters(first: 5, after: $after) { edges { cursor } } }"
    for score in ("NaN", "Infinity", "-Infinity"):
        resp, _ = post(server, keys.risk_engine, query, {"after": _cursor(build_id, score, "z")})
        message = only_error(resp)
        assert message.startswith("Invalid cursor ") and "pass back the endCursor" in message
    # A real cursor still reads the next page.
    body = server.gql(query, keys.risk_engine, {"after": None})
    after = body["data"]["clusters"]["edges"][-1]["cursor"]
    body = server.gql(query, keys.risk_engine, {"after": after})
    assert len(body["data"]["clusters"]["edges"]) == 5


def test_ips_are_masked_for_the_risk_engine(server: LiveServer, keys: Keys) -> None:
    query = (
        "query H($ip: ID!) { entity(kind: IP, id: $ip) { id masked } "
        f'riskNeighbourhood(kind: ACCOUNT, id: "{PAIRS[0][0]}", hops: 1) '
        "{ nodes { key kind id masked } } }"
    )
    body = server.gql(query, keys.risk_engine, {"ip": HUB_IP})
    assert "errors" not in body, body
    entity = body["data"]["entity"]
    assert entity["masked"] is True and entity["id"] == "******.7" and HUB_IP not in str(body)
    (ip,) = [n for n in body["data"]["riskNeighbourhood"]["nodes"] if n["kind"] == "IP"]
    assert ip["masked"] is True and ip["key"].startswith("ip:~")
    body = server.gql(query, keys.investigator, {"ip": HUB_IP})
    assert body["data"]["entity"] == {"id": HUB_IP, "masked": False}


# --- the limits' own parts --------------------------------------------------------------------


def test_every_list_field_has_a_size() -> None:
    """A list field without a size would be costed as one item: add it to field_costs."""
    from graphql import GraphQLList, GraphQLObjectType, get_nullable_type

    from ringscope.api.cost import field_costs
    from ringscope.api.schema import build_schema

    settings = Settings()
    schema = build_schema(settings)._schema
    costs = field_costs(settings, schema)
    lists = {
        (t.name, name)
        for t in schema.type_map.values()
        if isinstance(t, GraphQLObjectType)
        for name, f in t.fields.items()
        if isinstance(get_nullable_type(f.type), GraphQLList)
    }
    missing = sorted(k for k in lists if k not in costs or costs[k].size is None)
    assert missing == []


def test_the_price_before_execution_is_the_limits_and_none_when_it_cannot_tell() -> None:
    """The server decides where an operation runs from ``CostModel.estimate``: the same cost the
    limit works out during execution for a valid document, and None (an execution thread, and
    Strawberry's own error) for anything it cannot price."""
    from graphql import parse

    from ringscope.api.cost import _operation
    from ringscope.api.schema import build_schema

    settings = Settings()
    schema = build_schema(settings)
    core, tokens = schema._schema, settings.api_max_tokens
    neighbourhood = (
        "query N($id: ID!) { riskNeighbourhood(kind: ACCOUNT, id: $id, hops: 2, limit: 100) "
        "{ truncated nodes { key kind } edges { source target } paths { nodes via } } }"
    )
    for query in (neighbourhood, HEAVY, "{ currentBuild { id } }"):
        doc = parse(query)
        expected = schema.costs.analyse(core, doc, _operation(doc, None), {"id": "x"}).cost
        assert expected is not None
        assert schema.costs.estimate(core, query, None, {"id": "x"}, tokens) == expected
    assert schema.costs.estimate(core, HEAVY, None, {"id": "x"}, tokens) > (
        settings.api_inline_max_cost
    )
    # An unknown field is priced as nothing more (validation refuses it wherever it runs).
    unknown_field = "{ currentBuild { id noSuchField { x } } }"
    assert schema.costs.estimate(core, unknown_field, None, None, tokens) == 12
    for query, name in (
        ("{ currentBuild { id }", None),  # does not parse
        ("query A { currentBuild { id } }", "B"),  # no operation of that name
        ("{ a " + "{ b " * 400 + "}" * 401, None),  # nested too deeply for the parser
    ):
        assert schema.costs.estimate(core, query, name, None, tokens) is None, query


def test_key_buckets_refill_and_forget() -> None:
    from ringscope.api.ratelimit import KeyBuckets, RateLimitedError

    now = [0.0]
    buckets = KeyBuckets("explain", capacity=2, per_minute=6.0, clock=lambda: now[0])
    buckets.take("k1", "investigator")
    buckets.take("k1", "investigator")
    with pytest.raises(RateLimitedError) as refused:
        buckets.take("k1", "investigator")
    assert refused.value.retry_after == pytest.approx(10.0)  # 6 a minute: one per 10 s
    assert refused.value.retry_after_header == "10"
    buckets.take("k1", "risk_engine")  # a bucket per (key, role)
    buckets.take("k2", "investigator")
    now[0] = 10.0
    buckets.take("k1", "investigator")  # one token back
    with pytest.raises(RateLimitedError):
        buckets.take("k1", "investigator")
    now[0] = 100.0  # long enough for every bucket to be full again: they are dropped
    buckets.take("k3", "investigator")
    assert len(buckets) == 1


def test_graphiql_introspection_fits_the_budget(
    neo4j_settings: Settings, keys: Keys, tmp_path: Path
) -> None:
    """GraphiQL's introspection query fits the budget (its lists are sized by the schema)."""
    from graphql import get_introspection_query

    settings = api_settings(neo4j_settings, tmp_path)
    with LiveServer(settings) as srv:
        body = srv.gql(get_introspection_query(), keys.investigator)
        assert "errors" not in body and body["data"]["__schema"]["queryType"]["name"] == "Query"
