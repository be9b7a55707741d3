"""The rebuild's input on Spark: a data set's files read into the tables that Neo4j holds after
``ringscope ingest`` loads them, in the shape the detector's projection reads.

Why: at scale the rebuild cannot read its projection out of Neo4j (Bolt is the measured
bottleneck, docs/scaling.md), so the Spark engine reads the input files the loader reads, the
data contract's CSV, Parquet and JSON Lines, directly or through the same mapping files, and
rebuilds from them what a load into an empty graph leaves there:

- ``accounts``: account, created (epoch s, -1 unknown), kyc (-1 unknown), label (1 fraud,
  0 legit, -1 none): the ``DETECT_ACCOUNTS`` columns;
- ``edges``: one row per relationship from an account, as ``DETECT_LINKS`` reads them (kind,
  account, ident, currency, first, last, count, round_count, total), where ``ident`` is the
  identifier node's ``id`` property and ``currency`` is "" except for payees;
- ``identifiers``: every identifier node (from an entity table or a relationship's target),
  with its flag (emulator device, virtual phone, merchant payee) as ``DETECT_*`` read it;
- ``report``: per contract table, rows read, loaded, quarantined (and per reason), equal to the
  loader's report for the same input.

Nothing is re-implemented where the loader has the code. Files are split into contract-shaped
string batches as ``ingest.read`` splits them, mapped by ``ingest.mapping``'s ``Output.apply``
and checked and normalised by ``ingest.normalise.normalise``, inside Spark's Python workers
(``DataFrame.mapInArrow``), so every value is parsed by the same code as in a load. What the
loader does per bucket (``ingest.aggregate``) and Neo4j does per batch (the ingest Cypher,
``graph.cypher``) is here as Spark operations, rule for rule:

- planning: ``ingest.plan._plan`` (which files as which tables, in table order), and by default
  the loader's pre-flight check of every file (``_preflight``: a file the loader refuses whole
  is refused here too, with the same IngestError);
- reading: Parquet with Spark's reader (split by row groups; the row order from
  ``_metadata.row_index``), each column cast back to the file's own Arrow type and then to text
  by ``ingest.read._as_strings``; JSON Lines with Spark's line reader (split by bytes; a line
  is decoded as ``ingest.read._jsonl`` decodes it); CSV one task per file, read by
  ``ingest.read.read_batches`` itself: its fast reader, or the exact one when the fast one meets
  a ragged row (as the loader falls back). CSV is not split: a quoted field may hold newlines.
  ``_row`` orders each stream's rows as in its file (the loader's row number, or a number that
  sorts the same way), which is all that "the last row wins" and "the first payment wins" need;
- unknown accounts: ``normalise`` checks them last, on rows that passed everything else; here
  it runs with every account known and the rows are then split by a join on the account ids
  the accounts streams loaded (anti-join: quarantined as ``unknown account``), which is the
  same rule. Only the input's own accounts are known: these tables are what loading the
  directory into an EMPTY graph leaves (the loader also accepts accounts already in the graph);
- entities (accounts, devices, phones, payees): per stream the last row per id (``_reduce``);
  across streams, property by property, the later stream's non-null value (``SET n +=
  row.props`` leaves a property absent from the row as it was);
- labels: per stream the last row per account ordered by labelled_at (nulls first), fraud over
  legit, row (``_reduce``); across streams folded in stream order by ``INGEST_LABELS``' rule
  (set when the account has no label or no labelled_at, or the row is later, or equally late
  and fraud);
- observed links (devices, phones, ``account_identifiers`` by kind): one relationship per
  (kind, account, identifier) with count = rows, first = min seen, last = max seen, summed
  across streams as ``INGEST_LINKS`` sums them;
- payments: per stream de-duplicated by payment_id (``_dedupe_payments``: the first row by row
  order is kept, a later one with different account, payee, currency, amount or time is
  quarantined, an identical one is dropped and still counts as loaded), then per (account,
  payee, currency) count, total, round payments and first/last paid (``_aggregate_payments``),
  summed across streams as ``INGEST_PAYMENTS`` sums them (so, as in the loader, a payment_id
  repeated in two different files is not de-duplicated);
- what the projection reads: times as ``epochSeconds`` (``ms div 1000``; the contract's times
  are never before 1970), -1 when unknown; ``kyc`` -1 unknown; ``total`` as the projection
  computes it (the exact sum of 1/10 000 units, as a double, divided by 10 000.0).

Not mirrored: an extra column of an accounts file (or a mapping's ``extra``) named ``label`` or
``labelled_at`` becomes that property of the Account node in a load (and so an account's label
or a guard against later labels); here extras are not read at all, as nothing else of them
reaches the projection. The files must be readable at the same path from every executor (local
mode, or a shared file system), as CSV and the pre-flight are read with Python's file API.

The intermediate tables (each stream's normalised rows) are persisted, as the report and the
three tables read them; :meth:`SparkTables.unpersist` releases them. Nothing but the report's
counts is collected to the driver.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial, reduce
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ringscope.ingest.aggregate import OBSERVED
from ringscope.ingest.contract import (
    ACCOUNT_IDENTIFIERS,
    ACCOUNTS,
    AMOUNT_SCALE,
    LABELS,
    PAYMENTS,
    ROUND_UNIT,
    Reason,
    Table,
)
from ringscope.ingest.mapping import Output, load_mapping
from ringscope.ingest.normalise import Context, Mask, normalise
from ringscope.ingest.plan import Stream, _check_header, _plan, _preflight
from ringscope.ingest.read import (
    RaggedCsvError,
    RawBatch,
    _as_strings,
    _encodable,
    _strings,
    _text,
    file_format,
    header,
    read_batches,
)
from ringscope.ingest.report import SourceReport
from ringscope.ingest.stream_loader import READ_ROWS
from ringscope.ingest.writer import _entity_label, _link_kind
from ringscope.kinds import KINDS
from ringscope.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

__all__ = ["SparkTables", "read_tables"]

# What each table's normalised rows carry here (normalise's output columns, less the ones that
# never reach the projection: country, os, carrier, a payee's name, extras). "ms": a timestamp,
# as epoch milliseconds (the unit the loader writes them in, ingest.writer._rows_for).
_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "accounts": (("id", "string"), ("created_at", "ms"), ("kyc_level", "long")),
    "devices": (("id", "string"), ("is_emulator", "boolean")),
    "phones": (("id", "string"), ("is_virtual", "boolean")),
    "payees": (("id", "string"), ("kind", "string")),
    "labels": (("account", "string"), ("label", "string"), ("labelled_at", "ms")),
    "account_devices": (("account", "string"), ("target", "string"), ("seen_at", "ms")),
    "account_phones": (("account", "string"), ("target", "string"), ("seen_at", "ms")),
    "payments": (
        ("payment_id", "string"),
        ("account", "string"),
        ("target", "string"),
        ("amount", "long"),
        ("currency", "string"),
        ("paid_at", "ms"),
    ),
    "account_identifiers": (
        ("kind", "string"),
        ("account", "string"),
        ("target", "string"),
        ("seen_at", "ms"),
    ),
}
_ARROW = {"string": pa.string(), "ms": pa.int64(), "long": pa.int64(), "boolean": pa.bool_()}
_SPARK = {"string": "string", "ms": "long", "long": "long", "boolean": "boolean"}
# The node flag each identifier entity table sets, as the detector's DETECT_EMULATOR_DEVICES,
# DETECT_VIRTUAL_PHONES and DETECT_MERCHANT_PAYEES read it: (property, the value that flags).
_FLAGS: dict[str, tuple[str, Any]] = {
    "devices": ("is_emulator", True),
    "phones": ("is_virtual", True),
    "payees": ("kind", "merchant"),
}
_KIND_OF_LABEL = {k.label: k for k in KINDS}
_SKIPPED = "skipped by mapping"  # a marker row (not a quarantine reason): counted, never loaded
_ROUND_E4 = ROUND_UNIT * 10**AMOUNT_SCALE
_E4 = float(10**AMOUNT_SCALE)

EDGE_COLUMNS = (
    "kind", "account", "ident", "currency", "first", "last", "count", "round_count", "total",
)  # fmt: skip


@dataclass
class SparkTables:
    """The loaded graph as DataFrames (see the module doc for each table's columns)."""

    accounts: DataFrame
    edges: DataFrame
    identifiers: DataFrame
    # Per contract table: rows_read, rows_loaded, rows_quarantined, rows_skipped_by_mapping and
    # one count per quarantine reason (its Reason value) that occurred.
    report: dict[str, dict[str, int]]
    # Per stream (a file, or one output of a mapped file), as the loader's report has them.
    sources: list[SourceReport] = field(default_factory=list)
    cached: list[DataFrame] = field(default_factory=list, repr=False)

    def unpersist(self) -> None:
        """Release the persisted per-stream rows (the tables recompute them when read again)."""
        for df in self.cached:
            df.unpersist()
        self.cached.clear()


# --- in the Python workers: files -> normalised rows ------------------------------------------


def _all_known(ids: pa.Array) -> Mask:
    """The unknown-account check is a join afterwards (see the module doc)."""
    return np.ones(len(ids), dtype=bool)


@dataclass(frozen=True)
class _Normaliser:
    """One stream's batches of raw text -> Arrow batches of its normalised rows (the table's
    ``_COLUMNS``) plus ``_row`` and ``_reason``: null for a good row, else why it was refused
    (or ``_SKIPPED`` for a source row a mapping's ``skip_if_empty`` left out)."""

    table: Table
    output: Output | None
    region: str
    timestamp_format: str | None

    def schema(self) -> str:
        cols = [f"`{name}` {_SPARK[t]}" for name, t in _COLUMNS[self.table.name]]
        return ", ".join([*cols, "_row long", "_reason string"])

    def run(self, raws: Iterable[RawBatch]) -> Iterator[pa.RecordBatch]:
        ctx = Context(self.region, self.timestamp_format, _all_known)
        for raw in raws:
            yield from self._one(raw, ctx)

    def _marked(self, rows: Any, reasons: list[str]) -> pa.RecordBatch:
        n = len(reasons)
        arrays = [pa.nulls(n, _ARROW[t]) for _, t in _COLUMNS[self.table.name]]
        arrays += [pa.array(np.asarray(rows, dtype=np.int64)), pa.array(reasons, pa.string())]
        return pa.RecordBatch.from_arrays(arrays, names=self._names())

    def _names(self) -> list[str]:
        return [name for name, _ in _COLUMNS[self.table.name]] + ["_row", "_reason"]

    def _one(self, raw: RawBatch, ctx: Context) -> Iterator[pa.RecordBatch]:
        if raw.malformed:
            bad = [r for r, _ in raw.malformed]
            yield self._marked(bad, [Reason.MALFORMED_ROW.value] * len(bad))
        batch, rows = raw.batch, raw.rows
        if not batch.num_rows:
            return
        mapped = batch
        if self.output is not None:
            mapped, src_index = self.output.apply(batch)
            rows = rows[src_index]
            skipped = batch.num_rows - mapped.num_rows
            if skipped:
                yield self._marked(np.full(skipped, -1), [_SKIPPED] * skipped)
        if not mapped.num_rows:
            return
        result = normalise(self.table, mapped, ctx)
        if result.refused:
            yield self._marked(
                rows[[r.index for r in result.refused]], [r.reason.value for r in result.refused]
            )
        good = result.good
        if good.num_rows:
            arrays = []
            for name, t in _COLUMNS[self.table.name]:
                col = good.column(name).combine_chunks()
                if t == "ms":
                    col = col.cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64())
                arrays.append(col.cast(_ARROW[t]))
            arrays += [pa.array(rows[result.index]), pa.nulls(good.num_rows, pa.string())]
            yield pa.RecordBatch.from_arrays(arrays, names=self._names())


