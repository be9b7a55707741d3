"""The loader: a directory of contract files (or foreign files plus a mapping) into Neo4j.

Per source file it streams batches (pyarrow), normalises and validates them (refused rows go to
the quarantine file), pre-aggregates the whole file (repeated pairs become one row), sorts it,
slices it into ``ingest_batch_size`` rows and writes each slice in one managed transaction
together with its ledger entry (``IngestBatch``). Batch ids are derived from the file's SHA-256,
so a re-run skips what is committed: loading twice is a no-op, and a killed load resumes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, LiteralString

import neo4j
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table as RichTable

from ringscope.graph import cypher, init_schema
from ringscope.graph.connection import Graph
from ringscope.graph.embedded import EmbeddedNeo4j
from ringscope.graph.model import BY_NAME as KIND_BY_NAME
from ringscope.graph.model import DEVICE, PAYEE, PHONE, Kind
from ringscope.ingest import contract
from ringscope.ingest.bulk import ImportFiles
from ringscope.ingest.contract import (
    ACCOUNTS,
    CONTRACT_VERSION,
    FORMATS,
    ROUND_UNIT,
    TABLES,
    IngestError,
    IngestFormatError,
    Reason,
    Table,
)
from ringscope.ingest.mapping import Mapping, Output, load_mapping
from ringscope.ingest.normalise import Context, Mask, Result, normalise
from ringscope.ingest.read import RaggedCsvError, RawBatch, header, read_batches, sha256_file
from ringscope.ingest.spill import Spill, bucket_of
from ringscope.settings import Settings

READ_ROWS = 65_536  # rows per read batch (independent of the write batch size)
SPILL_FLUSH_ROWS = 1_000_000  # rows buffered in memory before the spill buckets are written out
PARTITION_BYTES = 8 * 2**20  # Parquet bytes per partition (CSV and JSON Lines: 6x this)
# At most this many buckets per file: each non-empty bucket holds an open spill stream, and two
# files' spills are open at once (one read while the other is written). Past 64 partitions of a
# linked table (512 MB of Parquet), buckets grow with the file instead.
MAX_SPILL_BUCKETS = 256
TARGET_CLASSES = 4  # relationship-target classes (see _schedule); supports up to 4 writers well
BATCH_STRIDE = 1_000_000  # batch number = bucket * BATCH_STRIDE + batch within the bucket
LEDGER_LAYOUT = 2  # part of every batch id: bump when the bucketing or slicing changes


# --- report -----------------------------------------------------------------------------------


@dataclass
class SourceReport:
    """What happened to one source: a contract table file, or one output of a mapped file."""

    file: str
    table: str
    output: str | None = None
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    rows_skipped_by_mapping: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    batches: int = 0
    batches_written: int = 0
    batches_skipped: int = 0
    nodes_created: int = 0
    relationships_created: int = 0
    properties_set: int = 0
    read_s: float = 0.0  # reading, normalising and bucketing (and payments' de-duplication)
    write_s: float = 0.0  # reducing the buckets and writing them


@dataclass
class LoadReport:
    run_id: str
    directory: str
    mapping: str | None
    report_dir: str
    quarantine_file: str
    started_at: str
    elapsed_s: float = 0.0
    mode: str = "cypher"  # or "bulk": the offline importer, then labels through Cypher
    import_s: float = 0.0  # bulk: importer run, restart and schema (part of elapsed_s)
    import_bytes: int = 0  # bulk: size of the importer's CSV input
    schema_s: float = 0.0  # bulk: building the constraints' indexes after the import
    sources: list[SourceReport] = field(default_factory=list)

    @property
    def rows_read(self) -> int:
        return sum(s.rows_read for s in self.sources)

    @property
    def rows_loaded(self) -> int:
        return sum(s.rows_loaded for s in self.sources)

    @property
    def rows_quarantined(self) -> int:
        return sum(s.rows_quarantined for s in self.sources)

    @property
    def nodes_created(self) -> int:
        return sum(s.nodes_created for s in self.sources)

    @property
    def relationships_created(self) -> int:
        return sum(s.relationships_created for s in self.sources)

    @property
    def properties_set(self) -> int:
        return sum(s.properties_set for s in self.sources)

    def reasons(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for s in self.sources:
            total.update(s.reasons)
        return total

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["totals"] = {
            "rows_read": self.rows_read,
            "rows_loaded": self.rows_loaded,
            "rows_quarantined": self.rows_quarantined,
            "nodes_created": self.nodes_created,
            "relationships_created": self.relationships_created,
            "properties_set": self.properties_set,
        }
        return doc

    def table(self) -> RichTable:
        """The summary as a rich table, one line per source plus a total."""
        t = RichTable(title=f"Ingest run {self.run_id} ({self.elapsed_s:.1f} s)")
        for col in (
            "source",
            "table",
            "read",
            "loaded",
            "quarantined",
            "batches",
            "nodes+",
            "rels+",
            "props set",
        ):
            t.add_column(col, justify="left" if col in ("source", "table") else "right")
        for s in self.sources:
            t.add_row(
                s.file if s.output is None else f"{s.file} [{s.output}]",
                s.table,
                f"{s.rows_read:,}",
                f"{s.rows_loaded:,}",
                f"{s.rows_quarantined:,}",
                f"{s.batches_written}/{s.batches}"
                + (f" ({s.batches_skipped} done before)" if s.batches_skipped else ""),
                f"{s.nodes_created:,}",
                f"{s.relationships_created:,}",
                f"{s.properties_set:,}",
            )
        t.add_section()
        t.add_row(
            "total", "", f"{self.rows_read:,}", f"{self.rows_loaded:,}",
            f"{self.rows_quarantined:,}", "", f"{self.nodes_created:,}",
            f"{self.relationships_created:,}", f"{self.properties_set:,}",
        )  # fmt: skip
        return t

    def render(self, console: Console | None = None) -> None:
        """Print the summary table and, when rows were refused, why and where they went."""
        console = console or Console(stderr=True)
        console.print(self.table())
        reasons = self.reasons()
        if reasons:
            console.print(
                "Quarantined: "
                + ", ".join(f"{n:,} {r}" for r, n in reasons.most_common())
                + f" -> {self.quarantine_file}",
                highlight=False,
            )
        console.print(f"Report: {Path(self.report_dir) / 'report.json'}", highlight=False)


# --- planning ---------------------------------------------------------------------------------


@dataclass
class Stream:
    """One unit of loading: a file read as one contract table (through an optional output)."""

    path: Path
    table: Table
    output: Output | None
    name: str  # as shown in reports and the quarantine file


def _plan(directory: Path, mapping: Mapping | None) -> list[Stream]:
    if not directory.is_dir():
        raise IngestError(f"{directory}: not a directory.")
    streams: list[Stream] = []
    if mapping is not None:
        for src in mapping.sources:
            path = directory / src.file
            if not path.is_file():
                raise IngestError(f"{path}: named by mapping {mapping.path.name}, not found.")
            for out in src.outputs:
                streams.append(Stream(path, out.table, out, src.file))
    else:
        for table in TABLES:
            found = [directory / f"{table.name}{ext}" for ext in FORMATS]
            found = [p for p in found if p.is_file()]
            if len(found) > 1:
                names = ", ".join(p.name for p in found)
                raise IngestError(f"{directory}: table {table.name} is given twice ({names}).")
            if found:
                streams.append(Stream(found[0], table, None, found[0].name))
        if not any(s.table is ACCOUNTS for s in streams):
            raise IngestError(
                f"{directory}: no accounts table (accounts.csv, accounts.parquet or "
                "accounts.jsonl); it is the one table a data set must have."
            )
    order = {t.name: i for i, t in enumerate(TABLES)}
    return sorted(streams, key=lambda s: order[s.table.name])


# --- aggregation ------------------------------------------------------------------------------
# Each stream's good rows are spilled into hash buckets (ingest/spill.py) and each bucket is
# reduced on its own: entities and labels keep the last row per key, observations become one row
# per pair, payments are de-duplicated by payment_id (pass 1, bucketed by payment_id) and then
# summed per (account, payee, currency) (pass 2, bucketed by account and payee).

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


# --- writing ----------------------------------------------------------------------------------


def _rows_for(table: Table, t: pa.Table) -> list[dict[str, Any]]:
    """Batch rows as driver parameters. Timestamps travel as epoch milliseconds: the driver's
    datetime packing is pure Python and cost more than everything else together (profiled)."""
    ts = [f.name for f in t.schema if pa.types.is_timestamp(f.type)]
    for name in ts:
        col = t.column(name).cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64())
        t = t.set_column(t.schema.get_field_index(name), name, col)
    rows: list[dict[str, Any]] = t.to_pylist()
    if table.entity:
        return [
            {
                "id": r.pop("id"),
                "props": {k: v for k, v in r.items() if v is not None and k not in ts},
                "ts": {k: r[k] for k in ts if r.get(k) is not None},
            }
            for r in rows
        ]
    return rows


def _link_kind(table: Table, kind: str | None) -> Kind:
    """The kind of node a link table's rows point at (its label and relationship type)."""
    if table.name == "payments":
        return PAYEE
    found = {"account_devices": DEVICE, "account_phones": PHONE}.get(table.name)
    return found if found is not None else KIND_BY_NAME[str(kind)]


