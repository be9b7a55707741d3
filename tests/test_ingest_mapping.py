"""Foreign schemas through mappings: the AWS Fraud Detector samples in ../shared/data."""

from __future__ import annotations

from pathlib import Path

import pytest

from ringscope.graph import Graph, counts
from ringscope.ingest import MappingError, load
from ringscope.ingest.mapping import load_mapping
from ringscope.settings import Settings

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
MAPPINGS = REPO / "ingest" / "mappings"


def test_mapping_files_parse() -> None:
    for name in ("aws_registrations.yaml", "aws_transactions.yaml"):
        m = load_mapping(MAPPINGS / name)
        assert m.default_region == "US" and m.sources


def test_bad_mapping_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "m.yaml"
    bad.write_text("version: 1\nsources:\n  - file: x.csv\n    outputs:\n"
                   "      - table: accounts\n        columns: {created_at: t}\n")  # fmt: skip
    with pytest.raises(MappingError, match="account_id"):
        load_mapping(bad)


@pytest.mark.neo4j
def test_aws_samples_share_identifier_nodes(
    graph: Graph, neo4j_settings: Settings, tmp_path: Path
) -> None:
    if not (SHARED / "aws_registrations_2k.csv").is_file():
        pytest.skip(f"reference data not present: {SHARED} (see shared/data/README.md)")
    reg = load(SHARED, graph, neo4j_settings, mapping=MAPPINGS / "aws_registrations.yaml",
               report_dir=tmp_path / "reg", progress=False)  # fmt: skip
    for src in reg.sources:
        assert src.rows_read == src.rows_loaded + src.rows_quarantined
    nodes, rels = counts(graph)
    assert nodes["Account"] == 2000
    assert rels["USES_IP"] == rels["HAS_EMAIL"] == 2000
    # identifiers repeated across registrations are ONE node each, linked to several accounts
    assert nodes["IP"] == 1355 and nodes["Email"] == 1472 and nodes["Phone"] == 1454
    shared = graph.read(
        "MATCH (i:IP)<-[:USES_IP]-(a:Account) WITH i, count(a) AS n WHERE n > 1 "
        "RETURN count(i) AS shared, max(n) AS most"
    )[0]
    assert shared["shared"] > 100 and shared["most"] == 7
    phone = graph.read("MATCH (p:Phone) RETURN p.id AS id LIMIT 1")[0]["id"]
    assert phone.startswith("+1555")
    labels = graph.read("MATCH (a:Account) RETURN a.label AS l, count(*) AS n")
    assert {r["l"]: r["n"] for r in labels} == {"fraud": 100, "legit": 1099, None: 801}

    tx = load(SHARED, graph, neo4j_settings, mapping=MAPPINGS / "aws_transactions.yaml",
              report_dir=tmp_path / "tx", progress=False)  # fmt: skip
    for src in tx.sources:
        assert src.rows_read == src.rows_loaded + src.rows_quarantined
    nodes, rels = counts(graph)
    assert nodes["Account"] == 2000 + 248 and nodes["Payee"] == 601
    assert rels["PAID"] > 0 and rels["HAS_BANK_CARD"] == 248
    fraud = graph.read(
        "MATCH (a:Account) WHERE a.id STARTS WITH 'awscust-' AND a.label = 'fraud' "
        "RETURN count(a) AS n"
    )[0]["n"]
    assert fraud == 79  # customers with at least one fraudulent transaction
    # reloading is a no-op
    again = load(SHARED, graph, neo4j_settings, mapping=MAPPINGS / "aws_transactions.yaml",
                 report_dir=tmp_path / "tx2", progress=False)  # fmt: skip
    assert again.relationships_created == again.properties_set == 0
