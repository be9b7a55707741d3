"""Linking and co-activation on Spark (``ringscope.spark.linking``) give the in-process answers.

Projections are built in memory (no Neo4j), random and adversarial: hubs just over their caps,
merchants over and under the merchant cap, payees paid in several currencies (so a payee's
degree counts rows, not payers), unknown first or last times or both, last before first,
time-aware identifiers reissued across many buckets, co-arrivals in neighbouring weeks, accounts
sharing several identifiers across kinds, and planted burst cohorts at the edges of their rules
(exactly ``burst_days`` after ``t0``, exactly ``quiet_days`` open, unknown creation, payers that
arrived too late for the born share, merchants). The same data goes to Spark as the tables
``ringscope.spark.tables`` produces, and every pair, weight and cohort must agree: the pairs as
sets, weights within 1e-9.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np
import pytest
import scipy.sparse as sp
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from ringscope.kinds import IDENTIFIER_KINDS, PAYEE
from ringscope.models.coactivation import (
    burst_cohorts,
    coactivation_matrix,
)
from ringscope.models.detect import DetectConfig, link
from ringscope.models.linking import (
    DAY,
    dedupe_pairs,
    identifier_weights,
    link_matrix,
)
from ringscope.models.projection import KindEdges, Projection
from ringscope.settings import Settings
from ringscope.spark import linking as sl
from ringscope.spark.session import spark_session

T0 = 1_700_000_000
TOL = 1e-9
KINDS = [k.name for k in IDENTIFIER_KINDS]

EDGE_SCHEMA = T.StructType(
    [
        T.StructField("kind", T.StringType(), False),
        T.StructField("account", T.StringType(), False),
        T.StructField("ident", T.StringType(), False),
        T.StructField("currency", T.StringType(), False),
        T.StructField("first", T.LongType(), False),
        T.StructField("last", T.LongType(), False),
        T.StructField("count", T.LongType(), False),
        T.StructField("round_count", T.LongType(), False),
        T.StructField("total", T.DoubleType(), False),
    ]
)
IDENT_SCHEMA = T.StructType(
    [
        T.StructField("kind", T.StringType(), False),
        T.StructField("ident", T.StringType(), False),
        T.StructField("flag", T.BooleanType(), False),
    ]
)
ACCOUNT_SCHEMA = T.StructType(
    [
        T.StructField("account", T.StringType(), False),
        T.StructField("created", T.LongType(), False),
        T.StructField("kyc", T.LongType(), False),
        T.StructField("label", T.LongType(), False),
    ]
)


@pytest.fixture(scope="module")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkSession]:
    """The engine's own session (``spark_session``), local[2], few shuffle partitions: the data
    is small, and every extra partition is a task."""
    settings = Settings(
        spark_master="local[2]",
        spark_shuffle_partitions=2,
        spark_driver_memory="1g",
        spark_local_dir=tmp_path_factory.mktemp("spark"),
    )
    session = spark_session(settings, app_name="test_spark_linking")
    session.sparkContext.setLogLevel("ERROR")
    try:
        yield session
    finally:
        session.stop()


# --- worlds ---------------------------------------------------------------------------------


@dataclass
class World:
    proj: Projection
    currency: dict[str, list[str]]  # per kind, per edge row


class _Rows:
    """One kind's edge rows as they are appended."""

    def __init__(self) -> None:
        self.acc: list[int] = []
        self.ident: list[int] = []
        self.first: list[int] = []
        self.last: list[int] = []
        self.currency: list[str] = []

    def add(self, a: int, j: int, first: int, last: int, currency: str) -> None:
        self.acc.append(a)
        self.ident.append(j)
        self.first.append(first)
        self.last.append(last)
        self.currency.append(currency)


def _times(rng: np.random.Generator, start: int, reissued: bool) -> tuple[int, int]:
    """A first/last pair near ``start`` (within three weeks: co-arrivals in neighbouring weeks),
    sometimes years later (a reissued number), sometimes unknown, sometimes last < first."""
    first = start + int(rng.integers(0, 21 * DAY))
    if reissued and rng.random() < 0.35:
        first += int(rng.integers(100, 1500)) * DAY
    last = first + int(rng.integers(0, 500)) * DAY
    r = rng.random()
    if r < 0.06:
        first = -1
    elif r < 0.10:
        last = -1
    elif r < 0.14:
        first, last = -1, -1
    elif r < 0.18:
        last = first - int(rng.integers(1, 40)) * DAY
    return first, last