def _entity_label(table: Table) -> str:
    """The node label an entity table's rows become."""
    return {"accounts": ACCOUNTS_LABEL, "devices": DEVICE.label, "phones": PHONE.label,
            "payees": PAYEE.label}[table.name]  # fmt: skip


def _query(table: Table, kind: str | None) -> LiteralString:
    name = table.name
    if table.entity:
        return cypher.INGEST_NODES[_entity_label(table)]
    if name == "labels":
        return cypher.INGEST_LABELS
    if name == "payments":
        return cypher.INGEST_PAYMENTS
    rel = _link_kind(table, kind).rel
    assert rel is not None
    return cypher.INGEST_LINKS[rel]


ACCOUNTS_LABEL = KIND_BY_NAME["account"].label


def _write_batch(
    tx: neo4j.ManagedTransaction, query: LiteralString, params: dict[str, Any]
) -> tuple[int, int, int]:
    summary = tx.run(query, params).consume()
    c = summary.counters
    return c.nodes_created, c.relationships_created, c.properties_set


# --- the load ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """How a file's rows are bucketed and sliced. Recorded with the file's ledger entry the first
    time it is loaded (``IngestFile``), and read back on a re-run, so a resumed load slices
    exactly the same batches."""

    batch_size: int
    partitions: int
    classes: int

    @property
    def buckets(self) -> int:
        return self.partitions * self.classes


def _partitions(path: Path, classes: int) -> int:
    """Enough partitions that one bucket's rows fit in a few hundred MB, from the file's size,
    within ``MAX_SPILL_BUCKETS`` buckets of ``classes`` each."""
    per = PARTITION_BYTES if path.suffix == ".parquet" else PARTITION_BYTES * 6
    return max(1, min(-(-path.stat().st_size // per), MAX_SPILL_BUCKETS // classes))


def _schedule(layout: Layout, writers: int) -> list[list[list[int]]]:
    """Rounds of per-writer bucket lists such that, within a round, no two writers touch the same
    node: writer ``w`` owns the partitions (accounts, or entity ids) ``p % writers == w`` and, in
    round ``r``, the classes (relationship targets) ``c % writers == (w + r) % writers``. This is
    the "mix and batch" schedule: concurrent batches never lock the same supernode."""
    w_n = max(1, writers)
    rounds = w_n if layout.classes > 1 else 1
    plan: list[list[list[int]]] = []
    for r in range(rounds):
        plan.append([
            [p * layout.classes + c for p in range(layout.partitions) if p % w_n == w
             for c in range(layout.classes) if layout.classes == 1 or c % w_n == (w + r) % w_n]
            for w in range(w_n)
        ])  # fmt: skip
    return plan


@dataclass
class _Prepared:
    """A stream read and bucketed, waiting to be written."""

    stream: Stream
    report: SourceReport
    spill: Spill
    layout: Layout
    files: dict[str | None, str]


class _Loader:
    def __init__(
        self, graph: Graph, ctx_region: str, ts_format: str | None, batch_size: int,
        writers: int, quarantine: IO[str], fingerprint: str, spill_dir: Path,
    ) -> None:  # fmt: skip
        self.graph = graph
        self.batch_size = batch_size
        self.writers = max(1, writers)
        self.quarantine = quarantine
        self.fingerprint = fingerprint
        self.spill_dir = spill_dir
        self.accounts = np.zeros(0, dtype="S1")  # this data set's account ids, sorted (UTF-8)
        self.graph_accounts: dict[str, bool] = {}
        self.lock = threading.Lock()
        self.ctx = Context(ctx_region, ts_format, self._known_accounts)

    def _in_accounts(self, values: list[str]) -> Mask:
        if not len(self.accounts) or not values:
            return np.zeros(len(values), dtype=bool)
        keys = np.array([v.encode() for v in values], dtype=object)
        lens = np.fromiter((len(k) for k in keys), dtype=np.int64, count=len(keys))
        fits = lens <= self.accounts.itemsize
        k = keys.astype(self.accounts.dtype)  # truncates only the ones that do not fit
        pos = np.minimum(np.searchsorted(self.accounts, k), len(self.accounts) - 1)
        return np.asarray(fits & (self.accounts[pos] == k), dtype=bool)

    def _known_accounts(self, ids: pa.Array) -> Mask:
        values: list[str] = ids.to_pylist()
        known = self._in_accounts(values)
        ask = sorted({v for v, k in zip(values, known, strict=True)
                      if not k and v not in self.graph_accounts})  # fmt: skip
        for i in range(0, len(ask), 10_000):
            chunk = ask[i : i + 10_000]
            found = {r["id"] for r in self.graph.read(cypher.INGEST_KNOWN_ACCOUNTS, {"ids": chunk})}
            if len(self.graph_accounts) > 1_000_000:
                self.graph_accounts.clear()
            self.graph_accounts.update((v, v in found) for v in chunk)
        if ask or not known.all():
            for i, v in enumerate(values):
                if not known[i]:
                    known[i] = self.graph_accounts.get(v, False)
        return known

    def _quarantine(
        self, report: SourceReport, row: int, field_name: str, reason: Reason, raw: Any
    ) -> None:
        report.rows_quarantined += 1
        report.reasons[reason.value] = report.reasons.get(reason.value, 0) + 1
        column = field_name.split(" (")[-1].rstrip(")")  # "phone (billing_phone)" -> source column
        value = raw.get(column) if isinstance(raw, dict) else None
        self.quarantine.write(json.dumps({
            "file": report.file, "table": report.table, "output": report.output, "row": row,
            "field": field_name, "reason": reason.value, "value": value, "raw": raw,
        }, default=str, ensure_ascii=False) + "\n")  # fmt: skip

    # -- reading: file -> normalised rows -> spill buckets

    def _read(self, stream: Stream, report: SourceReport, spill: Spill, layout: Layout) -> None:
        columns = header(stream.path)
        self.quarantine.flush()
        mark = self.quarantine.tell()
        try:
            for raw in read_batches(stream.path, columns, READ_ROWS, exact=False):
                self._consume(stream, report, raw, spill, layout)
        except RaggedCsvError:  # start again on the exact (slow) reader
            report.__dict__.update(SourceReport(report.file, report.table, report.output).__dict__)
            spill.reset()
            self.quarantine.seek(mark)
            self.quarantine.truncate()
            for raw in read_batches(stream.path, columns, READ_ROWS, exact=True):
                self._consume(stream, report, raw, spill, layout)

    def _consume(
        self, stream: Stream, report: SourceReport, raw: RawBatch, spill: Spill, layout: Layout
    ) -> None:
        for row, text in raw.malformed:
            report.rows_read += 1
            self._quarantine(report, row, "", Reason.MALFORMED_ROW, text)
        batch, rows = raw.batch, raw.rows
        if stream.output is not None:
            src_index: np.ndarray[Any, Any] | None
            mapped, src_index = stream.output.apply(batch)
            report.rows_skipped_by_mapping += batch.num_rows - mapped.num_rows
            rows = rows[src_index]
        else:
            mapped, src_index = batch, None
        result: Result = normalise(stream.table, mapped, self.ctx)
        report.rows_read += mapped.num_rows
        report.rows_loaded += result.good.num_rows
        if result.refused:
            idx = [r.index if src_index is None else int(src_index[r.index])
                   for r in result.refused]  # fmt: skip
            raws = batch.take(pa.array(idx, pa.int64())).to_pylist()
            for r, raw_row in zip(result.refused, raws, strict=True):
                field_name = _source_field(stream.output, r.field)
                self._quarantine(report, int(rows[r.index]), field_name, r.reason, raw_row)
        good = result.good
        if not good.num_rows:
            return
        name = stream.table.name
        if name in OBSERVED:
            part = _aggregate_links(good, _link_keys(stream.table), partial=True)
            spill.add(part, bucket_of(part.column("account"), layout.partitions,
                                      part.column("target"), layout.classes))  # fmt: skip
            return
        part = good.append_column("_row", pa.array(rows[result.index], pa.int64()))
        key = {"labels": "account", "payments": "payment_id"}.get(name, "id")
        spill.add(part, bucket_of(part.column(key), layout.partitions))

    def prepare(self, stream: Stream, report: SourceReport, progress: _Progress) -> _Prepared:
        """Read, normalise and bucket a stream (payments: also de-duplicate). Neo4j is only
        asked which accounts exist, so this can run while the previous stream is written."""
        t0 = time.monotonic()
        progress.start("read", report, "reading")
        sha = sha256_file(stream.path)
        out_name = stream.output.name if stream.output else ""
        base = hashlib.sha256(
            f"{sha}|{stream.table.name}|{out_name}|{self.fingerprint}".encode()
        ).hexdigest()[:32]
        kinds: list[str | None] = (
            list(contract.IDENTIFIER_KINDS) if stream.table.name == "account_identifiers"
            else [None]
        )  # fmt: skip
        files = {k: f"{base}:{k or stream.table.name}" for k in kinds}
        linked = stream.table.name in (*OBSERVED, "payments")
        classes = TARGET_CLASSES if linked else 1
        wanted = Layout(self.batch_size, _partitions(stream.path, classes), classes)
        layout = self._start_files(files, stream, sha, wanted)
        spill_root = self.spill_dir / base
        payments = stream.table.name == "payments"
        read_layout = Layout(layout.batch_size, layout.partitions, 1) if payments else layout
        spill = Spill(spill_root / "read", read_layout.buckets, SPILL_FLUSH_ROWS)
        try:
            self._read(stream, report, spill, read_layout)
            if payments:
                read, spill = spill, Spill(spill_root / "kept", layout.buckets, SPILL_FLUSH_ROWS)
                try:
                    refused = self._dedupe(read, layout, spill)
                finally:
                    read.close()
                if len(refused):
                    self._refuse_duplicates(stream, report, refused)
        except BaseException:
            spill.close()
            raise
        self.quarantine.flush()
        report.read_s = round(time.monotonic() - t0, 3)
        return _Prepared(stream, report, spill, layout, files)

    def write(self, prepared: _Prepared, progress: _Progress) -> None:
        t0 = time.monotonic()
        p = prepared
        try:
            self._write(p.stream, p.report, p.spill, p.layout, p.files, progress)
        finally:
            p.spill.close()
        p.report.write_s = round(time.monotonic() - t0, 3)

    def _dedupe(self, spill: Spill, layout: Layout, kept: Spill) -> np.ndarray[Any, Any]:
        """Payments pass 1, one payment_id bucket at a time, into the (account, payee) buckets."""
        refused: list[np.ndarray[Any, Any]] = []
        for b in range(spill.buckets):
            t = spill.read(b)
            spill.drop(b)
            if t is None:
                continue
            rows, bad = _dedupe_payments(t)
            refused.append(bad)
            kept.add(rows, bucket_of(rows.column("account"), layout.partitions,
                                     rows.column("target"), layout.classes))  # fmt: skip
        return np.sort(np.concatenate(refused)) if refused else np.zeros(0, dtype=np.int64)

    def _refuse_duplicates(
        self, stream: Stream, report: SourceReport, rows: np.ndarray[Any, Any]
    ) -> None:
        """Quarantine payments re-sent with different content (a second, targeted read)."""
        wanted = set(rows.tolist())
        columns = header(stream.path)
        for raw in read_batches(stream.path, columns, READ_ROWS, exact=True):
            hit = np.flatnonzero(np.isin(raw.rows, rows))
            if len(hit):
                for i, raw_row in zip(hit, raw.batch.take(pa.array(hit)).to_pylist(), strict=True):
                    row = int(raw.rows[i])
                    if row in wanted:
                        wanted.discard(row)
                        report.rows_loaded -= 1
                        field_name = _source_field(stream.output, "payment_id")
                        self._quarantine(report, row, field_name, Reason.DUPLICATE_PAYMENT, raw_row)

    # -- writing: one bucket at a time, by ``writers`` concurrent sessions

    def _write(
        self, stream: Stream, report: SourceReport, spill: Spill, layout: Layout,
        files: dict[str | None, str], progress: _Progress,
    ) -> None:  # fmt: skip
        committed = {
            kind: {r["batch"] for r in self.graph.read(cypher.INGEST_COMMITTED,
                                                       {"prefix": fid + "#"})}
            for kind, fid in files.items()
        }  # fmt: skip
        batches = dict.fromkeys(files, 0)
        ids: list[np.ndarray[Any, Any]] = []
        progress.start("write", report, "writing", layout.buckets)

        def bucket(session: neo4j.Session, b: int) -> None:
            rows = self._reduced(stream, spill, b, ids)
            if rows is not None:
                for kind, part in _parts(rows, files):
                    self._write_part(session, stream, report, part, b, kind, files[kind],
                                     layout.batch_size, committed[kind], batches)  # fmt: skip
            with self.lock:
                progress.advance("write")

        def writer(todo: list[int]) -> None:
            with self.graph.driver.session(database=self.graph.database) as session:
                for b in todo:
                    bucket(session, b)

        for round_ in _schedule(layout, self.writers):
            work = [todo for todo in round_ if todo]
            if len(work) == 1:
                writer(work[0])
                continue
            with ThreadPoolExecutor(max_workers=len(work)) as pool:
                for future in [pool.submit(writer, todo) for todo in work]:
                    future.result()
        for kind, fid in files.items():
            self.graph.write(cypher.INGEST_FILE_DONE, {"file_id": fid, "batches": batches[kind]})
        self._remember_accounts(ids)

    def _reduced(
        self, stream: Stream, spill: Spill, b: int, ids: list[np.ndarray[Any, Any]]
    ) -> pa.Table | None:
        """Bucket ``b`` read back, dropped from disk and reduced; an accounts bucket's ids are
        added to ``ids`` (see ``_remember_accounts``)."""
        t = spill.read(b)
        spill.drop(b)
        if t is None:
            return None
        rows = _reduce(stream.table, t)
        if stream.table is ACCOUNTS:
            with self.lock:
                ids.append(np.array([v.encode() for v in rows.column("id").to_pylist()]))
        return rows

    def _remember_accounts(self, ids: list[np.ndarray[Any, Any]]) -> None:
        """Add a written accounts stream's ids to the ones later streams are checked against."""
        if ids:
            merged = np.concatenate([a.astype(object) for a in (self.accounts, *ids)])
            self.accounts = np.unique(merged.astype(bytes))

    def _write_part(
        self, session: neo4j.Session, stream: Stream, report: SourceReport, part: pa.Table,
        bucket: int, kind: str | None, file_id: str, bsize: int, committed: set[int],
        batches: dict[str | None, int],
    ) -> None:  # fmt: skip
        query = _query(stream.table, kind)
        n = -(-part.num_rows // bsize)
        with self.lock:
            report.batches += n
            batches[kind] += n
        for i in range(n):
            batch_no = bucket * BATCH_STRIDE + i
            if batch_no in committed:
                with self.lock:
                    report.batches_skipped += 1
                continue
            params = {
                "batch_id": f"{file_id}#{batch_no}", "file_id": file_id, "batch_no": batch_no,
                "rows": _rows_for(stream.table, part.slice(i * bsize, bsize)),
            }  # fmt: skip
            nodes, rels, props = session.execute_write(_write_batch, query, params)
            with self.lock:
                if nodes == 0:  # the guard found the batch committed by someone else
                    report.batches_skipped += 1
                else:
                    report.batches_written += 1
                    report.nodes_created += nodes - 1
                    report.relationships_created += rels
                    report.properties_set += props - cypher.INGEST_LEDGER_PROPERTIES

    def _start_files(
        self, files: dict[str | None, str], stream: Stream, sha: str, wanted: Layout
    ) -> Layout:
        """Record (or find) the stream's ledger file entries; a file's first layout wins."""
        params = {
            "file_ids": list(files.values()), "file": stream.name, "table": stream.table.name,
            "sha256": sha, "batch_size": wanted.batch_size, "partitions": wanted.partitions,
            "classes": wanted.classes,
        }  # fmt: skip
        records, _, _ = self.graph.driver.execute_query(
            cypher.INGEST_FILE_START, params, database_=self.graph.database
        )
        found = {Layout(int(r["batch_size"]), int(r["partitions"]), int(r["classes"]))
                 for r in records}  # fmt: skip
        if len(found) != 1:
            raise IngestError(f"{stream.path}: its ledger entries disagree on the layout: {found}")
        return found.pop()


def _parts(rows: pa.Table, files: dict[str | None, str]) -> Iterator[tuple[str | None, pa.Table]]:
    """A reduced bucket split per ledger file: identifier rows by kind, other tables whole."""
    for kind in files:
        if kind is None:
            yield kind, rows
        else:
            yield kind, rows.filter(pc.equal(rows.column("kind"), kind)).drop_columns("kind")


class _BulkLoader(_Loader):
    """Reads and reduces as :class:`_Loader` does, but appends each batch-sized slice to the
    importer's CSV files (ingest/bulk.py), with the ledger entry a Cypher write would commit."""

    def __init__(self, sink: ImportFiles, *args: Any) -> None:
        super().__init__(*args)
        self.sink = sink
        self.started: dict[str, dict[str, str | int]] = {}

    def _start_files(
        self, files: dict[str | None, str], stream: Stream, sha: str, wanted: Layout
    ) -> Layout:
        for fid in files.values():
            self.started[fid] = {
                "file": stream.name, "table": stream.table.name, "sha256": sha,
                "batch_size": wanted.batch_size, "partitions": wanted.partitions,
                "classes": wanted.classes,
            }  # fmt: skip
        return wanted

    def _write(
        self, stream: Stream, report: SourceReport, spill: Spill, layout: Layout,
        files: dict[str | None, str], progress: _Progress,
    ) -> None:  # fmt: skip
        batches = dict.fromkeys(files, 0)
        ids: list[np.ndarray[Any, Any]] = []
        progress.start("write", report, "writing import files", layout.buckets)
        bsize = layout.batch_size
        for b in range(layout.buckets):
            rows = self._reduced(stream, spill, b, ids)
            if rows is not None:
                for kind, part in _parts(rows, files):
                    if not part.num_rows:
                        continue
                    n = -(-part.num_rows // bsize)
                    numbers = [b * BATCH_STRIDE + i for i in range(n)]
                    fid = files[kind]
                    self.sink.ledger_batches(
                        [f"{fid}#{no}" for no in numbers], fid, numbers,
                        [min(bsize, part.num_rows - i * bsize) for i in range(n)],
                    )  # fmt: skip
                    batches[kind] += n
                    report.batches += n
                    report.batches_written += n
                    report.properties_set += self._emit(stream, report, kind, part)
            progress.advance("write")
        for kind, fid in files.items():
            self.sink.ledger_file(fid, {**self.started[fid], "batches": batches[kind]})
        self._remember_accounts(ids)

    def _emit(self, stream: Stream, report: SourceReport, kind: str | None, part: pa.Table) -> int:
        if stream.table.entity:
            report.nodes_created += part.num_rows
            return self.sink.nodes(_entity_label(stream.table), part)
        target = _link_kind(stream.table, kind)
        report.relationships_created += part.num_rows
        if stream.table.name == "payments":
            return self.sink.payments(ACCOUNTS_LABEL, target.label, part, report)
        assert target.rel is not None
        return self.sink.relationships(target.rel, ACCOUNTS_LABEL, target.label, part, report)


def _source_field(output: Output | None, field_name: str) -> str:
    """The contract field, plus the source column it came from when a mapping renamed it."""
    if output is None:
        return field_name
    for name, col in output.columns:
        if name == field_name and col.column is not None and col.column != name:
            return f"{field_name} ({col.column})"
    return field_name


class _Progress:
    """Rich progress bars on a terminal (one for reading, one for writing); silent otherwise."""

    def __init__(self, enabled: bool) -> None:
        self.bar: Progress | None = None
        self.tasks: dict[str, Any] = {}
        if enabled:
            self.bar = Progress(
                TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/"
                "{task.total} buckets"), TimeElapsedColumn(), console=Console(stderr=True),
                transient=False,
            )  # fmt: skip
            self.bar.start()

    def start(self, name: str, report: SourceReport, what: str, total: int | None = None) -> None:
        if self.bar is None:
            return
        desc = f"{report.file} -> {report.table}: {what}"
        if name not in self.tasks:
            self.tasks[name] = self.bar.add_task(desc, total=total)
        self.bar.reset(self.tasks[name], description=desc, total=total)

    def advance(self, name: str) -> None:
        if self.bar is not None and name in self.tasks:
            self.bar.advance(self.tasks[name])

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _pipeline(loader: _Loader, streams: list[Stream], report: LoadReport, bar: _Progress) -> None:
    """Write each stream while the next one is read (the accounts stream comes first and alone:
    the others check their account ids against it)."""

    def prepare(stream: Stream) -> _Prepared:
        src = SourceReport(
            stream.name, stream.table.name, stream.output.name if stream.output else None
        )
        report.sources.append(src)
        return loader.prepare(stream, src, bar)

    def write(prepared: _Prepared) -> None:
        loader.write(prepared, bar)
        src = prepared.report
        assert src.rows_read == src.rows_loaded + src.rows_quarantined, src

    accounts = [s for s in streams if s.table is ACCOUNTS]
    rest = [s for s in streams if s.table is not ACCOUNTS]
    for stream in accounts:
        write(prepare(stream))
    if not rest:
        return
    with ThreadPoolExecutor(max_workers=1) as reader:
        ahead: Future[_Prepared] | None = reader.submit(prepare, rest[0])
        for nxt in [*rest[1:], None]:
            assert ahead is not None
            current = ahead.result()
            ahead = reader.submit(prepare, nxt) if nxt is not None else None
            try:
                write(current)
            except BaseException:
                if ahead is not None:
                    ahead.cancel()
                    with contextlib.suppress(BaseException):
                        ahead.result().spill.close()
                raise


def _check_header(stream: Stream, mapping: Mapping | None) -> None:
    columns = header(stream.path)
    if stream.output is not None and mapping is not None:
        mapping.check_columns(stream.path, columns, stream.output)
        return
    missing = [c for c in stream.table.required if c not in columns]
    if missing:
        raise IngestFormatError(
            f"{stream.path}: required column {missing[0]!r} of table {stream.table.name} is "
            f"missing; the file has {', '.join(columns) or 'no columns'}."
        )


def load(
    directory: Path,
    graph: Graph,
    settings: Settings,
    *,
    report_dir: Path | None = None,
    mapping: Path | None = None,
    progress: bool | None = None,
    bulk: bool = False,
) -> LoadReport:
    """Load a data set directory into the graph; see the module doc and docs/data-contract.md.

    ``bulk`` is for initial loads into the embedded instance's empty database: everything but
    the labels goes through Neo4j's offline importer (ingest/bulk.py), then labels through
    Cypher. The graph and the ledger end as a Cypher load leaves them.

    Returns the run's report (also written as ``report.json``, next to ``quarantine.jsonl``, in
    ``report_dir``, by default ``settings.data_dir / "ingest-runs" / <run id>``). Raises an
    :class:`~ingest.contract.IngestError` when the input cannot be loaded at all.
    """
    t0 = time.monotonic()
    started = datetime.now(UTC)
    run_id = started.strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]
    directory = Path(directory)
    spec = load_mapping(mapping) if mapping is not None else None
    streams = _plan(directory, spec)
    for stream in streams:  # fail fast, before anything is written
        _check_header(stream, spec)
    report_dir = Path(report_dir or Path(settings.data_dir) / "ingest-runs" / run_id)
    report_dir.mkdir(parents=True, exist_ok=True)
    quarantine_path = report_dir / "quarantine.jsonl"
    region = (spec.default_region if spec and spec.default_region else None) or str(
        settings.default_region
    )
    ts_format = spec.timestamp_format if spec else None
    fingerprint = json.dumps(
        {"contract": CONTRACT_VERSION, "ledger": LEDGER_LAYOUT, "region": region,
         "timestamp_format": ts_format, "mapping": spec.digest if spec else None}, sort_keys=True,
    )  # fmt: skip
    report = LoadReport(
        run_id=run_id,
        directory=str(directory),
        mapping=str(mapping) if mapping else None,
        report_dir=str(report_dir),
        quarantine_file=str(quarantine_path),
        started_at=started.isoformat(),
    )
    if bulk:
        _check_bulk_target(graph, settings)
        report.mode = "bulk"
    init_schema(graph)
    bar = _Progress(sys.stderr.isatty() if progress is None else progress)
    try:
        with quarantine_path.open("w", encoding="utf-8") as qfile:
            args = (
                graph, region, ts_format, int(settings.ingest_batch_size),
                int(settings.ingest_writers), qfile, fingerprint, report_dir / "spill",
            )  # fmt: skip
            loader = _Loader(*args)
            if bulk:
                sink = ImportFiles(report_dir / "import")
                bulk_loader = _BulkLoader(sink, *args)
                _pipeline(bulk_loader, [s for s in streams if s.table.name != "labels"],
                          report, bar)  # fmt: skip
                _import(sink, graph, settings, report, report_dir)
                loader.accounts = bulk_loader.accounts
                streams = [s for s in streams if s.table.name == "labels"]
            _pipeline(loader, streams, report, bar)
    finally:
        bar.stop()
        shutil.rmtree(report_dir / "spill", ignore_errors=True)
        shutil.rmtree(report_dir / "import", ignore_errors=True)
        report.elapsed_s = round(time.monotonic() - t0, 3)
        (report_dir / "report.json").write_text(json.dumps(report.to_json(), indent=2))
    return report