def _restore(column: pa.Array, original: pa.DataType) -> pa.Array:
    """A column as Spark hands it over (its own types: microsecond timestamps in the session's
    zone, widened unsigned ints, ...) cast back to the file's own Arrow type, so that it becomes
    the same text as when ingest.read reads the file."""
    if column.type == original:
        return column
    try:
        return column.cast(original)
    except (pa.ArrowException, NotImplementedError):
        return column


def _parquet_rows(
    norm: _Normaliser, schema: pa.Schema, batches: Iterator[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    """Columns c0..cN of a Parquet file and ``_row`` (its 0-based row index) -> normalised rows,
    as ingest.read._parquet reads the file."""
    n = len(schema)

    def raws() -> Iterator[RawBatch]:
        for b in batches:
            arrays = [_as_strings(_restore(b.column(i), schema.field(i).type)) for i in range(n)]
            rows = np.asarray(b.column(n).to_numpy(zero_copy_only=False), dtype=np.int64) + 1
            yield RawBatch(pa.RecordBatch.from_arrays(arrays, names=schema.names), rows)

    yield from norm.run(raws())


def _jsonl_rows(
    norm: _Normaliser, columns: list[str], bom: bool, batches: Iterator[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    """Lines of a JSON Lines file (``value``, and ``block``: the start of the file split it was
    read from) -> normalised rows, each line decoded as ingest.read._jsonl decodes it.

    ``_row`` is the split's start plus the line's position in the split: every line takes at
    least one byte, so that orders the lines as in the file, across splits too. ``bom``: the
    file starts with a UTF-8 byte order mark, which Spark's line reader drops and Python's
    keeps (so the loader quarantines that first line as malformed): it is put back."""
    decoder = json.JSONDecoder(parse_float=str, parse_int=str)
    known = set(columns)
    state = {"block": -1, "i": 0}

    def raws() -> Iterator[RawBatch]:
        for b in batches:
            records: list[list[str | None]] = []
            rows: list[int] = []
            malformed: list[tuple[int, Any]] = []
            values = b.column(0).to_pylist()
            blocks = b.column(1).to_pylist()
            for line, block in zip(values, blocks, strict=True):
                if block != state["block"]:
                    state["block"], state["i"] = block, 0
                order = int(block) + state["i"]
                if bom and order == 0 and line is not None:
                    line = "\ufeff" + line
                state["i"] += 1
                if line is None or not line.strip():
                    continue
                try:
                    obj = decoder.decode(line)
                except ValueError:
                    obj = None
                if "\\u" in line and not _encodable(obj):
                    obj = None
                if not isinstance(obj, dict) or not known.issuperset(obj):
                    malformed.append((order, line))
                else:
                    records.append([None if obj.get(c) is None else _text(obj[c]) for c in columns])
                    rows.append(order)
            yield RawBatch(_strings(columns, records), np.array(rows, np.int64), malformed)

    yield from norm.run(raws())


def _csv_rows(
    norm: _Normaliser, path: str, columns: list[str], batches: Iterator[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    """A whole CSV file -> normalised rows, read by ingest.read.read_batches: the fast reader,
    or the exact one when the fast one meets a ragged row (the loader's fallback). The fast one
    is tried first without normalising, so nothing is emitted twice."""
    if not any(b.num_rows for b in batches):
        return
    exact = False
    try:
        for _ in read_batches(Path(path), columns, READ_ROWS, exact=False):
            pass
    except RaggedCsvError:
        exact = True
    yield from norm.run(read_batches(Path(path), columns, READ_ROWS, exact=exact))


def _normalised(
    spark: SparkSession, stream: Stream, columns: list[str], region: str, ts_format: str | None
) -> DataFrame:
    """One stream's rows, read and normalised in Spark's Python workers (see ``_Normaliser``)."""
    from pyspark.sql import functions as F

    norm = _Normaliser(stream.table, stream.output, region, ts_format)
    fmt = file_format(stream.path)
    path = str(stream.path)
    if fmt == "parquet":
        schema = pq.ParquetFile(stream.path).schema_arrow  # the footer only
        df = spark.read.parquet(path)
        df = df.select("*", F.col("_metadata.row_index").alias("_row"))
        df = df.toDF(*[f"c{i}" for i in range(len(schema))], "_row")
        return df.mapInArrow(partial(_parquet_rows, norm, schema), norm.schema())
    if fmt == "jsonl":
        with stream.path.open("rb") as fh:
            bom = fh.read(len(codecs.BOM_UTF8)) == codecs.BOM_UTF8
        df = spark.read.text(path).select(
            "value", F.col("_metadata.file_block_start").alias("block")
        )
        return df.mapInArrow(partial(_jsonl_rows, norm, columns, bom), norm.schema())
    one = spark.range(1, numPartitions=1)
    return one.mapInArrow(partial(_csv_rows, norm, path, columns), norm.schema())


# --- on Spark: the loader's reductions and Neo4j's merges -------------------------------------


def _union(parts: list[DataFrame]) -> DataFrame:
    return reduce(lambda a, b: a.unionByName(b), parts)


def _entities(parts: list[tuple[int, DataFrame]], props: list[str]) -> DataFrame:
    """Entity rows -> one row per id: per stream the last row (``_reduce``), across streams the
    later stream's non-null value of each property (``SET n += row.props``)."""
    from pyspark.sql import functions as F

    per_stream = [
        df.groupBy("id")
        .agg(F.max_by(F.struct(*props), F.col("_row")).alias("v"))
        .select("id", *[F.col(f"v.{p}").alias(p) for p in props], F.lit(i).alias("_stream"))
        for i, df in parts
    ]
    if len(per_stream) == 1:
        return per_stream[0].drop("_stream")
    return (
        _union(per_stream)
        .groupBy("id")
        .agg(
            *[
                F.max_by(F.col(p), F.when(F.col(p).isNotNull(), F.col("_stream"))).alias(p)
                for p in props
            ]
        )
    )


def _labels(parts: list[DataFrame]) -> DataFrame | None:
    """Label rows -> account, label, labelled_at: per stream the last row by (labelled_at, nulls
    first; fraud over legit; row), then folded across streams by INGEST_LABELS' rule."""
    from pyspark.sql import functions as F

    state: DataFrame | None = None
    for df in parts:
        order = F.struct(
            F.coalesce(F.col("labelled_at"), F.lit(-1)),
            (F.col("label") == F.lit("fraud")).cast("int"),
            F.col("_row"),
        )
        rows = (
            df.groupBy("account")
            .agg(F.max_by(F.struct("label", "labelled_at"), order).alias("v"))
            .select("account", F.col("v.label").alias("label"), F.col("v.labelled_at").alias("at"))
        )
        if state is None:
            state = rows
            continue
        old, new = state.alias("old"), rows.alias("new")
        applies = F.col("new.label").isNotNull() & (
            F.col("old.label").isNull()
            | F.col("old.at").isNull()
            | F.coalesce(F.col("new.at") > F.col("old.at"), F.lit(False))
            | F.coalesce(
                (F.col("new.at") == F.col("old.at")) & (F.col("new.label") == F.lit("fraud")),
                F.lit(False),
            )
        )
        state = old.join(new, F.col("old.account") == F.col("new.account"), "full_outer").select(
            F.coalesce(F.col("old.account"), F.col("new.account")).alias("account"),
            F.when(applies, F.col("new.label")).otherwise(F.col("old.label")).alias("label"),
            F.when(applies, F.col("new.at")).otherwise(F.col("old.at")).alias("at"),
        )
    return state.withColumnRenamed("at", "labelled_at") if state is not None else None


def _seconds(column: str) -> Column:
    """Epoch milliseconds -> Neo4j's ``epochSeconds`` (non-negative times), -1 when unknown."""
    from pyspark.sql import functions as F

    return F.coalesce(F.expr(f"`{column}` div 1000"), F.lit(-1).cast("long"))


def _dedupe(df: DataFrame) -> tuple[DataFrame, DataFrame]:
    """One payments stream (known accounts) -> its kept payments and its refused duplicates
    (``_dedupe_payments``: the first row per payment_id wins; a later one that differs in any
    of these columns is refused, an identical one dropped)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    w = Window.partitionBy("payment_id").orderBy("_row")
    cols = ["account", "target", "currency", "amount", "paid_at"]
    x = df.select(
        "*",
        F.row_number().over(w).alias("_n"),
        *[F.first(c).over(w).alias(f"_first_{c}") for c in cols],
    )
    same = reduce(lambda a, b: a & b, [F.col(c).eqNullSafe(F.col(f"_first_{c}")) for c in cols])
    kept = x.where(F.col("_n") == 1).select(*cols)
    refused = x.where((F.col("_n") > 1) & ~same).select("_row")
    return kept, refused


@dataclass
class _Split:
    """A link stream's good rows split by the known accounts."""

    stream: int
    table: Table
    known: DataFrame
    unknown: DataFrame


def read_tables(
    spark: SparkSession,
    input_dir: Path,
    settings: Settings,
    *,
    mapping: Path | None = None,
    preflight: bool = True,
) -> SparkTables:
    """The graph a load of ``input_dir`` (through ``mapping``, as ``ringscope ingest
    --mapping``) into an empty Neo4j leaves, as DataFrames; see the module doc.

    ``preflight``: check every file whole first, as the loader does (on the driver: it reads
    each file once); off, only the headers are checked. Raises the loader's IngestError when
    the input cannot be loaded at all. Computes the report (one Spark job over the persisted
    per-stream rows); the three tables are lazy.
    """
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    directory = Path(input_dir)
    spec = load_mapping(mapping) if mapping is not None else None
    streams = _plan(directory, spec)
    if preflight:
        _preflight(streams, spec)
    else:
        for s in streams:
            _check_header(s, header(s.path), spec)
    region = (spec.default_region if spec and spec.default_region else None) or str(
        settings.default_region
    )
    ts_format = spec.timestamp_format if spec else None

    cached: list[DataFrame] = []
    rows: list[DataFrame] = []
    for s in streams:
        columns = list(s.checked.columns) if s.checked is not None else header(s.path)
        df = _normalised(spark, s, columns, region, ts_format)
        df = df.persist(StorageLevel.MEMORY_AND_DISK)
        cached.append(df)
        rows.append(df)

    def good(i: int) -> DataFrame:
        return rows[i].where(F.col("_reason").isNull()).drop("_reason")

    def of(table: str) -> list[int]:
        return [i for i, s in enumerate(streams) if s.table.name == table]

    # Accounts first: the other streams' account ids are checked against them.
    if of(ACCOUNTS.name):
        nodes = _entities([(i, good(i)) for i in of(ACCOUNTS.name)], ["created_at", "kyc_level"])
    else:  # a mapping without accounts: in an empty graph, every account is unknown
        nodes = spark.createDataFrame([], "id string, created_at long, kyc_level long")
    account_ids = nodes.select(F.col("id").alias("account"))

    splits: list[_Split] = []
    for i, s in enumerate(streams):
        if s.table.entity:
            continue
        g = good(i)
        splits.append(
            _Split(
                i,
                s.table,
                g.join(account_ids, "account", "left_semi"),
                g.join(account_ids, "account", "left_anti"),
            )
        )

    # Relationships: observed links, then payments.
    links = []
    for sp in splits:
        if sp.table.name not in OBSERVED:
            continue
        if sp.table is ACCOUNT_IDENTIFIERS:
            kind = F.col("kind")
        else:
            kind = F.lit(_link_kind(sp.table, None).name)
        links.append(sp.known.select(kind.alias("kind"), "account", "target", "seen_at"))
    duplicates: list[tuple[int, DataFrame]] = []
    kept: list[DataFrame] = []
    for sp in splits:
        if sp.table is PAYMENTS:
            k, refused = _dedupe(sp.known)
            kept.append(k)
            duplicates.append((sp.stream, refused))
    edges = _edges(spark, links, kept)

    # Identifier nodes: the entity tables' rows (with their flags), and every link's target.
    idents = [edges.select("kind", "ident", F.lit(False).alias("flag"))]
    for table, (prop, value) in _FLAGS.items():
        parts = [(i, good(i)) for i in of(table)]
        if not parts:
            continue
        name = _KIND_OF_LABEL[_entity_label(streams[parts[0][0]].table)].name
        merged = _entities(parts, [prop])
        flag = F.coalesce(F.col(prop) == F.lit(value), F.lit(False)).alias("flag")
        idents.append(merged.select(F.lit(name).alias("kind"), F.col("id").alias("ident"), flag))
    identifiers = _union(idents).groupBy("kind", "ident").agg(F.max("flag").alias("flag"))

    labels = _labels([sp.known for sp in splits if sp.table is LABELS])
    accounts = nodes
    if labels is not None:
        accounts = accounts.join(labels.withColumnRenamed("account", "id"), "id", "left")
    label = F.lit(-1).cast("long")
    if labels is not None:
        label = (
            F.when(F.col("label") == F.lit("fraud"), 1)
            .when(F.col("label") == F.lit("legit"), 0)
            .otherwise(-1)
            .cast("long")
        )
    accounts = accounts.select(
        F.col("id").alias("account"),
        _seconds("created_at").alias("created"),
        F.coalesce(F.col("kyc_level"), F.lit(-1)).cast("long").alias("kyc"),
        label.alias("label"),
    )

    sources = _report(spark, streams, rows, splits, duplicates)
    report: dict[str, dict[str, int]] = {}
    for src in sources:
        t = report.setdefault(
            src.table,
            dict.fromkeys(
                ("rows_read", "rows_loaded", "rows_quarantined", "rows_skipped_by_mapping"), 0
            ),
        )
        t["rows_read"] += src.rows_read
        t["rows_loaded"] += src.rows_loaded
        t["rows_quarantined"] += src.rows_quarantined
        t["rows_skipped_by_mapping"] += src.rows_skipped_by_mapping
        for reason, n in src.reasons.items():
            t[reason] = t.get(reason, 0) + n
    return SparkTables(accounts, edges, identifiers, report, sources, cached)


def _edges(spark: SparkSession, links: list[DataFrame], kept: list[DataFrame]) -> DataFrame:
    """Observed links and kept payments -> one row per relationship (``EDGE_COLUMNS``)."""
    from pyspark.sql import functions as F

    parts = []
    if links:
        parts.append(
            _union(links)
            .groupBy("kind", "account", "target")
            .agg(
                F.count(F.lit(1)).alias("count"),
                F.min("seen_at").alias("f"),
                F.max("seen_at").alias("l"),
            )
            .select(
                "kind",
                "account",
                F.col("target").alias("ident"),
                F.lit("").alias("currency"),
                _seconds("f").alias("first"),
                _seconds("l").alias("last"),
                "count",
                F.lit(0).cast("long").alias("round_count"),
                F.lit(0.0).cast("double").alias("total"),
            )
        )
    if kept:
        amount = F.col("amount")
        is_round = (amount > 0) & (amount % F.lit(_ROUND_E4) == 0)
        parts.append(
            _union(kept)
            .groupBy("account", "target", "currency")
            .agg(
                F.count(F.lit(1)).alias("count"),
                F.sum(amount).alias("total_e4"),
                F.sum(is_round.cast("long")).alias("round_count"),
                F.min("paid_at").alias("f"),
                F.max("paid_at").alias("l"),
            )
            .select(
                F.lit(_link_kind(PAYMENTS, None).name).alias("kind"),
                "account",
                F.col("target").alias("ident"),
                "currency",
                _seconds("f").alias("first"),
                _seconds("l").alias("last"),
                "count",
                F.col("round_count").cast("long").alias("round_count"),
                (F.col("total_e4").cast("double") / F.lit(_E4)).alias("total"),
            )
        )
    if not parts:
        schema = (
            "kind string, account string, ident string, currency string, first long, "
            "last long, count long, round_count long, total double"
        )
        return spark.createDataFrame([], schema)
    return _union(parts).select(*EDGE_COLUMNS)


def _report(
    spark: SparkSession,
    streams: list[Stream],
    rows: list[DataFrame],
    splits: list[_Split],
    duplicates: list[tuple[int, DataFrame]],
) -> list[SourceReport]:
    """Each stream's counts as the loader reports them, from one Spark job: the rows normalise
    refused (by reason), the good rows, and the good rows quarantined later (unknown accounts,
    duplicate payments)."""
    from pyspark.sql import functions as F

    parts = [df.select(F.lit(i).alias("s"), F.col("_reason").alias("r")) for i, df in
             enumerate(rows)]  # fmt: skip
    parts += [
        sp.unknown.select(F.lit(sp.stream).alias("s"),
                          F.lit(Reason.UNKNOWN_ACCOUNT.value).alias("r"))
        for sp in splits
    ]  # fmt: skip
    parts += [
        df.select(F.lit(i).alias("s"), F.lit(Reason.DUPLICATE_PAYMENT.value).alias("r"))
        for i, df in duplicates
    ]
    counted = _union(parts).groupBy("s", "r").count().collect()
    sources = [
        SourceReport(s.name, s.table.name, s.output.name if s.output else None) for s in streams
    ]
    later = {Reason.UNKNOWN_ACCOUNT.value, Reason.DUPLICATE_PAYMENT.value}
    for rec in counted:
        src, reason, n = sources[int(rec["s"])], rec["r"], int(rec["count"])
        if reason == _SKIPPED:
            src.rows_skipped_by_mapping += n
            continue
        if reason is None:
            src.rows_read += n
            continue
        src.reasons[reason] = src.reasons.get(reason, 0) + n
        src.rows_quarantined += n
        if reason not in later:
            src.rows_read += n
    for src in sources:
        src.rows_loaded = src.rows_read - src.rows_quarantined
    return sources
