"""The screening feature table's contract with its files (``models/screen_table.py``): a table
loads back as written, one written for another feature schema is never used, a row is current
only while its account's fingerprint holds, and pruning leaves the tables of kept builds only,
removing what a killed build left. Screening with the table against real Neo4j is in
``tests/test_screening.py``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ringscope.models.features import FEATURE_SCHEMA, account_features
from ringscope.models.projection import KindEdges, Projection
from ringscope.models.screen_table import (
    build_table,
    fingerprints,
    load_table,
    prune_tables,
    save_table,
)


def _projection() -> Projection:
    """Three accounts: a and b share device 10 (an emulator), c alone on device 11; a paid
    payee 20 twice (two currencies: two relationships)."""
    device = KindEdges(
        kind="device",
        acc=np.array([0, 1, 2], dtype=np.int32),
        ident=np.array([0, 0, 1], dtype=np.int32),
        first=np.array([100, 200, 300], dtype=np.int64),
        last=np.array([150, 250, 350], dtype=np.int64),
        count=np.array([2, 1, 5], dtype=np.int64),
        nodes=np.array([10, 11], dtype=np.int64),
        flag=np.array([True, False]),
    )
    payee = KindEdges(
        kind="payee",
        acc=np.array([0, 0], dtype=np.int32),
        ident=np.array([0, 0], dtype=np.int32),
        first=np.array([120, 130], dtype=np.int64),
        last=np.array([120, 130], dtype=np.int64),
        count=np.array([1, 3], dtype=np.int64),
        nodes=np.array([20], dtype=np.int64),
        flag=np.array([False]),
        round_count=np.array([0, 1], dtype=np.int64),
        total=np.array([12.5, 40.0]),
    )
    return Projection(
        ids=["a", "b", "c"],
        nodes=np.array([7, 3, 5], dtype=np.int64),
        created=np.array([50, 60, -1], dtype=np.int64),
        kyc=np.array([1, 0, -1], dtype=np.int64),
        label=np.array([-1, -1, -1], dtype=np.int64),
        kinds={"device": device, "payee": payee},
    )


def test_a_table_loads_as_written_and_matches_by_fingerprint(tmp_path: Path) -> None:
    proj = _projection()
    assert fingerprints(proj).tolist() == [[3, 6, 1], [1, 1, 1], [1, 5, 0]]
    save_table(build_table(proj, "b-1"), tmp_path)
    table = load_table(tmp_path, "b-1")
    assert table is not None
    assert table.nodes.tolist() == [3, 5, 7]  # sorted by account number
    x = account_features(proj)
    np.testing.assert_array_equal(table.x[[2, 0, 1]], x)

    def record(seq: int | None, account: str, finger: list[int]) -> dict[str, object]:
        parts = [["device", finger[0], finger[1], finger[2], 0, 0]]
        return {"seq": seq, "id": account, "created": 0, "kyc": 0, "parts": parts}

    current = table.match([
        record(7, "a", [3, 6, 1]),  # as built
        record(3, "b", [2, 1, 1]),  # recorded since the build: a relationship more
        record(5, "x", [1, 5, 0]),  # another account on the number (a store loaded afresh)
        record(9, "d", [0, 0, 0]),  # opened since the build
        record(None, "e", [0, 0, 0]),  # opened since the build, not numbered yet
    ])  # fmt: skip
    assert list(current) == ["a"] and current["a"].row == 2


def test_another_feature_schema_or_a_missing_table_is_not_used(tmp_path: Path) -> None:
    save_table(build_table(_projection(), "b-2"), tmp_path)
    meta = tmp_path / "screen" / "b-2" / "meta.json"
    meta.write_text(json.dumps({"build_id": "b-2", "schema": "0" * 16}))
    assert FEATURE_SCHEMA.digest() != "0" * 16
    assert load_table(tmp_path, "b-2") is None
    assert load_table(tmp_path, "b-none") is None


def test_pruning_keeps_the_kept_builds_and_clears_a_killed_write(tmp_path: Path) -> None:
    for build in ("b-old", "b-kept", "b-current"):
        save_table(build_table(_projection(), build), tmp_path)
    (tmp_path / "screen" / ".b-killed.123.tmp").mkdir()  # what a killed rebuild leaves
    prune_tables(tmp_path, ["b-kept", "b-current"])
    assert sorted(p.name for p in (tmp_path / "screen").iterdir()) == ["b-current", "b-kept"]
