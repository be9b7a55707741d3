"""Planning a load: which files of a directory are read as which contract tables (directly, or
through a mapping's outputs), in table order, each checked whole (the pre-flight pass) before
anything is written, and which files of the directory are not read at all."""

from __future__ import annotations

from dataclasses import dataclass, field
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
from ringscope.ingest.preflight import Checked, check_file


@dataclass
class Stream:
    """One unit of loading: a file read as one contract table (through an optional output)."""

    path: Path
    table: Table
    output: Output | None
    name: str  # as shown in reports and the quarantine file
    checked: Checked | None = field(default=None, compare=False)  # set by the pre-flight pass


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


def _preflight(streams: list[Stream], mapping: Mapping | None) -> None:
    """Check every file whole before anything is written (ingest/preflight.py), once per file
    however many outputs it feeds, then each stream's columns against its table or output."""
    checked: dict[Path, Checked] = {}
    for stream in streams:
        if stream.path not in checked:
            checked[stream.path] = check_file(stream.path)
        stream.checked = checked[stream.path]
        _check_header(stream, list(stream.checked.columns), mapping)


def _check_header(stream: Stream, columns: list[str], mapping: Mapping | None) -> None:
    if stream.output is not None and mapping is not None:
        mapping.check_columns(stream.path, columns, stream.output)
        return
    missing = [c for c in stream.table.required if c not in columns]
    if missing:
        raise IngestFormatError(
            f"{stream.path}: required column {missing[0]!r} of table {stream.table.name} is "
            f"missing; the file has {', '.join(columns) or 'no columns'}."
        )


def _unread(directory: Path, streams: list[Stream], mapping: Mapping | None) -> list[str]:
    """A warning for each file of the directory that this load does not read (contract mode
    only: a mapping names its sources, and its directory usually holds other data too). Names
    starting with a dot and subdirectories are left alone."""
    if mapping is not None:
        return []
    read = {s.path.name for s in streams}
    tables = {t.name for t in TABLES}
    warnings = []
    for path in sorted(directory.iterdir()):
        if path.name in read or path.name.startswith(".") or not path.is_file():
            continue
        stem, ext = path.stem, path.suffix
        if stem in tables and ext.lower() in FORMATS:
            hint = f"extensions are lower case: did you mean {stem}{ext.lower()}?"
        elif stem in tables:
            hint = f"unknown file type {ext!r}; use one of {', '.join(FORMATS)}"
        elif stem.lower() in tables:
            hint = f"table names are lower case: did you mean {stem.lower()}{ext.lower()}?"
        else:
            hint = "not a table of the data contract"
        warnings.append(f"{path.name}: not read ({hint}).")
    return warnings
