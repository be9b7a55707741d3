"""The detector on Spark: the same answers as :func:`ringscope.models.detect.detect`, computed
from the input files on a cluster (issue #18, ``docs/scaling.md``).

The steps, each a Spark operation, and where the in-process semantics come from::

    tables      the loader's fold of the input files        spark.tables (ingest's own code)
    links       identifier degrees, caps, the self-join      spark.linking (models.linking,
                per kind, the sum per pair, co-activation    models.coactivation)
    components  GraphX connected components of the strong   spark.components
                links
    propose     per component (applyInPandas): Leiden,       models.detect.propose, on the
                risk splits, trimming, the feature table     component (models.partition)
    scorer      fitted on the driver over every cluster's    models.detect.fit_scorer
                features (the labels are global)
    describe    per component again: scores, analysis,       models.detect.describe,
                reasons, member scores                       account_scores
    own         every account's own signals' score, per      models.clusters.account_own_scores
                bucket of accounts

Why per component: every step between the links and the scorer stays inside one connected
component of the strong links, given the whole graph's identifier sizes, its "now" and the
burst cohorts, which travel with the component's rows (``models.partition``). The component's
rows (accounts, edges, internal pairs, cohort memberships) are one wide table grouped by
component, so one Python worker holds one component at a time; a component's proposal is made
twice (once for the scorer's rows, once to describe it with the fitted scorer), because keeping
it between the two passes would hold every component in memory at once.

The account model (tree and GNN) is not run here: a Spark build is rings-only (the build
records ``engine: spark`` and no model version). See ``docs/scaling.md``.
"""

from __future__ import annotations

import json
import pickle
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from ringscope.kinds import IDENTIFIER_KINDS, PAYEE
from ringscope.models import clusters as cl
from ringscope.models.coactivation import Cohorts
from ringscope.models.detect import (
    Cluster,
    DetectConfig,
    Links,
    Proposal,
    account_scores,
    describe,
    final_scores,
    fit_scorer,
    propose,
)
from ringscope.models.partition import (
    LocalEdges,
    global_order,
    local_projection,
    origin_keys,
    table_of,
)
from ringscope.models.projection import Projection

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession

    from ringscope.models.cluster_score import ClusterScorer
    from ringscope.spark.tables import SparkTables

__all__ = ["SparkDetection", "detect_spark"]

# The wide table of a component's rows: ``rec`` says which kind of row it is.
ACCOUNT, EDGE, PAIR, COHORT = "a", "e", "p", "c"
WIDE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("rec", "string"),
    ("comp", "long"),
    ("account", "string"),
    ("kind", "string"),
    ("ident", "string"),
    ("currency", "string"),
    ("first", "long"),
    ("last", "long"),
    ("count", "long"),
    ("round_count", "long"),
    ("total", "double"),
    ("degree", "long"),
    ("flag", "boolean"),
    ("created", "long"),
    ("kyc", "long"),
    ("label", "long"),
    ("b", "string"),
    ("s", "double"),
    ("arrival", "double"),
    ("quiet", "double"),
)
PROPOSED = "comp long, keys string, tbl binary"
DESCRIBED = "rec string, account string, score double, cluster string"
OWN = "account string, score double"
KIND_NAMES = tuple(k.name for k in IDENTIFIER_KINDS)


@dataclass
class SparkDetection:
    """What the Spark engine found: the clusters (on the driver: they are few), every account's
    score (a DataFrame, for the executors to write), and the run's facts."""

    clusters: list[Cluster]
    scores: DataFrame  # account string, score double
    member_scores: dict[str, float]  # the cluster members' scores (the clusters' rows need them)
    scorer: dict[str, object]
    stage_seconds: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)


# --- a component's rows -> its local projection (runs in the Python workers) -------------------


