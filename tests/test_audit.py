"""The audit log holds no personal data in clear (issue #19, PCI DSS 3.3/3.4), caps the size of a
record, keeps a client's request id apart from the server's, and `ringscope audit find` finds an
entity's records by hashing its value as the server did. Real server, real Neo4j, real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from ringscope.api.audit import AuditBuffer, AuditLog
from ringscope.graph import Graph
from ringscope.settings import Settings
from tests.api_support import (
    EMAIL,
    PHONE,
    Keys,
    LiveServer,
    api_settings,
    small_world,
)

pytestmark = pytest.mark.neo4j

CARD = "4000000000000002"  # the small graph's bank card (ring 2)
DOC = "ID-1"  # its ID document (ring 1)
UNKNOWN_PHONE = "+449999999999"  # asked for, not in the graph: a not_found record
SECRET = "audit-test-secret-0123456789"
# The documented limits (docs/api.md, Audit): a record is at most 2 KiB, an id at most 128
# characters.
RECORD_MAX_BYTES = 2_048
ID_MAX_CHARS = 128
PII_QUERY = """
query Pii($phone: ID!, $email: ID!, $doc: ID!, $card: ID!, $unknown: ID!) {
  phone: entity(kind: PHONE, id: $phone) { id masked }
  email: entity(kind: EMAIL, id: $email) { id masked }
  doc: entity(kind: ID_DOCUMENT, id: $doc) { id masked }
  card: entity(kind: BANK_CARD, id: $card) { id masked }
  missing: entity(kind: PHONE, id: $unknown) { id }
  ring1: riskNeighbourhood(kind: ACCOUNT, id: "A002", hops: 1) { nodes { key kind } }
  ring2: riskNeighbourhood(kind: ACCOUNT, id: "A010", hops: 1) { nodes { key kind } }
}
"""
PII_VARS = {"phone": PHONE, "email": EMAIL, "doc": DOC, "card": CARD, "unknown": UNKNOWN_PHONE}
RAW = (PHONE, EMAIL, DOC, CARD, UNKNOWN_PHONE)


@pytest.fixture(scope="module")
def world(neo4j_settings: Settings) -> Iterator[tuple[Graph, Keys]]:
    yield from small_world(neo4j_settings)


@pytest.fixture(scope="module")
def server(
    neo4j_settings: Settings, world: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    settings = api_settings(
        neo4j_settings, tmp_path_factory.mktemp("audit"), api_mask_secret=SecretStr(SECRET)
    )
    with LiveServer(settings) as srv:
        yield srv


@pytest.fixture
def keys(world: tuple[Graph, Keys]) -> Keys:
    return world[1]


def audit_bytes(server: LiveServer) -> bytes:
    directory = server.settings.api_audit_dir
    assert directory is not None
    return b"".join(p.read_bytes() for p in sorted(directory.glob("api-audit-*.jsonl")))


def audit_find(server: LiveServer, kind: str, value: str) -> subprocess.CompletedProcess[str]:
    """`ringscope audit find` in a subprocess, with the server's secret and audit directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RINGSCOPE_")}
    env.update(
        RINGSCOPE_API_MASK_SECRET=SECRET,
        RINGSCOPE_API_AUDIT_DIR=str(server.settings.api_audit_dir),
        RINGSCOPE_DATA_DIR=str(server.settings.data_dir),
    )
    return subprocess.run(
        [sys.executable, "-m", "ringscope", "audit", "find", "--kind", kind, "--id", value],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )


