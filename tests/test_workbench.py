"""The investigator workbench (issue #16) in a real browser: Debian's chromium driven by
Playwright, against a live server, a real Neo4j of this module's own, and a real rebuild of a
generated world.

Every test records each request the page makes and checks that all of them went to 127.0.0.1:
the workbench and GraphiQL must work on a workstation with no internet. The module owns its
Neo4j (as tests/test_api_outage.py does) so that one test can freeze it and see the page's 503
message, without touching the session's shared instance.

Screenshots of the queue and of a ring's graph with the explain panel go to ``out/screenshots``
(git-ignored), for a person to look at.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from ringscope.api.auth import create_key, revoke_key
from ringscope.graph import EmbeddedNeo4j, Graph, connect, init_schema
from ringscope.ingest import load
from ringscope.jobs.rebuild import rebuild
from ringscope.kinds import KINDS
from ringscope.settings import Settings
from ringscope.synth.generate import generate
from tests.api_support import Keys, LiveServer, api_settings, make_keys
from tests.conftest import own_neo4j

pytestmark = pytest.mark.neo4j

playwright_api = pytest.importorskip("playwright.sync_api")

ACCOUNTS = 2_000
SHOTS = Path(__file__).resolve().parents[1] / "out" / "screenshots"
PII_KINDS = {k.name.upper() for k in KINDS if k.pii}
WAIT_MS = 60_000  # Playwright's wait for a page state; a deadline, not a measurement

CLUSTERS = """
query Q($after: String) {
  clusters(minScore: 0.6, first: 25, after: $after) {
    totalCount edges { node { id ringId members(first: 3) { id } } }
    pageInfo { hasNextPage endCursor }
  }
}
"""
NEIGHBOURHOOD = """
query N($kind: EntityKind!, $id: ID!, $hops: Int!) {
  riskNeighbourhood(kind: $kind, id: $id, hops: $hops, limit: 200) {
    nodesJson edgesJson
  }
}
"""
EXPLAIN = "query E($id: ID!) { explain(accountId: $id, top: 5) { topFeatures { name } } }"


def chromium_path() -> str:
    path = os.environ.get("RINGSCOPE_CHROMIUM") or shutil.which("chromium")
    if path is None:
        pytest.fail("Debian's chromium is not installed: `make test` installs it (make browser)")
    return path


@dataclass
class Workbench:
    settings: Settings
    neo4j: EmbeddedNeo4j
    graph: Graph
    server: LiveServer
    keys: Keys

    @property
    def base(self) -> str:
        return self.server.url.removesuffix("/graphql")

    def api(self, query: str, variables: dict[str, Any] | None = None) -> Any:
        body = self.server.gql(query, self.keys.investigator, variables)
        assert "errors" not in body, body
        return body["data"]


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workbench]:
    root = tmp_path_factory.mktemp("workbench")
    with own_neo4j(root / "state", "768m", "256m") as (own, neo4j):
        generate(root / "data", root / "truth", ACCOUNTS, 3)
        settings = api_settings(own, root, model_dir=root / "models", model_use_gnn=False)
        with connect(settings) as g:
            init_schema(g)
            load(root / "data", g, settings, report_dir=root / "report", progress=False)
            rebuild(g, settings, retrain=True)
            keys = make_keys(g)
            with LiveServer(settings) as server:
                yield Workbench(settings, neo4j, g, server, keys)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        yield b
        b.close()


@dataclass
class Page:
    page: Any
    requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    def hosts(self) -> set[str]:
        return {urlsplit(u).hostname or "" for u in self.requests}


@pytest.fixture
def page(browser: Any) -> Iterator[Page]:
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    pg = ctx.new_page()
    rec = Page(pg)
    pg.on("request", lambda r: rec.requests.append(r.url))
    pg.on("console", lambda m: rec.console_errors.append(m.text) if m.type == "error" else None)
    pg.set_default_timeout(WAIT_MS)
    yield rec
    ctx.close()
    # Every request the page made stayed on this machine (data: URLs have no host).
    remote = {h for h in rec.hosts() if h not in ("127.0.0.1", "")}
    assert not remote, f"the page reached outside the machine: {sorted(remote)}"
    # Nothing the page needs was refused by its Content-Security-Policy (api/web.py).
    refused = [e for e in rec.console_errors if "Content Security Policy" in e]
    assert not refused, refused


def sign_in(p: Page, wb: Workbench, key: str) -> None:
    p.page.goto(f"{wb.base}/app")
    p.page.get_by_test_id("api-key").fill(key)
    p.page.get_by_test_id("signin").click()


def signed_in(p: Page, wb: Workbench, key: str) -> Any:
    sign_in(p, wb, key)
    pg = p.page
    pg.get_by_test_id("whoami").wait_for()
    return pg


def graph_keys(pg: Any) -> set[str]:
    return set(pg.evaluate("window.ringscope.nodeKeys()"))


def search(pg: Any, kind: str, eid: str) -> None:
    pg.get_by_test_id("search-kind").select_option(kind)
    pg.get_by_test_id("search-id").fill(eid)
    pg.get_by_test_id("search-go").click()


def wait_for_graph(pg: Any, keys: set[str]) -> None:
    """Until the page's graph holds exactly ``keys`` (and says so in its DOM count)."""
    pg.wait_for_function(
        "n => document.querySelector('[data-testid=graph]').dataset.nodeCount === String(n)",
        arg=len(keys),
    )
    assert graph_keys(pg) == keys


