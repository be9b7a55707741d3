"""Bad input files against the real Neo4j (issue #19, sections 6 and 7): every one ends in a
quarantined row with a reason or in a refusal that names the file and the row or column, before
anything is written; never in a traceback, and rows read always equal loaded plus quarantined."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import free_port
from helpers import ringscope
from ingest_support import dump

from ringscope.graph import EmbeddedNeo4j, Graph, connect, counts, cypher
from ringscope.ingest import IngestError, IngestFormatError, LoadReport, load
from ringscope.ingest.loader import iter_quarantine
from ringscope.settings import Settings

pytestmark = pytest.mark.neo4j

ACCOUNTS_HEADER = "account_id,created_at,kyc_level,country\n"
SEEN = "2024-02-01T00:00:00Z"


def _accounts(n: int, **override: str) -> str:
    """``n`` good accounts acc-0001..; ``override`` replaces whole rows by account id."""
    rows = [f"acc-{i:04d},2024-01-02T00:00:00Z,1,CN" for i in range(1, n + 1)]
    return ACCOUNTS_HEADER + "".join(override.get(r.split(",")[0], r) + "\n" for r in rows)


def _write(d: Path, files: dict[str, str | bytes]) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    for name, body in files.items():
        (d / name).write_bytes(body if isinstance(body, bytes) else body.encode())
    return d


def _load(d: Path, graph: Graph, settings: Settings, tmp_path: Path, **kw: object) -> LoadReport:
    return load(d, graph, settings, report_dir=tmp_path / "run", progress=False, **kw)  # type: ignore[arg-type]


def _quarantined(report: LoadReport) -> dict[tuple[str, int], tuple[str, str]]:
    """(file, row) -> (field, reason), and the ledger's balance checked on the way."""
    records = list(iter_quarantine(Path(report.quarantine_file)))
    for src in report.sources:
        assert src.rows_read == src.rows_loaded + src.rows_quarantined, src
    assert len(records) == report.rows_quarantined
    return {(r["file"], r["row"]): (r["field"], r["reason"]) for r in records}


def _nothing_written(graph: Graph) -> None:
    nodes, _ = counts(graph)
    assert not any(nodes.values()), nodes
    assert graph.read("MATCH (b:IngestBatch) RETURN count(b) AS n")[0]["n"] == 0


# -- 6. reports that say everything loaded when it did not


def _unbalanced(rows: int = 2303, at: int = 100) -> str:
    """An account_devices file whose row ``at`` opens a quote that never closes."""
    lines = [f"acc-{i % 50 + 1:04d},dev-{i % 7},{SEEN}" for i in range(1, rows + 1)]
    lines[at - 1] = f'acc-0001,"dev-1,{SEEN}'
    return "account_id,device_id,seen_at\n" + "\n".join(lines) + "\n"


def test_an_unbalanced_quote_fails_the_file_naming_its_row_before_anything_is_written(
    graph: Graph, neo4j_settings: Settings, tmp_path: Path
) -> None:
    d = _write(tmp_path / "d", {"accounts.csv": _accounts(50),
                                "account_devices.csv": _unbalanced()})  # fmt: skip
    with pytest.raises(IngestFormatError) as info:
        _load(d, graph, neo4j_settings, tmp_path)
    message = str(info.value)
    assert "account_devices.csv" in message and "row 100 (line 101)" in message, message
    assert "unbalanced quote" in message and "end of the file" in message, message
    _nothing_written(graph)

    # Two stray quotes that leave the folded row with the wrong field count: refused too.
    stray = _unbalanced(rows=300, at=40)
    stray = stray.replace(f"acc-0011,dev-6,{SEEN}", f'acc-0011,dev"-6,{SEEN},x')  # row 160
    _write(d, {"account_devices.csv": stray})
    with pytest.raises(IngestFormatError, match=r"account_devices\.csv: row 40 \(line 41\)"):
        _load(d, graph, neo4j_settings, tmp_path)
    _nothing_written(graph)

    # A quoted value with a line break in it is no unbalanced quote: it loads.
    fine = _unbalanced(rows=300, at=40).replace(f'"dev-1,{SEEN}', f'"dev-1",{SEEN}')
    devices = 'device_id,os\ndev-1,"android\n13, ""go"""\n'
    _write(d, {"account_devices.csv": fine, "devices.csv": devices})
    report = _load(d, graph, neo4j_settings, tmp_path)
    assert report.rows_quarantined == 0 and report.rows_read == 351
    os_name = graph.read("MATCH (d:Device {id: 'dev-1'}) RETURN d.os AS os")[0]["os"]
    assert os_name == 'android\n13, "go"'


