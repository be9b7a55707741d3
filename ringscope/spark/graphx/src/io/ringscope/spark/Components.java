package io.ringscope.spark;

import org.apache.spark.api.java.JavaRDD;
import org.apache.spark.graphx.Graph;
import org.apache.spark.graphx.PartitionStrategy;
import org.apache.spark.graphx.lib.ConnectedComponents;
import org.apache.spark.rdd.RDD;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.functions;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.apache.spark.storage.StorageLevel;
import scala.Option;
import scala.Tuple2;
import scala.reflect.ClassTag;
import scala.reflect.ClassTag$;

/**
 * GraphX's connected components for a DataFrame of edges, callable from Python through py4j.
 *
 * <p>GraphX has no Python API and GraphFrames (its DataFrame wrapper) is not installable here,
 * so this class is the bridge: DataFrame in, GraphX in the middle, DataFrame out. RingScope
 * compiles it against the running Spark's own jars at first use (ringscope/spark/jars.py).
 */
public final class Components {
  /** The answer's columns: every vertex of some edge, and the smallest vertex id of its component. */
  public static final StructType SCHEMA =
      new StructType()
          .add("id", DataTypes.LongType, false)
          .add("component", DataTypes.LongType, false);

  private Components() {}

  /**
   * The connected components of the undirected graph of {@code edges} (columns src, dst, castable
   * to long; rows with a null end are dropped). Returns (id, component), persisted and computed,
   * so that GraphX's cached graphs can be released before this returns: unpersist it when done.
   */
  public static Dataset<Row> connectedComponents(Dataset<Row> edges, int maxIterations) {
    StorageLevel level = StorageLevel.MEMORY_AND_DISK();
    RDD<Tuple2<Object, Object>> tuples =
        edges
            .where(functions.col("src").isNotNull().and(functions.col("dst").isNotNull()))
            .select(functions.col("src").cast("long"), functions.col("dst").cast("long"))
            .javaRDD()
            .map(r -> new Tuple2<Object, Object>(r.getLong(0), r.getLong(1)))
            .rdd();
    // Vertex and edge attributes are unused ints (GraphX's components ignore them); no
    // deduplication of edges, which costs a shuffle and changes nothing here.
    ClassTag<Object> intTag = ClassTag$.MODULE$.Int();
    Graph<Object, Object> graph =
        Graph.fromEdgeTuples(
            tuples, (Object) 0, Option.<PartitionStrategy>empty(), level, level, intTag);
    Graph<Object, Object> components = ConnectedComponents.run(graph, maxIterations, intTag, intTag);
    JavaRDD<Row> rows =
        components.vertices().toJavaRDD().map(v -> RowFactory.create(v._1(), v._2()));
    Dataset<Row> out = edges.sparkSession().createDataFrame(rows, SCHEMA).persist(level);
    out.count();
    components.unpersist(false);
    graph.unpersist(false);
    return out;
  }
}
