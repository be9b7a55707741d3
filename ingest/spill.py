"""Hash-partitioned spill files: how the loader aggregates a file of any size in bounded memory.

The loader cannot hold a whole file's rows until it has seen them all (a 1M-account data set
has 15M identifier observations), yet repeated pairs anywhere in the file must become one row.
So each batch of good rows is split by a stable hash of its aggregation key into buckets, and
buffered rows are flushed to Arrow IPC files; afterwards each bucket is read back and reduced on
its own. Every key lands in exactly one bucket, so per-bucket aggregation is exact, and peak
memory is one bucket plus the flush buffer, whatever the input size.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc

U64 = np.dtype(np.uint64)
_PRIME = np.uint64(0x100000001B3)  # FNV-64 prime: the polynomial base
_powers = np.ones(1, dtype=U64)


def _power_table(n: int) -> np.ndarray[Any, np.dtype[np.uint64]]:
    global _powers
    if len(_powers) < n:
        out = np.empty(max(n, 2 * len(_powers)), dtype=U64)
        out[0] = 1
        with np.errstate(over="ignore"):
            for i in range(1, len(out)):
                out[i] = out[i - 1] * _PRIME
        _powers = out
    return _powers


def _mix(h: np.ndarray[Any, np.dtype[np.uint64]]) -> np.ndarray[Any, np.dtype[np.uint64]]:
    """splitmix64's finaliser: every output bit depends on every input bit."""
    with np.errstate(over="ignore"):
        h = h ^ (h >> np.uint64(30))
        h = h * np.uint64(0xBF58476D1CE4E5B9)
        h = h ^ (h >> np.uint64(27))
        h = h * np.uint64(0x94D049BB133111EB)
        return h ^ (h >> np.uint64(31))