def test_pii_reads_write_no_raw_value_and_audit_find_finds_them(
    server: LiveServer, keys: Keys
) -> None:
    request_ids = {}
    masked_keys: set[str] = set()
    for role, key in (("risk_engine", keys.risk_engine), ("investigator", keys.investigator)):
        resp = server.post(PII_QUERY, key, PII_VARS)
        body = resp.json()
        assert resp.status_code == 200 and "errors" not in body, body
        assert body["data"]["card"]["masked"] is (role == "risk_engine")
        assert body["data"]["missing"] is None
        request_ids[role] = resp.headers["x-request-id"]
        if role == "risk_engine":  # the tokens of masked node keys, e.g. "phone:~3f1c..."
            for n in body["data"]["ring1"]["nodes"] + body["data"]["ring2"]["nodes"]:
                if "~" in n["key"]:
                    masked_keys.add(n["key"])

    log = audit_bytes(server)
    for raw in RAW:  # grep the files themselves, not the parsed records
        assert raw.encode() not in log, f"{raw} is in the audit log in clear"

    for role, rid in request_ids.items():
        records = server.audit_for(rid)
        by_kind = {(r["kind"], r["outcome"]) for r in records}
        for kind in ("phone", "email", "id_document", "bank_card"):
            assert (kind, "returned") in by_kind, (role, kind, records)
        assert ("phone", "not_found") in by_kind
        pii = [r for r in records if r["kind"] in ("phone", "email", "id_document", "bank_card")]
        assert all(r["id"].startswith("~") and len(r["id"]) == 17 for r in pii)
        assert all(r["role"] == role for r in records)
        # The same token a masked answer shows, for every role: masked keys are findable.
        assert {f"{r['kind']}:{r['id']}" for r in pii if r["outcome"] == "returned"} >= (
            masked_keys
        )

    for kind, value, outcome in (
        ("bank_card", CARD, "returned"),
        ("phone", PHONE, "returned"),
        ("id_document", DOC, "returned"),
        ("email", EMAIL, "returned"),
        ("phone", UNKNOWN_PHONE, "not_found"),
    ):
        found = audit_find(server, kind, value)
        assert found.returncode == 0, found.stderr
        rows = [json.loads(line) for line in found.stdout.splitlines()]
        assert rows and value not in found.stdout
        assert {r["request_id"] for r in rows if r["outcome"] == outcome} >= set(
            request_ids.values()
        ), (kind, rows)
        assert all(r["kind"] == kind for r in rows)
    accounts = audit_find(server, "account", "A010")  # not PII: as it is
    assert accounts.returncode == 0 and '"id": "A010"' in accounts.stdout


def test_audit_find_refuses_an_unknown_kind(server: LiveServer) -> None:
    found = audit_find(server, "passport", "X")
    assert found.returncode == 2 and "Unknown kind 'passport'" in found.stderr
    assert "Traceback" not in found.stderr


def test_a_long_id_is_cut_and_marked(server: LiveServer, keys: Keys) -> None:
    """A 97 kB id used to write 296 kB of audit; now every line is at most RECORD_MAX_BYTES."""
    long_id = "A" * 97_000
    resp = server.post(
        "query($id: ID!) { entity(kind: ACCOUNT, id: $id) { id } }",
        keys.investigator,
        {"id": long_id},
    )
    assert resp.status_code == 200
    directory = server.settings.api_audit_dir
    assert directory is not None
    lines = b"".join(p.read_bytes() for p in directory.glob("api-audit-*.jsonl")).splitlines()
    assert max(len(line) + 1 for line in lines) <= RECORD_MAX_BYTES
    records = server.audit_for(resp.headers["x-request-id"])
    for r in records:  # whatever the request recorded is cut and says so
        assert len(r["id"]) <= ID_MAX_CHARS
        if r["kind"] == "account":
            assert r["truncated"] is True and r["id_chars"] == 97_000


def test_records_are_capped_and_findable(tmp_path: Path) -> None:
    """The cap, straight on the log: long ids, control characters, a lone surrogate."""
    log = AuditLog(tmp_path)
    buf = AuditBuffer("r" * 32, "k" * 12, "investigator", b"s" * 32, "c" * 64)
    long_id, control = "A" * 97_000, "\x00" * 5_000
    buf.add("account", long_id, "not_found", "entity")
    buf.add("device", control, "not_found", "entity")
    buf.add("account", "bad\ud800id", "not_found", "entity")
    buf.add("bank_card", CARD * 100, "not_found", "entity")
    log.submit(buf.records).result(timeout=30)
    data = log.path_for().read_bytes()
    assert len(data) < 4 * RECORD_MAX_BYTES
    assert all(len(line) + 1 <= RECORD_MAX_BYTES for line in data.splitlines())
    assert CARD.encode() not in data
    records = [json.loads(line) for line in data.splitlines()]
    assert records[0]["truncated"] is True and records[0]["id_chars"] == 97_000
    assert records[1]["id_chars"] == 5_000 and records[2]["id"] == "bad\\ud800id"
    assert "truncated" not in records[3]  # a PII token is short already
    assert all(r["client_request_id"] == "c" * 64 for r in records)


def test_a_clients_request_id_is_kept_apart(server: LiveServer, keys: Keys) -> None:
    resp = httpx.post(
        server.url,
        json={"query": '{ entity(kind: ACCOUNT, id: "A001") { id } }'},
        headers={"Authorization": f"Bearer {keys.investigator}", "X-Request-ID": "client-abc"},
        timeout=30,
    )
    assert resp.status_code == 200
    own = resp.headers["x-request-id"]
    assert own != "client-abc" and len(own) == 32
    assert resp.headers["x-client-request-id"] == "client-abc"
    (record,) = server.audit_for(own)
    assert record["client_request_id"] == "client-abc" and record["id"] == "A001"
    # A client cannot make its records pass for another request's.
    assert not [r for r in server.audit_records() if r["request_id"] == "client-abc"]
