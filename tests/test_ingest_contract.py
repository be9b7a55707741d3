"""The data contract against the real Neo4j: formats, normalisation, quarantine, fail-fast."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from ingest_support import dump, sample_tables, write_dataset

import ringscope.ingest.layout
import ringscope.ingest.stream_loader
from ringscope.errors import RingScopeError
from ringscope.graph import Graph, counts, cypher
from ringscope.ingest import IngestFormatError, load
from ringscope.ingest.loader import iter_quarantine
from ringscope.settings import Settings

pytestmark = pytest.mark.neo4j


def _load(d: Path, graph: Graph, settings: Settings, tmp_path: Path, name: str = "run"):  # type: ignore[no-untyped-def]
    return load(d, graph, settings, report_dir=tmp_path / name, progress=False)


def test_each_format_loads_the_same_graph(
    graph: Graph, neo4j_settings: Settings, tmp_path: Path
) -> None:
    tables = sample_tables()
    dumps = {}
    for fmt in ("csv", "parquet", "jsonl"):
        graph.write(cypher.DELETE_ALL)
        d = write_dataset(tmp_path / fmt, tables, fmt)
        report = _load(d, graph, neo4j_settings, tmp_path, fmt)
        assert report.rows_quarantined == 0, report.reasons()
        dumps[fmt] = dump(graph)
    assert dumps["csv"][0] and dumps["csv"][1]
    assert dumps["csv"] == dumps["parquet"] == dumps["jsonl"]
    nodes, rels = counts(graph)
    assert nodes["Account"] == 12 and rels["USES_DEVICE"] == 12  # 3 sightings -> one rel
    rec = graph.read(
        "MATCH (:Account {id: 'acc-0000'})-[r:USES_DEVICE]->(d:Device) "
        "RETURN d.id AS d, r.count AS c, r.first_seen AS f, r.last_seen AS l"
    )[0]
    assert (rec["d"], rec["c"]) == ("dev-0", 3)
    assert rec["f"].iso_format().startswith("2024-02-01T00:30:00")
    assert rec["l"].iso_format().startswith("2024-02-03T02:30:00")
    paid = graph.read("MATCH (:Account {id: 'acc-0000'})-[r:PAID]->(:Payee {id: 'm-0'}) RETURN r")[
        0
    ]["r"]
    assert paid["count"] == 3 and paid["currency"] == "CNY"
    assert paid["total_amount"] == "312.3400" and paid["total_amount_e4"] == 3_123_400
    assert paid["max_amount"] == "200.0000" and paid["round_count"] == 2
    acc = graph.read("MATCH (a:Account {id: 'acc-0000'}) RETURN a")[0]["a"]
    assert acc["label"] == "fraud" and acc["kyc_level"] == 0


def test_phone_and_email_spellings_become_one_node(
    graph: Graph, neo4j_settings: Settings, tmp_path: Path
) -> None:
    _load(write_dataset(tmp_path / "d", sample_tables()), graph, neo4j_settings, tmp_path)
    phones = graph.read(
        "MATCH (p:Phone {id: '+8613800138000'}) OPTIONAL MATCH (a)-[r:HAS_PHONE]->(p) "
        "RETURN p.carrier AS carrier, count(DISTINCT a) AS accounts, sum(r.count) AS n"
    )[0]
    # 6 even accounts x 3 sightings, in four spellings, plus the phones table's fifth spelling
    assert (phones["carrier"], phones["accounts"], phones["n"]) == ("cmcc", 6, 18)
    assert graph.read("MATCH (p:Phone) WHERE NOT p.id STARTS WITH '+' RETURN p") == []
    emails = graph.read("MATCH (e:Email) RETURN e.id AS id ORDER BY id")
    assert [r["id"] for r in emails] == [f"user{i}@example.com" for i in range(4)]


BAD = {
    "accounts.csv": (
        "account_id,created_at,kyc_level,country,segment\n"
        "a1,2024-01-01T00:00:00Z,2,CN,retail\n"
        "a2,2024-01-02,1,CN,\n"
        ",2024-01-03T00:00:00Z,1,CN,\n"  # row 3: missing key
        "a4,yesterday,1,CN,\n"  # row 4: unparseable timestamp
        "a5,2024-01-05T00:00:00Z,7,CN,\n"  # row 5: invalid kyc level
        "a6,2024-01-06T00:00:00Z,1\n"  # row 6: malformed (too few fields)
    ),
    "phones.csv": "phone,carrier,is_virtual\n13800138000,cmcc,false\nnot-a-phone,x,false\n",
    "payees.csv": "payee_id,kind,name\nm1,merchant,Shop\nm2,robot,Bot\n",
    "labels.csv": (
        "account_id,label,labelled_at\na1,fraud,2024-06-01T00:00:00Z\n"
        "a2,maybe,2024-06-01T00:00:00Z\n"  # row 2: unknown label
        "zz,legit,2024-06-01T00:00:00Z\n"  # row 3: unknown account
    ),
    "account_phones.csv": (
        "account_id,phone,seen_at\na1,+86 138 0013 8000,2024-02-01T00:00:00Z\n"
        "a2,12,2024-02-01T00:00:00Z\n"  # row 2: unparseable phone
    ),
    "payments.csv": (
        "payment_id,account_id,payee_id,amount,currency,paid_at\n"
        "p1,a1,m1,100.00,CNY,2024-03-01T00:00:00Z\n"
        "p1,a1,m1,100.00,CNY,2024-03-01T00:00:00Z\n"  # row 2: identical duplicate (loaded once)
        "p1,a1,m1,999.00,CNY,2024-03-01T00:00:00Z\n"  # row 3: conflicting duplicate
        "p2,a1,m1,-5,CNY,2024-03-01T00:00:00Z\n"  # row 4: negative amount
        "p3,a1,m1,abc,CNY,2024-03-01T00:00:00Z\n"  # row 5: unparseable amount
        "p4,ghost,m1,1.00,CNY,2024-03-01T00:00:00Z\n"  # row 6: unknown account
        "p5,a2,m1,2.50,,2024-03-02T00:00:00Z\n"
    ),
    "account_identifiers.csv": (
        "account_id,kind,value,seen_at,note\n"
        "a1,email, A@B.com ,2024-02-01T00:00:00Z,x\n"
        "a1,fax,123,2024-02-01T00:00:00Z,x\n"  # row 2: unknown kind
        "a2,ip,,2024-02-01T00:00:00Z,x\n"  # row 3: missing key (value)
    ),
}
EXPECTED = {
    ("accounts.csv", 3, "account_id", "missing key"),
    ("accounts.csv", 4, "created_at", "unparseable timestamp"),
    ("accounts.csv", 5, "kyc_level", "invalid value"),
    ("accounts.csv", 6, "", "malformed row"),
    ("phones.csv", 2, "phone", "unparseable phone"),
    ("payees.csv", 2, "kind", "unknown kind"),
    ("labels.csv", 2, "label", "unknown label"),
    ("labels.csv", 3, "account_id", "unknown account"),
    ("account_phones.csv", 2, "phone", "unparseable phone"),
    ("payments.csv", 3, "payment_id", "duplicate payment_id with different content"),
    ("payments.csv", 4, "amount", "negative amount"),
    ("payments.csv", 5, "amount", "unparseable amount"),
    ("payments.csv", 6, "account_id", "unknown account"),
    ("account_identifiers.csv", 2, "kind", "unknown kind"),
    ("account_identifiers.csv", 3, "value", "missing key"),
}


def test_every_bad_row_is_quarantined_and_reconciled(
    graph: Graph, neo4j_settings: Settings, tmp_path: Path
) -> None:
    d = tmp_path / "bad"
    d.mkdir()
    for name, text in BAD.items():
        (d / name).write_text(text)
    report = _load(d, graph, neo4j_settings, tmp_path)
    records = list(iter_quarantine(Path(report.quarantine_file)))
    got = {(r["file"], r["row"], r["field"], r["reason"]) for r in records}
    assert got == EXPECTED
    assert len(records) == len(EXPECTED)
    for r in records:
        assert r["raw"], r
    neg = next(r for r in records if r["reason"] == "negative amount")
    assert neg["raw"]["payment_id"] == "p2" and neg["value"] == "-5"
    for src in report.sources:
        assert src.rows_read == src.rows_loaded + src.rows_quarantined, src
    by_file = {s.file: s for s in report.sources}
    assert by_file["payments.csv"].rows_read == 7
    assert by_file["payments.csv"].rows_loaded == 3  # p1 (twice, identical) and p5
    assert Counter(r["reason"] for r in records) == report.reasons()
    # What was loaded: p1 once, p5 in the "no currency" bucket; the good rows are all there.
    paid = graph.read("MATCH (a)-[r:PAID]->() RETURN a.id AS a, r.currency AS c, r.count AS n")
    assert sorted((r["a"], r["c"], r["n"]) for r in paid) == [("a1", "CNY", 1), ("a2", "XXX", 1)]
    assert graph.read("MATCH (a:Account {id: 'a1'}) RETURN a.segment AS s")[0]["s"] == "retail"
    assert (
        graph.read("MATCH (:Account {id: 'a1'})-[:HAS_EMAIL]->(e) RETURN e.id AS e")[0]["e"]
        == "a@b.com"
    )
    nodes, _ = counts(graph)
    assert nodes["Account"] == 2
    assert (Path(report.report_dir) / "report.json").is_file()


def test_missing_required_column_fails_fast(
    graph: Graph, neo4j_settings: Settings, tmp_path: Path
) -> None:
    tables = sample_tables()
    del tables["payments"]["amount"]
    d = write_dataset(tmp_path / "d", tables)
    with pytest.raises(IngestFormatError) as info:
        _load(d, graph, neo4j_settings, tmp_path)
    assert isinstance(info.value, RingScopeError)
    assert "payments.csv" in str(info.value) and "'amount'" in str(info.value)
    nodes, _ = counts(graph)
    assert nodes.get("Account", 0) == 0  # nothing was written


def test_unreadable_file_fails_fast(graph: Graph, neo4j_settings: Settings, tmp_path: Path) -> None:
    d = write_dataset(tmp_path / "d", {"accounts": sample_tables()["accounts"]})
    (d / "devices.parquet").write_text("device_id,os\nnot,parquet\n")
    with pytest.raises(IngestFormatError, match=r"devices\.parquet"):
        _load(d, graph, neo4j_settings, tmp_path)


def test_spilled_buckets_of_large_inputs_give_the_same_graph(
    graph: Graph, neo4j_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Big inputs are read in many batches, spilled to disk in many hash buckets and reduced one
    bucket at a time by two writers; the graph must be the one a single in-memory pass gives."""

    d = write_dataset(tmp_path / "data", sample_tables(n_accounts=40), "parquet")
    one = neo4j_settings.model_copy(update={"ingest_writers": 1})
    _load(d, graph, one, tmp_path, "whole")
    expected = dump(graph)
    graph.write(cypher.DELETE_ALL)
    monkeypatch.setattr(ringscope.ingest.stream_loader, "READ_ROWS", 7)
    monkeypatch.setattr(ringscope.ingest.stream_loader, "SPILL_FLUSH_ROWS", 10)
    monkeypatch.setattr(ringscope.ingest.layout, "PARTITION_BYTES", 64)
    report = _load(d, graph, neo4j_settings, tmp_path, "spilled")
    by_table = {s.table: s.batches for s in report.sources}
    assert by_table["accounts"] >= 4 and by_table["account_identifiers"] >= 4, by_table
    assert report.rows_quarantined == 0
    assert dump(graph) == expected
