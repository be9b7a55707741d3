"""Loading one stream: read, normalise and validate its file (refused rows to the quarantine
file), spill the good rows into hash buckets, then reduce and write one bucket at a time: in
``ingest_writers`` concurrent Cypher sessions (:class:`_Loader`), or into the offline importer's
CSV files (:class:`_BulkLoader`)."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import neo4j
import numpy as np
import pyarrow as pa

from ringscope.graph import cypher
from ringscope.graph.connection import Graph
from ringscope.ingest import contract
from ringscope.ingest.aggregate import (
    OBSERVED,
    _aggregate_links,
    _dedupe_payments,
    _link_keys,
    _reduce,
)
from ringscope.ingest.bulk import ImportFiles
from ringscope.ingest.contract import ACCOUNTS, IngestError, Reason
from ringscope.ingest.layout import (
    BATCH_STRIDE,
    TARGET_CLASSES,
    Layout,
    _partitions,
    _schedule,
)
from ringscope.ingest.mapping import Output
from ringscope.ingest.normalise import Context, Mask, Result, normalise
from ringscope.ingest.plan import Stream
from ringscope.ingest.progress import _Progress
from ringscope.ingest.read import RaggedCsvError, RawBatch, header, read_batches, sha256_file
from ringscope.ingest.report import SourceReport
from ringscope.ingest.spill import Spill, bucket_of
from ringscope.ingest.writer import (
    ACCOUNTS_LABEL,
    _entity_label,
    _link_kind,
    _parts,
    _query,
    _rows_for,
    _write_batch,
)

READ_ROWS = 65_536  # rows per read batch (independent of the write batch size)
SPILL_FLUSH_ROWS = 1_000_000  # rows buffered in memory before the spill buckets are written out


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
        checked = stream.checked
        if checked is not None and not checked.unchanged(stream.path):
            raise IngestError(
                f"{stream.path}: changed after the pre-flight check; load it again once it is "
                "complete (files must not change during a load)."
            )
        sha = checked.sha256 if checked is not None else sha256_file(stream.path)
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
        records = self.graph.write_records(cypher.INGEST_FILE_START, params)
        found = {Layout(int(r["batch_size"]), int(r["partitions"]), int(r["classes"]))
                 for r in records}  # fmt: skip
        if len(found) != 1:
            raise IngestError(f"{stream.path}: its ledger entries disagree on the layout: {found}")
        return found.pop()


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
