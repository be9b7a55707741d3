"""Configuration, read once from the environment (``RINGSCOPE_*`` plus the standard ``NEO4J_*``).

The Neo4j connection variables keep Neo4j's own names so that an operator can reuse the
environment of any other Neo4j tool; everything RingScope-specific is ``RINGSCOPE_*``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def _xdg(var: str, fallback: str) -> Path:
    import os

    return Path(os.environ.get(var) or Path.home() / fallback) / "ringscope"


class Settings(BaseSettings):
    """All RingScope settings. Construct it where a command starts and pass it down."""

    model_config = SettingsConfigDict(env_prefix="RINGSCOPE_", extra="ignore")

    # Where RingScope keeps its state: the embedded Neo4j store, its password, run reports.
    data_dir: Path = Field(default_factory=lambda: _xdg("XDG_DATA_HOME", ".local/share"))
    # Where the built launcher (compiled class + resolved classpath) is cached.
    cache_dir: Path = Field(default_factory=lambda: _xdg("XDG_CACHE_HOME", ".cache"))

    # An external Neo4j. When neo4j_uri is set, RingScope never starts its own.
    neo4j_uri: str | None = Field(
        default=None, validation_alias=AliasChoices("NEO4J_URI", "RINGSCOPE_NEO4J_URI")
    )
    neo4j_user: str = Field(
        default="neo4j", validation_alias=AliasChoices("NEO4J_USER", "RINGSCOPE_NEO4J_USER")
    )
    neo4j_password: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("NEO4J_PASSWORD", "RINGSCOPE_NEO4J_PASSWORD"),
    )
    neo4j_database: str = Field(
        default="neo4j",
        validation_alias=AliasChoices("NEO4J_DATABASE", "RINGSCOPE_NEO4J_DATABASE"),
    )
    # Seconds a single Cypher query may run before the server aborts it.
    neo4j_query_timeout: float = 120.0

    # The embedded Neo4j. Sized for a 2-core, 24 GiB machine that also runs the Python side:
    # 2 GiB heap for transactions of 10k-row UNWIND batches, 2 GiB page cache holds the 1M-account
    # graph's hot part. Raise both on a bigger machine.
    neo4j_port: int = 7687
    neo4j_heap: str = "2g"
    neo4j_pagecache: str = "2g"
    neo4j_start_timeout: float = 180.0
    java: str = "java"
    mvn: str = "mvn"

    # Ingest: the region phone numbers without a country code are read in, and the UNWIND batch
    # size (5k-50k rows per transaction is the published sweet spot).
    default_region: str = "CN"
    ingest_batch_size: int = 10_000

    @property
    def neo4j_home(self) -> Path:
        """The embedded instance's directory: store, password file, state file and logs."""
        return self.data_dir / "neo4j"
