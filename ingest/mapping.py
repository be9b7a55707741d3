"""Declarative mappings: a foreign file's columns onto the contract's tables (YAML or TOML).

A mapping lists source files (relative to the data directory). Each source feeds one or more
*outputs*; an output is one contract table and says, for every contract column, where its
value comes from::

    version: 1
    default_region: US              # phone region for numbers without a country code
    timestamp_format: null          # strptime format; null = ISO-8601
    sources:
      - file: registrations.csv
        outputs:
          - table: accounts
            columns:
              account_id: {hash: [email, signup_time], prefix: "reg-"}
              created_at: signup_time          # a plain string is a source column
              country: {const: US}
            extra: {state: billing_state}      # kept as node properties (entity tables)
          - table: labels
            skip_if_empty: [is_fraud]          # rows without a label produce no labels row
            columns:
              account_id: {hash: [email, signup_time], prefix: "reg-"}
              label: {column: is_fraud, map: {"1": fraud, "0": legit}}
              labelled_at: signup_time

Column sources: ``NAME`` / ``{column: NAME, map: {...}}`` (a value not in ``map`` passes through
unchanged, so the contract check still sees it), ``{const: VALUE}``, ``{template: "x-{A}-{B}"}``
(null when any referenced column is empty) and ``{hash: [A, B], prefix: P}`` (P + 16 hex digits
of SHA-1 over the values: a stable synthetic key).
"""

from __future__ import annotations

import hashlib
import string
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import yaml

from ringscope.ingest.contract import BY_NAME, IngestFormatError, MappingError, Table


@dataclass(frozen=True)
class Column:
    """Where one output column's value comes from; exactly one of the fields is set."""

    column: str | None = None
    const: str | None = None
    template: str | None = None
    hash: tuple[str, ...] | None = None
    prefix: str = ""
    map: tuple[tuple[str, str], ...] = ()

    def sources(self) -> list[str]:
        if self.column is not None:
            return [self.column]
        if self.template is not None:
            return [f for _, f, _, _ in string.Formatter().parse(self.template) if f]
        return list(self.hash or ())

    def evaluate(self, batch: pa.RecordBatch) -> pa.Array:
        n = batch.num_rows
        if self.const is not None:
            return pa.array([self.const] * n, pa.string())
        if self.column is not None:
            values = batch.column(self.column)
            if self.map:
                keys = pa.array([k for k, _ in self.map], pa.string())
                targets = pa.array([v for _, v in self.map], pa.string())
                idx = pc.index_in(pc.utf8_trim_whitespace(values), value_set=keys)
                mapped = pc.take(targets, idx)
                values = pc.if_else(pc.is_null(idx), values, mapped)
            return values
        if self.template is not None:
            pieces: list[Any] = []
            for literal, name, _, _ in string.Formatter().parse(self.template):
                if literal:
                    pieces.append(literal)
                if name:
                    col = batch.column(name)
                    empty = pc.equal(pc.utf8_trim_whitespace(col), "")
                    pieces.append(pc.if_else(empty, pa.scalar(None, pa.string()), col))
            if not any(isinstance(p, (pa.Array, pa.ChunkedArray)) for p in pieces):
                return pa.array(["".join(pieces)] * n, pa.string())
            return pc.binary_join_element_wise(*pieces, "")
        cols = [batch.column(c).to_pylist() for c in self.hash or ()]
        out = []
        for values in zip(*cols, strict=True):
            text = "\x1f".join("" if v is None else v.strip() for v in values)
            out.append(self.prefix + hashlib.sha1(text.encode()).hexdigest()[:16])  # noqa: S324
        return pa.array(out, pa.string())


@dataclass(frozen=True)
class Output:
    table: Table
    columns: tuple[tuple[str, Column], ...]
    extra: tuple[tuple[str, Column], ...]
    skip_if_empty: tuple[str, ...]
    name: str

    def sources(self) -> set[str]:
        names = set(self.skip_if_empty)
        for _, col in (*self.columns, *self.extra):
            names.update(col.sources())
        return names

    def apply(self, batch: pa.RecordBatch) -> tuple[pa.RecordBatch, np.ndarray[Any, Any]]:
        """The contract-shaped batch and the indices of the source rows it came from."""
        keep = np.ones(batch.num_rows, dtype=bool)
        for name in self.skip_if_empty:
            col = pc.utf8_trim_whitespace(batch.column(name))
            empty = pc.fill_null(pc.equal(col, ""), True)
            keep &= ~np.asarray(empty.to_numpy(zero_copy_only=False), dtype=bool)
        idx = np.flatnonzero(keep)
        src = batch if keep.all() else batch.take(pa.array(idx))
        names, arrays = [], []
        for name, col in (*self.columns, *self.extra):
            names.append(name)
            arrays.append(col.evaluate(src))
        return pa.RecordBatch.from_arrays(arrays, names=names), idx