def test_oversized_keys_are_quarantined_not_sent_to_the_index(
    graph: Graph, neo4j_settings: Settings, tmp_path: Path
) -> None:
    """Neo4j refuses index entries over 8 kB mid-transaction; keys over 512 characters are
    quarantined as "key too long" before anything reaches it, in every key column."""
    huge, long_device, long_account = "d" * 5_000_000, "d" * 10_000, "a" * 9_000
    links = [f"acc-{i:04d},dev-{i % 3},{SEEN}" for i in range(1, 21)]
    links[4] = f"acc-0005,{long_device},{SEEN}"
    links[5] = f"acc-0006,{huge},{SEEN}"
    links[6] = f"{long_account},dev-1,{SEEN}"
    links[7] = f"acc-0008,{'e' * 512},{SEEN}"  # exactly the limit: loaded
    d = _write(tmp_path / "d", {
        "accounts.csv": _accounts(20, **{"acc-0003": f"{long_account},2024-01-02,1,CN"}),
        "devices.csv": f"device_id,os\ndev-0,ios\n{long_device},android\n",
        "account_devices.csv": "account_id,device_id,seen_at\n" + "\n".join(links) + "\n",
        "account_identifiers.csv": f"account_id,kind,value\nacc-0001,email,{'x' * 600}@e.com\n"
                                   "acc-0001,ip,10.0.0.1\n",
        "account_phones.csv": f"account_id,phone\nacc-0001,{'1' * 700}\n",
    })  # fmt: skip
    report = _load(d, graph, neo4j_settings, tmp_path)
    too_long = ("key too long",)
    assert {k: v for k, v in _quarantined(report).items() if v[1] in too_long} == {
        ("accounts.csv", 3): ("account_id", "key too long"),
        ("devices.csv", 2): ("device_id", "key too long"),
        ("account_devices.csv", 5): ("device_id", "key too long"),
        ("account_devices.csv", 6): ("device_id", "key too long"),
        ("account_devices.csv", 7): ("account_id", "key too long"),
        ("account_identifiers.csv", 1): ("value", "key too long"),
        ("account_phones.csv", 1): ("phone", "key too long"),
    }
    assert report.rows_loaded == 19 + 1 + 16 + 1  # acc-0003's own links are unknown accounts
    longest = graph.read("MATCH (n) RETURN max(size(n.id)) AS n")[0]["n"]
    assert longest == 512


EDGES = {
    "acc-0002": "acc-0002,9999-12-31T23:59:59-01:00,1,CN",  # past year 9999 in UTC
    "acc-0003": "acc-0003,0001-01-01T00:00:00+01:00,1,CN",  # before year 1 in UTC
    "acc-0004": "acc-0004,1969-12-31T23:59:59Z,1,CN",
    "acc-0005": "acc-0005,2100-01-01T00:00:00Z,1,CN",
    "acc-0006": "acc-0006,1970-01-01T00:00:00Z,1,CN",  # the first instant accepted
    "acc-0007": "acc-0007,2099-12-31T23:59:59.999+00:00,1,CN",  # the last one
}


def test_timestamps_outside_the_documented_range_are_quarantined(
    graph: Graph, neo4j_settings: Settings, tmp_path: Path
) -> None:
    d = _write(tmp_path / "d", {
        "accounts.csv": _accounts(8, **EDGES),
        "account_devices.jsonl": "".join(json.dumps(
            {"account_id": "acc-0001", "device_id": "dev-1", "seen_at": ts}) + "\n" for ts in
            ["9999-12-31T23:59:59-01:00", "2024-05-01T00:00:00Z", "0001-01-01"]),
    })  # fmt: skip
    report = _load(d, graph, neo4j_settings, tmp_path)
    out = ("created_at", "timestamp out of range")
    assert _quarantined(report) == {
        ("accounts.csv", 2): out, ("accounts.csv", 3): out, ("accounts.csv", 4): out,
        ("accounts.csv", 5): out,
        ("account_devices.jsonl", 1): ("seen_at", "timestamp out of range"),
        ("account_devices.jsonl", 3): ("seen_at", "timestamp out of range"),
    }  # fmt: skip
    edges = graph.read(
        "MATCH (a:Account) WHERE a.id IN ['acc-0006', 'acc-0007'] "
        "RETURN a.id AS id, toString(a.created_at) AS t ORDER BY id"
    )
    assert [(r["id"], r["t"][:4]) for r in edges] == [("acc-0006", "1970"), ("acc-0007", "2099")]


