"""Schema stability: the committed SDL (api/schema.graphql) against the live schema."""

from __future__ import annotations

from pathlib import Path

from graphql import build_schema as parse_sdl
from graphql import find_breaking_changes

from ringscope.api.schema import EntityKind, build_schema, sdl
from ringscope.kinds import KINDS
from ringscope.settings import Settings

COMMITTED = Path(__file__).resolve().parents[1] / "api" / "schema.graphql"


def test_live_schema_does_not_break_committed_clients() -> None:
    old = parse_sdl(COMMITTED.read_text())
    new = build_schema(Settings())._schema
    breaking = find_breaking_changes(old, new)
    assert not breaking, "Breaking API changes: " + "; ".join(c.description for c in breaking)


def test_committed_sdl_is_current() -> None:
    assert COMMITTED.read_text() == sdl(), (
        "run: python -m ringscope.api schema --out api/schema.graphql"
    )


def test_breaking_change_is_detected() -> None:
    old = parse_sdl(COMMITTED.read_text())
    text = COMMITTED.read_text().replace("hasNextPage: Boolean!", "hasNextPage: String!")
    assert find_breaking_changes(old, parse_sdl(text))


def test_entity_kinds_match_the_graph_model() -> None:
    assert [k.value for k in EntityKind] == [k.name for k in KINDS]


def test_production_schema_is_the_same_shape() -> None:
    prod = build_schema(Settings(api_env="production"))
    assert prod.as_str() == build_schema(Settings()).as_str()