def _check_bulk_target(graph: Graph, settings: Settings) -> None:
    """Bulk loads replace the database: only the embedded one, and only while it is empty."""
    if settings.neo4j_uri:
        raise IngestError(
            "--bulk rewrites the store offline, so it only loads into the embedded Neo4j; with "
            "NEO4J_URI set, load without --bulk (or run neo4j-admin database import on the server)."
        )
    found = graph.read(cypher.INGEST_ANY_NODE)
    if found:
        raise IngestError(
            f"--bulk is for an initial load, but database {graph.database!r} already holds "
            "nodes; load without --bulk (loads are incremental), or start from an empty store."
        )


def _import(
    sink: ImportFiles, graph: Graph, settings: Settings, report: LoadReport, report_dir: Path
) -> None:
    """Run the importer on what the bulk loader wrote, then put the schema back in place."""
    t0 = time.monotonic()
    bare = sink.finish()
    for label, n in bare.items():
        owner = sink.target_owner[label]
        assert isinstance(owner, SourceReport)
        owner.nodes_created += n
        owner.properties_set += n
    arguments = sink.write_arguments(report_dir / "import.report")
    report.import_bytes = sink.bytes
    EmbeddedNeo4j(settings).import_full(arguments, report_dir / "import.log")
    graph.reconnect(settings)
    t1 = time.monotonic()
    init_schema(graph)
    report.schema_s = round(time.monotonic() - t1, 3)
    report.import_s = round(time.monotonic() - t0, 3)


def iter_quarantine(path: Path) -> Iterator[dict[str, Any]]:
    """Read a quarantine file back (for tests and tools)."""
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            yield json.loads(line)


__all__ = ["LoadReport", "SourceReport", "iter_quarantine", "load"]