def _local(
    pdf: pd.DataFrame, now: int, with_links: bool = True
) -> tuple[Projection, Links, dict[int, str]]:
    """The local projection, links and identifier names of one group's wide rows.

    Identifier keys are made up per group: ``offset(kind) + rank of the id within the kind``,
    so the keys of different kinds never collide (the reasons name identifiers by key)."""
    acc = pdf[pdf["rec"] == ACCOUNT].sort_values("account", kind="stable")
    ids = acc["account"].astype(str).tolist()
    index = {a: i for i, a in enumerate(ids)}
    n = len(ids)
    names: dict[int, str] = {}
    edges: dict[str, LocalEdges] = {}
    rows = pdf[pdf["rec"] == EDGE]
    offset = 0
    payee_key: dict[str, int] = {}
    for kind in KIND_NAMES:
        e = rows[rows["kind"] == kind].sort_values(["account", "ident", "currency"], kind="stable")
        uniq, code = np.unique(e["ident"].astype(str).to_numpy(), return_inverse=True)
        keys = offset + code.astype(np.int64)
        names.update((offset + i, str(u)) for i, u in enumerate(uniq.tolist()))
        if kind == PAYEE.name:
            payee_key = {str(u): offset + i for i, u in enumerate(uniq.tolist())}
        offset += len(uniq)
        paid = kind == PAYEE.name
        edges[kind] = LocalEdges(
            acc=np.asarray([index[a] for a in e["account"].tolist()], dtype=np.int64),
            ident=keys,
            first=e["first"].to_numpy(dtype=np.int64),
            last=e["last"].to_numpy(dtype=np.int64),
            count=e["count"].to_numpy(dtype=np.int64),
            degree=e["degree"].to_numpy(dtype=np.int64),
            flag=e["flag"].to_numpy(dtype=bool),
            round_count=e["round_count"].to_numpy(dtype=np.int64) if paid else None,
            total=e["total"].to_numpy(dtype=np.float64) if paid else None,
        )
    proj = local_projection(
        ids,
        acc["created"].to_numpy(dtype=np.int64),
        acc["kyc"].to_numpy(dtype=np.int64),
        acc["label"].to_numpy(dtype=np.int64),
        edges,
        now,
    )
    if not with_links:
        empty = sp.csr_matrix((n, n), dtype=np.float64)
        return proj, Links(empty, empty, None), names
    p = pdf[pdf["rec"] == PAIR]
    a = np.asarray([index[x] for x in p["account"].tolist()], dtype=np.int64)
    b = np.asarray([index[x] for x in p["b"].tolist()], dtype=np.int64)

    def sym(values: Any) -> sp.csr_matrix:
        v = np.asarray(values, dtype=np.float64)
        m = sp.coo_matrix(
            (np.r_[v, v], (np.r_[a, b], np.r_[b, a])), shape=(n, n), dtype=np.float64
        ).tocsr()
        m.eliminate_zeros()
        m.sort_indices()
        return m

    s, arrival = sym(p["s"].to_numpy()), sym(p["arrival"].to_numpy())
    c = pdf[pdf["rec"] == COHORT]
    cohorts = None
    if len(c):
        # Cohorts in payee-key order (the whole graph's order: by payee), members 0/1, and each
        # account's least quiet days over all its cohorts (carried on its rows).
        pk = np.asarray([payee_key[x] for x in c["ident"].astype(str).tolist()], dtype=np.int64)
        used, col = np.unique(pk, return_inverse=True)
        rows_ = np.asarray([index[x] for x in c["account"].tolist()], dtype=np.int64)
        members = sp.csr_matrix((np.ones(len(rows_)), (rows_, col.ravel())), shape=(n, len(used)))
        members.sum_duplicates()
        members.data[:] = 1.0
        quiet = np.full(n, -1.0)
        quiet[rows_] = c["quiet"].to_numpy(dtype=np.float64)
        payee_nodes = proj.kinds[PAYEE.name].nodes
        cohorts = Cohorts(members, np.searchsorted(payee_nodes, used).astype(np.int64), quiet)
    return proj, Links(s, arrival, cohorts), names


