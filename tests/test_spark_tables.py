"""The Spark engine's input tables (``ringscope.spark.tables``) equal what the loader leaves in
Neo4j: a generated world with bad rows of every kind, in every format, loaded into a clean graph
and read back with the detector's projection, against the same directory read on Spark."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

pytest.importorskip("pyspark")

from pyspark.sql import SparkSession

from ringscope.graph import Graph, cypher
from ringscope.ingest import load
from ringscope.ingest.contract import ACCOUNTS as ACCOUNTS_TABLE
from ringscope.ingest.normalise import Context, normalise
from ringscope.ingest.plan import _plan
from ringscope.ingest.read import header, read_batches
from ringscope.ingest.report import LoadReport
from ringscope.kinds import IDENTIFIER_KINDS
from ringscope.models.projection import identifier_ids, read_projection
from ringscope.settings import Settings
from ringscope.spark.session import spark_session
from ringscope.spark.tables import SparkTables, _normalised, read_tables
from ringscope.synth.generate import generate

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
MAPPINGS = REPO / "ringscope" / "ingest" / "mappings"
ACCOUNTS = 2_000


@pytest.fixture(scope="module")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkSession]:
    settings = Settings(
        spark_master="local[2]",
        spark_shuffle_partitions=4,
        spark_driver_memory="1g",
        spark_local_dir=tmp_path_factory.mktemp("spark"),
    )
    session = spark_session(settings, app_name="test_spark_tables")
    session.sparkContext.setLogLevel("ERROR")
    try:
        yield session
    finally:
        session.stop()


# --- the input: a generated world, re-written in every format with bad rows added -------------


def _text(table: pa.Table) -> pa.Table:
    """Every column as text, as a CSV export would have it."""
    return pa.table({c: table.column(c).cast(pa.string()) for c in table.column_names})


def _plus(table: pa.Table, rows: list[dict[str, Any]]) -> pa.Table:
    return pa.concat_tables([table, pa.Table.from_pylist(rows, schema=table.schema)])


def _row(table: pa.Table, i: int) -> dict[str, Any]:
    return dict(table.slice(i, 1).to_pylist()[0])


def _world(root: Path) -> Path:
    """A 2,000-account world: accounts, payments as text Parquet; devices, phones, payees, labels
    as the generator's typed Parquet; account_devices, account_phones as CSV; identifiers as
    JSON Lines. Each with bad rows (and tricky good ones) of its own."""
    gen = root / "gen"
    generate(gen, root / "truth", ACCOUNTS, 11)
    d = root / "input"
    d.mkdir()

    acc = _text(pq.read_table(gen / "accounts.parquet"))
    a0, a1, a2 = (_row(acc, i) for i in range(3))
    acc = _plus(acc, [
        {**a0, "kyc_level": "3"},  # the same account again: its last row wins
        {**a1, "created_at": "yesterday"},  # unparseable timestamp
        {**a2, "kyc_level": "7"},  # invalid value
        {**a2, "account_id": "late-1", "created_at": "1900-01-01T00:00:00Z"},  # out of range
        {"account_id": "bare-1", "created_at": None, "kyc_level": None, "country": None},
    ])  # fmt: skip
    pq.write_table(acc, d / "accounts.parquet", row_group_size=500)

    devices = pq.read_table(gen / "devices.parquet")
    emulators = devices.filter(devices.column("is_emulator")).column("device_id").to_pylist()
    devices = _plus(devices, [
        {"device_id": emulators[0], "os": "android", "is_emulator": None},  # last row: no flag
        {"device_id": "lonely-device", "os": "ios", "is_emulator": True},  # no account uses it
    ])  # fmt: skip
    pq.write_table(devices, d / "devices.parquet")
    pq.write_table(pq.read_table(gen / "phones.parquet"), d / "phones.parquet")
    payees = pq.read_table(gen / "payees.parquet")
    payees = _plus(payees, [{"payee_id": "odd-payee", "kind": "shop", "name": "x"}])  # bad kind
    pq.write_table(payees, d / "payees.parquet")

    labels = pq.read_table(gen / "labels.parquet")
    first = _row(labels, 0)
    other = "fraud" if first["label"] == "legit" else "legit"
    labels = _plus(labels, [
        {**first, "label": other},  # equally late: fraud wins whichever row comes last
        {**first, "label": "maybe"},  # unknown label
        {**first, "account_id": "nobody"},  # unknown account
        {**_row(labels, 1), "labelled_at": None},  # no time: loses to the timed row
    ])  # fmt: skip
    pq.write_table(labels, d / "labels.parquet")

    dev = _text(pq.read_table(gen / "account_devices.parquet"))
    d0 = _row(dev, 0)
    dev = _plus(dev, [
        {**d0, "seen_at": "2024-13-45T00:00:00Z"},  # unparseable timestamp
        {**d0, "seen_at": None},  # one more sighting, without a time
        {**d0, "device_id": " "},  # missing key
        {**d0, "account_id": "nobody"},  # unknown account
    ])  # fmt: skip
    pacsv.write_csv(dev, d / "account_devices.csv")
    with (d / "account_devices.csv").open("a") as fh:
        fh.write(f"{d0['account_id']},{d0['device_id']},2024-01-01T00:00:00Z,extra\n")  # ragged

    ph = _text(pq.read_table(gen / "account_phones.parquet"))
    p0 = _row(ph, 0)
    ph = _plus(ph, [
        {**p0, "phone": "12"},  # unparseable phone
        {**p0, "phone": "not a phone"},
        {**p0, "account_id": _row(acc, 5)["account_id"]},  # a new pair on a known number
    ])  # fmt: skip
    pacsv.write_csv(ph, d / "account_phones.csv")

    pay = _text(pq.read_table(gen / "payments.parquet"))
    q0, q1 = _row(pay, 0), _row(pay, 1)
    pay = _plus(pay, [
        {**q0, "amount": "999.99"},  # duplicate payment_id, different content: refused
        dict(q1),  # the same payment sent again: dropped, not refused
        {**q1, "payment_id": "neg-1", "amount": "-5"},  # negative amount
        {**q1, "payment_id": "comma-1", "amount": "12,50"},  # unparseable amount
        {**q1, "payment_id": "nocur-1", "currency": None, "amount": "300"},  # no currency: XXX
        {**q1, "payment_id": "ghost-1", "account_id": "nobody"},  # unknown account
    ])  # fmt: skip
    pq.write_table(pay, d / "payments.parquet", row_group_size=4096)  # Spark splits it

    ids = _text(pq.read_table(gen / "account_identifiers.parquet"))
    emails = ids.filter(pc.equal(ids.column("kind"), "email"))
    e0 = _row(emails, 0)
    extra = [
        {**e0, "value": "  " + e0["value"].upper()},  # one mailbox, spelt differently
        {**e0, "account_id": "nobody"},  # unknown account
        {**e0, "kind": "fax"},  # unknown kind
    ]
    with (d / "account_identifiers.jsonl").open("w") as fh:
        for rec in [*ids.to_pylist(), *extra]:
            fh.write(json.dumps(rec) + "\n")
        fh.write("\n{not json\n")  # a blank line (skipped) and a malformed one
        fh.write(json.dumps({**e0, "surprise": 1}) + "\n")  # a key the header does not have
    return d


# --- the comparison ---------------------------------------------------------------------------


def _loaded(graph: Graph) -> dict[str, Any]:
    """What the detector reads out of the graph, with business ids for every identifier."""
    proj = read_projection(graph)
    accounts = {
        proj.ids[i]: (int(proj.created[i]), int(proj.kyc[i]), int(proj.label[i]))
        for i in range(proj.n)
    }
    edges: Counter[tuple[Any, ...]] = Counter()
    flagged: set[tuple[str, str]] = set()
    linked: set[tuple[str, str]] = set()
    for kind, e in proj.kinds.items():
        names = identifier_ids(graph, e.nodes.tolist())
        ident = [names[int(n)] for n in e.nodes]
        linked.update((kind, x) for x in ident)
        flagged.update((kind, ident[j]) for j in range(e.m) if e.flag[j])
        rc = e.round_count if e.round_count is not None else [0] * len(e.acc)
        tot = e.total if e.total is not None else [0.0] * len(e.acc)
        for r in range(len(e.acc)):
            edges[(kind, proj.ids[e.acc[r]], ident[e.ident[r]], int(e.first[r]),
                   int(e.last[r]), int(e.count[r]), int(rc[r]), float(tot[r]))] += 1  # fmt: skip
    # The projection has no currency: the PAID relationships read directly, per currency.
    paid = {
        (r["a"], r["p"], r["c"]): (r["f"], r["l"], r["n"], r["rc"], r["t"] / 10_000.0)
        for r in graph.read(
            "MATCH (a:Account)-[r:PAID]->(p:Payee) RETURN a.id AS a, p.id AS p, "
            "r.currency AS c, coalesce(r.first_seen.epochSeconds, -1) AS f, "
            "coalesce(r.last_seen.epochSeconds, -1) AS l, r.count AS n, r.round_count AS rc, "
            "toFloat(r.total_amount_e4) AS t"
        )
    }
    # Every identifier node, and every flagged one (with or without relationships).
    nodes = {
        (k.name, r["id"])
        for k in IDENTIFIER_KINDS
        for r in graph.read(f"MATCH (x:{k.label}) RETURN x.id AS id")
    }
    all_flagged: set[tuple[str, str]] = set()
    for kind, query in (("device", cypher.DETECT_EMULATOR_DEVICES),
                        ("phone", cypher.DETECT_VIRTUAL_PHONES),
                        ("payee", cypher.DETECT_MERCHANT_PAYEES)):  # fmt: skip
        found = graph.read(query)[0]["nodes"]
        all_flagged.update((kind, x) for x in identifier_ids(graph, found).values())
    return {
        "accounts": accounts, "edges": edges, "paid": paid, "flagged": flagged,
        "linked": linked, "nodes": nodes, "all_flagged": all_flagged,
    }  # fmt: skip


def _on_spark(t: SparkTables) -> dict[str, Any]:
    accounts = {r["account"]: (r["created"], r["kyc"], r["label"]) for r in t.accounts.collect()}
    rows = t.edges.collect()
    edges = Counter(
        (r["kind"], r["account"], r["ident"], r["first"], r["last"], r["count"],
         r["round_count"], r["total"])
        for r in rows
    )  # fmt: skip
    paid = {
        (r["account"], r["ident"], r["currency"]): (
            r["first"], r["last"], r["count"], r["round_count"], r["total"])
        for r in rows if r["kind"] == "payee"
    }  # fmt: skip
    keys = Counter((r["kind"], r["account"], r["ident"], r["currency"]) for r in rows)
    assert max(keys.values()) == 1, "one row per relationship"
    assert all(r["currency"] == "" for r in rows if r["kind"] != "payee")
    linked = {(r["kind"], r["ident"]) for r in rows}
    idents = t.identifiers.collect()
    nodes = {(r["kind"], r["ident"]) for r in idents}
    assert len(nodes) == len(idents), "one row per identifier"
    all_flagged = {(r["kind"], r["ident"]) for r in idents if r["flag"]}
    return {
        "accounts": accounts, "edges": edges, "paid": paid, "flagged": all_flagged & linked,
        "linked": linked, "nodes": nodes, "all_flagged": all_flagged,
    }  # fmt: skip


def _per_table(report: LoadReport) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for s in report.sources:
        t = out.setdefault(s.table, Counter())
        t.update({"rows_read": s.rows_read, "rows_loaded": s.rows_loaded,
                  "rows_quarantined": s.rows_quarantined,
                  "rows_skipped_by_mapping": s.rows_skipped_by_mapping, **s.reasons})  # fmt: skip
    return {k: dict(v) for k, v in out.items()}


def _same(graph: Graph, report: LoadReport, tables: SparkTables) -> None:
    want, got = _loaded(graph), _on_spark(tables)
    for part in ("accounts", "nodes", "linked", "flagged", "all_flagged", "paid", "edges"):
        w, g = want[part], got[part]
        if w != g:  # a short message: the difference, not two 30k-entry dumps
            missing = w - g if isinstance(w, (set, Counter)) else set(w.items()) - set(g.items())
            extra = g - w if isinstance(w, (set, Counter)) else set(g.items()) - set(w.items())
            pytest.fail(f"{part} differ: only in Neo4j {sorted(missing)[:5]} ({len(missing)}), "
                        f"only on Spark {sorted(extra)[:5]} ({len(extra)})")  # fmt: skip
    w_report = {k: {n: c for n, c in v.items() if c} for k, v in _per_table(report).items()}
    g_report = {k: {n: c for n, c in v.items() if c} for k, v in tables.report.items()}
    assert g_report == w_report
    for table in tables.report.values():
        assert table["rows_read"] == table["rows_loaded"] + table["rows_quarantined"]
    streams = [(s.file, s.table, s.output, s.rows_read, s.rows_loaded, s.rows_quarantined,
                s.rows_skipped_by_mapping, s.reasons) for s in report.sources]  # fmt: skip
    assert sorted(streams, key=str) == sorted(
        [(s.file, s.table, s.output, s.rows_read, s.rows_loaded, s.rows_quarantined,
          s.rows_skipped_by_mapping, s.reasons) for s in tables.sources], key=str,
    )  # fmt: skip


# --- the tests --------------------------------------------------------------------------------


@pytest.mark.neo4j
def test_spark_tables_equal_the_loaded_graph(
    graph: Graph, neo4j_settings: Settings, spark: SparkSession, tmp_path: Path
) -> None:
    d = _world(tmp_path)
    report = load(d, graph, neo4j_settings, report_dir=tmp_path / "run", progress=False)
    # Every kind of bad row really was met (else this test would prove less than it says).
    reasons = report.reasons()
    for reason in ("unparseable timestamp", "timestamp out of range", "invalid value",
                   "unknown account", "unparseable phone", "missing key", "unknown kind",
                   "unknown label", "negative amount", "unparseable amount", "malformed row",
                   "duplicate payment_id with different content"):  # fmt: skip
        assert reasons[reason] > 0, reason
    # Small file splits: the JSON Lines and the payments are read in several tasks each, and the
    # row order ("the last row wins", "the first payment wins") must hold across them.
    spark.conf.set("spark.sql.files.maxPartitionBytes", str(256 << 10))
    try:
        tables = read_tables(spark, d, neo4j_settings)
        assert spark.read.text(str(d / "account_identifiers.jsonl")).rdd.getNumPartitions() > 4
        assert spark.read.parquet(str(d / "payments.parquet")).rdd.getNumPartitions() > 1
    finally:
        spark.conf.unset("spark.sql.files.maxPartitionBytes")
    try:
        _same(graph, report, tables)
        assert tables.accounts.count() == ACCOUNTS + 1  # bare-1 joined the generated ones
    finally:
        tables.unpersist()


@pytest.mark.neo4j
@pytest.mark.parametrize("name", ["aws_registrations", "aws_transactions"])
def test_spark_tables_through_a_mapping_equal_the_loaded_graph(
    graph: Graph, neo4j_settings: Settings, spark: SparkSession, tmp_path: Path, name: str
) -> None:
    if not (SHARED / f"{name}_2k.csv").is_file():
        pytest.skip(f"reference data not present: {SHARED} (see shared/data/README.md)")
    d = tmp_path / "in"
    d.mkdir()
    (d / f"{name}_2k.csv").symlink_to(SHARED / f"{name}_2k.csv")
    mapping = MAPPINGS / f"{name}.yaml"
    report = load(d, graph, neo4j_settings, mapping=mapping, report_dir=tmp_path / "run",
                  progress=False)  # fmt: skip
    tables = read_tables(spark, d, neo4j_settings, mapping=mapping)
    try:
        _same(graph, report, tables)
    finally:
        tables.unpersist()


@pytest.mark.parametrize("fmt", ["jsonl", "parquet", "csv"])
def test_rows_keep_the_file_order_across_splits(
    spark: SparkSession, tmp_path: Path, fmt: str
) -> None:
    """Each stream's rows, read in many small splits, are the loader's normalised rows with
    ``_row`` sorting them in file order (what "the last row wins" relies on)."""
    n = 3_000
    table = pa.table({
        "account_id": [f"acc-{i % 700:04d}" for i in range(n)],
        "created_at": [None if i % 97 == 0 else f"2024-01-{1 + i % 28:02d}T{i % 24:02d}:00:00Z"
                       for i in range(n)],
        "kyc_level": [str(i % 5) for i in range(n)],  # 4 is refused
        "country": ["cn"] * n,
    })  # fmt: skip
    path = tmp_path / f"accounts.{fmt}"
    if fmt == "parquet":
        pq.write_table(table, path, row_group_size=200)
    elif fmt == "csv":
        pacsv.write_csv(table, path)
    else:
        with path.open("w", encoding="utf-8-sig") as fh:  # a BOM: the loader refuses line 1
            for i, rec in enumerate(table.to_pylist()):
                fh.write(json.dumps(rec) + ("\r\n" if i % 3 else "\n"))
    stream = _plan(tmp_path, None)[0]
    raw = next(iter(read_batches(path, header(path), 10 * n)))
    want = normalise(ACCOUNTS_TABLE, raw.batch,
                     Context("CN", None, lambda ids: np.ones(len(ids), dtype=bool)))  # fmt: skip
    spark.conf.set("spark.sql.files.maxPartitionBytes", str(16 << 10))
    try:
        df = _normalised(spark, stream, header(path), "CN", None)
        if fmt != "csv":
            assert df.rdd.getNumPartitions() > 1
        got = df.orderBy("_row").collect()
    finally:
        spark.conf.unset("spark.sql.files.maxPartitionBytes")
    good = [r for r in got if r["_reason"] is None]
    ms = want.good.column("created_at").cast(pa.int64()).to_pylist()
    assert [(r["id"], r["created_at"], r["kyc_level"]) for r in good] == list(
        zip(want.good.column("id").to_pylist(), ms, want.good.column("kyc_level").to_pylist(),
            strict=True)
    )  # fmt: skip
    reasons = ["malformed row"] * len(raw.malformed) + [r.reason.value for r in want.refused]
    assert [r["_reason"] for r in got if r["_reason"]] == reasons
    assert len(raw.malformed) == (fmt == "jsonl")
