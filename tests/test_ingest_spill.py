"""The loader's bounded-memory machinery: stable hashing, spill buckets and the writer schedule.

These need no Neo4j; the loads through them are covered against Neo4j in test_ingest_*.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa

from ringscope.ingest.layout import Layout, _schedule
from ringscope.ingest.spill import Spill, bucket_of, stable_hash

REPO = Path(__file__).resolve().parents[1]


def test_stable_hash_is_fixed_across_processes_and_chunking() -> None:
    """Batch ids depend on which bucket a row lands in, so a resumed load in a new process must
    bucket identically: the hash is pinned here, and must not change without a LEDGER_LAYOUT
    bump."""
    values = ["", "a", "A0000001", "héllo"]
    expected = [0, 17360999193197444373, 1320867894603965503, 4373660859831498454]
    assert stable_hash(pa.array(values)).tolist() == expected
    chunked = pa.chunked_array([pa.array(values[:1]), pa.array(values[1:])])
    assert stable_hash(chunked).tolist() == expected
    assert stable_hash(pa.array(["x", *values]).slice(1)).tolist() == expected
    code = "import pyarrow as pa; from ringscope.ingest.spill import stable_hash; " \
           f"print(stable_hash(pa.array({values!r})).tolist())"  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         check=True, env={"PYTHONHASHSEED": "123", "PATH": ""})  # fmt: skip
    assert out.stdout.strip() == str(expected)


def test_buckets_split_by_key_and_class() -> None:
    key = pa.array([f"a{i % 50}" for i in range(1000)])
    cls = pa.array([f"t{i % 7}" for i in range(1000)])
    b = bucket_of(key, 5, cls, 4)
    assert b.min() >= 0 and b.max() < 20
    for k in range(50):  # one key -> one partition
        assert len(set((b[np.asarray(key) == f"a{k}"] // 4).tolist())) == 1
    for t in range(7):  # one target -> one class
        assert len(set((b[np.asarray(cls) == f"t{t}"] % 4).tolist())) == 1


def test_spill_returns_every_row_once_across_flushes(tmp_path: Path) -> None:
    spill = Spill(tmp_path / "s", 6, flush_rows=25)
    seen: list[int] = []
    for start in range(0, 200, 17):
        ids = np.arange(start, min(start + 17, 200))
        t = pa.table({"id": ids, "text": [f"v{i}" for i in ids]})
        spill.add(t, (ids % 6).astype(np.int64))
    # Several flushes happened, each appended to its bucket's one open stream: one file each.
    assert spill.files() == 6 and len(list((tmp_path / "s").iterdir())) == 6
    for b in range(6):
        t = spill.read(b)
        assert t is not None
        ids = t.column("id").to_pylist()
        assert all(i % 6 == b for i in ids)
        assert t.column("text").to_pylist() == [f"v{i}" for i in ids]
        seen += ids
        spill.drop(b)
        assert spill.read(b) is None
    assert sorted(seen) == list(range(200))
    spill.close()
    assert not (tmp_path / "s").exists()


def test_spill_takes_a_column_whose_type_changes_between_flushes(tmp_path: Path) -> None:
    """A batch read with an all-null column has type null: a flush of strings after it cannot
    be cast into that stream, so the bucket gets a second stream file; a later null flush is cast
    into the string stream. Every row comes back, as strings."""
    spill = Spill(tmp_path / "s", 1, flush_rows=2)
    zero = np.zeros(2, dtype=np.int64)
    spill.add(pa.table({"id": [1, 2], "note": pa.array([None, None], pa.null())}), zero)
    assert spill.files() == 1
    spill.add(pa.table({"id": [3, 4], "note": ["a", "b"]}), zero)
    assert spill.files() == 2
    spill.add(pa.table({"id": [5, 6], "note": pa.array([None, None], pa.null())}), zero)
    spill.add(pa.table({"id": [7], "note": ["c"]}), zero[:1])
    assert spill.files() == 2
    t = spill.read(0)  # the last row is still buffered
    assert t is not None and t.schema.field("note").type == pa.string()
    assert sorted(t.column("id").to_pylist()) == list(range(1, 8))
    assert sorted(v for v in t.column("note").to_pylist() if v) == ["a", "b", "c"]
    spill.close()


def test_writer_schedule_covers_each_bucket_once_without_shared_nodes() -> None:
    for partitions, classes, writers in [(5, 4, 2), (7, 4, 4), (3, 4, 3), (6, 1, 2), (1, 4, 1)]:
        layout = Layout(10, partitions, classes)
        plan = _schedule(layout, writers)
        done = [b for round_ in plan for todo in round_ for b in todo]
        assert sorted(done) == list(range(layout.buckets)), (partitions, classes, writers)
        for round_ in plan:
            owners = [
                ({b // classes for b in todo}, {b % classes for b in todo}) for todo in round_
            ]
            for i in range(len(owners)):
                for j in range(i + 1, len(owners)):
                    assert not owners[i][0] & owners[j][0]  # no shared account partition
                    if classes > 1:
                        assert not owners[i][1] & owners[j][1]  # no shared target class
