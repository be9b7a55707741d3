"""``screen(event)`` and ``recordEvents`` end to end: a generated graph, a real rebuild that
trains the model, a live server, HTTP calls.

The screen of an event must equal the score the rebuild's own scoring gives the account once
the event is ingested (same model), bad values are refused by field while the rest is screened,
recording is idempotent by event id and moves velocity at once, PII is masked by role, and every
screen is audited with its event id.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ringscope.api.client import RingScopeClient, ScreenEventData
from ringscope.api.service import screen_event
from ringscope.graph import Graph, connect, cypher, init_schema
from ringscope.ingest import load
from ringscope.ingest.events import Event
from ringscope.jobs.rebuild import rebuild
from ringscope.models import risk
from ringscope.models.artefacts import current_model, load_model
from ringscope.models.builds import current_build, current_build_id, model_scores, ring_priors
from ringscope.models.explain import explain
from ringscope.models.features import incidence
from ringscope.models.projection import Projection, read_local_projection, read_projection
from ringscope.models.risk import AccountRiskModel
from ringscope.models.screen import ScreenRecord, warm
from ringscope.models.screen_table import load_table
from ringscope.models.store import ModelStore
from ringscope.models.verdicts import apply_verdicts
from ringscope.settings import Settings
from ringscope.synth.generate import generate
from tests.api_support import Keys, LiveServer, api_settings, make_keys

pytestmark = pytest.mark.neo4j

ACCOUNTS = 2_000

# The exact operation of issue #17: a risk engine's client depends on it.
SCREEN = """
query Screen($event: ScreenEvent!) {
  screen(event: $event) {
    score            # calibrated probability that the event's account is fraud, 0..1
    buildId
    modelVersion
    reasons          # sentences an analyst reads, as in cluster reasons
    linkedRings { ringId score via { kind id } }   # flagged rings reached through non-hub identifiers
    hubsIgnored { kind id degree }
  }
}
"""  # noqa: E501 (verbatim from the issue)
SCREEN_ALL = """
query Screen($event: ScreenEvent!) {
  screen(event: $event) {
    eventId accountId knownAccount score buildId modelVersion model flagThreshold reasons
    linkedRings { ringId clusterId score hops via { kind id masked members } }
    hubsIgnored { kind id masked degree }
    velocity { kind id masked accounts lastHour lastDay lastWeek }
    invalidFields { eventId field reason }
    accountsRead
  }
}
"""
RECORD = """
mutation Record($events: [ScreenEvent!]!) {
  recordEvents(events: $events) {
    recorded duplicates rowsWritten invalidFields { eventId field reason }
  }
}
"""


@pytest.fixture(scope="module")
def world(
    neo4j_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Graph, Settings, Keys, dict[str, Any]]]:
    root = tmp_path_factory.mktemp("screening")
    generate(root / "data", root / "truth", ACCOUNTS, 3)
    # The hand-set cluster prior: these tests follow the ring priors (the previous build's
    # label-free cluster scores) from build to model to screen, and on this 2,000-account world
    # the model trained on the learned prior's sharper scores did not split on them at all (no
    # ring feature had gain), which leaves nothing to follow. Which prior is better is measured
    # across worlds (docs/detection.md), not here.
    settings = api_settings(
        neo4j_settings,
        root,
        model_dir=root / "models",
        model_use_gnn=False,
        model_ring_prior=True,
        cluster_prior="hand-set",
    )
    with connect(settings) as g:
        g.write(cypher.DELETE_ALL)
        init_schema(g)
        load(root / "data", g, settings, report_dir=root / "report", progress=False)
        # A build before the one that trains: its clusters are the model's ring priors
        # (models.features.ring_features), which every screen below then reads.
        rebuild(g, settings, use_model=False)
        rebuild(g, settings, retrain=True)
        info = current_build(g)
        assert info is not None
        facts = _facts(g, info.id, int(info.metrics["counts"]["data_now"]))
        yield g, settings, make_keys(g), facts


def _facts(g: Graph, build_id: str, now: int) -> dict[str, Any]:
    """What the tests screen against: a flagged ring member, one of its devices no other ring
    member shares (so a new account on it is linked through it alone), one of its phones,
    its payee, a hub IP (above the IP degree cap), and the data's "now"."""
    member = g.read(
        "MATCH (c:Cluster) WHERE c.build_id = $b AND c.score >= 0.6 "
        "MATCH (a:Account)-[:MEMBER_OF]->(c) MATCH (a)-[:HAS_PHONE]->(p:Phone) "
        "MATCH (a)-[:USES_DEVICE]->(d:Device) "
        "RETURN a.id AS account, c.ring_id AS ring, d.id AS device, p.id AS phone "
        "ORDER BY c.score DESC, a.id LIMIT 1",
        {"b": build_id},
    )[0]
    payee = g.read(
        "MATCH (a:Account {id: $a})-[r:PAID]->(p:Payee) RETURN p.id AS payee, r.currency AS cur "
        "ORDER BY p.id LIMIT 1",
        {"a": member["account"]},
    )
    hub = g.read(
        "MATCH (x:IP) WITH x, COUNT { (x)<-[:USES_IP]-() } AS n WHERE n > 200 "
        "RETURN x.id AS ip, n ORDER BY n DESC LIMIT 1"
    )
    return {
        "member": member["account"],
        "ring": member["ring"],
        "device": member["device"],
        "phone": member["phone"],
        "payee": payee[0]["payee"] if payee else None,
        "currency": payee[0]["cur"] if payee else None,
        "hub_ip": hub[0]["ip"] if hub else None,
        "hub_degree": int(hub[0]["n"]) if hub else 0,
        "now": datetime.fromtimestamp(now, UTC),
    }


@pytest.fixture(scope="module")
def server(world: Any) -> Iterator[LiveServer]:
    with LiveServer(world[1]) as srv:
        yield srv


