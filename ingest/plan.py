"""Planning a load: which files of a directory are read as which contract tables (directly, or
through a mapping's outputs), in table order, each checked for its required columns."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ringscope.ingest.contract import (
    ACCOUNTS,
    FORMATS,
    TABLES,
    IngestError,
    IngestFormatError,
    Table,
)
from ringscope.ingest.mapping import Mapping, Output
from ringscope.ingest.read import header


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
