"""Reducing a bucket of good rows to the rows to write (pure pyarrow, no Neo4j).

Each stream's good rows are spilled into hash buckets (ingest/spill.py) and each bucket is
reduced on its own: entities and labels keep the last row per key, observations become one row
per pair, payments are de-duplicated by payment_id (pass 1, bucketed by payment_id) and then
summed per (account, payee, currency) (pass 2, bucketed by account and payee).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ringscope.ingest import contract
from ringscope.ingest.contract import ROUND_UNIT, Table
from ringscope.ingest.normalise import Mask

OBSERVED = ("account_devices", "account_phones", "account_identifiers")


def _last_per_key(t: pa.Table, key: str, order: list[tuple[str, str]]) -> pa.Table:
    """Sort by key then ``order`` and keep each key's last row."""
    if t.num_rows == 0:
        return t
    keys = [(name, how, "at_start") for name, how in [(key, "ascending"), *order]]
    t = t.take(pc.sort_indices(t, keys))
    ids = t.column(key)
    changes = pc.not_equal(ids.slice(1), ids.slice(0, len(ids) - 1))
    last = pa.concat_arrays([a for a in changes.chunks] + [pa.array([True])])
    return t.filter(last)


def _link_keys(table: Table) -> list[str]:
    return ["kind", "account", "target"] if table.name == "account_identifiers" else [
        "account", "target"]  # fmt: skip


def _aggregate_links(t: pa.Table, keys: list[str], partial: bool) -> pa.Table:
    """Repeated observations of a pair -> one row with count, first_seen and last_seen."""
    if partial:
        aggs: list[tuple[Any, ...]] = [
            ("seen_at", "count", pc.CountOptions(mode="all")),
            ("seen_at", "min"),
            ("seen_at", "max"),
        ]
        names = {"seen_at_count": "count", "seen_at_min": "first_seen", "seen_at_max": "last_seen"}
    else:
        aggs = [("count", "sum"), ("first_seen", "min"), ("last_seen", "max")]
        names = {"count_sum": "count", "first_seen_min": "first_seen", "last_seen_max": "last_seen"}
    return _rename(t.group_by(keys, use_threads=False).aggregate(aggs), keys, names)


def _rename(g: pa.Table, keys: list[str], names: dict[str, str]) -> pa.Table:
    return pa.table({**{k: g.column(k) for k in keys},
                     **{new: g.column(old) for old, new in names.items()}})  # fmt: skip


def _sorted(t: pa.Table, keys: list[str]) -> pa.Table:
    return t.take(pc.sort_indices(t, [(k, "ascending") for k in keys]))


def _reduce(table: Table, t: pa.Table) -> pa.Table:
    """One bucket's rows -> the rows to write, sorted so that batches are deterministic (and
    each account's relationships are written together)."""
    if table.entity:
        return _last_per_key(t, "id", [("_row", "ascending")]).drop_columns("_row")
    if table.name == "labels":
        rank = pc.if_else(pc.equal(t.column("label"), "fraud"), 1, 0)
        t = t.append_column("_rank", rank)
        order = [("labelled_at", "ascending"), ("_rank", "ascending"), ("_row", "ascending")]
        return _last_per_key(t, "account", order).drop_columns(["_rank", "_row"])
    if table.name == "payments":
        return _aggregate_payments(t)
    keys = _link_keys(table)
    return _sorted(_aggregate_links(t, keys, partial=False), keys)


def _same(a: pa.ChunkedArray, b: pa.ChunkedArray) -> Mask:
    both_null = pc.and_(pc.is_null(a), pc.is_null(b))
    return np.asarray(
        pc.fill_null(pc.equal(a, b), both_null).to_numpy(zero_copy_only=False), dtype=bool
    )


def _dedupe_payments(t: pa.Table) -> tuple[pa.Table, np.ndarray[Any, Any]]:
    """Pass 1 on one payment_id bucket: drop identical re-sent payments and find conflicting
    ones. Returns the kept payments (with ``_round``) and the refused row numbers."""
    t = t.take(pc.sort_indices(t, [("payment_id", "ascending"), ("_row", "ascending")]))
    n = t.num_rows
    pid = t.column("payment_id")
    first = np.ones(n, dtype=bool)
    if n > 1:
        first[1:] = np.asarray(
            pc.not_equal(pid.slice(1), pid.slice(0, n - 1)).to_numpy(zero_copy_only=False)
        )
    start = np.maximum.accumulate(np.where(first, np.arange(n), 0))
    same = np.ones(n, dtype=bool)
    starts = pa.array(start)
    for col in ("account", "target", "currency", "amount", "paid_at"):
        c = t.column(col)
        same &= _same(c, c.take(starts))
    conflict = ~first & ~same
    refused = t.column("_row").to_numpy()[conflict]
    kept = t.filter(pa.array(first)).select(["account", "target", "currency", "amount", "paid_at"])
    amount = kept.column("amount")
    unit = ROUND_UNIT * 10**contract.AMOUNT_SCALE
    rem = pc.subtract(amount, pc.multiply(pc.divide(amount, unit), unit))
    is_round = pc.and_(pc.greater(amount, 0), pc.equal(rem, 0))
    return kept.append_column("_round", pc.cast(is_round, pa.int64())), refused


def _aggregate_payments(kept: pa.Table) -> pa.Table:
    """Pass 2 on one (account, payee) bucket: one row per (account, payee, currency)."""
    keys = ["account", "target", "currency"]
    g = kept.group_by(keys, use_threads=False).aggregate(
        [
            ("amount", "count", pc.CountOptions(mode="all")),
            ("amount", "sum"),
            ("amount", "max"),
            ("_round", "sum"),
            ("paid_at", "min"),
            ("paid_at", "max"),
        ]
    )
    names = {
        "amount_count": "count",
        "amount_sum": "total_e4",
        "amount_max": "max_e4",
        "_round_sum": "round_count",
        "paid_at_min": "first_seen",
        "paid_at_max": "last_seen",
    }
    return _sorted(_rename(g, keys, names), keys)
