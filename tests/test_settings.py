"""Configuration comes from RINGSCOPE_* and the standard NEO4J_* variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from ringscope.settings import Settings


def test_neo4j_variables_use_neo4j_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEO4J_URI", "neo4j+s://example.databases.neo4j.io")
    monkeypatch.setenv("NEO4J_USER", "alice")
    monkeypatch.setenv("NEO4J_PASSWORD", "s3cret")
    monkeypatch.setenv("NEO4J_DATABASE", "fraud")
    s = Settings()
    assert s.neo4j_uri == "neo4j+s://example.databases.neo4j.io"
    assert (s.neo4j_user, s.neo4j_database) == ("alice", "fraud")
    assert s.neo4j_password is not None and s.neo4j_password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(s)


def test_ringscope_prefix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("NEO4J_URI", raising=False)
    monkeypatch.setenv("RINGSCOPE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("RINGSCOPE_NEO4J_HEAP", "6g")
    monkeypatch.setenv("RINGSCOPE_NEO4J_PORT", "17001")
    s = Settings()
    assert s.neo4j_uri is None
    assert s.neo4j_home == tmp_path / "neo4j"
    assert (s.neo4j_heap, s.neo4j_port) == ("6g", 17001)
