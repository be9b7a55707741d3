"""How a file's rows are bucketed and sliced into batches, and which writer writes which bucket
when: the layout is part of a file's ledger entry, so a resumed load slices the same batches."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PARTITION_BYTES = 8 * 2**20  # Parquet bytes per partition (CSV and JSON Lines: 6x this)
# At most this many buckets per file: each non-empty bucket holds an open spill stream, and two
# files' spills are open at once (one read while the other is written). Past 64 partitions of a
# linked table (512 MB of Parquet), buckets grow with the file instead.
MAX_SPILL_BUCKETS = 256
TARGET_CLASSES = 4  # relationship-target classes (see _schedule); supports up to 4 writers well
BATCH_STRIDE = 1_000_000  # batch number = bucket * BATCH_STRIDE + batch within the bucket


@dataclass(frozen=True)
class Layout:
    """How a file's rows are bucketed and sliced. Recorded with the file's ledger entry the first
    time it is loaded (``IngestFile``), and read back on a re-run, so a resumed load slices
    exactly the same batches."""

    batch_size: int
    partitions: int
    classes: int

    @property
    def buckets(self) -> int:
        return self.partitions * self.classes


def _partitions(path: Path, classes: int) -> int:
    """Enough partitions that one bucket's rows fit in a few hundred MB, from the file's size,
    within ``MAX_SPILL_BUCKETS`` buckets of ``classes`` each."""
    per = PARTITION_BYTES if path.suffix == ".parquet" else PARTITION_BYTES * 6
    return max(1, min(-(-path.stat().st_size // per), MAX_SPILL_BUCKETS // classes))


def _schedule(layout: Layout, writers: int) -> list[list[list[int]]]:
    """Rounds of per-writer bucket lists such that, within a round, no two writers touch the same
    node: writer ``w`` owns the partitions (accounts, or entity ids) ``p % writers == w`` and, in
    round ``r``, the classes (relationship targets) ``c % writers == (w + r) % writers``. This is
    the "mix and batch" schedule: concurrent batches never lock the same supernode."""
    w_n = max(1, writers)
    rounds = w_n if layout.classes > 1 else 1
    plan: list[list[list[int]]] = []
    for r in range(rounds):
        plan.append([
            [p * layout.classes + c for p in range(layout.partitions) if p % w_n == w
             for c in range(layout.classes) if layout.classes == 1 or c % w_n == (w + r) % w_n]
            for w in range(w_n)
        ])  # fmt: skip
    return plan