def nodes_of(wb: Workbench, kind: str, eid: str, hops: int) -> list[dict[str, Any]]:
    nb = wb.api(NEIGHBOURHOOD, {"kind": kind, "id": eid, "hops": hops})["riskNeighbourhood"]
    return list(nb["nodesJson"])


def flagged_account(wb: Workbench) -> tuple[str, str]:
    """The top flagged cluster's id and its first member."""
    edge = wb.api(CLUSTERS)["clusters"]["edges"][0]["node"]
    return edge["id"], edge["members"][0]["id"]


def test_the_queue_lists_the_current_builds_flagged_clusters(bench: Workbench, page: Page) -> None:
    pg = signed_in(page, bench, bench.keys.investigator)
    first = bench.api(CLUSTERS)["clusters"]
    assert first["totalCount"] > 0, "the generated world has flagged clusters"
    rows = pg.get_by_test_id("queue-row")
    rows.first.wait_for()
    shown = [rows.nth(i).get_attribute("data-cluster-id") for i in range(rows.count())]
    assert shown == [e["node"]["id"] for e in first["edges"]]
    assert str(first["totalCount"]) in pg.get_by_test_id("queue-total").inner_text()
    if first["pageInfo"]["hasNextPage"]:  # paged with the API's cursor
        after = first["pageInfo"]["endCursor"]
        second = bench.api(CLUSTERS, {"after": after})["clusters"]["edges"]
        pg.get_by_test_id("queue-more").click()
        want = len(shown) + len(second)
        pg.wait_for_function(
            "n => document.querySelectorAll('[data-testid=queue-row]').length === n", arg=want
        )
        more = [rows.nth(i).get_attribute("data-cluster-id") for i in range(rows.count())]
        assert more[len(shown) :] == [e["node"]["id"] for e in second]
    SHOTS.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(SHOTS / "queue.png"))


def test_search_draws_the_neighbourhood_the_api_returned_and_a_click_expands_a_node(
    bench: Workbench, page: Page
) -> None:
    pg = signed_in(page, bench, bench.keys.investigator)
    _, account = flagged_account(bench)
    nodes = nodes_of(bench, "ACCOUNT", account, 2)
    search(pg, "ACCOUNT", account)
    drawn = {n["key"] for n in nodes}
    wait_for_graph(pg, drawn)
    assert pg.get_by_test_id("graph").get_attribute("data-edge-count") == str(
        pg.evaluate("window.ringscope.edgeCount()")
    )
    # A node whose own neighbourhood adds nodes; never a hub (hubs are not expanded).
    target, grown = None, set[str]()
    for n in sorted(nodes, key=lambda n: (-n["hop"], n["key"])):
        if n["hub"]:
            continue
        more = {m["key"] for m in nodes_of(bench, n["kind"], n["id"], 1)} - drawn
        if more:
            target, grown = n, drawn | more
            break
    assert target is not None, "some node of a 2-hop neighbourhood has neighbours beyond it"
    pos = pg.evaluate("k => window.ringscope.renderedPosition(k)", target["key"])
    box = pg.get_by_test_id("graph").bounding_box()
    pg.mouse.click(box["x"] + pos["x"], box["y"] + pos["y"])  # a real click on the canvas
    wait_for_graph(pg, grown)
    # Risk paths from the centre can be highlighted: the page marks the API's path nodes.
    pg.get_by_test_id("paths-toggle").click()
    assert set(pg.evaluate("window.ringscope.highlighted()")) <= grown