def world(seed: int, n: int, caps: dict[str, int]) -> World:
    """A random projection of ``n`` accounts over every identifier kind, with degrees around the
    caps ``caps`` (so some identifiers are hubs just over them), plus planted payee bursts."""
    rng = np.random.default_rng(seed)
    created = T0 - rng.integers(0, 1200, n) * DAY - rng.integers(0, DAY, n)
    created[rng.random(n) < 0.08] = -1
    kinds: dict[str, _Rows] = {k: _Rows() for k in KINDS}
    flags: dict[str, list[bool]] = {k: [] for k in KINDS}
    reissued = {"device", "phone", "ip"}
    for kind in KINDS:
        rows, cap = kinds[kind], caps[kind]
        for j in range(int(rng.integers(90, 140))):
            r = rng.random()
            if r < 0.08:
                d = 1
            elif r < 0.6:
                d = int(rng.integers(2, 5))
            elif r < 0.88:
                d = int(rng.integers(min(5, cap), cap + 1))
            else:
                d = int(rng.integers(cap + 1, cap + 5))  # a hub
            start = T0 - int(rng.integers(0, 3 * 365)) * DAY
            flags[kind].append(bool(kind == PAYEE.name and rng.random() < 0.4))
            for a in rng.choice(n, size=d, replace=False).tolist():
                first, last = _times(rng, start, kind in reissued)
                if kind != PAYEE.name:
                    rows.add(a, j, first, last, "")
                    continue
                # One row per currency: some payers pay in two or three.
                for c in range(1 if rng.random() < 0.75 else int(rng.integers(2, 4))):
                    if c:
                        first, last = _times(rng, start, False)
                    rows.add(a, j, first, last, ("CNY", "USD", "EUR")[c])
    _plant_bursts(rng, kinds[PAYEE.name], flags[PAYEE.name], created, n)
    _plant_onboarding(rng, kinds[PAYEE.name], flags[PAYEE.name], created)
    # A ring sharing a device, a phone and a card, arriving on them in neighbouring weeks.
    for kind in ("device", "phone", "bank_card"):
        j = len(flags[kind])
        flags[kind].append(False)
        for a in range(3):
            t = T0 + 200 * DAY + 6 * a * DAY
            kinds[kind].add(a, j, t, t + 30 * DAY, "")

    proj = Projection(
        ids=[f"acc{i:05d}" for i in range(n)],
        nodes=np.arange(n, dtype=np.int64),
        created=created.astype(np.int64),
        kyc=np.zeros(n, dtype=np.int64),
        label=np.full(n, -1, dtype=np.int64),
    )
    for kind, rows in kinds.items():
        m = len(flags[kind])
        proj.kinds[kind] = KindEdges(
            kind=kind,
            acc=np.asarray(rows.acc, dtype=np.int32),
            ident=np.asarray(rows.ident, dtype=np.int32),
            first=np.asarray(rows.first, dtype=np.int64),
            last=np.asarray(rows.last, dtype=np.int64),
            count=rng.integers(1, 5, len(rows.acc)).astype(np.int64),
            nodes=np.arange(m, dtype=np.int64),
            flag=np.asarray(flags[kind], dtype=bool),
        )
    return World(proj, {k: rows.currency for k, rows in kinds.items()})


def _plant_bursts(
    rng: np.random.Generator, rows: _Rows, flags: list[bool], created: np.ndarray, n: int
) -> None:
    """Payees whose payers woke together, at the edges of the cohort rules. Members get a
    creation date well before the wake unless the case says otherwise."""
    ring = list(range(10, 18))  # wakes on several collectors: pairs sharing many cohorts
    for case in range(24):
        j = len(flags)
        flags.append(case % 6 == 5)  # some merchants (over and under the merchant cap)
        wake = T0 + int(rng.integers(30, 400)) * DAY
        size = int(rng.integers(2, 9))
        who = ring[: size + 1] if case % 4 == 0 else rng.choice(n, size, replace=False).tolist()
        for i, a in enumerate(who):
            first = wake + int(rng.integers(0, 4 * DAY))
            if i == 0:
                first = wake
            elif i == 1:
                first = wake + 3 * DAY  # exactly burst_days after t0: in
            elif i == 2 and case % 3 == 1:
                first = wake + 3 * DAY + 1  # one second late: out
            if case % 5 == 2 and i == 1:
                created[a] = first - 21 * DAY  # exactly quiet_days open: in
            elif case % 5 == 3 and i == 1:
                created[a] = first - 21 * DAY + 1  # one second short: out
            elif case % 7 == 4 and i == 2:
                created[a] = -1  # unknown creation: never quiet
            elif created[a] < 0 or created[a] > wake - 30 * DAY:
                created[a] = wake - int(rng.integers(30, 300)) * DAY
            rows.add(a, j, first, first + int(rng.integers(0, 60)) * DAY, "CNY")
            if rng.random() < 0.3:  # a second currency, its first earlier or unknown
                early = -1 if rng.random() < 0.5 else first - int(rng.integers(0, 2 * DAY))
                rows.add(a, j, early, first + DAY, "USD")
        if case % 3 == 0:  # late payers: the cohort may fall under the born share
            for a in rng.choice(n, int(rng.integers(1, 8)), replace=False).tolist():
                if a not in who:
                    rows.add(a, j, wake + int(rng.integers(10, 90)) * DAY, wake + 100 * DAY, "CNY")


