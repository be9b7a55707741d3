"""Reading table files (CSV, Parquet, JSON Lines) as a stream of all-string Arrow batches.

Every value is read as text (or null) so that the raw row can be quarantined exactly as it was
and so that one normaliser serves every format. Only one batch at a time is in memory.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ringscope.ingest.contract import FORMATS, IngestFormatError


@dataclass
class RawBatch:
    """A slice of a file: string columns, the 1-based data-row number of each row, and the rows
    of this slice that could not even be split into columns (row number, raw text)."""

    batch: pa.RecordBatch
    rows: np.ndarray[Any, np.dtype[np.int64]]
    malformed: list[tuple[int, Any]] = field(default_factory=list)


# Python's csv module refuses fields over 128 kB by default; a 5 MB value must reach the
# contract checks (and be quarantined there as a key too long) instead of stopping the read.
CSV_FIELD_LIMIT = 1 << 30


class RaggedCsvError(Exception):
    """The fast CSV reader met a row with the wrong number of fields; re-read exactly."""


def file_format(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise IngestFormatError(
            f"{path}: unknown file type {path.suffix!r}; use one of {', '.join(FORMATS)}."
        )
    return fmt


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def header(path: Path) -> list[str]:
    """The column names of a file, failing fast when the file cannot be read at all."""
    fmt = file_format(path)
    try:
        if fmt == "csv":
            with path.open(newline="", encoding="utf-8-sig") as fh:
                first = next(csv.reader(fh), None)
            if not first:
                raise IngestFormatError(f"{path}: empty CSV file, expected a header row.")
            return [c.strip() for c in first]
        if fmt == "parquet":
            return list(pq.ParquetFile(path).schema_arrow.names)
        names: dict[str, None] = {}
        with path.open(encoding="utf-8") as fh:
            for n, line in enumerate(fh):
                if n >= 1000:
                    break
                if line.strip():
                    # A line that is not JSON is the reader's to quarantine ("malformed row"),
                    # wherever it is; it must not refuse the whole file here.
                    try:
                        obj = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(obj, dict):
                        names.update(dict.fromkeys(obj))
        return list(names)
    except IngestFormatError:
        raise
    except (OSError, UnicodeDecodeError, csv.Error, ValueError, pa.ArrowException) as exc:
        raise IngestFormatError(f"{path}: cannot read it as {fmt}: {exc}") from None


def read_batches(
    path: Path, columns: list[str], batch_rows: int, *, exact: bool = False
) -> Iterator[RawBatch]:
    """Stream ``path`` as string batches of about ``batch_rows`` rows, with ``columns`` (the
    file's header). ``exact`` reads CSV with Python's csv module: slower, but it reports the exact
    row number of rows with the wrong number of fields (the fast reader raises RaggedCsvError)."""
    fmt = file_format(path)
    try:
        if fmt == "csv":
            yield from (_csv_exact if exact else _csv_fast)(path, columns, batch_rows)
        elif fmt == "parquet":
            yield from _parquet(path, columns, batch_rows)
        else:
            yield from _jsonl(path, columns, batch_rows)
    except (RaggedCsvError, IngestFormatError):
        raise
    except (OSError, UnicodeDecodeError, csv.Error, pa.ArrowException) as exc:
        raise IngestFormatError(f"{path}: cannot read it as {fmt}: {exc}") from None


def _rows(start: int, n: int) -> np.ndarray[Any, np.dtype[np.int64]]:
    return np.arange(start, start + n, dtype=np.int64)


def _csv_fast(path: Path, columns: list[str], batch_rows: int) -> Iterator[RawBatch]:
    try:
        reader = _open_csv(path, columns, batch_rows)
    except pa.ArrowInvalid as exc:  # the first block is parsed on opening
        raise RaggedCsvError(str(exc)) from None
    start = 1
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            return
        except pa.ArrowInvalid as exc:
            # A row with the wrong number of fields (or similar): the fast reader cannot say
            # which data row it was, so the caller re-reads the file exactly.
            raise RaggedCsvError(str(exc)) from None
        if batch.num_rows:
            yield RawBatch(batch, _rows(start, batch.num_rows))
            start += batch.num_rows


def _open_csv(path: Path, columns: list[str], batch_rows: int) -> pacsv.CSVStreamingReader:
    return pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(
            column_names=columns,
            skip_rows=1,
            block_size=max(1 << 20, min(64 << 20, batch_rows * 100)),
            encoding="utf8",
        ),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(columns, pa.string()),
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )


def _strings(columns: list[str], records: list[list[str | None]]) -> pa.RecordBatch:
    arrays = [pa.array([r[i] for r in records], pa.string()) for i in range(len(columns))]
    return pa.RecordBatch.from_arrays(arrays, names=columns)


def _csv_exact(path: Path, columns: list[str], batch_rows: int) -> Iterator[RawBatch]:
    csv.field_size_limit(max(csv.field_size_limit(), CSV_FIELD_LIMIT))
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        next(reader, None)
        records: list[list[str | None]] = []
        rows: list[int] = []
        malformed: list[tuple[int, Any]] = []
        for n, record in enumerate(reader, start=1):
            if len(record) != len(columns):
                malformed.append((n, record))
            else:
                records.append(list(record))
                rows.append(n)
            if len(records) >= batch_rows:
                yield RawBatch(_strings(columns, records), np.array(rows, np.int64), malformed)
                records, rows, malformed = [], [], []
        if records or malformed:
            yield RawBatch(_strings(columns, records), np.array(rows, np.int64), malformed)


def _as_strings(array: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    if pa.types.is_string(array.type):
        return array
    if pa.types.is_large_string(array.type) or pa.types.is_dictionary(array.type):
        return array.cast(pa.string())
    try:
        return array.cast(pa.string())
    except pa.ArrowException:
        return pa.array([None if v is None else _text(v) for v in array.to_pylist()], pa.string())


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def _parquet(path: Path, columns: list[str], batch_rows: int) -> Iterator[RawBatch]:
    start = 1
    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows):
        arrays = [_as_strings(batch.column(c)) for c in columns]
        yield RawBatch(pa.RecordBatch.from_arrays(arrays, names=columns), _rows(start, len(batch)))
        start += len(batch)


def _encodable(obj: Any) -> bool:
    try:
        json.dumps(obj, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return False
    return True


def _jsonl(path: Path, columns: list[str], batch_rows: int) -> Iterator[RawBatch]:
    # JSON numbers are kept as their decimal text (parse_float=str): money never becomes a float.
    decoder = json.JSONDecoder(parse_float=str, parse_int=str)
    known = set(columns)
    with open(path, encoding="utf-8") as fh:
        records: list[list[str | None]] = []
        rows: list[int] = []
        malformed: list[tuple[int, Any]] = []
        n = 0
        for line in fh:
            if not line.strip():
                continue
            n += 1
            try:
                obj = decoder.decode(line)
            except ValueError:
                obj = None
            if "\\u" in line and not _encodable(obj):
                obj = None  # a lone surrogate ("\ud800") is no text: Arrow cannot hold it
            if not isinstance(obj, dict) or not known.issuperset(obj):
                # Not an object, or keys the header scan did not see: quarantine the raw line.
                malformed.append((n, line.rstrip("\n")))
            else:
                records.append([None if obj.get(c) is None else _text(obj[c]) for c in columns])
                rows.append(n)
            if len(records) >= batch_rows:
                yield RawBatch(_strings(columns, records), np.array(rows, np.int64), malformed)
                records, rows, malformed = [], [], []
        if records or malformed:
            yield RawBatch(_strings(columns, records), np.array(rows, np.int64), malformed)