def test_an_accounts_explain_appears_with_the_models_features(bench: Workbench, page: Page) -> None:
    pg = signed_in(page, bench, bench.keys.investigator)
    cluster, account = flagged_account(bench)
    pg.get_by_test_id("queue-row").first.wait_for()
    pg.locator(f'[data-testid=queue-row][data-cluster-id="{cluster}"]').click()
    pg.get_by_test_id("cluster-reasons").wait_for()
    search(pg, "ACCOUNT", account)
    features = bench.api(EXPLAIN, {"id": account})["explain"]["topFeatures"]
    rows = pg.get_by_test_id("explain-feature")
    rows.first.wait_for()
    assert rows.count() == len(features)
    text = pg.get_by_test_id("explain").inner_text()
    for f in features:
        assert f["name"] in text
    pg.get_by_test_id("graph").wait_for()
    pg.wait_for_function("() => document.querySelector('[data-testid=graph]').dataset.ready")
    SHOTS.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(SHOTS / "graph-explain.png"))


def test_a_verdict_made_in_the_page_is_stored_in_neo4j_and_audited(
    bench: Workbench, page: Page
) -> None:
    pg = signed_in(page, bench, bench.keys.investigator)
    _, account = flagged_account(bench)
    search(pg, "ACCOUNT", account)
    pg.get_by_test_id("verdict-select").select_option("FRAUD")
    note = f"seen in the workbench test {time.time_ns()}"
    pg.get_by_test_id("verdict-note").fill(note)
    pg.get_by_test_id("verdict-save").click()
    pg.get_by_test_id("verdict-saved").wait_for()
    assert "FRAUD" in pg.get_by_test_id("verdict-saved").inner_text()
    rows = bench.graph.read(
        "MATCH (v:Verdict {target_id: $id, note: $note}) RETURN v.verdict AS verdict, "
        "v.author AS author",
        {"id": account, "note": note},
    )
    assert [(r["verdict"], r["author"]) for r in rows] == [("fraud", "alice")]
    writes = [
        r for r in bench.server.audit_records()
        if (r["kind"], r["id"], r["field"]) == ("account", account, "labelAccount")
    ]  # fmt: skip
    assert [r["key_id"] for r in writes] == [bench.keys.investigator_id], writes


def test_a_risk_engine_key_sees_only_masked_pii_and_no_verdict_controls(
    bench: Workbench, page: Page
) -> None:
    pg = signed_in(page, bench, bench.keys.risk_engine)
    _, account = flagged_account(bench)
    search(pg, "ACCOUNT", account)
    raw = nodes_of(bench, "ACCOUNT", account, 2)  # the investigator's view: raw values
    pg.wait_for_function(
        "n => document.querySelector('[data-testid=graph]').dataset.nodeCount === String(n)",
        arg=len(raw),
    )
    keys = graph_keys(pg)
    pii = [k for k in keys if k.split(":", 1)[0].upper() in PII_KINDS]
    assert pii, "the neighbourhood has PII identifiers"
    assert all(k.split(":", 1)[1].startswith("~") for k in pii), pii
    html = pg.content()
    leaked = [n["id"] for n in raw if n["kind"] in PII_KINDS and n["id"] in html]
    assert not leaked, f"raw PII in the page: {leaked[:3]}"
    assert pg.get_by_test_id("verdict-save").count() == 0
    assert pg.get_by_test_id("note-save").count() == 0


def test_a_bad_or_revoked_key_shows_the_sign_in_error(bench: Workbench, page: Page) -> None:
    sign_in(page, bench, "rsk_000000000000_notARealSecretAtAll0000")
    err = page.page.get_by_test_id("signin-error")
    err.wait_for()
    assert "not accepted" in err.inner_text()
    assert page.page.get_by_test_id("whoami").count() == 0
    key = create_key(bench.graph, "investigator", "leaver")
    signed_in(page, bench, key.key)
    revoke_key(bench.graph, key.key_id)
    search(page.page, "ACCOUNT", flagged_account(bench)[1])  # the next request meets the 401
    err.wait_for()
    assert "not accepted" in err.inner_text()


def test_sign_out_forgets_the_key(bench: Workbench, page: Page) -> None:
    pg = signed_in(page, bench, bench.keys.investigator)
    assert pg.evaluate("() => Object.values(sessionStorage).join(' ')").count("rsk_") == 1
    pg.get_by_test_id("signout").click()
    pg.get_by_test_id("api-key").wait_for()
    assert "rsk_" not in pg.evaluate("() => Object.values(sessionStorage).join(' ')")
    assert all("rsk_" not in u for u in page.requests), "the key never goes into a URL"