def _plant_onboarding(
    rng: np.random.Generator, rows: _Rows, flags: list[bool], created: np.ndarray
) -> None:
    """New payees whose payers paid them in their first days (onboarding cohorts), at the edges
    of the rules: days open, days after the payee's first payment, unknown or later creation."""
    p = DetectConfig().coactivation_params()
    pool = list(range(190, 240))
    for case in range(10):
        j = len(flags)
        flags.append(case % 4 == 3)
        t0 = T0 + int(rng.integers(30, 400)) * DAY
        who = [pool[(5 * case + i) % len(pool)] for i in range(int(rng.integers(3, 7)))]
        for i, a in enumerate(who):
            first = t0 if i == 0 else t0 + int(rng.integers(0, 20 * DAY))
            if i == 1:
                first = t0 + p.fresh_burst_days * DAY + (case % 2)  # on the edge; one second late
            created[a] = first - int(rng.integers(0, p.fresh_days * DAY))
            if i == 2 and case % 3 == 0:
                created[a] = first - p.fresh_days * DAY - (case % 2)  # a week; a second over
            elif i == 2 and case % 3 == 1:
                created[a] = first + DAY  # paid before it opened: not new
            elif i == 3 and case % 5 == 2:
                created[a] = -1
            rows.add(a, j, first, first + int(rng.integers(0, 30)) * DAY, "CNY")
        if case % 4 == 1:  # later payers: the cohort may fall under the born share
            for a in range(20, 20 + int(rng.integers(1, 6))):
                rows.add(a, j, t0 + int(rng.integers(40, 90)) * DAY, t0 + 100 * DAY, "CNY")


# --- to Spark ---------------------------------------------------------------------------------


def ident_id(kind: str, j: int) -> str:
    return f"{kind}-{j:05d}"


def tables(spark: SparkSession, w: World) -> tuple[DataFrame, DataFrame, DataFrame]:
    """The world as ``ringscope.spark.tables``' edges, identifiers and accounts."""
    proj = w.proj
    edges = []
    idents = []
    for kind, e in proj.kinds.items():
        cur = w.currency[kind]
        for i in range(len(e.acc)):
            edges.append(
                (
                    kind,
                    proj.ids[int(e.acc[i])],
                    ident_id(kind, int(e.ident[i])),
                    cur[i],
                    int(e.first[i]),
                    int(e.last[i]),
                    int(e.count[i]),
                    0,
                    0.0,
                )
            )
        idents += [(kind, ident_id(kind, j), bool(e.flag[j])) for j in range(e.m)]
    accounts = [(a, int(c), 0, -1) for a, c in zip(proj.ids, proj.created.tolist(), strict=True)]
    return (
        spark.createDataFrame(edges, EDGE_SCHEMA),
        spark.createDataFrame(idents, IDENT_SCHEMA),
        spark.createDataFrame(accounts, ACCOUNT_SCHEMA),
    )


# --- comparisons ------------------------------------------------------------------------------


def upper(ids: list[str], *mats: sp.spmatrix) -> dict[tuple[str, str], tuple[float, ...]]:
    """The nonzero upper-triangle entries of the first matrix, with the others' at the same
    places, by account-id pair."""
    u = sp.triu(sp.csr_matrix(mats[0]), k=1).tocoo()
    rest = [sp.csr_matrix(m) for m in mats[1:]]
    out = {}
    for i, j, v in zip(u.row.tolist(), u.col.tolist(), u.data.tolist(), strict=True):
        if v != 0:
            out[ids[i], ids[j]] = (v, *(float(m[i, j]) for m in rest))
    return out


def collected(df: DataFrame, *cols: str) -> dict[tuple[str, str], tuple[float, ...]]:
    rows = df.select("a", "b", *cols).collect()
    out = {(r["a"], r["b"]): tuple(float(r[c]) for c in cols) for r in rows}
    assert len(out) == len(rows), "a pair appears twice"
    return out