def test_control_characters_in_ids_are_quarantined(
    graph: Graph, neo4j_settings: Settings, tmp_path: Path
) -> None:
    d = _write(tmp_path / "d", {
        "accounts.csv": _accounts(6, **{"acc-0002": "acc\x00-0002,2024-01-02,1,CN",
                                        "acc-0003": "acc-\x070003,2024-01-02,1,CN",
                                        "acc-0004": "acc-\u00850004,2024-01-02,1,CN"}),
        "account_devices.csv": f"account_id,device_id,seen_at\nacc-0001,dev\x01x,{SEEN}\n"
                               f"acc-0001,dev-1,{SEEN}\nacc-0005,\tdev-2 ,{SEEN}\n",
        "account_identifiers.jsonl": json.dumps(
            {"account_id": "acc-0001", "kind": "email", "value": "a\u0000@b.c"}) + "\n",
    })  # fmt: skip
    report = _load(d, graph, neo4j_settings, tmp_path)
    bad = ("account_id", "control character")
    assert _quarantined(report) == {
        ("accounts.csv", 2): bad, ("accounts.csv", 3): bad, ("accounts.csv", 4): bad,
        ("account_devices.csv", 1): ("device_id", "control character"),
        ("account_identifiers.jsonl", 1): ("value", "control character"),
    }  # fmt: skip
    ids = {r["id"] for r in graph.read(
        "MATCH (n) WHERE NOT n:IngestBatch AND NOT n:IngestFile RETURN n.id AS id")}  # fmt: skip
    assert ids == {"acc-0001", "acc-0005", "acc-0006", "dev-1", "dev-2"}  # tab and space: trimmed


# -- 7. file-level refusals, before anything is written


def test_a_bad_encoding_in_a_later_file_writes_nothing(
    graph: Graph, neo4j_settings: Settings, tmp_path: Path
) -> None:
    # Past the first 64 kB: the header check alone does not see it.
    good = "device_id,os\n" + "".join(f"dev-{i},android\n" for i in range(5000))
    latin1 = good.encode() + "dev-x,Andr\u00e9\n".encode("latin-1")
    at = len(good.encode()) + len("dev-x,Andr") + 1
    links = "account_id,device_id\nacc-0001,dev-1\n"
    d = _write(tmp_path / "d", {"accounts.csv": _accounts(10), "devices.csv": latin1,
                                "account_devices.csv": links})  # fmt: skip
    said = rf"devices\.csv: line 5002 \(byte {at}\) is not UTF-8"
    with pytest.raises(IngestFormatError, match=said):
        _load(d, graph, neo4j_settings, tmp_path)
    _nothing_written(graph)
    # JSON Lines too, and past the first block of the file.
    body = "".join(json.dumps({"account_id": f"acc-{i % 10 + 1:04d}", "device_id": f"d{i}"}) + "\n"
                   for i in range(40_000)).encode()  # fmt: skip
    body += b'{"account_id": "acc-0001", "device_id": "\xff"}\n'
    _write(d, {"devices.csv": "device_id,os\ndev-1,android\n", "account_devices.jsonl": body})
    (d / "account_devices.csv").unlink()
    with pytest.raises(IngestFormatError, match=r"account_devices\.jsonl: line 40001 "):
        _load(d, graph, neo4j_settings, tmp_path)
    _nothing_written(graph)


def test_a_column_named_twice_fails_fast_naming_file_and_column(
    graph: Graph, neo4j_settings: Settings, tmp_path: Path
) -> None:
    d = _write(tmp_path / "d", {
        "accounts.csv": _accounts(5),
        "devices.csv": "device_id,os, os\ndev-1,android,ios\n",
    })  # fmt: skip
    with pytest.raises(IngestFormatError) as info:
        _load(d, graph, neo4j_settings, tmp_path)
    assert "devices.csv" in str(info.value) and "'os' appears twice" in str(info.value)
    _nothing_written(graph)


