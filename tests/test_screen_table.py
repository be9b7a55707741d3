"""The screening feature table's contract with its files (``models/screen_table.py``): a table
loads back as written, one written for another feature schema, form or stamp size is never
used, a row is current only while its account carries no stamp from after the build's read, its
sharing columns are put back together from the build's small identifiers and the big ones' live
sizes, and pruning leaves the tables of kept builds only, removing what a killed build left.
Screening with the table against real Neo4j is in ``tests/test_screening.py``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ringscope.models.features import FEATURE_SCHEMA, account_features
from ringscope.models.projection import KIND_NAMES, KindEdges, Projection
from ringscope.models.screen_table import (
    BIG,
    build_table,
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


def _same(kind: str, numbers: list[int]) -> dict[int, int]:
    """Internal ids of identifiers by number, as the build reads them: 1,000 more here."""
    del kind
    return {n: n + 1000 for n in numbers}


def _record(
    seq: int | None, account: str, moved: int | None = None, created: int = 0, kyc: int = 0
) -> dict[str, object]:
    """A neighbour as SCREEN_TABLE_NEIGHBOURHOOD returns it."""
    return {"seq": seq, "id": account, "created": created, "kyc": kyc, "moved": moved}


def test_a_table_loads_as_written_and_matches_by_stamp(tmp_path: Path) -> None:
    proj = _projection()
    save_table(build_table(proj, "b-1", since_ms=5_000, node_ids=_same), tmp_path)
    table = load_table(tmp_path, "b-1")
    assert table is not None and table.since_ms == 5_000
    assert table.nodes.tolist() == [3, 5, 7]  # sorted by account number
    x = account_features(proj)
    np.testing.assert_array_equal(table.x[[2, 0, 1]], x)
    current = table.match([
        _record(7, "a", moved=4_999),  # stamped before the build's read
        _record(3, "b", moved=5_000),  # stamped since: a write moved something its row reads
        _record(5, "x"),  # another account on the number (a store loaded afresh)
        _record(9, "d"),  # opened since the build
        _record(None, "e"),  # opened since the build, not numbered yet
    ])  # fmt: skip
    assert list(current) == ["a"] and current["a"].row == 2
    assert table.big(current) == []  # nothing bigger than the stamped size
    shared = table.sharing(current, ([], []))
    # a: device 10 shared with b (size 2), payee 20 paid in two currencies (two relationships).
    assert _used(shared["a"].sharing) == {"device": (1, 2), "payee": (1, 2)}


def _used(sharing: np.ndarray[Any, Any]) -> dict[str, tuple[int, int]]:
    """Per kind the account uses: (shared identifiers, the busiest one's size)."""
    return {kind: (int(sharing[k, 0]), int(sharing[k, 1]))
            for k, kind in enumerate(KIND_NAMES) if sharing[k, 1]}  # fmt: skip


def _on_one_ip(extra: int) -> Projection:
    """The three accounts above and ``BIG + extra - 3`` more, all on IP 30 (``BIG + extra``
    relationships: bigger than writers stamp for), a and b also on device 10."""
    n = BIG + extra
    base = _projection()
    ip = KindEdges(
        kind="ip",
        acc=np.arange(n, dtype=np.int32),
        ident=np.zeros(n, dtype=np.int32),
        first=np.full(n, 100, dtype=np.int64),
        last=np.full(n, 100, dtype=np.int64),
        count=np.ones(n, dtype=np.int64),
        nodes=np.array([30], dtype=np.int64),
        flag=np.array([False]),
    )
    more = n - 3
    return Projection(
        ids=[*base.ids, *(f"o{i}" for i in range(more))],
        nodes=np.r_[base.nodes, np.arange(100, 100 + more)].astype(np.int64),
        created=np.r_[base.created, np.full(more, 50)].astype(np.int64),
        kyc=np.r_[base.kyc, np.zeros(more)].astype(np.int64),
        label=np.full(n, -1, dtype=np.int64),
        kinds={**base.kinds, "ip": ip},
    )


def test_sharing_takes_the_big_identifiers_sizes_live(tmp_path: Path) -> None:
    """The IP has more relationships than writers stamp for, so its growth since the build
    stamps nobody: a screen reads its size, and the row with that size put in is the row the
    graph with the grown IP gives (every column)."""
    then, now = _on_one_ip(1), _on_one_ip(4)  # the IP gained three accounts since the build
    save_table(build_table(then, "b-ip", since_ms=0, node_ids=_same), tmp_path)
    table = load_table(tmp_path, "b-ip")
    assert table is not None
    current = table.match([_record(7, "a", created=50, kyc=1), _record(3, "b", created=60),
                           _record(5, "c", created=-1, kyc=-1)])  # fmt: skip
    assert table.big(current) == [1030]  # its internal id
    shared = table.sharing(current, ([30], [BIG + 4]))
    assert _used(shared["a"].sharing)["ip"] == (1, BIG + 4)
    assert _used(shared["c"].sharing) == {"device": (0, 1), "ip": (1, BIG + 4)}
    when = int(now.now())
    rows = table.rows(shared, {}, when)
    want = account_features(now)
    for i, account in enumerate(("a", "b", "c")):
        np.testing.assert_array_equal(rows[account], want[i], err_msg=account)
    # The old size leaves the IP's column as built: the row differs from the grown graph's.
    assert not np.array_equal(table.rows(table.sharing(current, ([30], [BIG + 1])), {},
                                         when)["a"], want[0])  # fmt: skip
    # A big identifier that could not be read leaves its accounts out (read from their edges).
    assert table.sharing(current, ([], [])) == {}
    # An id Neo4j gave another node (its number is not the one the build saw): the same.
    assert table.sharing(current, ([31], [BIG + 4])) == {}


def test_another_feature_schema_or_a_missing_table_is_not_used(tmp_path: Path) -> None:
    save_table(build_table(_projection(), "b-2", since_ms=0, node_ids=_same), tmp_path)
    meta = tmp_path / "screen" / "b-2" / "meta.json"
    good = json.loads(meta.read_text())
    for wrong in ({"schema": "0" * 16}, {"form": 1}, {"mark_degree": BIG + 1}):
        meta.write_text(json.dumps({**good, **wrong}))
        assert load_table(tmp_path, "b-2") is None, wrong
        load_table.__globals__["_CACHE"].clear()
    assert FEATURE_SCHEMA.digest() != "0" * 16
    meta.write_text(json.dumps(good))
    assert load_table(tmp_path, "b-2") is not None
    assert load_table(tmp_path, "b-none") is None


def test_pruning_keeps_the_kept_builds_and_clears_a_killed_write(tmp_path: Path) -> None:
    for build in ("b-old", "b-kept", "b-current"):
        save_table(build_table(_projection(), build, since_ms=0, node_ids=_same), tmp_path)
    (tmp_path / "screen" / ".b-killed.123.tmp").mkdir()  # what a killed rebuild leaves
    prune_tables(tmp_path, ["b-kept", "b-current"])
    assert sorted(p.name for p in (tmp_path / "screen").iterdir()) == ["b-current", "b-kept"]