def assert_same(
    want: dict[tuple[str, str], tuple[float, ...]], got: dict[tuple[str, str], tuple[float, ...]]
) -> None:
    assert all(a < b for a, b in got)
    missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
    assert not missing and not extra, f"missing {missing[:5]}, extra {extra[:5]}"
    worst = max(
        (abs(x - y), k, w, g)
        for k in want
        for w, g in [(want[k], got[k])]
        for x, y in zip(w, g, strict=True)
    )
    assert worst[0] <= TOL, f"largest difference {worst}"


def detect_links(proj: Projection, cfg: DetectConfig) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """``detect``'s linking stage itself (identifiers, wakes, onboarding cohorts)."""
    links = link(proj, cfg)
    return links.s, links.arrival


# --- parameters -------------------------------------------------------------------------------

SMALL_CAPS = {
    "device": 6,
    "phone": 5,
    "payee": 8,
    "ip": 10,
    "email": 4,
    "id_document": 4,
    "bank_card": 5,
}


def small_config() -> DetectConfig:
    """Small caps (hubs cheap to build), 30-day time buckets (many buckets per identifier), a
    time-aware email, merchants linking up to 3 payers."""
    return DetectConfig(
        degree_caps=dict(SMALL_CAPS),
        merchant_degree_cap=3,
        time_bucket_days=30,
        time_floors={**DetectConfig().time_floors, "email": 0.5},
    )


def edge_config() -> DetectConfig:
    """No co-arrival bonus, a zero floor (pairs that never overlapped drop out), a kind of
    weight 0, weekly buckets."""
    d = DetectConfig()
    return DetectConfig(
        kind_weights={**d.kind_weights, "email": 0.0},
        degree_caps=dict(SMALL_CAPS),
        merchant_degree_cap=5,
        time_bucket_days=7,
        time_floors={**d.time_floors, "phone": 0.0},
        arrival_bonus=0.0,
        burst_days=5,
        quiet_days=10,
    )


CASES = {
    "small caps": (1, small_config()),
    "defaults": (1, DetectConfig()),
    "edge params": (2, edge_config()),
}


@pytest.fixture(scope="module")
def worlds() -> dict[int, World]:
    return {seed: world(seed, 240, SMALL_CAPS) for seed in (1, 2)}


# --- tests ------------------------------------------------------------------------------------


def test_fold_and_identifier_weights_match(spark: SparkSession, worlds: dict[int, World]) -> None:
    w = worlds[1]
    params = small_config().link_params()
    edges, idents, _ = tables(spark, w)
    folded = {
        (r["kind"], r["ident"], r["account"]): (r["first"], r["last"], r["count"])
        for r in sl.dedupe(edges).collect()
    }
    weights = {
        (r["kind"], r["ident"]): r["w"]
        for r in sl.identifier_weights(edges, idents, params).collect()
    }
    want_fold = {}
    want_w = {}
    for kind, e in w.proj.kinds.items():
        acc, ident, first, last, count = dedupe_pairs(e)
        for a, j, f, la, c in zip(acc, ident, first, last, count, strict=True):
            want_fold[kind, ident_id(kind, int(j)), w.proj.ids[int(a)]] = (int(f), int(la), int(c))
        iw = identifier_weights(e, params)
        want_w.update(
            {(kind, ident_id(kind, int(j))): float(iw[j]) for j in np.flatnonzero(iw > 0)}
        )
    assert folded == want_fold
    assert set(weights) == set(want_w)
    assert max(abs(weights[k] - want_w[k]) for k in want_w) <= TOL
    # The world is adversarial where it should be: hubs, merchants both sides of the cap.
    pay = w.proj.kinds[PAYEE.name]
    deg = pay.degree()
    assert ((deg > SMALL_CAPS["payee"]) & ~pay.flag).any()
    assert (pay.flag & (deg > 3) & (deg <= SMALL_CAPS["payee"])).any()
    assert (pay.flag & (deg >= 2) & (deg <= 3)).any()
    assert len(set(zip(pay.acc.tolist(), pay.ident.tolist(), strict=True))) < len(pay.acc)


@pytest.mark.parametrize("case", list(CASES))
def test_link_pairs_equal_the_link_matrix(
    spark: SparkSession, worlds: dict[int, World], case: str
) -> None:
    seed, cfg = CASES[case]
    w = worlds[seed]
    params = cfg.link_params()
    edges, idents, _ = tables(spark, w)
    s, arrival = link_matrix(w.proj, params)
    want = upper(w.proj.ids, s, arrival)
    got = collected(sl.link_pairs(edges, idents, params), "s", "arrival")
    assert len(want) > 200
    assert_same(want, got)
    if params.arrival_bonus > 0:
        assert sum(v[1] > 0 for v in want.values()) > 20  # co-arrival is exercised
    else:
        assert all(v[1] == 0 for v in got.values())