@dataclass(frozen=True)
class Source:
    file: str
    outputs: tuple[Output, ...]


@dataclass(frozen=True)
class Mapping:
    path: Path
    digest: str
    default_region: str | None
    timestamp_format: str | None
    sources: tuple[Source, ...]

    def check_columns(self, file: Path, header: list[str], output: Output) -> None:
        """Fail fast when the mapping names a column the source file does not have."""
        missing = sorted(output.sources() - set(header))
        if missing:
            raise IngestFormatError(
                f"{file}: column {missing[0]!r} (named by mapping {self.path.name}, output "
                f"{output.name}) is not in the file; its columns are {', '.join(header)}."
            )


def _column(spec: Any, where: str) -> Column:
    if isinstance(spec, str):
        return Column(column=spec)
    if not isinstance(spec, dict):
        raise MappingError(f"{where}: expected a column name or a mapping, got {spec!r}.")
    kinds = [k for k in ("column", "const", "template", "hash") if k in spec]
    if len(kinds) != 1:
        raise MappingError(f"{where}: give exactly one of column, const, template, hash.")
    unknown = set(spec) - {"column", "const", "template", "hash", "prefix", "map"}
    if unknown:
        raise MappingError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}.")
    mapping = spec.get("map") or {}
    if not isinstance(mapping, dict):
        raise MappingError(f"{where}: map must be a mapping of value -> value.")
    hashed = spec.get("hash")
    if hashed is not None and not (isinstance(hashed, list) and hashed):
        raise MappingError(f"{where}: hash takes a non-empty list of columns.")
    return Column(
        column=spec.get("column"),
        const=None if spec.get("const") is None else str(spec["const"]),
        template=spec.get("template"),
        hash=tuple(str(h) for h in hashed) if hashed else None,
        prefix=str(spec.get("prefix", "")),
        map=tuple((str(k), str(v)) for k, v in mapping.items()),
    )


def load_mapping(path: Path) -> Mapping:
    """Parse and validate a mapping file (``.yaml``/``.yml`` or ``.toml``)."""
    try:
        raw_text = path.read_bytes()
        doc = (
            tomllib.loads(raw_text.decode())
            if path.suffix.lower() == ".toml"
            else yaml.safe_load(raw_text)
        )
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise MappingError(f"Mapping {path}: cannot read it: {exc}") from None
    if not isinstance(doc, dict) or doc.get("version") != 1:
        raise MappingError(f"Mapping {path}: expected a document with `version: 1`.")
    sources = []
    for s_no, src in enumerate(doc.get("sources") or [], start=1):
        if not isinstance(src, dict) or not isinstance(src.get("file"), str):
            raise MappingError(f"Mapping {path}: source {s_no} needs a `file`.")
        outputs = []
        for o_no, out in enumerate(src.get("outputs") or [], start=1):
            where = f"Mapping {path}, {src['file']} output {o_no}"
            table = BY_NAME.get(str(out.get("table"))) if isinstance(out, dict) else None
            if table is None:
                raise MappingError(f"{where}: `table` must be one of {', '.join(BY_NAME)}.")
            cols = out.get("columns") or {}
            unknown = sorted(set(cols) - set(table.columns))
            if unknown:
                raise MappingError(f"{where}: {unknown[0]!r} is not a {table.name} column.")
            missing = [c for c in table.required if c not in cols]
            if missing:
                raise MappingError(f"{where}: required column {missing[0]!r} is not mapped.")
            extra = out.get("extra") or {}
            if extra and not table.entity:
                raise MappingError(f"{where}: `extra` is only for entity tables.")
            outputs.append(
                Output(
                    table=table,
                    columns=tuple((c, _column(v, f"{where}, {c}")) for c, v in cols.items()),
                    extra=tuple((c, _column(v, f"{where}, {c}")) for c, v in extra.items()),
                    skip_if_empty=tuple(out.get("skip_if_empty") or ()),
                    name=str(out.get("name") or f"{table.name}#{o_no}"),
                )
            )
        if not outputs:
            raise MappingError(f"Mapping {path}: source {src['file']} has no outputs.")
        sources.append(Source(src["file"], tuple(outputs)))
    if not sources:
        raise MappingError(f"Mapping {path}: no sources.")
    return Mapping(
        path=path,
        digest=hashlib.sha256(raw_text).hexdigest(),
        default_region=doc.get("default_region"),
        timestamp_format=doc.get("timestamp_format"),
        sources=tuple(sources),
    )