def _event(event_id: str, account: str, at: datetime, **kw: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "eventId": event_id,
        "accountId": account,
        "at": at.isoformat(),
        "type": kw.pop("type", "SIGNUP"),
    }
    out.update(kw)
    return out


def _screen(server: LiveServer, key: str, event: dict[str, Any], query: str = SCREEN_ALL) -> Any:
    body = server.gql(query, key, {"event": event})
    assert "errors" not in body, body
    return body["data"]["screen"]


def _record(server: LiveServer, key: str, events: list[dict[str, Any]]) -> Any:
    body = server.gql(RECORD, key, {"events": events})
    assert "errors" not in body, body
    return body["data"]["recordEvents"]


def _rebuild_score(g: Graph, settings: Settings, account: str) -> float:
    """The account's score as the rebuild's scoring step computes it (the same model): the
    whole projection, verdicts applied, ``predict_proba``."""
    path = current_model(settings.models_dir)
    assert path is not None
    proj = read_projection(g)
    apply_verdicts(g, proj)
    proj.ring = _ring_priors(g, proj)
    return float(load_model(path).predict_proba(proj)[proj.ids.index(account)])


def _ring_priors(g: Graph, proj: Projection) -> np.ndarray[Any, np.dtype[np.float64]]:
    """The current build's ring priors, as the next rebuild reads them (jobs.rebuild)."""
    build = current_build_id(g)
    assert build is not None
    priors = ring_priors(g, build)
    return np.asarray([priors.get(a, 0.0) for a in proj.ids], dtype=np.float64)


def test_explain_reads_the_ring_priors_its_build_scored_with(world: Any) -> None:
    """``explain`` gives the score the build published, for the accounts whose score the ring
    priors move most: it reads the priors of the build before the current one, as that build's
    scoring did (the current build's, which the next rebuild and screens read, may differ)."""
    g, settings, _, _ = world
    info = current_build(g)
    assert info is not None and info.previous_build is not None
    path = current_model(settings.models_dir)
    assert path is not None
    model = load_model(path)
    proj = read_projection(g)
    apply_verdicts(g, proj)
    priors = ring_priors(g, info.previous_build)
    proj.ring = np.asarray([priors.get(a, 0.0) for a in proj.ids], dtype=np.float64)
    moved = np.abs(model.predict_proba(proj) - model.predict_proba(replace(proj, ring=None)))
    picks = [proj.ids[i] for i in np.argsort(-moved)[:3].tolist()]
    assert moved.max() > 1e-3
    _, published = model_scores(g)
    for account in picks:
        rec = explain(g, ModelStore(settings.models_dir), account, top=3, budget=5_000)
        assert rec is not None
        assert rec.score == pytest.approx(published[account], abs=1e-6), account


def test_the_exact_screen_operation_works(server: LiveServer, world: Any) -> None:
    g, _, keys, f = world
    event = _event("exact-1", "NEW-EXACT-1", f["now"], devices=[f["device"]], phones=["x"])
    s = _screen(server, keys.risk_engine, event, SCREEN)
    info = current_build(g)
    assert info is not None
    assert 0.0 <= s["score"] <= 1.0
    assert s["buildId"] == info.id and s["modelVersion"] == info.model_version
    assert s["reasons"] and all(isinstance(r, str) and r for r in s["reasons"])
    assert [r["ringId"] for r in s["linkedRings"]] == [f["ring"]]
    assert s["linkedRings"][0]["via"] == [{"kind": "DEVICE", "id": f["device"]}]
    assert s["hubsIgnored"] == []
    # Nothing was written: the account and the bad phone's event are not in the graph.
    assert not g.read("MATCH (a:Account {id: 'NEW-EXACT-1'}) RETURN a")


CASES = [
    "new account on ring device",
    "payment",
    "payment, new currency",
    "old login",
    "hub",
    "verdicts since the rebuild",
    "only a hub",
    "an emulator and a virtual number, new",
    "a known device turns emulator",
]