def _propose_fn(cfg: DetectConfig, now: int) -> Any:
    import pandas as pd

    def run(key: tuple[Any, ...], pdf: pd.DataFrame) -> pd.DataFrame:
        # A bucket holds whole components, and a union of whole components is proposed for as
        # each of them alone (models.partition): one local projection per bucket, not per
        # component (47k components at 1M took 6 ms each in Python overhead alone, measured).
        proj, links, _ = _local(pdf, now)
        proposal = propose(proj, links, cfg)
        keys = origin_keys(proposal, proj.ids)
        out = [(int(key[0]), json.dumps(keys), pickle.dumps(_strip(proposal.table)))]
        return pd.DataFrame(out, columns=["comp", "keys", "tbl"])

    return run


def _strip(table: cl.ClusterTable) -> cl.ClusterTable:
    """The table without its evidence: the scorer needs features and counts only."""
    evidence = [cl.Evidence() for _ in range(table.n_clusters)]
    return cl.ClusterTable(table.n_clusters, table.features, table.counts, evidence)


def _describe_fn(cfg: DetectConfig, now: int, scorer: ClusterScorer) -> Any:
    import pandas as pd

    def run(key: tuple[Any, ...], pdf: pd.DataFrame) -> pd.DataFrame:
        del key
        proj, links, names = _local(pdf, now)  # the bucket's components, as in _propose_fn
        proposal: Proposal = propose(proj, links, cfg)
        scores, contrib = final_scores(scorer, proposal)
        clusters = describe(proj, proposal, scores, contrib, cfg, names_of=_lookup(names))
        members = account_scores(proj, proposal.sig, proposal.groups, scores)
        out: list[tuple[str, str | None, float, str | None]] = [
            ("cluster", None, c.score, json.dumps(_cluster_dict(c))) for c in clusters
        ]
        out += [("account", a, v, None) for a, v in members.items()]
        return pd.DataFrame(out, columns=["rec", "account", "score", "cluster"])

    return run


def _lookup(names: dict[int, str]) -> Callable[[list[int]], dict[int, str]]:
    return lambda nodes: {n: names[n] for n in nodes}


def _own_fn(now: int) -> Any:
    import pandas as pd

    def run(key: tuple[Any, ...], pdf: pd.DataFrame) -> pd.DataFrame:
        del key
        proj, _, _ = _local(pdf, now, with_links=False)
        own = cl.account_own_scores(cl.account_signals(proj, None), proj.n)
        return pd.DataFrame({"account": proj.ids, "score": [round(float(v), 6) for v in own]})

    return run


def _cluster_dict(c: Cluster) -> dict[str, Any]:
    return {
        "members": list(c.members),
        "score": c.score,
        "reasons": list(c.reasons),
        "features": c.features,
        "key_identifiers": [list(k) for k in c.key_identifiers],
        "density": c.density,
    }


def _cluster_of(d: dict[str, Any]) -> Cluster:
    return Cluster(
        members=tuple(d["members"]),
        score=float(d["score"]),
        reasons=tuple(d["reasons"]),
        features={str(k): float(v) for k, v in d["features"].items()},
        key_identifiers=tuple((str(k), str(i), int(n)) for k, i, n in d["key_identifiers"]),
        density=float(d["density"]),
    )


# --- the driver ----------------------------------------------------------------------------------


def _cut(df: DataFrame) -> DataFrame:
    """``df`` computed now, kept, and with its lineage cut: a checkpoint where the session has
    a checkpoint directory (reliable storage on a cluster), a local one otherwise."""
    if df.sparkSession.sparkContext.getCheckpointDir():
        return df.checkpoint(eager=True)
    return df.localCheckpoint(eager=True)


def _wide(df: DataFrame, rec: str, **cols: Any) -> DataFrame:
    """``df``'s columns placed in the wide schema (missing ones null), tagged ``rec``."""
    from pyspark.sql import functions as F

    out = []
    for name, kind in WIDE_COLUMNS:
        if name == "rec":
            out.append(F.lit(rec).alias("rec"))
        elif name in cols:
            out.append(cols[name].cast(kind).alias(name))
        elif name in df.columns:
            out.append(F.col(name).cast(kind).alias(name))
        else:
            out.append(F.lit(None).cast(kind).alias(name))
    return df.select(*out)