def test_an_unknown_entity_and_a_frozen_neo4j_are_readable_messages(
    bench: Workbench, page: Page
) -> None:
    pg = signed_in(page, bench, bench.keys.investigator)
    search(pg, "DEVICE", "no-such-device")
    banner = pg.get_by_test_id("error")
    pg.wait_for_function(
        "() => document.querySelector('[data-testid=error]')?.innerText.includes('no-such-device')"
    )
    account = flagged_account(bench)[1]
    instance = bench.neo4j.status()
    assert instance is not None
    os.kill(instance.pid, signal.SIGSTOP)
    try:
        search(pg, "ACCOUNT", account)
        pg.wait_for_function(
            "() => /503|database/.test(document.querySelector('[data-testid=error]')?.innerText)"
        )
        assert "Traceback" not in banner.inner_text()
    finally:
        os.kill(instance.pid, signal.SIGCONT)
    # Nothing else broke: once Neo4j is back the same page searches again.
    deadline = time.monotonic() + WAIT_MS / 1000
    while httpx.get(bench.base + "/healthz", timeout=30).status_code != 200:
        assert time.monotonic() < deadline, "the API did not recover after Neo4j did"
        time.sleep(0.2)
    search(pg, "ACCOUNT", account)
    wait_for_graph(pg, {n["key"] for n in nodes_of(bench, "ACCOUNT", account, 2)})


def test_graphiql_is_served_from_the_package(bench: Workbench, page: Page) -> None:
    pg = page.page
    pg.goto(f"{bench.base}/graphql")
    pg.locator(".graphiql-container").wait_for()
    assert page.requests, "the page loaded its assets"
    assert all(urlsplit(u).path.startswith(("/graphql", "/static/")) for u in page.requests)


REASONS = """
query R { clusters(minScore: 0, first: 200) { edges { node { id reasons
  sharedIdentifiers(first: 100) { kind id } } } } }
"""


def test_the_server_masks_personal_values_quoted_in_cluster_reasons(bench: Workbench) -> None:
    """The reasons are the detector's sentences and quote identifiers; a key without READ_PII
    gets them masked by the server (not only on the page), as every other field masks them."""
    full = bench.api(REASONS)["clusters"]["edges"]
    seen = bench.server.gql(REASONS, bench.keys.risk_engine)["data"]["clusters"]["edges"]
    assert [e["node"]["id"] for e in seen] == [e["node"]["id"] for e in full]
    raw = {s["id"] for e in full for s in e["node"]["sharedIdentifiers"] if s["kind"] in PII_KINDS}
    quoted = [v for e in full for r in e["node"]["reasons"] for v in raw if v in r]
    assert quoted, "the investigator's reasons quote personal values (else this tests nothing)"
    leaked = [v for e in seen for r in e["node"]["reasons"] for v in raw if v in r]
    assert not leaked, leaked[:3]
    for a, b in zip(full, seen, strict=True):  # the same sentences, values masked
        assert len(a["node"]["reasons"]) == len(b["node"]["reasons"])


def test_a_ring_verdict_and_a_case_note_made_in_the_page_are_stored(
    bench: Workbench, page: Page
) -> None:
    pg = signed_in(page, bench, bench.keys.investigator)
    cluster, _ = flagged_account(bench)
    ring = bench.api("query C($id: ID!) { cluster(id: $id) { ringId } }", {"id": cluster})
    ring_id = ring["cluster"]["ringId"]
    pg.locator(f'[data-testid=queue-row][data-cluster-id="{cluster}"]').click()
    pg.get_by_test_id("cluster-reasons").wait_for()
    stamp = time.time_ns()
    pg.get_by_test_id("verdict-select").select_option("LEGIT")
    pg.get_by_test_id("verdict-note").fill(f"a family, checked by phone {stamp}")
    pg.get_by_test_id("verdict-save").click()
    pg.wait_for_function(
        "() => document.querySelector('[data-testid=verdict-saved]')?.innerText.includes('LEGIT')"
    )
    pg.get_by_test_id("note-text").fill(f"called the merchant {stamp}")
    pg.get_by_test_id("note-save").click()
    pg.wait_for_function(
        "s => document.querySelector('[data-testid=notes]')?.innerText.includes(s)",
        arg=f"called the merchant {stamp}",
    )
    verdicts = bench.graph.read(
        "MATCH (v:Verdict {target_kind: 'ring', target_id: $ring}) WHERE v.note ENDS WITH $s "
        "RETURN v.verdict AS verdict, v.author AS author",
        {"ring": ring_id, "s": str(stamp)},
    )
    assert [(r["verdict"], r["author"]) for r in verdicts] == [("legit", "alice")]
    notes = bench.graph.read(
        "MATCH (n:CaseNote {ring_id: $ring}) WHERE n.text ENDS WITH $s RETURN n.author AS author",
        {"ring": ring_id, "s": str(stamp)},
    )
    assert [r["author"] for r in notes] == ["alice"]