def stable_hash(values: pa.Array | pa.ChunkedArray) -> np.ndarray[Any, np.dtype[np.uint64]]:
    """A 64-bit hash of each string, the same in every process and version (Python's ``hash``
    is salted per process, and pyarrow has no hash kernel). Vectorised over the UTF-8 bytes:
    a polynomial in each string's bytes, then mixed. Nulls hash like the empty string."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks() if values.num_chunks else pa.array([], pa.string())
    if not pa.types.is_large_string(values.type):
        values = pc.cast(values, pa.large_string())
    n = len(values)
    if n == 0:
        return np.zeros(0, dtype=U64)
    values = pc.fill_null(values, "")
    at = values.offset
    offsets = np.frombuffer(values.buffers()[1], dtype=np.int64)[at : at + n + 1]
    lens = np.diff(offsets)
    h = np.zeros(n, dtype=U64)
    nonempty = np.flatnonzero(lens > 0)
    if len(nonempty):
        lo, hi = int(offsets[0]), int(offsets[-1])
        data = np.frombuffer(values.buffers()[2], dtype=np.uint8)[lo:hi].astype(U64)
        starts = offsets[:-1] - lo
        pos = np.arange(hi - lo, dtype=np.int64) - np.repeat(starts, lens)
        with np.errstate(over="ignore"):
            terms = (data + np.uint64(1)) * _power_table(int(lens.max()))[pos]
            h[nonempty] = np.add.reduceat(terms, starts[nonempty])
    with np.errstate(over="ignore"):
        return _mix(h ^ (lens.astype(U64) * np.uint64(0x9E3779B97F4A7C15)))


def bucket_of(
    key: pa.Array | pa.ChunkedArray, partitions: int,
    cls: pa.Array | pa.ChunkedArray | None = None, classes: int = 1,
) -> np.ndarray[Any, np.dtype[np.int64]]:  # fmt: skip
    """Bucket ``partition * classes + class``: the partition from ``key`` (the aggregation key's
    account, or id), the class from ``cls`` (a relationship's other end; see the loader's
    writer schedule)."""
    b = (stable_hash(key) % np.uint64(partitions)).astype(np.int64) * classes
    if cls is not None and classes > 1:
        b += ((stable_hash(cls) >> np.uint64(32)) % np.uint64(classes)).astype(np.int64)
    return b


class Spill:
    """Rows split into ``buckets``, buffered in memory up to ``flush_rows`` rows, then appended
    to one Arrow IPC stream per bucket under ``directory`` (removed on close).

    A bucket's stream stays open across flushes, so the files on disk are one per bucket however
    many flushes a big input takes (a file per bucket and flush made tens of thousands of small
    files for inputs of hundreds of millions of rows). The open files are one per non-empty
    bucket: the loader caps buckets (``MAX_SPILL_BUCKETS``). A flush whose schema cannot be cast
    to its stream's (a column that changed type) starts a new stream file for that bucket.
    """

    def __init__(self, directory: Path, buckets: int, flush_rows: int) -> None:
        self.directory = directory
        self.buckets = buckets
        self.flush_rows = flush_rows
        self._buffer: list[list[pa.Table]] = [[] for _ in range(buckets)]
        self._buffered = 0
        self._files: list[list[Path]] = [[] for _ in range(buckets)]
        self._open: dict[int, tuple[pa.NativeFile, ipc.RecordBatchStreamWriter, pa.Schema]] = {}
        directory.mkdir(parents=True, exist_ok=True)

    def add(self, table: pa.Table, bucket: np.ndarray[Any, np.dtype[np.int64]]) -> None:
        if table.num_rows == 0:
            return
        order = np.argsort(bucket, kind="stable")
        sorted_buckets = bucket[order]
        table = table.take(pa.array(order))
        bounds = np.searchsorted(sorted_buckets, np.arange(self.buckets + 1))
        for b in np.flatnonzero(np.diff(bounds)):
            lo, hi = int(bounds[b]), int(bounds[b + 1])
            self._buffer[b].append(table.slice(lo, hi - lo))
        self._buffered += table.num_rows
        if self._buffered >= self.flush_rows:
            self.flush()

    def flush(self) -> None:
        for b, parts in enumerate(self._buffer):
            if parts:
                self._append(b, pa.concat_tables(parts, promote_options="permissive"))
                self._buffer[b] = []
        self._buffered = 0

    def _append(self, bucket: int, table: pa.Table) -> None:
        held = self._open.get(bucket)
        if held is not None and not table.schema.equals(held[2]):
            try:
                table = table.cast(held[2])
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):
                self._finish(bucket)
                held = None
        if held is None:
            path = self.directory / f"{bucket:05d}.{len(self._files[bucket]):03d}.arrows"
            sink = pa.OSFile(str(path), "wb")
            held = (sink, ipc.new_stream(sink, table.schema), table.schema)
            self._open[bucket] = held
            self._files[bucket].append(path)
        held[1].write_table(table)

    def _finish(self, bucket: int) -> None:
        held = self._open.pop(bucket, None)
        if held is not None:
            held[1].close()
            held[0].close()

    def files(self) -> int:
        """Spill files on disk now (tests, diagnostics)."""
        return sum(len(f) for f in self._files)

    def read(self, bucket: int) -> pa.Table | None:
        """All rows of one bucket (None when it has none); its stream is finished first."""
        self._finish(bucket)
        parts = []
        for path in self._files[bucket]:
            with pa.OSFile(str(path), "rb") as source:
                parts.append(ipc.open_stream(source).read_all())
        parts.extend(self._buffer[bucket])
        if not parts:
            return None
        return pa.concat_tables(parts, promote_options="permissive").combine_chunks()

    def drop(self, bucket: int) -> None:
        """Free a bucket that has been reduced."""
        self._finish(bucket)
        self._buffer[bucket] = []
        for path in self._files[bucket]:
            path.unlink(missing_ok=True)
        self._files[bucket] = []

    def reset(self) -> None:
        """Forget every row (the loader starts a file again on its exact reader)."""
        for b in range(self.buckets):
            self.drop(b)
        self._buffered = 0

    def close(self) -> None:
        for b in list(self._open):
            self._finish(b)
        self._buffer = [[] for _ in range(self.buckets)]
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> Spill:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


__all__ = ["Spill", "bucket_of", "stable_hash"]