@pytest.mark.parametrize("case", CASES)
def test_screen_equals_the_rebuild_score(
    server: LiveServer, world: Any, case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Screen, record, then score the whole graph as the rebuild does: the same number."""
    g, settings, keys, f = world
    seen: list[Projection] = []  # what the screen scored (the server runs in this process)
    table_rows: list[int] = []  # neighbours whose features came from the build's table
    assess = AccountRiskModel.assess

    def spy(
        self: AccountRiskModel, proj: Projection, account_id: str, top: int = 3, rows: Any = None
    ) -> Any:
        seen.append(proj)
        table_rows.append(len(rows or ()))
        return assess(self, proj, account_id, top, rows)

    monkeypatch.setattr(AccountRiskModel, "assess", spy)
    at = f["now"] + timedelta(hours=1 + CASES.index(case))
    if case == "new account on ring device":
        # Velocity included: a first account on a new device an hour before, recorded.
        dev = "DEV-EQ-FARM"
        _record(server, keys.risk_engine, [_event("eq-0", "NEW-EQ-0", at - timedelta(minutes=30),
                                                  devices=[dev], ips=["10.9.9.9"])])  # fmt: skip
        event = _event("eq-1", "NEW-EQ-1", at, devices=[f["device"], dev], ips=["10.9.9.9"],
                       emails=["Someone@Example.COM"], kycLevel=1)  # fmt: skip
    elif case == "payment":
        assert f["payee"] is not None
        event = _event("eq-2", f["member"], at, type="PAYMENT", payee=f["payee"],
                       amount="300.00", currency=f["currency"], ips=["10.9.9.8"])  # fmt: skip
    elif case == "payment, new currency":  # a second PAID to the payee: its size grows by one
        assert f["payee"] is not None
        event = _event("eq-5", f["member"], at, type="PAYMENT", payee=f["payee"],
                       amount="20.00", currency="XTS")  # fmt: skip
    elif case == "old login":  # an event older than the data's "now": "now" stays
        event = _event("eq-3", f["member"], f["now"] - timedelta(days=30), type="LOGIN",
                       devices=["DEV-EQ-OLD"])  # fmt: skip
    elif case == "hub":
        if f["hub_ip"] is None:
            pytest.skip("this world has no IP above its degree cap")
        event = _event("eq-4", "NEW-EQ-4", at, ips=[f["hub_ip"]], phones=[f["phone"]])
    elif case == "only a hub":  # every edge of the account masked: an empty incidence
        if f["hub_ip"] is None:
            pytest.skip("this world has no IP above its degree cap")
        event = _event("eq-7", "NEW-EQ-7", at, ips=[f["hub_ip"]])
    elif case == "an emulator and a virtual number, new":  # the caller's fingerprint says so
        event = _event("eq-8", "NEW-EQ-8", at, devices=["DEV-EQ-EMU"], phones=["+8613700001111"],
                       deviceDetails=[{"deviceId": "DEV-EQ-EMU", "os": "android",
                                       "isEmulator": True}],
                       phoneDetails=[{"phone": "137 0000 1111", "isVirtual": True}])  # fmt: skip
        plain = {k: v for k, v in event.items() if not k.endswith("Details")}
        _screen(server, keys.risk_engine, plain)
        unsaid = seen[-1]
    elif case == "a known device turns emulator":
        # A shared device the graph holds as no emulator: the detail changes the features of
        # every account on it, whose table rows the screen then does not use.
        shared = g.read(
            "MATCH (d:Device) WHERE coalesce(d.is_emulator, false) = false "
            "WITH d, COUNT { (d)<-[:USES_DEVICE]-() } AS n WHERE 3 <= n <= 8 "
            "RETURN d.id AS id ORDER BY n DESC, id LIMIT 1"
        )[0]["id"]
        event = _event("eq-9", "NEW-EQ-9", at, devices=[shared],
                       deviceDetails=[{"deviceId": shared, "isEmulator": True}])  # fmt: skip
    else:
        # Investigators confirm a ring (a ring verdict: linked from its members) and some
        # neighbours of an account the model is unsure of (account verdicts): the screen reads
        # them for the accounts it reads, as the rebuild does for all.
        proj = read_projection(g)
        apply_verdicts(g, proj)
        path = current_model(settings.models_dir)
        assert path is not None
        p = load_model(path).predict_proba(proj)
        unsure = [proj.ids[i] for i in np.argsort(np.abs(p - 0.5)) if proj.label[i] == -1]
        mates: list[str] = []
        for account in unsure[:50]:
            mates = [
                r["id"]
                for r in g.read(
                    "MATCH (a:Account {id: $id})-->(x) WHERE COUNT { (x)<--(:Account) } <= 200 "
                    "MATCH (x)<--(b:Account) WHERE b.label IS NULL AND b.id <> $id "
                    "RETURN DISTINCT b.id AS id ORDER BY id LIMIT 3",
                    {"id": account},
                )
            ]
            if mates:
                break
        assert mates
        event = _event("eq-6", account, at, type="LOGIN", ips=["10.9.9.6"])
        _screen(server, keys.risk_engine, event)  # screening writes nothing
        assert [seen[-1].label[seen[-1].ids.index(m)] for m in mates] == [-1] * len(mates)
        body = server.gql(
            'mutation($c: ID!) { labelCluster(clusterId: $c, verdict: FRAUD, note: "ring") '
            "{ id } }",
            keys.investigator,
            {"c": f["ring"]},
        )
        assert "errors" not in body, body
        for m in mates:
            body = server.gql(
                'mutation($a: ID!) { labelAccount(accountId: $a, verdict: FRAUD, note: "x") '
                "{ id } }",
                keys.investigator,
                {"a": m},
            )
            assert "errors" not in body, body
        linked = g.read(
            "MATCH (m:Account)-[:HAS_VERDICT]->(:Verdict {target_kind: 'ring', target_id: $r}) "
            "RETURN count(DISTINCT m) AS n",
            {"r": f["ring"]},
        )
        assert linked[0]["n"] >= 2  # the ring verdict is linked from its members
    s = _screen(server, keys.risk_engine, event)
    assert _record(server, keys.risk_engine, [event])["recorded"] == [event["eventId"]]
    assert s["score"] == pytest.approx(_rebuild_score(g, settings, event["accountId"]), abs=1e-6)
    if case == "new account on ring device":
        assert s["knownAccount"] is False
        assert table_rows[-1] > 0  # the ring member's device mates: rows of the build's table
        # The ring member's prior came with it: its flagged cluster's label-free score.
        near = seen[-1]
        assert near.ring is not None
        prior = near.ring[near.ids.index(f["member"])]
        assert prior > 0 and prior == _ring_priors(g, near)[near.ids.index(f["member"])]
        farm = next(v for v in s["velocity"] if v["id"] == "DEV-EQ-FARM")
        assert (farm["accounts"], farm["lastHour"]) == (2, 2)
    if case == "an emulator and a virtual number, new":
        for proj, said in ((unsaid, False), (seen[-1], True)):  # what the fingerprint says
            k = proj.ids.index("NEW-EQ-8")
            for kind in ("device", "phone"):
                e = proj.kinds[kind]
                assert e.flag[e.ident[e.acc == k]].tolist() == [said], kind
        node = g.read("MATCH (d:Device {id: 'DEV-EQ-EMU'}) RETURN d.os AS os, d.is_emulator AS e")
        assert (node[0]["os"], node[0]["e"]) == ("android", True)  # recorded as a file's row
        phone = g.read("MATCH (p:Phone {id: '+8613700001111'}) RETURN p.is_virtual AS v")
        assert phone[0]["v"] is True
    if case == "a known device turns emulator":
        assert table_rows[-1] == 0  # every neighbour read whole
        assert seen[-1].n > 3
    if case == "verdicts since the rebuild":  # the screen read them as labels
        assert [seen[-1].label[seen[-1].ids.index(m)] for m in mates] == [1] * len(mates)
    if case == "hub":
        assert s["hubsIgnored"][0]["degree"] == f["hub_degree"] + 1
        assert s["hubsIgnored"][0]["masked"] is True  # an IP is PII for the risk engine
    if case == "only a hub":  # it answered (an IndexError before session 33) and says why
        assert [h["kind"] for h in s["hubsIgnored"]] == ["IP"]
        assert s["hubsIgnored"][0]["degree"] > f["hub_degree"]
        assert s["linkedRings"] == []


def test_the_identifier_lists_take_two_shapes_and_start_up_plans_both(
    world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SCREEN_START's identifier lists are padded to one of two fixed lengths (Neo4j plans a
    query again for each new combination of list sizes, 1-5 s a time): every list 10 long for
    an event whose lists all hold fewer than 10 values, 32 long otherwise; the start-up warm-up
    screens one event of each shape, so both plans exist before the risk engine's first call."""
    from ringscope.api.service import warm_screening
    from ringscope.graph import connection

    g, settings, _, f = world
    shapes: list[set[int]] = []
    read = connection._TxReads.read

    def spy(self: Any, text: Any, params: Any = None) -> Any:
        if text is cypher.SCREEN_START:
            shapes.append({len(v) for k, v in params.items() if k.startswith("ids_")})
        return read(self, text, params)

    monkeypatch.setattr(connection._TxReads, "read", spy)
    models = ModelStore(settings.models_dir)
    warm_screening(g, models, settings.default_region)
    assert shapes == [{10}, {32}]
    shapes.clear()
    at = f["now"] + timedelta(minutes=5)
    for devices in (3, 9, 10, 20):
        named = {"device": [f"DEV-PAD-{i}" for i in range(devices)], "phone": [f["phone"]]}
        event = Event(f"pad-{devices}", f"NEW-PAD-{devices}", at, "SIGNUP", named)
        screen_event(g, models, event, region=settings.default_region, budget=0)
    assert shapes == [{10}, {10}, {32}, {32}]


def test_the_model_reads_the_rings_of_the_build_before(world: Any) -> None:
    """The account model trained on the ring priors of the build before it: it splits on them,
    and hiding them moves the scores of the accounts around flagged clusters, the ring
    member's device mates among them (the screens above read the same priors)."""
    g, settings, _, f = world
    path = current_model(settings.models_dir)
    assert path is not None
    model = load_model(path)
    assert model.config.ring_prior is True and model.booster is not None
    names = risk.tree_feature_names()
    gain = model.booster.feature_importance("gain")
    assert gain[names.index("ring_nbr_max")] + gain[names.index("ring_nbr_log")] > 0
    proj = read_projection(g)
    apply_verdicts(g, proj)
    proj.ring = _ring_priors(g, proj)
    assert proj.ring[proj.ids.index(f["member"])] > 0
    with_priors = model.predict_proba(proj)
    without = model.predict_proba(replace(proj, ring=None))
    moved = np.flatnonzero(np.abs(with_priors - without) > 1e-9)
    assert len(moved) > 0
    # Only accounts that share a (non-hub) identifier with a clustered account can move.
    near = incidence(proj, max_degree=model.config.hub_degree)
    reach = np.asarray((near @ (near.T @ (proj.ring > 0).astype(np.float64))) > 0).ravel()
    assert reach[moved].all()


@pytest.fixture
def tree_rows(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The rows the tree scores, one per screen, in order."""
    rows: list[Any] = []
    tree_row = risk._tree_row

    def spy(*args: Any) -> Any:
        rows.append(tree_row(*args))
        return rows[-1]

    monkeypatch.setattr(risk, "_tree_row", spy)
    return rows


def _fast_and_slow(
    g: Graph, settings: Settings, models: ModelStore, rows: list[Any], event: Event
) -> tuple[ScreenRecord, ScreenRecord]:
    """The event screened with the build's table and by reading every neighbour's edges: the
    tree's rows of the two are equal."""
    region = settings.default_region
    fast, _ = screen_event(g, models, event, region=region, budget=0, use_table=True)
    slow, _ = screen_event(g, models, event, region=region, budget=0, use_table=False)
    np.testing.assert_allclose(rows[-2], rows[-1], rtol=1e-6, atol=1e-6)
    assert slow.table_rows == 0
    return fast, slow


def test_the_build_table_scores_as_reading_every_edge(
    server: LiveServer, world: Any, tree_rows: list[Any]
) -> None:
    """Screens that take the neighbours' features from the build's table (models.screen_table)
    give the tree the row, and so the score, of screens that read every neighbour's edges, with
    the event's growth of an identifier applied (sign-ups on devices of one to five accounts: a
    lone account's device becomes shared); a neighbour recorded since the build is read from its
    edges instead, and one whose hub grew keeps its row."""
    g, settings, keys, f = world
    warm(g)  # the server's start-up plans the stale path's read: it runs on an empty list
    models = ModelStore(settings.models_dir)
    groups = [
        r
        for sizes in ([1], [2, 3, 4, 5])
        for r in g.read(
            "MATCH (d:Device)<-[:USES_DEVICE]-(a:Account) WHERE NOT a.id STARTS WITH 'NEW-' "
            "WITH d, collect(a.id) AS accs WHERE size(accs) IN $sizes "
            "RETURN d.id AS device, accs ORDER BY d.id LIMIT 15",
            {"sizes": sizes},
        )
    ]
    assert {len(r["accs"]) for r in groups} >= {1, 2}
    at = f["now"] + timedelta(hours=3)

    def both(event: Event) -> tuple[ScreenRecord, ScreenRecord]:
        return _fast_and_slow(g, settings, models, tree_rows, event)

    used = 0
    for i, r in enumerate(groups):
        new = Event(f"tb-{i}", f"NEW-TB-{i}", at, "SIGNUP", {"device": [r["device"]]})
        old = Event(f"tb-l{i}", r["accs"][0], at, "LOGIN", {"ip": ["10.7.7.7"]})
        for event in (new, old):
            fast, slow = both(event)
            assert slow.table_rows == 0
            assert fast.score == pytest.approx(slow.score, abs=1e-6), event
            used += fast.table_rows
    assert used > 0
    # One of a device's accounts records an event elsewhere: its row is stale, so the screen
    # reads its edges, and the score is still the one that reads everything.
    device, (stale, *_) = next((r["device"], r["accs"]) for r in groups if len(r["accs"]) >= 2)
    probe = Event("tb-probe", "NEW-TB-PROBE", at, "SIGNUP", {"device": [device]})
    before, _ = both(probe)
    _record(server, keys.risk_engine, [_event("tb-stale", stale, f["now"], type="LOGIN",
                                              devices=["DEV-TB-ELSEWHERE"])])  # fmt: skip
    fast, slow = both(probe)
    assert fast.table_rows == before.table_rows - 1
    assert fast.score == pytest.approx(slow.score, abs=1e-6)


def test_writers_stamp_what_a_table_row_reads(
    server: LiveServer, world: Any, tree_rows: list[Any]
) -> None:
    """A table row is used while its account carries no stamp from after the build's read
    (graph.cypher, "What a screen's table rows depend on"; the loader stamped every account,
    before the build). A new account on a neighbour's
    phone of one account (small: the phone becomes shared) stamps the neighbour, whose edges are
    then read; a new account behind a neighbour's IP of more than MARK_DEGREE accounts stamps
    nobody, and the screen reads the IP's new size; a device turned emulator by an ingested row
    stamps its accounts. Each time the screen with the table scores as reading every edge."""
    g, settings, keys, f = world
    models = ModelStore(settings.models_dir)
    at = f["now"] + timedelta(hours=4)
    big = int(cypher.MARK_DEGREE)
    build = current_build_id(g)
    assert build is not None
    table = load_table(settings.models_dir, build)
    assert table is not None
    since = table.since_ms  # the loader stamped every account, before the build's read

    def device_with(pattern: str, where: str) -> dict[str, Any]:
        """A device of 2-5 build-time accounts, no emulator, none stamped, one of which
        (``holder``) matches ``pattern`` (from ``a``, binding ``y``) where ``where`` holds."""
        rows = g.read(
            "MATCH (d:Device)<-[:USES_DEVICE]-(m:Account) WHERE NOT m.id STARTS WITH 'NEW-' "
            "AND coalesce(d.is_emulator, false) = false "
            "WITH d, collect(m) AS ms WHERE 2 <= size(ms) <= 5 "
            "AND all(m IN ms WHERE m.moved_at.epochMillis < $since) "
            "UNWIND ms AS a "
            f"MATCH {pattern} WHERE {where} "
            "RETURN d.id AS device, a.id AS holder, y.id AS y, size(ms) AS n "
            "ORDER BY d.id LIMIT 1",
            {"since": since},
        )
        assert rows, where
        return dict(rows[0])

    def probe(name: str, device: str) -> Event:
        return Event(f"st-{name}", f"NEW-ST-{name.upper()}", at, "SIGNUP", {"device": [device]})

    def stamped(account: str) -> bool:
        rows = g.read("MATCH (a:Account {id: $id}) RETURN a.moved_at.epochMillis >= $t AS s",
                      {"id": account, "t": since})  # fmt: skip
        return bool(rows[0]["s"])

    def both(event: Event) -> ScreenRecord:
        fast, slow = _fast_and_slow(g, settings, models, tree_rows, event)
        assert fast.score == pytest.approx(slow.score, abs=1e-6)
        return fast

    # A phone of one account gains a second: its holder's "shared phones" moves.
    lone = device_with("(a)-[:HAS_PHONE]->(y:Phone)", "COUNT { (y)<-[:HAS_PHONE]-() } = 1")
    # (a phone of one account: no device mate on it)
    before = both(probe("phone", lone["device"]))
    assert before.table_rows == lone["n"]  # every device mate's row, as built
    _record(server, keys.risk_engine, [_event("st-join-phone", "NEW-ST-JOINER-1", f["now"],
                                              phones=[lone["y"]])])  # fmt: skip
    assert stamped(lone["holder"])
    assert both(probe("phone-2", lone["device"])).table_rows == lone["n"] - 1
    # An IP bigger than the stamped size gains an account: nobody is stamped, its size is read.
    wide = device_with(
        "(a)-[:USES_IP]->(y:IP)",
        f"{big} < COUNT {{ (y)<-[:USES_IP]-() }} <= 400 AND all(z IN [(a)-[:USES_IP]->(z) | z] "
        "WHERE COUNT { (z)<-[:USES_IP]-() } <= COUNT { (y)<-[:USES_IP]-() })",  # its busiest
    )
    before = both(probe("ip", wide["device"]))
    _record(server, keys.risk_engine, [_event("st-join-ip", "NEW-ST-JOINER-2", f["now"],
                                              ips=[wide["y"]])])  # fmt: skip
    assert not stamped(wide["holder"])
    assert both(probe("ip-2", wide["device"])).table_rows == before.table_rows
    # A device turned emulator (an ingested device row): its accounts are stamped.
    farm = device_with("(a)-[:HAS_PHONE]->(y:Phone)", "true")
    g.write(cypher.INGEST_NODES["Device"], {
        "batch_id": "st-emulator", "file_id": "st", "batch_no": 0,
        "rows": [{"id": farm["device"], "props": {"is_emulator": True}, "ts": {}}],
    })  # fmt: skip
    assert stamped(farm["holder"])
    assert both(probe("emulator", farm["device"])).table_rows == 0


def test_reads_that_pass_node_ids_share_one_transaction(
    world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A screen's reads and an explanation's local reads pass internal node ids from one
    statement to the next, and Neo4j promises an id's meaning only within one transaction: they
    run in one (``Graph.reads``), never as ``Graph.read`` calls of their own."""
    g, settings, _, f = world
    passing = {
        cypher.SCREEN_START, cypher.SCREEN_NEIGHBOURHOOD, cypher.SCREEN_TABLE_NEIGHBOURHOOD,
        cypher.SCREEN_TABLE_LINKS, cypher.LOCAL_ACCOUNT, cypher.LOCAL_ACCOUNT_IDENTIFIERS,
        cypher.LOCAL_ACCOUNTS_OF, cypher.LOCAL_LINKS, cypher.LOCAL_RING_PRIORS,
    }  # fmt: skip
    real_read, real_reads = g.read, g.reads
    opened = 0

    def read(text: Any, params: Any = None) -> Any:
        assert text not in passing, "a read that passes node ids, in a transaction of its own"
        return real_read(text, params)

    @contextmanager
    def reads() -> Iterator[Any]:
        nonlocal opened
        opened += 1
        with real_reads() as r:
            yield r

    monkeypatch.setattr(g, "read", read)
    monkeypatch.setattr(g, "reads", reads)
    models = ModelStore(settings.models_dir)
    at = f["now"] + timedelta(hours=1)
    for i, use_table in enumerate((True, False)):
        event = Event(f"one-tx-{i}", f["member"], at, "LOGIN", {"device": [f["device"]]})
        record, _ = screen_event(
            g, models, event, region=settings.default_region, budget=0, use_table=use_table
        )
        assert record.known_account and record.accounts_read > 1
    build = current_build_id(g)
    local = read_local_projection(
        g, f["member"], data_now=int(f["now"].timestamp()), ring_build=build
    )
    assert local is not None and local.n > 1 and local.ring is not None
    assert opened == 3


def test_bad_values_are_refused_by_field_and_the_rest_is_screened(
    server: LiveServer, world: Any
) -> None:
    g, _, keys, f = world
    event = _event(
        "bad-1", "NEW-BAD-1", f["now"], devices=[f["device"], "x" * 600],
        phones=["+44 20 7946 0958", "not a phone"], bankCards=["4111\x07"], payee="P-BAD",
        amount="12.3.4", kycLevel=9,
    )  # fmt: skip
    s = _screen(server, keys.investigator, event)
    refused = {(i["field"], i["reason"]) for i in s["invalidFields"]}
    assert refused == {
        ("devices[1]", "key too long"),
        ("phones[1]", "unparseable phone"),
        ("bankCards[0]", "control character"),
        ("amount", "unparseable amount"),
        ("kycLevel", "invalid value"),
    }
    assert {(v["kind"], v["id"]) for v in s["velocity"]} == {
        ("DEVICE", f["device"]),
        ("PHONE", "+442079460958"),  # normalised as ingest normalises it
    }
    assert f["ring"] in [r["ringId"] for r in s["linkedRings"]]
    assert any("phones[1] was refused (unparseable phone)" in r for r in s["reasons"])
    # An event that cannot be placed: a named error, no traceback, nothing screened.
    for field, bad in (("at", "2300-01-01T00:00:00+00:00"), ("accountId", ""),
                       ("eventId", " "), ("accountId", "a\x00b")):  # fmt: skip
        body = server.gql(SCREEN, keys.investigator, {"event": {**event, field: bad}})
        assert body["data"] is None
        message = body["errors"][0]["message"]
        assert f"event: {field}:" in message and "Traceback" not in message, message
    body = server.gql(SCREEN, keys.investigator, {"event": {**event, "devices": ["d"] * 21}})
    assert "at most 20 values" in body["errors"][0]["message"]
    body = server.gql(SCREEN, keys.investigator, {"event": {**event, "type": "REFUND"}})
    assert "REFUND" in body["errors"][0]["message"]
    assert not g.read("MATCH (a:Account {id: 'NEW-BAD-1'}) RETURN a")


def _rel_state(g: Graph, account: str) -> list[tuple[str, str, int]]:
    rows = g.read(
        "MATCH (a:Account {id: $a})-[r]->(x) WHERE type(r) <> 'MEMBER_OF' "
        "RETURN type(r) AS t, x.id AS x, r.count AS n ORDER BY t, x",
        {"a": account},
    )
    return [(r["t"], r["x"], r["n"]) for r in rows]


def test_recording_is_idempotent_by_event_id(server: LiveServer, world: Any) -> None:
    g, _, keys, f = world
    e1 = _event("idem-1", "NEW-IDEM", f["now"], devices=["DEV-IDEM"], payee="P-IDEM",
                amount="100.00", currency="CNY")  # fmt: skip
    e2 = _event("idem-2", "NEW-IDEM", f["now"] + timedelta(minutes=1), devices=["DEV-IDEM"])
    first = _record(server, keys.risk_engine, [e1, e2, e1])
    assert first["recorded"] == ["idem-1", "idem-2"] and first["duplicates"] == ["idem-1"]
    # The loader's ledger: an entry per event, and one per table the events wrote rows to (the
    # statements' guard), with its row count; none for a table without rows.
    digest = hashlib.sha256(b"idem-1\nidem-2").hexdigest()[:24]
    ledger = {
        r["id"]: r["rows"]
        for r in g.read(
            "MATCH (b:IngestBatch) WHERE b.id IN ['event:idem-1', 'event:idem-2'] "
            "OR b.id STARTS WITH $prefix RETURN b.id AS id, b.rows AS rows",
            {"prefix": f"events:{digest}:"},
        )
    }
    assert ledger == {
        "event:idem-1": 1,
        "event:idem-2": 1,
        f"events:{digest}:accounts": 1,
        f"events:{digest}:account_devices": 1,
        f"events:{digest}:payments": 1,
    }
    assert first["rowsWritten"] == 3
    state = _rel_state(g, "NEW-IDEM")
    assert state == [("PAID", "P-IDEM", 1), ("USES_DEVICE", "DEV-IDEM", 2)]
    again = _record(server, keys.risk_engine, [e2, e1])
    assert again == {"recorded": [], "duplicates": ["idem-2", "idem-1"], "rowsWritten": 0,
                     "invalidFields": []}  # fmt: skip
    assert _rel_state(g, "NEW-IDEM") == state
    # Two clients recording one new event at once: it is written once.
    e3 = _event("idem-3", "NEW-IDEM", f["now"] + timedelta(minutes=2), devices=["DEV-IDEM"])
    results: list[Any] = []
    threads = [
        threading.Thread(target=lambda: results.append(_record(server, keys.risk_engine, [e3])))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(len(r["recorded"]) for r in results) == [0, 0, 0, 1]
    assert _rel_state(g, "NEW-IDEM")[1] == ("USES_DEVICE", "DEV-IDEM", 3)
    # An existing account's opening time is never rewritten by an event.
    created = g.read("MATCH (a:Account {id: $a}) RETURN a.created_at AS c", {"a": f["member"]})
    _record(server, keys.risk_engine, [_event("idem-4", f["member"], f["now"], ips=["10.1.1.1"])])
    assert g.read("MATCH (a:Account {id: $a}) RETURN a.created_at AS c", {"a": f["member"]}) == (
        created
    )


def test_velocity_moves_after_a_record_without_a_rebuild(server: LiveServer, world: Any) -> None:
    g, _, keys, f = world
    build = current_build(g)
    at = f["now"] + timedelta(days=2)
    probe = _event("vel-probe", "NEW-VEL-P", at, devices=["DEV-VEL"])

    def farm() -> dict[str, Any]:
        s = _screen(server, keys.risk_engine, probe)
        return next(v for v in s["velocity"] if v["id"] == "DEV-VEL")

    assert (farm()["lastHour"], farm()["lastDay"], farm()["lastWeek"]) == (1, 1, 1)
    _record(server, keys.risk_engine, [
        _event("vel-1", "NEW-VEL-1", at - timedelta(minutes=20), devices=["DEV-VEL"]),
        _event("vel-2", "NEW-VEL-2", at - timedelta(hours=5), devices=["DEV-VEL"]),
        _event("vel-3", "NEW-VEL-3", at - timedelta(days=3), devices=["DEV-VEL"]),
    ])  # fmt: skip
    v = farm()
    assert (v["accounts"], v["lastHour"], v["lastDay"], v["lastWeek"]) == (4, 2, 3, 4)
    after = current_build(g)
    assert after is not None and build is not None and after.id == build.id


def test_roles_masking_and_audit(server: LiveServer, world: Any) -> None:
    _, _, keys, f = world
    event = _event("role-1", "NEW-ROLE-1", f["now"], phones=[f["phone"]])
    raw_phone = f["phone"]
    engine = server.post(SCREEN_ALL, keys.risk_engine, {"event": event})
    s = engine.json()["data"]["screen"]
    via = s["linkedRings"][0]["via"][0]
    assert via["kind"] == "PHONE" and via["masked"] is True and via["id"] != raw_phone
    assert raw_phone not in engine.text  # not in via, velocity or the reasons
    inv = _screen(server, keys.investigator, event)
    assert inv["linkedRings"][0]["via"][0] == {
        "kind": "PHONE", "id": raw_phone, "masked": False, "members": 1,
    }  # fmt: skip
    # Every screen is audited with its event id; PII is hashed in the log.
    records = server.audit_for(engine.headers["X-Request-ID"])
    assert {"kind": "event", "id": "role-1", "outcome": "screened"}.items() <= records[0].items()
    assert all(r["event_id"] == "role-1" for r in records)
    assert {(r["kind"], r["outcome"]) for r in records} >= {
        ("event", "screened"), ("account", "returned"), ("phone", "returned"),
    }  # fmt: skip
    log = "\n".join(str(r) for r in server.audit_records())
    assert raw_phone not in log
    # Investigators screen but do not record; the admin does both.
    body = server.gql(RECORD, keys.investigator, {"events": [event]})
    assert body["data"] is None and "may not record events" in body["errors"][0]["message"]
    denied = [r for r in server.audit_records() if r["outcome"] == "denied"]
    assert denied[-1]["kind"] == "event" and denied[-1]["id"] == "role-1"
    assert _record(server, keys.admin, [event])["recorded"] == ["role-1"]


def test_the_client_screens_and_records(server: LiveServer, world: Any) -> None:
    g, _, keys, f = world
    event = ScreenEventData("cli-1", "NEW-CLI-1", f["now"], "signup",
                            devices=(f["device"], "DEV-CLI-EMU"), phones=("bad",), amount="1.00",
                            payee="P-CLI", device_details=(("DEV-CLI-EMU", "android", True),),
                            phone_details=(("bad", None, True),))  # fmt: skip
    with RingScopeClient(server.url, keys.risk_engine, timeout=30) as client:
        a = client.screen(event)
        assert a.event_id == "cli-1" and 0 <= a.score <= 1
        assert a.linked_rings[0].ring_id == f["ring"]
        assert a.linked_rings[0].via == (("device", f["device"]),)
        assert a.linked_rings[0].hops == 1
        assert a.invalid_fields == (
            ("phones[0]", "unparseable phone"),
            ("phoneDetails[0].phone", "unparseable phone"),
        )
        r = client.record_events([event])
        # the account, two devices, the emulator's row of the devices table, the payment
        assert r.recorded == ("cli-1",) and r.rows_written == 5
        emu = g.read("MATCH (d:Device {id: 'DEV-CLI-EMU'}) RETURN d.is_emulator AS e")
        assert emu[0]["e"] is True
        assert client.record_events([event]).duplicates == ("cli-1",)


def _flagged_on(g: Graph, rel: str, label: str, strong: bool, now: datetime) -> dict[str, Any]:
    """An identifier of members of the current build's flagged clusters, not a hub once two
    more accounts use it, which those members hold (more than half of the accounts the build
    knew on it, opened by ``now``: ``strong``) or not, with those counts."""
    rows = g.read(
        "MATCH (:CurrentBuild)-[:POINTS_TO]->(b:Build) "
        "MATCH (m:Account)-[r:MEMBER_OF]->(c:Cluster) "
        "WHERE r.build_id = b.id AND c.score >= 0.6 "
        f"MATCH (m)-[:{rel}]->(x:{label}) "
        "WITH x, count(DISTINCT m) AS members, collect(DISTINCT c.ring_id) AS rings "
        "WITH x, members, rings, COUNT { (x)<--() } AS degree, "
        "COUNT { MATCH (x)<--(k:Account) WHERE k.created_at <= $now } AS known "
        "WHERE degree + 2 <= 50 "
        "RETURN x.id AS id, members, known, rings ORDER BY members DESC, known, id",
        {"now": now},
    )
    pick = [r for r in rows if (r["members"] * 2 > r["known"]) == strong]
    assert pick, f"no {'strong' if strong else 'weak'} {label} in the world"
    return pick[0]


def test_a_ring_is_reached_in_two_hops_through_what_it_holds(
    server: LiveServer, world: Any
) -> None:
    """A new account presents an ID document held by an account outside every flagged cluster
    (a ring member's second document group, say); that holder uses a device the flagged
    clusters hold (more than half of its accounts are their members). The screen reaches the
    ring in two hops, through the document and the device, and its reasons say so. A document
    whose holder shares only a phone that flagged members do not hold (one member among more
    other accounts the build knew) reaches nothing: a family's card held beside a ring
    member's home IP. Accounts recorded since the build (the holders here) count for neither."""
    g, _, keys, f = world
    at = f["now"] + timedelta(hours=3)
    strong = _flagged_on(g, "USES_DEVICE", "Device", strong=True, now=f["now"])
    weak = _flagged_on(g, "HAS_PHONE", "Phone", strong=False, now=f["now"])
    _record(server, keys.risk_engine, [
        _event("hop-h1", "NEW-HOP-H1", at, devices=[strong["id"]], idDocuments=["DOC-HOP-1"]),
        _event("hop-h2", "NEW-HOP-H2", at, phones=[weak["id"]], idDocuments=["DOC-HOP-2"]),
    ])  # fmt: skip
    reached = _screen(server, keys.investigator, _event(
        "hop-1", "NEW-HOP-1", at + timedelta(minutes=5), idDocuments=["DOC-HOP-1"]
    ))  # fmt: skip
    two = [r for r in reached["linkedRings"] if r["hops"] == 2]
    assert {r["ringId"] for r in two} <= set(strong["rings"]) and two
    via = two[0]["via"]
    assert via[0] == {"kind": "ID_DOCUMENT", "id": "DOC-HOP-1", "masked": False, "members": 0}
    assert via[1]["kind"] == "DEVICE" and via[1]["id"] == strong["id"] and via[1]["members"] >= 1
    assert not [r for r in reached["linkedRings"] if r["hops"] == 1]
    assert any("in two hops: ID document DOC-HOP-1 also used by an account" in x
               for x in reached["reasons"])  # fmt: skip
    nothing = _screen(server, keys.investigator, _event(
        "hop-2", "NEW-HOP-2", at + timedelta(minutes=5), idDocuments=["DOC-HOP-2"]
    ))  # fmt: skip
    assert nothing["linkedRings"] == []


def test_an_identifier_the_flagged_clusters_do_not_hold_links_nothing(
    server: LiveServer, world: Any
) -> None:
    """One hop links a ring only through what its flagged clusters hold: a newcomer on a phone
    that one flagged member shares with more other accounts (a family's, an office's) reaches
    nothing; one on a device the flagged members hold reaches their ring, with the members on
    it."""
    g, _, keys, f = world
    at = f["now"] + timedelta(hours=4)
    weak = _flagged_on(g, "HAS_PHONE", "Phone", strong=False, now=f["now"])
    strong = _flagged_on(g, "USES_DEVICE", "Device", strong=True, now=f["now"])
    nothing = _screen(server, keys.investigator, _event("held-1", "NEW-HELD-1", at,
                                                        phones=[weak["id"]]))  # fmt: skip
    assert nothing["linkedRings"] == []
    reached = _screen(server, keys.investigator, _event("held-2", "NEW-HELD-2", at,
                                                        devices=[strong["id"]]))  # fmt: skip
    assert {r["ringId"] for r in reached["linkedRings"]} == set(strong["rings"])
    assert all(r["hops"] == 1 and r["via"][0]["id"] == strong["id"]
               for r in reached["linkedRings"])  # fmt: skip


def test_no_model_is_a_named_error(neo4j_settings: Settings, world: Any, tmp_path: Path) -> None:
    _, _, keys, f = world
    settings = api_settings(neo4j_settings, tmp_path, model_dir=tmp_path / "none")
    with LiveServer(settings) as srv:
        body = srv.gql(SCREEN, keys.risk_engine, {"event": _event("nm", "A1", f["now"])})
    assert body["data"] is None
    assert "No trained model yet" in body["errors"][0]["message"]


def test_last_a_rebuild_scores_recorded_events_as_screened(server: LiveServer, world: Any) -> None:
    """The next rebuild includes recorded events like ingested rows: with the same model
    (``--score-only``), its score of a new account is the screen's. (Last: it switches the
    build the other tests' ring ids come from.)"""
    g, settings, keys, f = world
    at = f["now"] + timedelta(hours=6)
    event = _event("rb-1", "NEW-RB-1", at, devices=[f["device"]], phones=[f["phone"]])
    s = _screen(server, keys.risk_engine, event)
    _record(server, keys.risk_engine, [event])
    rebuild(g, settings, score_only=True)
    _, scores = model_scores(g)
    assert scores["NEW-RB-1"] == pytest.approx(s["score"], abs=1e-6)
