"""The Spark platform layer (``ringscope.spark.session``, ``jars``, ``components``): the session's
settings, the GraphX helper's build and cache, and GraphX's connected components against scipy's.

No ``importorskip``: ``make test`` installs the ``spark`` extra, so these run in CI; without
pyspark the fixture fails with the install hint rather than skipping quietly. One local[2]
session serves the module.
"""

from __future__ import annotations

import shutil
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components as scipy_components

from ringscope.errors import RingScopeError
from ringscope.settings import Settings
from ringscope.spark import jars
from ringscope.spark.components import connected_components
from ringscope.spark.session import INSTALL_HINT, SparkUnavailableError, spark_session

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@pytest.fixture(scope="module")
def spark() -> Iterator[SparkSession]:
    # Small, on a shared 2-core machine; Pregel checkpoints every 10 supersteps here, so that
    # the chain below crosses several checkpoints.
    settings = Settings(
        spark_master="local[2]",
        spark_driver_memory="1g",
        spark_shuffle_partitions=4,
        spark_checkpoint_interval=10,
    )
    session = spark_session(settings)
    yield session
    session.stop()


def expected(pairs: np.ndarray) -> dict[int, int]:
    """scipy's partition of the vertices of ``pairs``, each labelled with its smallest id."""
    ids, inverse = np.unique(pairs, return_inverse=True)
    ends = inverse.reshape(-1, 2)
    n = len(ids)
    adjacency = sp.coo_matrix((np.ones(len(ends)), (ends[:, 0], ends[:, 1])), shape=(n, n))
    _, labels = scipy_components(adjacency, directed=False)
    smallest = np.full(labels.max() + 1, np.iinfo(np.int64).max)
    np.minimum.at(smallest, labels, ids)
    return dict(zip(ids.tolist(), smallest[labels].tolist(), strict=True))


Pairs = np.ndarray | list[tuple[int | None, int | None]]


def graphx(spark: SparkSession, pairs: Pairs) -> dict[int, int]:
    """GraphX's answer for ``pairs``, checking its schema and one row per vertex on the way."""
    rows = [tuple(None if v is None else int(v) for v in p) for p in pairs]
    edges = spark.createDataFrame(rows, "src long, dst long").repartition(3)
    cc = connected_components(edges)
    try:
        assert [(f.name, f.dataType.simpleString(), f.nullable) for f in cc.schema.fields] == [
            ("id", "bigint", False),
            ("component", "bigint", False),
        ]
        got = {r["id"]: r["component"] for r in cc.collect()}
        assert len(got) == cc.count()  # one row per vertex
        return got
    finally:
        cc.unpersist()


def test_components_equal_scipys_on_a_random_graph(spark: SparkSession) -> None:
    rng = np.random.default_rng(18)
    # A big component (2,000 ids, mean degree 3: shallow, so few supersteps) and many small
    # ones (2,000 ids, mean degree 0.6); ids of neither left out; duplicates and both directions
    # of some edges included.
    dense = rng.integers(0, 2_000, size=(3_000, 2))
    sparse = rng.integers(2_000, 4_000, size=(600, 2))
    pairs = np.vstack([dense, sparse, dense[:50], sparse[50:100, ::-1]])
    want = expected(pairs)
    _, sizes = np.unique(list(want.values()), return_counts=True)
    assert len(sizes) > 100 and sizes.max() > 500
    assert graphx(spark, pairs) == want


def test_components_edge_cases(spark: SparkSession) -> None:
    pairs: list[tuple[int | None, int | None]] = []
    pairs += [(10_000 + 2 * i, 10_001 + 2 * i) for i in range(200)]  # isolated pairs
    # A 40-link chain whose smallest id is at one end: 40 supersteps, through 4 checkpoints.
    pairs += [(20_040 - i, 20_039 - i) for i in range(40)]
    pairs += [(30_500, 30_000 + i) for i in range(1_000) if i != 500]  # a star, centre mid-range
    pairs += [(40_000, 40_000)]  # a self-loop: one vertex on its own
    pairs += [(2**40 + 1, 2**40), (-7, 2**62)]  # ids past 32 bits, and negative
    got = graphx(spark, [*pairs, (None, 5), (6, None)])  # rows with a null end are dropped
    assert got == expected(np.array(pairs, dtype=np.int64))
    assert {got[20_040], got[20_000]} == {20_000}
    assert got[30_999] == got[30_500] == 30_000
    assert got[40_000] == 40_000 and got[2**62] == -7
    assert 5 not in got and 6 not in got


