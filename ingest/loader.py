"""The loader: a directory of contract files (or foreign files plus a mapping) into Neo4j.

Per source file it streams batches (pyarrow), normalises and validates them (refused rows go to
the quarantine file), pre-aggregates the whole file (repeated pairs become one row), sorts it,
slices it into ``ingest_batch_size`` rows and writes each slice in one managed transaction
together with its ledger entry (``IngestBatch``). Batch ids are derived from the file's SHA-256,
so a re-run skips what is committed: loading twice is a no-op, and a killed load resumes.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
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

from graph import cypher, init_schema
from graph.connection import Graph
from graph.model import BY_NAME as KIND_BY_NAME
from graph.model import DEVICE, PAYEE, PHONE
from ingest import contract
from ingest.contract import (
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
from ingest.mapping import Mapping, Output, load_mapping
from ingest.normalise import Context, Mask, Result, normalise
from ingest.read import RaggedCsvError, RawBatch, header, read_batches, sha256_file
from ringscope.settings import Settings

READ_ROWS = 65_536  # rows per read batch (independent of the write batch size)
COMPACT_ROWS = 1_000_000  # partial aggregates are re-aggregated beyond this many rows


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


@dataclass
class LoadReport:
    run_id: str
    directory: str
    mapping: str | None
    report_dir: str
    quarantine_file: str
    started_at: str
    elapsed_s: float = 0.0
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


_LINK_KEYS = {"account_identifiers": ["kind", "target", "account"]}


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


class Accumulator:
    """Collects a stream's good rows and turns them into the sorted rows to write."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self.parts: list[pa.Table] = []
        self.rows = 0
        self.link_keys = _LINK_KEYS.get(table.name, ["target", "account"])

    def add(self, good: pa.Table, rows: np.ndarray[Any, Any]) -> None:
        observed = self.table.name in ("account_devices", "account_phones", "account_identifiers")
        if observed:
            part = _aggregate_links(good, self.link_keys, partial=True)
        else:
            part = good.append_column("_row", pa.array(rows, pa.int64()))
        self.parts.append(part)
        self.rows += part.num_rows
        # Only observation tables are compacted: other tables keep every row until finish().
        if observed and self.rows > COMPACT_ROWS and len(self.parts) > 1:
            merged = _aggregate_links(pa.concat_tables(self.parts), self.link_keys, False)
            self.parts, self.rows = [merged], merged.num_rows

    def finish(self) -> tuple[pa.Table, np.ndarray[Any, Any]]:
        """The rows to write, sorted (deterministic), and row numbers refused as duplicates."""
        name = self.table.name
        none = np.zeros(0, dtype=np.int64)
        if not self.parts:
            return pa.table({}), none
        t = pa.concat_tables(self.parts, promote_options="permissive")
        self.parts = []
        if self.table.entity:
            return _last_per_key(t, "id", [("_row", "ascending")]).drop_columns("_row"), none
        if name == "labels":
            rank = pc.if_else(pc.equal(t.column("label"), "fraud"), 1, 0)
            t = t.append_column("_rank", rank)
            order = [("labelled_at", "ascending"), ("_rank", "ascending"), ("_row", "ascending")]
            last = _last_per_key(t, "account", order)
            return last.drop_columns(["_rank", "_row"]), none
        if name == "payments":
            return _payments(t)
        agg = _aggregate_links(t, self.link_keys, partial=False)
        order = [(k, "ascending") for k in self.link_keys]
        return agg.take(pc.sort_indices(agg, order)), none


def _same(a: pa.ChunkedArray, b: pa.ChunkedArray) -> Mask:
    both_null = pc.and_(pc.is_null(a), pc.is_null(b))
    return np.asarray(
        pc.fill_null(pc.equal(a, b), both_null).to_numpy(zero_copy_only=False), dtype=bool
    )


def _payments(t: pa.Table) -> tuple[pa.Table, np.ndarray[Any, Any]]:
    """Drop identical re-sent payments, refuse conflicting ones, aggregate the rest per
    (account, payee, currency)."""
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
    kept = t.filter(pa.array(first))
    amount = kept.column("amount")
    unit = ROUND_UNIT * 10**contract.AMOUNT_SCALE
    rem = pc.subtract(amount, pc.multiply(pc.divide(amount, unit), unit))
    is_round = pc.and_(pc.greater(amount, 0), pc.equal(rem, 0))
    kept = kept.append_column("_round", pc.cast(is_round, pa.int64()))
    keys = ["target", "account", "currency"]
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
    g = _rename(g, keys, names)
    g = g.take(pc.sort_indices(g, [(k, "ascending") for k in keys]))
    return g, np.sort(refused)


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