def test_a_broken_jsonl_line_is_quarantined_wherever_it_is(
    graph: Graph, neo4j_settings: Settings, tmp_path: Path
) -> None:
    lines = [json.dumps({"account_id": f"acc-{i % 5 + 1:04d}", "device_id": f"dev-{i % 3}",
                         "seen_at": SEEN}) for i in range(1500)]  # fmt: skip
    lines[1] = '{"account_id": "acc-0001", "device_id": '  # in the header scan's 1,000 lines
    lines[1200] = "not json"  # past them
    lines[7] = '{"account_id": "acc-0001", "device_id": "\\ud800"}'  # a lone surrogate
    d = _write(tmp_path / "d", {"accounts.csv": _accounts(5),
                                "account_devices.jsonl": "\n".join(lines) + "\n"})  # fmt: skip
    report = _load(d, graph, neo4j_settings, tmp_path)
    bad = ("", "malformed row")
    assert _quarantined(report) == {("account_devices.jsonl", 2): bad,
                                    ("account_devices.jsonl", 8): bad,
                                    ("account_devices.jsonl", 1201): bad}  # fmt: skip
    assert report.rows_read == 5 + 1500 and report.rows_loaded == 5 + 1497


def test_files_that_are_not_read_are_named_in_warnings(
    graph: Graph, neo4j_settings: Settings, tmp_path: Path, neo4j_env: dict[str, str]
) -> None:
    payments = "payment_id,account_id,payee_id,amount\np1,acc-0001,m1,5\n"
    d = _write(tmp_path / "d", {
        "accounts.csv": _accounts(3), "payments.txt": payments, "payments.CSV": payments,
        "Devices.csv": "device_id\nd1\n", "notes.md": "hello", ".hidden": "",
    })  # fmt: skip
    (d / "old").mkdir()
    report = _load(d, graph, neo4j_settings, tmp_path)
    assert report.warnings == [
        "Devices.csv: not read (table names are lower case: did you mean devices.csv?).",
        "notes.md: not read (not a table of the data contract).",
        "payments.CSV: not read (extensions are lower case: did you mean payments.csv?).",
        "payments.txt: not read (unknown file type '.txt'; use one of .csv, .parquet, .jsonl).",
    ]
    saved = json.loads((Path(report.report_dir) / "report.json").read_text())
    assert saved["warnings"] == report.warnings
    graph.write(cypher.DELETE_ALL)
    done = ringscope("ingest", str(d), "--report-dir", str(tmp_path / "cli"), env=neo4j_env)
    assert done.returncode == 0, done.stderr
    assert "warning: payments.txt: not read" in done.stdout + done.stderr


# -- no traceback reaches a user


def test_the_cli_answers_bad_input_in_one_line_without_a_traceback(
    graph: Graph, tmp_path: Path, neo4j_env: dict[str, str]
) -> None:
    cases: dict[str, tuple[dict[str, str | bytes], int, str]] = {
        "quote": ({"accounts.csv": _accounts(50), "account_devices.csv": _unbalanced()}, 2,
                  "account_devices.csv: row 100 (line 101)"),
        "keys": ({"accounts.csv": _accounts(5, **{"acc-0002": f"{'a' * 9000},2024-01-02,1,CN"}),
                  "devices.csv": f"device_id\n{'d' * 10_000}\n"}, 0, "key too long"),
        "edges": ({"accounts.csv": _accounts(5, **EDGES)}, 0, "timestamp out of range"),
        "dupcol": ({"accounts.csv": _accounts(5).replace("country", "kyc_level")}, 2,
                   "'kyc_level' appears twice"),
        "latin1": ({"accounts.csv": _accounts(5), "devices.csv": b"device_id\nd\xe9\n"}, 2,
                   "devices.csv: line 2 (byte 12) is not UTF-8"),
    }  # fmt: skip
    for name, (files, code, said) in cases.items():
        graph.write(cypher.DELETE_ALL)
        d = _write(tmp_path / name, files)
        done = ringscope("ingest", str(d), "--report-dir", str(tmp_path / f"r-{name}"),
                         env=neo4j_env)  # fmt: skip
        shown = done.stdout + done.stderr
        assert done.returncode == code, (name, shown)
        assert "Traceback" not in shown and said in " ".join(shown.split()), (name, shown)
        if code:
            assert len(done.stderr.strip().splitlines()) <= 3, (name, done.stderr)
            assert counts(graph)[0].get("Account", 0) == 0, name
        else:
            saved = json.loads((tmp_path / f"r-{name}" / "report.json").read_text())["totals"]
            assert saved["rows_read"] == saved["rows_loaded"] + saved["rows_quarantined"]


