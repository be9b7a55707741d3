"""The pre-flight pass: every file of a load is checked whole before anything is written.

A load writes file after file, so a file that turns out to be unreadable half-way through the
run used to leave the files before it committed, although the contract promises that such a
file stops the load before anything is written. Here each file is read once, start to end,
before the first write: its header (required columns, no column named twice), its encoding
(UTF-8 throughout, not only in the first block) and, for CSV, its quoting (a quote that opens a
field and never closes folds the rest of the file into one value). The same pass computes the
file's SHA-256, which the loader needs for its batch ids anyway, so the extra cost is the UTF-8
decoding and, only for CSV files that contain a quote at all, one parse without conversion
(about 150 MB/s on one core).
"""

from __future__ import annotations

import codecs
import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

from ringscope.ingest.contract import IngestFormatError
from ringscope.ingest.read import CSV_FIELD_LIMIT, file_format, header

CHUNK = 1 << 20


@dataclass(frozen=True)
class Checked:
    """What the pre-flight pass learnt about a file: its content hash and columns, and its size
    and modification time (the loader refuses a file that changed after it was checked)."""

    sha256: str
    columns: tuple[str, ...]
    size: int
    mtime_ns: int

    def unchanged(self, path: Path) -> bool:
        st = path.stat()
        return (st.st_size, st.st_mtime_ns) == (self.size, self.mtime_ns)


def check_file(path: Path) -> Checked:
    """Check one file whole (see the module doc); raises IngestFormatError naming the file and
    the line, row or column at fault."""
    fmt = file_format(path)
    st = path.stat()
    try:
        sha, quotes, lines = _scan_bytes(path, text=fmt != "parquet")
    except OSError as exc:
        raise IngestFormatError(f"{path}: cannot read it: {exc}") from None
    columns = header(path)
    _unique_columns(path, columns)
    if fmt == "csv" and quotes:
        _check_quotes(path, len(columns), lines)
    return Checked(sha, tuple(columns), st.st_size, st.st_mtime_ns)


def _unique_columns(path: Path, columns: list[str]) -> None:
    seen: dict[str, int] = {}
    for i, name in enumerate(columns, start=1):
        if name in seen:
            raise IngestFormatError(
                f"{path}: column {name!r} appears twice in the header (columns {seen[name]} and "
                f"{i}); every column name must be unique."
            )
        seen[name] = i


def _scan_bytes(path: Path, *, text: bool) -> tuple[str, int, int]:
    """The file's SHA-256, its count of double quotes and of lines; for text formats, also
    checks that every byte is UTF-8, naming the line and byte of the first that is not."""
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")()
    quotes = lines = offset = 0
    with path.open("rb") as fh:
        while True:
            chunk = fh.read(CHUNK)
            digest.update(chunk)
            if text:
                try:
                    decoder.decode(chunk, final=not chunk)
                except UnicodeDecodeError as exc:
                    # exc.start counts from the (at most 3) bytes held back from the last chunk
                    at = exc.start - (len(exc.object) - len(chunk))
                    line = lines + (chunk.count(b"\n", 0, at) if at > 0 else 0) + 1
                    bad = exc.object[exc.start : exc.start + 1].hex()
                    raise IngestFormatError(
                        f"{path}: line {line} (byte {offset + at + 1}) is not UTF-8 (0x{bad}: "
                        f"{exc.reason}); ingest reads UTF-8 only: re-save the file as UTF-8 "
                        "(e.g. iconv -f latin1 -t utf-8) and load again; nothing was written."
                    ) from None
                quotes += chunk.count(b'"')
                lines += chunk.count(b"\n")
            if not chunk:
                return digest.hexdigest(), quotes, lines
            offset += len(chunk)


def _check_quotes(path: Path, n_columns: int, lines: int) -> None:
    """Refuse a CSV file whose quoting is broken: a row that a quoted field stretches over
    several lines and that then has the wrong number of fields. That is the mark of an
    unbalanced quote (the field ran on into the following rows, often to the end of the file);
    quarantining it as one "malformed row" would hide every row it swallowed."""
    opened: list[int] = []

    def invalid(row: pacsv.InvalidRow) -> str:
        if "\n" in row.text or "\r" in row.text:
            opened.append(row.number if row.number is not None else 0)
        return "skip"

    try:
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(use_threads=False, block_size=8 << 20, skip_rows=1,
                                           column_names=[f"c{i}" for i in range(n_columns)]),
            parse_options=pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=invalid),
            convert_options=pacsv.ConvertOptions(include_columns=[]),
        )  # fmt: skip
        for _ in reader:
            if opened:
                break
    except pa.ArrowInvalid:
        opened.append(0)  # something pyarrow cannot parse: let the exact reader judge
    if opened:
        _exact_quote_check(path, n_columns, lines)


def _exact_quote_check(path: Path, n_columns: int, lines: int) -> None:
    """The slow, exact check (Python's csv module), to name the row and line at fault."""
    csv.field_size_limit(max(csv.field_size_limit(), CSV_FIELD_LIMIT))
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        next(reader, None)
        last_line = reader.line_num
        try:
            for row, record in enumerate(reader, start=1):
                first = last_line + 1
                last_line = reader.line_num
                if last_line > first and len(record) != n_columns:
                    end = " (the end of the file)" if last_line >= lines else ""
                    raise IngestFormatError(
                        f"{path}: row {row} (line {first}): a quoted field opens here and runs "
                        f"on to line {last_line}{end}, leaving {len(record)} fields instead of "
                        f"{n_columns}: an unbalanced quote. Close or escape it (a quote inside "
                        'a quoted field is written "") and load again; nothing was written.'
                    )
        except csv.Error as exc:
            raise IngestFormatError(f"{path}: line {reader.line_num}: {exc}") from None


__all__ = ["Checked", "check_file"]