def _query(table: Table, kind: str | None) -> LiteralString:
    name = table.name
    if name == "accounts":
        return cypher.INGEST_NODES[ACCOUNTS_LABEL]
    if name == "devices":
        return cypher.INGEST_NODES[DEVICE.label]
    if name == "phones":
        return cypher.INGEST_NODES[PHONE.label]
    if name == "payees":
        return cypher.INGEST_NODES[PAYEE.label]
    if name == "labels":
        return cypher.INGEST_LABELS
    if name == "payments":
        return cypher.INGEST_PAYMENTS
    rel = {"account_devices": DEVICE.rel, "account_phones": PHONE.rel}.get(name)
    if rel is None:
        rel = KIND_BY_NAME[str(kind)].rel
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


class _Loader:
    def __init__(
        self, graph: Graph, ctx_region: str, ts_format: str | None, batch_size: int,
        quarantine: IO[str], fingerprint: str,
    ) -> None:  # fmt: skip
        self.graph = graph
        self.batch_size = batch_size
        self.quarantine = quarantine
        self.fingerprint = fingerprint
        self.accounts: set[str] = set()
        self.graph_accounts: dict[str, bool] = {}
        self.ctx = Context(ctx_region, ts_format, self._known_accounts)

    def _known_accounts(self, ids: pa.Array) -> Mask:
        values: list[str] = ids.to_pylist()
        known = np.fromiter((v in self.accounts for v in values), dtype=bool, count=len(values))
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
        self, report: SourceReport, row: int, field_name: str, reason: Reason, raw: Any,
        buffer: list[str],
    ) -> None:  # fmt: skip
        report.rows_quarantined += 1
        report.reasons[reason.value] = report.reasons.get(reason.value, 0) + 1
        column = field_name.split(" (")[-1].rstrip(")")  # "phone (billing_phone)" -> source column
        value = raw.get(column) if isinstance(raw, dict) else None
        buffer.append(json.dumps({
            "file": report.file, "table": report.table, "output": report.output, "row": row,
            "field": field_name, "reason": reason.value, "value": value, "raw": raw,
        }, default=str, ensure_ascii=False))  # fmt: skip

    def _read(self, stream: Stream, report: SourceReport, exact: bool) -> tuple[
        Accumulator, list[str]
    ]:  # fmt: skip
        columns = header(stream.path)
        acc = Accumulator(stream.table)
        buffer: list[str] = []
        for raw in read_batches(stream.path, columns, READ_ROWS, exact=exact):
            self._consume(stream, report, raw, acc, buffer)
        return acc, buffer

    def _consume(
        self, stream: Stream, report: SourceReport, raw: RawBatch, acc: Accumulator,
        buffer: list[str],
    ) -> None:  # fmt: skip
        for row, text in raw.malformed:
            report.rows_read += 1
            self._quarantine(report, row, "", Reason.MALFORMED_ROW, text, buffer)
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
                self._quarantine(report, int(rows[r.index]), field_name, r.reason, raw_row, buffer)
        if result.good.num_rows:
            acc.add(result.good, rows[result.index])

    def run_stream(self, stream: Stream, report: SourceReport, progress: _Progress) -> None:
        progress.start(report, "reading")
        try:
            acc, buffer = self._read(stream, report, exact=False)
        except RaggedCsvError:
            fresh = SourceReport(report.file, report.table, report.output)
            report.__dict__.update(fresh.__dict__)
            acc, buffer = self._read(stream, report, exact=True)
        rows, duplicates = acc.finish()
        if len(duplicates):
            self._refuse_duplicates(stream, report, duplicates, buffer)
        for line in buffer:
            self.quarantine.write(line + "\n")
        self.quarantine.flush()
        if stream.table is ACCOUNTS and rows.num_rows:
            self.accounts.update(rows.column("id").to_pylist())
        self._write(stream, report, rows, progress)

    def _refuse_duplicates(
        self, stream: Stream, report: SourceReport, rows: np.ndarray[Any, Any],
        buffer: list[str],
    ) -> None:  # fmt: skip
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
                        self._quarantine(
                            report, row, field_name, Reason.DUPLICATE_PAYMENT, raw_row, buffer
                        )

    def _write(
        self, stream: Stream, report: SourceReport, rows: pa.Table, progress: _Progress
    ) -> None:
        groups: list[tuple[str | None, pa.Table]]
        if stream.table.name == "account_identifiers" and rows.num_rows:
            groups = [(k, rows.filter(pc.equal(rows.column("kind"), k)).drop_columns("kind"))
                      for k in contract.IDENTIFIER_KINDS]  # fmt: skip
        else:
            groups = [(None, rows)]
        sha = sha256_file(stream.path)
        out_name = stream.output.name if stream.output else ""
        base = hashlib.sha256(
            f"{sha}|{stream.table.name}|{out_name}|{self.fingerprint}".encode()
        ).hexdigest()[:32]
        for kind, part in groups:
            file_id = f"{base}:{kind or stream.table.name}"
            bsize = self._start_file(file_id, stream, sha, part.num_rows)
            n_batches = -(-part.num_rows // bsize)
            report.batches += n_batches
            done = self.graph.read(cypher.INGEST_COMMITTED, {"prefix": file_id + "#"})
            committed = {r["batch"] for r in done}
            query = _query(stream.table, kind)
            progress.start(report, f"writing {kind or ''}".strip(), n_batches)
            with self.graph.driver.session(database=self.graph.database) as session:
                for b in range(n_batches):
                    if b in committed:
                        report.batches_skipped += 1
                        progress.advance()
                        continue
                    chunk = part.slice(b * bsize, bsize)
                    params = {
                        "batch_id": f"{file_id}#{b}", "file_id": file_id, "batch_no": b,
                        "rows": _rows_for(stream.table, chunk),
                    }  # fmt: skip
                    nodes, rels, props = session.execute_write(_write_batch, query, params)
                    if nodes == 0:  # the guard found the batch committed by someone else
                        report.batches_skipped += 1
                    else:
                        report.batches_written += 1
                        report.nodes_created += nodes - 1
                        report.relationships_created += rels
                        report.properties_set += props - cypher.INGEST_LEDGER_PROPERTIES
                    progress.advance()
            self.graph.write(cypher.INGEST_FILE_DONE, {"file_id": file_id, "batches": n_batches})

    def _start_file(self, file_id: str, stream: Stream, sha: str, n_rows: int) -> int:
        params = {
            "file_id": file_id, "file": stream.name, "table": stream.table.name, "sha256": sha,
            "batch_size": self.batch_size, "batches": -(-n_rows // self.batch_size),
        }  # fmt: skip
        records, _, _ = self.graph.driver.execute_query(
            cypher.INGEST_FILE_START, params, database_=self.graph.database
        )
        return int(records[0]["batch_size"])


def _source_field(output: Output | None, field_name: str) -> str:
    """The contract field, plus the source column it came from when a mapping renamed it."""
    if output is None:
        return field_name
    for name, col in output.columns:
        if name == field_name and col.column is not None and col.column != name:
            return f"{field_name} ({col.column})"
    return field_name


class _Progress:
    """A rich progress bar on a terminal; silent otherwise."""

    def __init__(self, enabled: bool) -> None:
        self.bar: Progress | None = None
        self.task: Any = None
        if enabled:
            self.bar = Progress(
                TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/"
                "{task.total} batches"), TimeElapsedColumn(), console=Console(stderr=True),
                transient=False,
            )  # fmt: skip
            self.bar.start()

    def start(self, report: SourceReport, what: str, total: int | None = None) -> None:
        if self.bar is None:
            return
        desc = f"{report.file} -> {report.table}: {what}"
        if self.task is None:
            self.task = self.bar.add_task(desc, total=total)
        self.bar.reset(self.task, description=desc, total=total)

    def advance(self) -> None:
        if self.bar is not None and self.task is not None:
            self.bar.advance(self.task)

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()


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
) -> LoadReport:
    """Load a data set directory into the graph; see the module doc and docs/data-contract.md.

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
        {"contract": CONTRACT_VERSION, "region": region, "timestamp_format": ts_format,
         "mapping": spec.digest if spec else None}, sort_keys=True,
    )  # fmt: skip
    report = LoadReport(
        run_id=run_id,
        directory=str(directory),
        mapping=str(mapping) if mapping else None,
        report_dir=str(report_dir),
        quarantine_file=str(quarantine_path),
        started_at=started.isoformat(),
    )
    init_schema(graph)
    bar = _Progress(sys.stderr.isatty() if progress is None else progress)
    try:
        with quarantine_path.open("w", encoding="utf-8") as qfile:
            loader = _Loader(
                graph, region, ts_format, int(settings.ingest_batch_size), qfile, fingerprint
            )
            for stream in streams:
                src = SourceReport(
                    stream.name, stream.table.name, stream.output.name if stream.output else None
                )
                report.sources.append(src)
                loader.run_stream(stream, src, bar)
                assert src.rows_read == src.rows_loaded + src.rows_quarantined, src
    finally:
        bar.stop()
        report.elapsed_s = round(time.monotonic() - t0, 3)
        (report_dir / "report.json").write_text(json.dumps(report.to_json(), indent=2))
    return report


def iter_quarantine(path: Path) -> Iterator[dict[str, Any]]:
    """Read a quarantine file back (for tests and tools)."""
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            yield json.loads(line)


__all__ = ["LoadReport", "SourceReport", "iter_quarantine", "load"]
