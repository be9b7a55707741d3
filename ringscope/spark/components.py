"""Connected components on Spark: GraphX's, through the Java helper in ``graphx/``.

GraphX labels each component with its smallest vertex id, so the answer is a partition that can
be compared with scipy's (or the in-process detector's) directly. It is Pregel underneath: one
superstep per hop of the widest component's diameter, a few Spark stages each. The linking step
caps identifier degrees before this, which keeps components small and shallow, but a chain of
accounts is still one superstep per link; settings.spark_checkpoint_interval keeps the lineage of
long runs short.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ringscope.spark.session import SparkUnavailableError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

HELPER_CLASS = "io.ringscope.spark.Components"
# Scala's Int.MaxValue: GraphX's own "until it converges".
UNTIL_CONVERGED = 2**31 - 1


def connected_components(edges: DataFrame, max_iterations: int = UNTIL_CONVERGED) -> DataFrame:
    """The connected components of the undirected graph of ``edges`` (columns ``src``, ``dst``,
    castable to long; rows with a null end dropped): one row (``id``, ``component``) per vertex
    of some edge, ``component`` the smallest id in its component.

    The result is already computed and persisted (GraphX's cached graphs are released before
    this returns): ``unpersist()`` it when done. ``edges`` must come from a session of
    :func:`ringscope.spark.session.spark_session`, which puts the helper on the classpath.
    """
    from py4j.java_gateway import JavaClass
    from pyspark.sql import DataFrame

    jdf = getattr(edges, "_jdf", None)
    if jdf is None:
        raise SparkUnavailableError(
            "GraphX's connected components need a classic Spark session (a JVM driver); Spark "
            "Connect has no GraphX."
        )
    spark = edges.sparkSession
    jvm = spark.sparkContext._jvm
    helper = jvm.io.ringscope.spark.Components if jvm is not None else None
    if not isinstance(helper, JavaClass):
        raise SparkUnavailableError(
            f"{HELPER_CLASS} is not on the Spark driver's classpath: the process's first "
            "SparkSession must come from ringscope.spark.session.spark_session, which adds it."
        )
    return DataFrame(helper.connectedComponents(jdf, max_iterations), spark)