def test_an_unexpected_failure_becomes_one_line_and_a_log_file(tmp_path: Path) -> None:
    from ringscope.ingest.loader import unexpected_failure

    try:
        {}["boom"]  # any exception that no check anticipated
    except KeyError as exc:
        error = unexpected_failure(exc, tmp_path / "logs")
    assert isinstance(error, IngestError) and "\n" not in str(error)
    assert "unexpected KeyError: 'boom'" in str(error)
    (log,) = (tmp_path / "logs").iterdir()
    assert str(log) in str(error) and "Traceback" in log.read_text()


# -- the same through the offline importer (--bulk)


@pytest.fixture(scope="module")
def bulk_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """An embedded instance of its own: bulk loads stop it and replace its store."""
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("bulk-hardening"),
        neo4j_port=free_port(),
        neo4j_heap="512m",
        neo4j_pagecache="256m",
    )
    try:
        yield settings
    finally:
        if (settings.data_dir / "neo4j").exists():  # started by a test
            EmbeddedNeo4j(settings).stop()


@pytest.mark.skipif(bool(os.environ.get("NEO4J_URI")), reason="bulk loads need the embedded Neo4j")
def test_bulk_loads_quarantine_and_refuse_the_same_rows(
    graph: Graph, neo4j_settings: Settings, bulk_settings: Settings, tmp_path: Path
) -> None:
    links = [f"acc-{i:04d},dev-{i % 3},{SEEN}" for i in range(1, 21)]
    links[4] = f"acc-0005,{'d' * 10_000},{SEEN}"
    links[6] = f"{'a' * 9_000},dev-1,{SEEN}"
    links[8] = f"acc-0009,dev\x01x,{SEEN}"
    links[9] = "acc-0010,dev-1,9999-12-31T23:59:59-01:00"
    broken = [json.dumps({"payee_id": f"m-{i}", "kind": "merchant"}) for i in range(5)]
    broken[1] = '{"payee_id": "m-1", "kind": '
    d = _write(tmp_path / "d", {
        "accounts.csv": _accounts(20, **EDGES, **{"acc-0011": f"{'a' * 9000},2024-01-02,1,CN",
                                                  "acc-0012": "acc\x00-0012,2024-01-02,1,CN"}),
        "account_devices.csv": "account_id,device_id,seen_at\n" + "\n".join(links) + "\n",
        "payees.jsonl": "\n".join(broken) + "\n",
    })  # fmt: skip
    by_cypher = load(d, graph, neo4j_settings, report_dir=tmp_path / "cypher", progress=False)
    expected = _quarantined(by_cypher)
    assert {reason for _, reason in expected.values()} >= {
        "key too long",
        "control character",
        "timestamp out of range",
        "malformed row",
    }

    with connect(bulk_settings) as g:
        g.write(cypher.DELETE_ALL)
        bulk = load(d, g, bulk_settings, report_dir=tmp_path / "bulk", progress=False, bulk=True)
        assert _quarantined(bulk) == expected
        assert (bulk.rows_read, bulk.rows_loaded) == (by_cypher.rows_read, by_cypher.rows_loaded)
        assert dump(g) == dump(graph)

        # A file refused by the pre-flight pass stops a bulk load before the store is touched.
        g.write(cypher.DELETE_ALL)
        _write(d, {"devices.csv": b"device_id\nd\xe9\n"})
        with pytest.raises(IngestFormatError, match=r"devices\.csv: line 2"):
            load(d, g, bulk_settings, report_dir=tmp_path / "bad", progress=False, bulk=True)
        assert not any(counts(g)[0].values())
        _write(d, {"devices.csv": "device_id\nd1\n", "account_devices.csv": _unbalanced()})
        with pytest.raises(IngestFormatError, match="unbalanced quote"):
            load(d, g, bulk_settings, report_dir=tmp_path / "quote", progress=False, bulk=True)
        assert not any(counts(g)[0].values())
