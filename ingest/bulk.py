"""Initial loads through Neo4j's offline importer (``neo4j-admin database import full``).

The loader reads, normalises, quarantines and reduces exactly as it does for Cypher writes; in
bulk mode each reduced slice is appended here as CSV instead of being sent as an UNWIND batch.
The importer then builds the store in one pass, an order of magnitude faster than transactional
writes, but only into an empty database it may overwrite: the embedded instance, stopped. The
ledger (``IngestFile``, ``IngestBatch``) is imported too, with the same batch ids a Cypher load
would commit, so loading the directory again afterwards is a no-op and later loads are
incremental as usual.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from ringscope.graph.cypher import SEQUENCE_ID
from ringscope.ingest.contract import IngestError

INGEST_BATCH = "IngestBatch"
INGEST_FILE = "IngestFile"
_CSV = pacsv.WriteOptions(include_header=False, batch_size=65_536)


def _neo4j_type(name: str, t: pa.DataType) -> str:
    if pa.types.is_integer(t):
        return "long"
    if pa.types.is_floating(t):
        return "double"
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_timestamp(t):
        return "datetime"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "string"
    raise IngestError(f"column {name!r} has type {t}, which the bulk importer cannot carry.")


def _iso(col: pa.ChunkedArray | pa.Array) -> pa.Array | pa.ChunkedArray:
    """Timestamps as ISO-8601 text at millisecond precision, as the Cypher loader stores them."""
    ms = pc.cast(col, pa.timestamp("ms", tz="UTC"))
    return pc.strftime(ms, format="%Y-%m-%dT%H:%M:%SZ")


def _decimal_text(e4: pa.ChunkedArray) -> pa.ChunkedArray:
    """Integers of 1/10 000 unit as decimal text ("12.3400"), as graph/cypher.py's _DECIMAL."""
    whole = pc.divide(e4, 10_000)
    frac = pc.add(pc.subtract(e4, pc.multiply(whole, 10_000)), 10_000)
    return pc.binary_join_element_wise(
        pc.cast(whole, pa.string()),
        pc.utf8_slice_codeunits(pc.cast(frac, pa.string()), 1),
        ".",
    )


