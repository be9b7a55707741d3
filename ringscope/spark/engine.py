"""The detector on Spark: the same answers as :func:`ringscope.models.detect.detect`, computed
from the input files on a cluster (issue #18, ``docs/scaling.md``).

The steps, each a Spark operation, and where the in-process semantics come from::

    tables      the loader's fold of the input files        spark.tables (ingest's own code)
    model       the saved model's tree, per bucket of        spark.account_model (models.risk,
                accounts and of identifiers                  models.features)
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

The account model: the saved model's tree scores every account first (``spark.account_model``,
the in-process features bucket by bucket), and its scores travel on the account rows into
propose, describe and the own scores, as ``detect(account_model_scores=...)`` reads them. The
GNN does not run at this scale: the tree scores alone, with its own calibration, and the build
records it (``docs/scaling.md``, section 6).
"""

from __future__ import annotations

import json
import pickle
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ringscope.models import clusters as cl
from ringscope.models.detect import (
    Cluster,
    DetectConfig,
    Proposal,
    account_scores,
    describe,
    final_scores,
    fit_scorer,
    propose,
)
from ringscope.models.partition import (
    Reassembled,
    apply_reassembled,
    global_order,
    origin_keys,
    reassemble_flagged,
    table_of,
)
from ringscope.spark.rows import ACCOUNT, COHORT, EDGE, PAIR, cut, local_rows, wide

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession

    from ringscope.models.cluster_score import ClusterScorer
    from ringscope.models.risk import TreeScorer
    from ringscope.spark.tables import SparkTables

__all__ = ["SparkDetection", "detect_spark"]

PROPOSED = "comp long, keys string, tbl binary"
DESCRIBED = "rec string, account string, score double, cluster string"
OWN = "account string, score double"


@dataclass
class SparkDetection:
    """What the Spark engine found: the clusters (on the driver: they are few), every account's
    score (a DataFrame, for the executors to write), and the run's facts."""

    clusters: list[Cluster]
    scores: DataFrame  # account string, score double, model double (null: no model ran)
    member_scores: dict[str, float]  # the cluster members' scores (the clusters' rows need them)
    scorer: dict[str, object]
    stage_seconds: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)


def _propose_fn(cfg: DetectConfig, now: int) -> Any:
    import pandas as pd

    def run(key: tuple[Any, ...], pdf: pd.DataFrame) -> pd.DataFrame:
        # A bucket holds whole components, and a union of whole components is proposed for as
        # each of them alone (models.partition): one local projection per bucket, not per
        # component (47k components at 1M took 6 ms each in Python overhead alone, measured).
        local = local_rows(pdf, now)
        proposal = propose(local.proj, local.links, cfg, local.model)
        keys = origin_keys(proposal, local.proj.ids)
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
        local = local_rows(pdf, now)  # the bucket's components, as in _propose_fn
        proj = local.proj
        proposal: Proposal = propose(proj, local.links, cfg, local.model)
        scores, contrib = final_scores(scorer, proposal)
        # Reassembly comes after, over every bucket's flagged clusters at once (_reassemble_fn).
        clusters = describe(
            proj, proposal, scores, contrib, cfg, names_of=_lookup(local.names), scorer=scorer
        )
        members = account_scores(proj, proposal.sig, proposal.groups, scores)
        out: list[tuple[str, str | None, float, str | None]] = [
            ("cluster", None, c.score, json.dumps(_cluster_dict(c))) for c in clusters
        ]
        out += [("account", a, v, None) for a, v in members.items()]
        return pd.DataFrame(out, columns=["rec", "account", "score", "cluster"])

    return run


def _reassemble_fn(
    cfg: DetectConfig,
    now: int,
    scorer: ClusterScorer,
    pieces: list[list[str]],
    attached: list[float],
) -> Any:
    import pandas as pd

    def run(key: tuple[Any, ...], pdf: pd.DataFrame) -> pd.DataFrame:
        del key
        local = local_rows(pdf, now)  # the flagged clusters' accounts, edges, links, cohorts
        index = {a: i for i, a in enumerate(local.proj.ids)}
        groups = [np.asarray(sorted(index[a] for a in p), dtype=np.int64) for p in pieces]
        done = reassemble_flagged(
            local.proj, local.links, groups, attached, scorer, cfg, _lookup(local.names),
            local.model,
        )  # fmt: skip
        out: list[tuple[str, str | None, float, str | None]] = [
            ("merge", None, 0.0, json.dumps(m)) for m in done.merges
        ]
        out += [("cluster", None, c.score, json.dumps(_cluster_dict(c))) for c in done.clusters]
        out += [("account", a, v, None) for a, v in done.member_scores.items()]
        return pd.DataFrame(out, columns=["rec", "account", "score", "cluster"])

    return run