@pytest.mark.parametrize("case", list(CASES))
def test_cohorts_and_all_links_equal_detect(
    spark: SparkSession, worlds: dict[int, World], case: str
) -> None:
    seed, cfg = CASES[case]
    w = worlds[seed]
    params, co = cfg.link_params(), cfg.coactivation_params()
    edges, idents, accounts = tables(spark, w)

    cohorts = burst_cohorts(w.proj, params, co)
    pay = w.proj.kinds[PAYEE.name]
    members = sp.coo_matrix(cohorts.members)
    want_members = {
        (w.proj.ids[i], ident_id(PAYEE.name, int(cohorts.payee[c])))
        for i, c in zip(members.row.tolist(), members.col.tolist(), strict=True)
    }
    # Per (account, payee) days open before the first payment, from the fold.
    acc, ident, first, _, _ = dedupe_pairs(pay)
    quiet_of = {
        (w.proj.ids[int(a)], ident_id(PAYEE.name, int(j))): (f - w.proj.created[a]) / DAY
        for a, j, f in zip(acc, ident, first, strict=True)
    }
    cohort_df = sl.burst_cohorts(edges, idents, accounts, params, co).cache()
    rows = cohort_df.collect()
    got_members = {(r["account"], r["payee"]) for r in rows}
    assert got_members == want_members
    assert cohorts.n_cohorts >= 5
    for r in rows:
        assert abs(r["quiet_days"] - quiet_of[r["account"], r["payee"]]) <= TOL
        i = w.proj.ids.index(r["account"])
        assert abs(r["least_quiet_days"] - cohorts.quiet_days[i]) <= TOL
    assert_same(
        upper(w.proj.ids, coactivation_matrix(cohorts, co)),
        collected(sl.coactivation_pairs(cohort_df, co), "w"),
    )
    cohort_df.unpersist()

    # Onboarding cohorts (cash-out payers new to the platform): the same members and links.
    fresh = burst_cohorts(w.proj, params, co, fresh=True)
    fm = sp.coo_matrix(fresh.members)
    want_fresh = {
        (w.proj.ids[i], ident_id(PAYEE.name, int(fresh.payee[c])))
        for i, c in zip(fm.row.tolist(), fm.col.tolist(), strict=True)
    }
    assert fresh.n_cohorts >= 4
    fresh_df = sl.burst_cohorts(edges, idents, accounts, params, co, fresh=True).cache()
    assert {(r["account"], r["payee"]) for r in fresh_df.collect()} == want_fresh
    assert_same(
        upper(w.proj.ids, coactivation_matrix(fresh, co, fresh=True)),
        collected(sl.coactivation_pairs(fresh_df, co, fresh=True), "w"),
    )
    fresh_df.unpersist()

    s, arrival = detect_links(w.proj, cfg)
    assert_same(
        upper(w.proj.ids, s, arrival),
        collected(sl.all_links(edges, idents, accounts, params, co), "s", "arrival"),
    )
    if case == "small caps":
        # Cohorts off: the link pairs alone, as detect with both weights 0.
        off_cfg = replace(cfg, coactivation_weight=0.0, fresh_weight=0.0)
        off = off_cfg.coactivation_params()
        s, arrival = detect_links(w.proj, off_cfg)
        assert_same(
            upper(w.proj.ids, s, arrival),
            collected(sl.all_links(edges, idents, accounts, params, off), "s", "arrival"),
        )


def test_empty_and_all_hub_inputs(spark: SparkSession) -> None:
    """No edges, or only hubs: no pairs, no cohorts (and no error)."""
    params = DetectConfig().link_params()
    co = DetectConfig().coactivation_params()
    empty = spark.createDataFrame([], EDGE_SCHEMA)
    idents = spark.createDataFrame([], IDENT_SCHEMA)
    accounts = spark.createDataFrame([], ACCOUNT_SCHEMA)
    assert sl.all_links(empty, idents, accounts, params, co).count() == 0
    hub = [
        ("ip", f"a{i:03d}", "ip-1", "", T0, T0, 1, 0, 0.0)
        for i in range(params.degree_caps["ip"] + 1)
    ]
    edges = spark.createDataFrame(hub, EDGE_SCHEMA)
    assert sl.link_pairs(edges, idents, params).count() == 0
    assert sl.burst_cohorts(edges, idents, accounts, params, co).count() == 0
