"""The SparkSession of the Spark engine, configured one way for the CLI, the tests and the bench.

pyspark is an optional extra, so this module imports it only inside functions: without it,
:func:`spark_session` raises :class:`SparkUnavailableError` (one line in the CLI, no traceback)
saying what to install.

A process's first session starts Spark's JVM, and the JVM-wide settings (driver memory, the
helper jar on the driver's classpath) are read then; later sessions reuse that JVM. So every
session of a process should come from here: one started elsewhere lacks the GraphX helper.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from ringscope.errors import RingScopeError
from ringscope.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

INSTALL_HINT = "pip install 'ringscope[spark]'"


class SparkUnavailableError(RingScopeError):
    """The Spark engine cannot run here: pyspark or pandas is not installed, or there is no JDK
    to compile the GraphX helper with."""


def require_pyspark() -> None:
    """Raise :class:`SparkUnavailableError` unless pyspark, pandas and pyarrow import."""
    try:
        import pandas  # noqa: F401
        import pyarrow  # noqa: F401
        import pyspark  # noqa: F401
    except ImportError as exc:
        missing = exc.name or "pyspark"
        raise SparkUnavailableError(
            f"The Spark engine needs pyspark and pandas, and {missing} is not installed. Install "
            f"them with {INSTALL_HINT}, or rebuild in-process (RINGSCOPE_REBUILD_ENGINE="
            "in-process, the default)."
        ) from None


def is_local(master: str) -> bool:
    """Whether ``master`` runs Spark inside this process's JVM (local, local[4], local[*,2])."""
    return master == "local" or master.startswith("local[")


@cache
def _scratch(parent: Path | None) -> Path:
    """This process's own scratch directory (Spark's local dir and local checkpoints), removed
    when the process exits; Spark makes unique directories of its own inside it."""
    root = Path(tempfile.mkdtemp(prefix="ringscope-spark-", dir=parent))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return root


def spark_conf(settings: Settings, jar: Path, scratch: Path) -> dict[str, str]:
    """The Spark properties of a session: RingScope's, then settings.spark_conf over them."""
    conf = {
        "spark.driver.memory": settings.spark_driver_memory,
        "spark.sql.shuffle.partitions": str(settings.spark_shuffle_partitions),
        "spark.jars": str(jar),
        # pandas <-> Spark through Arrow (applyInPandas, mapInPandas, toPandas): without it the
        # rows are pickled one by one, 10-100x slower.
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        # Timestamps cross between pandas and Spark in the session's time zone; the in-process
        # detector works in UTC, and parity must not depend on the machine's zone.
        "spark.sql.session.timeZone": "UTC",
        # No web UI (a port per session, and nobody looks at it in a batch job) and no progress
        # bars in the CLI's output.
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        # GraphX's Pregel checkpoints every this many supersteps, when a checkpoint dir is set.
        "spark.graphx.pregel.checkpointInterval": str(settings.spark_checkpoint_interval or -1),
        # Spark renders every query's plan as text for its listeners even with the UI off; the
        # input tables' plans (a union per stream, the loader's steps) reach hundreds of MB of
        # text, which ran the driver out of heap on a 20k-account world. Cap the text.
        "spark.sql.maxPlanStringLength": "65536",
    }
    if is_local(settings.spark_master):
        # Everything is in this process: scratch files in the process's own directory, and the
        # driver on loopback only (not on whatever interface the host name resolves to). On a
        # cluster the executors must reach the driver's address, and the cluster manager sets
        # their scratch directories.
        conf["spark.local.dir"] = str(scratch / "local")
        conf["spark.driver.host"] = "127.0.0.1"
        conf["spark.driver.bindAddress"] = "127.0.0.1"
    return conf | settings.spark_conf


def spark_session(settings: Settings, app_name: str = "ringscope-rebuild") -> SparkSession:
    """A SparkSession on ``settings.spark_master`` with the GraphX helper on its classpath.

    An active session of this process is returned as it is (Spark's getOrCreate), with its
    settings. Stop it (``spark.stop()``) when done; the JVM stays up for the next one.
    """
    require_pyspark()
    from pyspark.sql import SparkSession

    from ringscope.spark.jars import helper_jar  # jars imports this module

    jar = helper_jar(settings)
    scratch = _scratch(settings.spark_local_dir)
    # The Python workers that run applyInPandas must be this project's interpreter (numpy,
    # igraph, ringscope), not whatever `python3` is first on PATH.
    os.environ["PYSPARK_PYTHON"] = settings.spark_python or sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    if is_local(settings.spark_master):
        # Read by the JVM as it starts, before any property: without it Spark looks the host
        # name up and warns when it resolves to loopback.
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = SparkSession.builder.master(settings.spark_master).appName(app_name)
    for key, value in spark_conf(settings, jar, scratch).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    # Each plan cut at spark.sql.maxPlanStringLength is one WARN line, dozens per rebuild: the
    # cut is intended (above), so that logger says errors only.
    jvm = spark.sparkContext._jvm
    if jvm is not None:
        jvm.org.apache.logging.log4j.core.config.Configurator.setLevel(
            "org.apache.spark.sql.catalyst.util.StringUtils",
            jvm.org.apache.logging.log4j.Level.ERROR,
        )
    checkpoints = settings.spark_checkpoint_dir
    if checkpoints is None and is_local(settings.spark_master):
        checkpoints = str(scratch / "checkpoints")
    if checkpoints is not None:
        spark.sparkContext.setCheckpointDir(checkpoints)
    return spark