def detect_spark(
    spark: SparkSession,
    tables: SparkTables,
    config: DetectConfig | None = None,
    *,
    verdicts: dict[str, int] | None = None,
    buckets: int = 0,
) -> SparkDetection:
    """Detect rings in ``tables`` on Spark (see the module doc). ``verdicts`` (account -> 1
    fraud / 0 legit) override the imported labels, as ``models.verdicts.apply_verdicts`` does
    in-process; ``buckets`` is how many groups the accounts' own scores are computed in
    (default: four per shuffle partition)."""
    from pyspark.sql import functions as F

    from ringscope.spark.components import connected_components
    from ringscope.spark.linking import burst_cohorts, coactivation_pairs, link_pairs

    cfg = config or DetectConfig()
    params = cfg.link_params()
    seconds: dict[str, float] = {}
    counts: dict[str, int] = {}

    def lap(name: str, t: float) -> float:
        now_ = time.perf_counter()
        seconds[name] = round(now_ - t, 3)
        return now_

    t = time.perf_counter()
    accounts = tables.accounts
    if verdicts:
        v = spark.createDataFrame(list(verdicts.items()), "account string, verdict long")
        accounts = accounts.join(v, on="account", how="left").select(
            "account", "created", "kyc",
            F.coalesce(F.col("verdict"), F.col("label")).alias("label"),
        )  # fmt: skip
    # The input tables are computed once and their lineage cut here: every later step reads
    # them several times, and their plans (the loader's steps per stream) are long.
    accounts = _cut(accounts)
    base = _cut(tables.edges)
    identifiers = _cut(tables.identifiers.select("kind", "ident", "flag"))
    for df in getattr(tables, "cached", []):  # the streams' rows, now in the cut tables
        df.unpersist()
    degree = base.groupBy("kind", "ident").agg(F.count(F.lit(1)).alias("degree"))
    edges = _cut(
        base.join(degree, on=["kind", "ident"])
        .join(identifiers, on=["kind", "ident"], how="left")
        .withColumn("flag", F.coalesce(F.col("flag"), F.lit(False)))
    )
    bounds = accounts.agg(F.max("created").alias("c")).first()
    last = base.agg(F.max("last").alias("l")).first()
    now = max(
        int(bounds["c"]) if bounds and bounds["c"] is not None else 0,
        int(last["l"]) if last and last["l"] is not None else 0,
    )
    counts["accounts"] = accounts.count()
    counts["identifier_edges"] = edges.count()
    counts["data_now"] = now  # what explanations of this build measure age from
    t = lap("tables", t)

    pairs = link_pairs(base, identifiers, params)
    cohorts = None
    if cfg.coactivation_weight > 0:
        cohorts = _cut(
            burst_cohorts(base, identifiers, accounts, params, cfg.coactivation_params())
        )
        co = coactivation_pairs(cohorts, cfg.coactivation_params())
        pairs = (
            pairs.unionByName(
                co.select("a", "b", F.col("w").alias("s"), F.col("w").alias("arrival"))
            )
            .groupBy("a", "b")
            .agg(F.sum("s").alias("s"), F.sum("arrival").alias("arrival"))
        )
    pairs = _cut(pairs)
    counts["links"] = pairs.count()
    t = lap("linking", t)

    # GraphX numbers vertices with longs: each account's rank in business-id order.
    ranked = accounts.select("account").rdd.map(lambda r: r[0]).sortBy(lambda a: a).zipWithIndex()
    vid = spark.createDataFrame(ranked, "account string, vid long").persist()
    strong = pairs.where(F.col("s") >= cfg.link_threshold)
    strong_ids = (
        strong.join(vid.withColumnRenamed("account", "a").withColumnRenamed("vid", "src"), "a")
        .join(vid.withColumnRenamed("account", "b").withColumnRenamed("vid", "dst"), "b")
        .select("src", "dst")
    )
    comp = connected_components(strong_ids)
    sizes = comp.groupBy("component").agg(F.count(F.lit(1)).alias("size"))
    member = (
        comp.join(sizes.where(F.col("size") >= cfg.min_cluster_size), "component")
        .join(vid, comp["id"] == vid["vid"])
        .select("account", F.col("component").alias("comp"))
        .persist()
    )
    counts["components"] = sizes.where(F.col("size") >= cfg.min_cluster_size).count()
    counts["component_accounts"] = member.count()
    comp.unpersist()
    t = lap("components", t)

    # The wide table: accounts, their edges, their internal pairs, their cohort memberships.
    parts = [
        _wide(accounts.join(member, "account"), ACCOUNT),
        _wide(edges.join(member, "account"), EDGE),
        _wide(
            pairs.join(member.withColumnRenamed("account", "a"), "a")
            .join(member.withColumnRenamed("account", "b").withColumnRenamed("comp", "cb"), "b")
            .where(F.col("comp") == F.col("cb")),
            PAIR,
            account=F.col("a"),
        ),
    ]
    if cohorts is not None:
        parts.append(
            _wide(
                cohorts.join(member, "account"),
                COHORT,
                ident=F.col("payee"),
                quiet=F.col("least_quiet_days"),
            )
        )
    wide = parts[0]
    for p in parts[1:]:
        wide = wide.unionByName(p)
    # Components go to the Python workers in buckets (a few per task): one Arrow batch, one
    # call and one local projection per bucket, not per component (most have 3-10 accounts).
    n_buckets = buckets or 4 * int(spark.conf.get("spark.sql.shuffle.partitions", "8") or 8)
    wide = wide.withColumn("bucket", F.col("comp") % n_buckets).persist()

    proposed = wide.groupBy("bucket").applyInPandas(_propose_fn(cfg, now), PROPOSED).collect()
    t = lap("propose", t)

    tables_: list[cl.ClusterTable] = []
    keys: list[tuple[int, str, int]] = []
    picks: list[tuple[int, int]] = []
    for i, row in enumerate(sorted(proposed, key=lambda r: int(r["comp"]))):  # by bucket
        tbl = pickle.loads(row["tbl"])  # noqa: S301 - our own workers' output, this run
        tables_.append(tbl)
        keys += [(int(a), str(b), int(c)) for a, b, c in json.loads(row["keys"])]
        picks += [(i, r) for r in range(tbl.n_clusters)]
    order = global_order(keys)
    table = table_of(tables_, [picks[i] for i in order])
    scorer = fit_scorer(table, cfg)
    counts["clusters"] = table.n_clusters
    t = lap("scorer", t)

    described = wide.groupBy("bucket").applyInPandas(_describe_fn(cfg, now, scorer), DESCRIBED)
    described = described.persist()
    clusters = [
        _cluster_of(json.loads(r["cluster"]))
        for r in described.where(F.col("rec") == "cluster").select("cluster").collect()
    ]
    clusters.sort(key=lambda x: (-x.score, x.members))
    member_scores = {
        str(r["account"]): float(r["score"])
        for r in described.where(F.col("rec") == "account").select("account", "score").collect()
    }
    t = lap("describe", t)

    bucket = F.abs(F.hash("account")) % n_buckets
    own_rows = _wide(accounts.withColumn("comp", bucket), ACCOUNT).unionByName(
        _wide(edges.withColumn("comp", bucket), EDGE)
    )
    own = own_rows.groupBy("comp").applyInPandas(_own_fn(now), OWN)  # comp: the bucket here
    in_clusters = described.where(F.col("rec") == "account").select(
        "account", F.col("score").alias("cluster_score")
    )
    scores = (
        own.join(in_clusters, "account", "left")
        .select("account", F.coalesce(F.col("cluster_score"), F.col("score")).alias("score"))
        .persist()
    )
    counts["accounts_scored"] = scores.count()
    lap("own", t)
    wide.unpersist()
    return SparkDetection(clusters, scores, member_scores, scorer.describe(), seconds, counts)