def _cohort_rows(cohorts: DataFrame) -> DataFrame:
    """Cohort memberships in the wide schema: the payee as ``ident``, the account's least quiet
    days over its cohorts as ``quiet``."""
    from pyspark.sql import functions as F

    return wide(cohorts, COHORT, ident=F.col("payee"), quiet=F.col("least_quiet_days"))


def _lookup(names: dict[int, str]) -> Callable[[list[int]], dict[int, str]]:
    return lambda nodes: {n: names[n] for n in nodes}


def _own_fn(now: int) -> Any:
    import pandas as pd

    def run(key: tuple[Any, ...], pdf: pd.DataFrame) -> pd.DataFrame:
        del key
        local = local_rows(pdf, now, with_links=False)
        proj = local.proj
        own = cl.account_own_scores(cl.account_signals(proj, local.model), proj.n)
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


def detect_spark(
    spark: SparkSession,
    tables: SparkTables,
    config: DetectConfig | None = None,
    *,
    verdicts: dict[str, int] | None = None,
    buckets: int = 0,
    model: TreeScorer | None = None,
    rings: Mapping[str, float] | None = None,
) -> SparkDetection:
    """Detect rings in ``tables`` on Spark (see the module doc). ``verdicts`` (account -> 1
    fraud / 0 legit) override the imported labels, as ``models.verdicts.apply_verdicts`` does
    in-process; ``buckets`` is how many groups the components and the accounts are handed to
    the Python workers in (default: four per shuffle partition). ``model``: the saved account
    model's tree (``spark.account_model``), whose scores the detector then reads as in-process;
    ``rings`` (account -> ring prior, the previous build's: ``models.builds.ring_priors``) for a
    model that reads the ring features, 0 for an account not in it."""
    from pyspark.sql import functions as F

    from ringscope.spark.components import connected_components
    from ringscope.spark.linking import burst_cohorts, link_pairs, with_cohort_links

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
    accounts = cut(accounts)
    base = cut(tables.edges)
    identifiers = cut(tables.identifiers.select("kind", "ident", "flag"))
    for df in getattr(tables, "cached", []):  # the streams' rows, now in the cut tables
        df.unpersist()
    degree = base.groupBy("kind", "ident").agg(F.count(F.lit(1)).alias("degree"))
    edges = cut(
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
    n_buckets = buckets or 4 * int(spark.conf.get("spark.sql.shuffle.partitions", "8") or 8)

    if model is not None:
        from ringscope.spark.account_model import tree_scores

        ringed = accounts
        if rings:
            priors = spark.createDataFrame(list(rings.items()), "account string, ring double")
            ringed = accounts.join(priors, on="account", how="left").withColumn(
                "ring", F.coalesce(F.col("ring"), F.lit(0.0))
            )
        scored = cut(tree_scores(ringed, edges, now, model, n_buckets))
        accounts = cut(accounts.join(scored, "account", "left"))
        counts["accounts_model_scored"] = scored.count()
        t = lap("account_model", t)

    pairs = link_pairs(base, identifiers, params)
    cohorts = None
    cparams = cfg.coactivation_params()
    if cfg.coactivation_weight > 0:
        cohorts = cut(burst_cohorts(base, identifiers, accounts, params, cparams))
    pairs = cut(with_cohort_links(pairs, base, identifiers, accounts, params, cparams, cohorts))
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
        wide(accounts.join(member, "account"), ACCOUNT),
        wide(edges.join(member, "account"), EDGE),
        wide(
            pairs.join(member.withColumnRenamed("account", "a"), "a")
            .join(member.withColumnRenamed("account", "b").withColumnRenamed("comp", "cb"), "b")
            .where(F.col("comp") == F.col("cb")),
            PAIR,
            account=F.col("a"),
        ),
    ]
    if cohorts is not None:
        parts.append(_cohort_rows(cohorts.join(member, "account")))
    grouped = parts[0]
    for p in parts[1:]:
        grouped = grouped.unionByName(p)
    # Components go to the Python workers in buckets (a few per task): one Arrow batch, one
    # call and one local projection per bucket, not per component (most have 3-10 accounts).
    grouped = grouped.withColumn("bucket", F.col("comp") % n_buckets).persist()

    proposed = grouped.groupBy("bucket").applyInPandas(_propose_fn(cfg, now), PROPOSED).collect()
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

    described = grouped.groupBy("bucket").applyInPandas(_describe_fn(cfg, now, scorer), DESCRIBED)
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

    # Reassembly (models.partition.reassemble_flagged): the flagged clusters of every bucket at
    # once, on their own rows (accounts, edges, the links among them across components, cohorts).
    # A cluster is flagged on its described score, rounded to 6 decimals as it is reported.
    flagged_at = [i for i, c in enumerate(clusters) if c.score >= cfg.flag_threshold]
    overrides: dict[str, float] = {}
    if cfg.reassemble_share > 0 and len(flagged_at) >= 2:
        pieces = [list(clusters[i].members) for i in flagged_at]
        attached = [float(clusters[i].features.get("attached", 0.0)) for i in flagged_at]
        ids = spark.createDataFrame(sorted({(a,) for p in pieces for a in p}), "account string")
        ends = ids.withColumnRenamed("account", "a"), ids.withColumnRenamed("account", "b")
        rows = [
            wide(accounts.join(ids, "account"), ACCOUNT),
            wide(edges.join(ids, "account"), EDGE),
            wide(pairs.join(ends[0], "a").join(ends[1], "b"), PAIR, account=F.col("a")),
        ]
        if cohorts is not None:
            rows.append(_cohort_rows(cohorts.join(ids, "account")))
        flagged_rows = rows[0]
        for r in rows[1:]:
            flagged_rows = flagged_rows.unionByName(r)
        back = (
            flagged_rows.withColumn("bucket", F.lit(0))
            .groupBy("bucket")
            .applyInPandas(_reassemble_fn(cfg, now, scorer, pieces, attached), DESCRIBED)
            .collect()
        )
        merges = [json.loads(r["cluster"]) for r in back if r["rec"] == "merge"]
        if merges:
            done = Reassembled(
                merges,
                [_cluster_of(json.loads(r["cluster"])) for r in back if r["rec"] == "cluster"],
                {str(r["account"]): float(r["score"]) for r in back if r["rec"] == "account"},
            )
            clusters = apply_reassembled(clusters, member_scores, flagged_at, done)
            clusters.sort(key=lambda x: (-x.score, x.members))
            overrides = {a: member_scores[a] for a in done.member_scores}
        counts["reassembled"] = len(merges)
        t = lap("reassemble", t)

    bucket = F.abs(F.hash("account")) % n_buckets
    own_rows = wide(accounts.withColumn("comp", bucket), ACCOUNT).unionByName(
        wide(edges.withColumn("comp", bucket), EDGE)
    )
    own = own_rows.groupBy("comp").applyInPandas(_own_fn(now), OWN)  # comp: the bucket here
    in_clusters = described.where(F.col("rec") == "account").select(
        "account", F.col("score").alias("cluster_score")
    )
    if overrides:  # the merged members' scores (reassembly)
        merged = spark.createDataFrame(list(overrides.items()), "account string, merged double")
        in_clusters = in_clusters.join(merged, "account", "left").select(
            "account", F.coalesce(F.col("merged"), F.col("cluster_score")).alias("cluster_score")
        )
    model_col = F.col("model") if model is not None else F.lit(None).cast("double")
    scores = (
        own.join(in_clusters, "account", "left")
        .join(accounts.select("account", model_col.alias("model")), "account", "left")
        .select(
            "account",
            F.coalesce(F.col("cluster_score"), F.col("score")).alias("score"),
            "model",
        )
        .persist()
    )
    counts["accounts_scored"] = scores.count()
    lap("own", t)
    grouped.unpersist()
    return SparkDetection(clusters, scores, member_scores, scorer.describe(), seconds, counts)