def test_the_session_is_configured_for_the_engine(spark: SparkSession) -> None:
    conf = spark.sparkContext.getConf()
    assert spark.sparkContext.master == "local[2]"
    assert spark.conf.get("spark.sql.shuffle.partitions") == "4"
    assert spark.conf.get("spark.sql.execution.arrow.pyspark.enabled") == "true"
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
    assert conf.get("spark.ui.enabled") == "false"
    assert conf.get("spark.driver.memory") == "1g"
    assert conf.get("spark.graphx.pregel.checkpointInterval") == "10"
    assert "ringscope-spark-" in (conf.get("spark.jars") or "")
    assert "ringscope-spark-" in (conf.get("spark.local.dir") or "")
    assert spark.sparkContext.getCheckpointDir()
    # The Python workers run this interpreter (numpy, igraph and ringscope are here).
    assert spark.sparkContext.pythonExec == sys.executable
    worker = spark.sparkContext.parallelize([0], 1).map(lambda _: sys.executable).collect()
    assert worker == [sys.executable]


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RINGSCOPE_REBUILD_ENGINE", "spark")
    monkeypatch.setenv("RINGSCOPE_SPARK_MASTER", "spark://head:7077")
    monkeypatch.setenv("RINGSCOPE_SPARK_CONF", '{"spark.executor.memory": "8g"}')
    s = Settings()
    assert (s.rebuild_engine, s.spark_master) == ("spark", "spark://head:7077")
    assert s.spark_conf == {"spark.executor.memory": "8g"}
    assert s.spark_shuffle_partitions == 8 and s.spark_python is None
    monkeypatch.setenv("RINGSCOPE_REBUILD_ENGINE", "dask")
    with pytest.raises(ValueError, match="rebuild_engine"):
        Settings()


def test_without_pyspark_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyspark", None)  # `import pyspark` now raises ImportError
    with pytest.raises(SparkUnavailableError) as info:
        spark_session(Settings())
    assert isinstance(info.value, RingScopeError)  # the CLI prints it as one line
    message = str(info.value)
    assert INSTALL_HINT in message and "pyspark" in message
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_the_helper_jar_is_built_once_per_source_and_spark(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyspark

    settings = Settings(cache_dir=tmp_path)
    jar = jars.helper_jar(settings)
    assert jar.parent == tmp_path / "spark"
    with zipfile.ZipFile(jar) as zf:
        assert "io/ringscope/spark/Components.class" in zf.namelist()
    assert [p.name for p in jar.parent.iterdir()] == [jar.name]  # no build directory left
    built = jar.stat().st_mtime_ns
    assert jars.helper_jar(settings) == jar and jar.stat().st_mtime_ns == built  # cached

    spark_jars = jars.spark_jars_dir()
    key = jars.helper_key(spark_jars)
    monkeypatch.setattr(pyspark, "__version__", "0.0.0")
    assert jars.helper_key(spark_jars) != key  # another pyspark: another jar
    monkeypatch.undo()
    edited = tmp_path / "src"
    shutil.copytree(jars.SOURCES, edited)
    java = next(edited.rglob("Components.java"))
    java.write_text(java.read_text() + "\n// edited\n")
    monkeypatch.setattr(jars, "SOURCES", edited)
    assert jars.helper_key(spark_jars) != key  # an edit: another jar

    # Without a JDK's javac, a jar not yet built is a clear error.
    with pytest.raises(SparkUnavailableError, match="javac"):
        jars.helper_jar(Settings(cache_dir=tmp_path / "other", javac="no-such-javac"))
