"""The rebuild's Spark engine (issue #18): detection and scoring as Spark operations, for data past
one machine (docs/scaling.md), with the same answers as the in-process rebuild.

Layering (pyproject.toml [tool.importlinter]): ``ringscope.jobs`` runs this engine, and this
engine reuses ``ringscope.ingest`` (the data contract), ``ringscope.models`` (the igraph and
scoring code, run in Spark's Python workers), ``ringscope.graph`` and the base modules; none of
those import it. pyspark is an optional extra (``pip install 'ringscope[spark]'``), so nothing
outside this package imports pyspark, and this package imports it only inside functions or under
TYPE_CHECKING: ``session.SparkUnavailableError`` is what a machine without it gets.

- ``session``: the SparkSession, configured the same way in the CLI, tests and benchmarks.
- ``jars`` and ``graphx/``: a small Java helper compiled at first use against Spark's own jars.
- ``components``: GraphX's connected components through that helper.
- ``tables``: the input files through the loader's own code; ``linking``: links as joins.
- ``rows``: the wide rows grouped for the Python workers, and back to numpy.
- ``account_model``: the saved model's tree, bucket by bucket; ``engine``: the detector;
  ``build``: the executors' score chunks.
"""