class ImportFiles:
    """The importer's input: CSV files with typed headers, one per label (node files; the label
    is the id space) or relationship type and header. Slices with the header of an earlier one
    are appended to its file: the importer parses a few big files faster than many small
    ones. Link targets that no entity table described (a device seen only in logins) become
    bare nodes at ``finish``.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.arguments: list[str] = []
        self.entities: dict[str, list[pa.Array]] = {}
        self.targets: dict[str, list[pa.Array]] = {}
        self.target_owner: dict[str, object] = {}
        self._files: dict[tuple[str, str, str], Path] = {}
        self.bytes = 0
        self.multiline = False  # a value holds a line break: the importer must parse serially
        self.next_seq = 0  # the next node number (graph.numbering): the importer numbers nodes

    def _write(self, option: str, name: str, header: list[str], t: pa.Table) -> None:
        line = ",".join(header) + "\n"
        key = (option, name, line)
        path = self._files.get(key)
        buf = io.BytesIO()
        if path is None:
            path = self._files[key] = self.root / f"{len(self._files) + 1:04d}-{name}.csv"
            self.arguments.append(f"--{option}={name}={path}")
            buf.write(line.encode())
        if t.num_rows:
            pacsv.write_csv(t, buf, _CSV)
        with path.open("ab") as fh:
            fh.write(buf.getvalue())
        self.bytes += buf.tell()

    def _scan(self, col: pa.ChunkedArray | pa.Array) -> None:
        if not self.multiline and pa.types.is_string(col.type):
            self.multiline = pc.any(pc.match_substring_regex(col, "[\r\n]")).as_py() is True

    def _properties(
        self, t: pa.Table
    ) -> tuple[list[str], dict[str, pa.ChunkedArray | pa.Array], int]:
        """Typed header fields and the columns as CSV text; all-null columns are left out (a
        null is no property). Returns the count of non-null property values too."""
        header: list[str] = []
        cols: dict[str, pa.ChunkedArray | pa.Array] = {}
        values = 0
        for f in t.schema:
            col = t.column(f.name)
            if pa.types.is_null(f.type) or col.null_count == len(col):
                continue
            if any(c in f.name for c in ':,"\n\r') or f.name != f.name.strip():
                raise IngestError(
                    f"column {f.name!r} cannot be a property name in the bulk importer's CSV "
                    "header; load without --bulk, or rename it in a mapping."
                )
            header.append(f"{f.name}:{_neo4j_type(f.name, f.type)}")
            self._scan(col)
            cols[f.name] = _iso(col) if pa.types.is_timestamp(f.type) else col
            values += len(col) - col.null_count
        return header, cols, values

    def nodes(self, label: str, t: pa.Table) -> int:
        """Entity rows (``id`` plus properties) as nodes. Returns the properties set."""
        ids = t.column("id")
        self._scan(ids)
        self.entities.setdefault(label, []).append(pc.unique(ids))
        rest = t.drop_columns(["id"])
        header, cols, values = self._properties(rest)
        body = pa.table({"id": ids, "seq": self._numbers(len(t)), **cols})
        self._write("nodes", label, [f"id:ID({label})", "seq:long", *header], body)
        return values + len(t)

    def _numbers(self, n: int) -> pa.Array:
        """The next ``n`` node numbers (``seq``, graph/numbering.py): node ids are unique across
        the importer's files (it rejects duplicates), so one running counter numbers them."""
        out = pa.array(range(self.next_seq, self.next_seq + n), pa.int64())
        self.next_seq += n
        return out

    def relationships(self, rel: str, start: str, end: str, t: pa.Table, owner: object) -> int:
        """Reduced link rows (``account``, ``target`` plus properties). Returns properties set."""
        targets = t.column("target")
        self._scan(targets)
        self.targets.setdefault(end, []).append(pc.unique(targets))
        self.target_owner.setdefault(end, owner)
        header, cols, values = self._properties(t.drop_columns(["account", "target"]))
        body = pa.table({"a": t.column("account"), "b": targets, **cols})
        self._write("relationships", rel, [f":START_ID({start})", f":END_ID({end})", *header], body)
        return values

    def payments(self, start: str, end: str, t: pa.Table, owner: object) -> int:
        """PAID rows with the names and decimal renderings the Cypher loader gives them."""
        t = pa.table({
            "account": t.column("account"), "target": t.column("target"),
            "currency": t.column("currency"), "count": t.column("count"),
            "total_amount_e4": t.column("total_e4"), "max_amount_e4": t.column("max_e4"),
            "round_count": t.column("round_count"), "first_seen": t.column("first_seen"),
            "last_seen": t.column("last_seen"),
            "total_amount": _decimal_text(t.column("total_e4")),
            "max_amount": _decimal_text(t.column("max_e4")),
        })  # fmt: skip
        return self.relationships("PAID", start, end, t, owner)

    def ledger_batches(
        self, ids: list[str], file_id: str, numbers: list[int], rows: list[int]
    ) -> None:
        """``IngestBatch`` entries for slices written here (ids as the Cypher loader's)."""
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        t = pa.table({
            "id": pa.array(ids, pa.string()), "file": pa.array([file_id] * len(ids), pa.string()),
            "batch": pa.array(numbers, pa.int64()), "rows": pa.array(rows, pa.int64()),
            "committed_at": pa.array([now] * len(ids), pa.string()),
        })  # fmt: skip
        header = [f"id:ID({INGEST_BATCH})", "file:string", "batch:long", "rows:long",
                  "committed_at:datetime"]  # fmt: skip
        self._write("nodes", INGEST_BATCH, header, t)

    def ledger_file(self, file_id: str, props: dict[str, str | int]) -> None:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        values: dict[str, str | int] = {**props, "started_at": now, "completed_at": now}
        header = [f"id:ID({INGEST_FILE})"] + [
            f"{k}:{'long' if isinstance(v, int) else 'datetime' if k.endswith('_at') else 'string'}"
            for k, v in values.items()
        ]
        t = pa.table({"id": [file_id], **{k: [v] for k, v in values.items()}})
        self._write("nodes", INGEST_FILE, header, t)

    def finish(self) -> dict[str, int]:
        """Write the bare target nodes; returns how many per label."""
        bare: dict[str, int] = {}
        for label, parts in self.targets.items():
            ids = pc.unique(pa.chunked_array(parts).combine_chunks())
            known = self.entities.get(label)
            if known:
                ids = ids.filter(pc.invert(pc.is_in(ids, pa.chunked_array(known).combine_chunks())))
            if len(ids):
                body = pa.table({"id": ids, "seq": self._numbers(len(ids))})
                self._write("nodes", label, [f"id:ID({label})", "seq:long"], body)
            bare[label] = len(ids)
        self.targets.clear()
        self.entities.clear()
        # The numbering counter (graph/cypher.py SEQ_LOCK) as though it had numbered them all.
        n = self.next_seq
        counter = pa.table({"id": [SEQUENCE_ID], "next": [n], "numbered": [n]})
        self._write("nodes", "Sequence", ["id:ID(Sequence)", "next:long", "numbered:long"], counter)
        return bare

    def write_arguments(self, report_file: Path) -> Path:
        """The importer's options, one per line (picocli's @file), so no command line overflows."""
        path = self.root / "arguments.txt"
        options = [
            "--overwrite-destination=true",
            f"--multiline-fields={str(self.multiline).lower()}",
            "--skip-bad-relationships=false",
            "--skip-duplicate-nodes=false",
            f"--report-file={report_file}",
            *self.arguments,
        ]
        path.write_text("\n".join(options) + "\n")
        return path


__all__ = ["ImportFiles"]
