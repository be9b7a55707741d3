"""The loader: a directory of contract files (or foreign files plus a mapping) into Neo4j.

Per source file it streams batches (pyarrow), normalises and validates them (refused rows go to
the quarantine file), pre-aggregates the whole file (repeated pairs become one row), sorts it,
slices it into ``ingest_batch_size`` rows and writes each slice in one managed transaction
together with its ledger entry (``IngestBatch``). Batch ids are derived from the file's SHA-256,
so a re-run skips what is committed: loading twice is a no-op, and a killed load resumes.

This module runs the load; the stages are in ``plan.py`` (which files, as which tables),
``preflight.py`` (every file checked whole, encoding and quoting included, before the first
write), ``stream_loader.py`` (one stream: read, bucket, reduce, write), ``aggregate.py`` (the
reductions), ``layout.py`` (bucketing, batch slicing, the writers' schedule), ``writer.py`` (the
Cypher batches), ``bulk.py`` (the offline importer's files) and ``report.py`` (the report).
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import sys
import time
import traceback
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ringscope.graph import cypher, init_schema
from ringscope.graph.connection import Graph
from ringscope.graph.embedded import EmbeddedNeo4j
from ringscope.ingest.bulk import ImportFiles
from ringscope.ingest.contract import ACCOUNTS, CONTRACT_VERSION, IngestError
from ringscope.ingest.mapping import load_mapping
from ringscope.ingest.plan import Stream, _plan, _preflight, _unread
from ringscope.ingest.progress import _Progress
from ringscope.ingest.report import LoadReport, SourceReport
from ringscope.ingest.stream_loader import _BulkLoader, _Loader, _Prepared
from ringscope.settings import Settings

log = logging.getLogger(__name__)

LEDGER_LAYOUT = 2  # part of every batch id: bump when the bucketing or slicing changes


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
    _preflight(streams, spec)  # every file checked whole: fail fast, before anything is written
    warnings = _unread(directory, streams, spec)
    for warning in warnings:  # info: the report prints them, the log keeps them
        log.info("ingest: %s", warning)
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
        warnings=warnings,
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


def unexpected_failure(exc: BaseException, log_dir: Path) -> IngestError:
    """An exception that no check anticipated, as a one-line IngestError for the user: the
    traceback goes to a log file in ``log_dir`` (and to the logger), never to the terminal. Bad
    input should end in a quarantined row or a named refusal; this is the net under that."""
    log_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = log_dir / f"ingest-error-{stamp}-{uuid.uuid4().hex[:6]}.log"
    trace = "".join(traceback.format_exception(exc))
    path.write_text(trace, encoding="utf-8")
    log.error("ingest failed unexpectedly; traceback in %s", path, exc_info=exc)
    detail = " ".join(str(exc).split())
    detail = detail if len(detail) <= 200 else detail[:200] + "..."
    return IngestError(
        f"ingest stopped by an unexpected {type(exc).__name__}: {detail} (traceback in {path}); "
        "batches committed before it are in the ledger, so running the load again resumes it."
    )


def iter_quarantine(path: Path) -> Iterator[dict[str, Any]]:
    """Read a quarantine file back (for tests and tools)."""
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            yield json.loads(line)


__all__ = ["LoadReport", "SourceReport", "iter_quarantine", "load", "unexpected_failure"]
