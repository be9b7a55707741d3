"""Hub-aware linking and co-activation as Spark DataFrame operations, equal to the in-process
detector's (``models.linking.link_matrix`` and ``models.coactivation``) to rounding.

Why: the in-process linking builds one sparse incidence matrix per identifier kind and
multiplies it out (``S = sum_k B_k W_k B_k^T``); past one machine's memory that product has to
be a distributed join. Here it is a self-join per identifier of the (account, identifier) rows,
then a sum per account pair. The hubs (identifiers over their kind's degree cap, big merchants)
are filtered out *before* the join, so no identifier contributes more than ``cap^2 / 2`` pairs:
that is what keeps the join linear in the number of edges rather than quadratic in the biggest
hub. The semantics are not new; every rule below is the in-process one (``docs/detection.md``).

Input tables (from ``ringscope.spark.tables``):

- ``edges``: kind string, account string, ident string, currency string, first long, last long
  (epoch seconds, -1 unknown), count long, round_count long, total double. One row per
  relationship, so a payee has one row per (account, payee, currency).
- ``identifiers``: kind string, ident string, flag boolean (a merchant, for payees).
- ``accounts``: account string, created long (-1 unknown), kyc long, label long.

The in-process steps and their closed forms here, per identifier ``i`` of kind ``k``:

* **Degree** ``d_i``: edge rows of ``i`` (one per account, one per currency for payees).
* **Eligible**: ``2 <= d_i <= degree_caps[k]``; a payee also not (merchant and
  ``d_i > merchant_degree_cap``). Only kinds with ``kind_weights[k] > 0`` link.
* **Weight** ``w_i = kind_weights[k] / sqrt(max(d_i - 1, 1))``.
* **Fold** per (account, identifier) (``dedupe_pairs``): first = min over known firsts (-1 if
  none), last = max, count = sum. An edge is *known* when first >= 0 and last >= 0 after the fold.
* **Time** (kinds with ``f_k = time_floors[k] < 1``), bucket ``B = time_bucket_days`` days: a
  known edge covers buckets ``lo = first // B - 1 .. hi = max(last, first) // B + 1``; an
  unknown one covers every bucket of the kind, ``L_k .. H_k`` (the least ``lo`` and greatest
  ``hi`` over the kind's known edges on eligible identifiers; ``0 .. 0`` if it has none). The
  in-process row of an edge holds ``1/sqrt(span)`` on each of its ``span = hi - lo + 1``
  buckets, so the product of two edges' rows is the cosine of their bucket sets::

      cos_ab = overlap / sqrt(span_a * span_b),
      overlap = max(0, min(hi_a, hi_b) - max(lo_a, lo_b) + 1)

  (so known against unknown is ``sqrt(span_a / (H_k - L_k + 1))`` and unknown against unknown
  is 1), and the pair's link through ``i`` is ``w_i * (f_k + (1 - f_k) * cos_ab)``; ``w_i`` for
  kinds that are not time-aware.
* **Co-arrival** (when ``arrival_bonus > 0``), both edges known, arrival bucket
  ``A = arrival_days`` days: each edge holds ``1/sqrt(3)`` on buckets ``first // A - 1 ..
  first // A + 1``, so the product is::

      c_ab = max(0, 3 - |first_a // A - first_b // A|) / 3      (1, 2/3, 1/3, then 0)

  and the pair gets ``w_i * c_ab`` of arrival.

Per pair ``a < b``: ``arrival = sum_i w_i c_ab`` and
``s = sum_i w_i (f_k + (1 - f_k) cos_ab) + arrival_bonus * arrival``. Pairs with ``s == 0``
(possible only with a zero time floor) are dropped, as the sparse matrices drop them.

Co-activation (``models.coactivation``, whose module doc says why): a payee's burst cohort is
its payers (known first payment, payee eligible) whose first payment is within ``burst_days``
of the payee's first ``t0``, who had been open at least ``quiet_days``; kept when it has at
least ``min_members`` and at least ``born_share`` of the payee's payers. Every pair in a cohort
gets ``weight`` per shared cohort (``weight * C C^T``). Onboarding cohorts are the same with
the rule ``first <= t0 + fresh_burst_days`` and ``0 <= quiet <= fresh_days`` and
``fresh_weight``. ``detect`` adds both matrices to both ``s`` and ``arrival``;
:func:`all_links` (:func:`with_cohort_links`) does the same.

Not reproduced: for a first seen in the week of 1970-01-01 (``first // A == 0``) the in-process
co-arrival key of the bucket below wraps to the previous identifier's column and takes its
weight; here it keeps its own identifier's weight. No real timestamp is that early.
"""

from __future__ import annotations

from collections.abc import Mapping

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from ringscope.kinds import PAYEE
from ringscope.models.coactivation import CoactivationParams
from ringscope.models.linking import DAY, LinkParams

__all__ = [
    "all_links",
    "burst_cohorts",
    "coactivation_pairs",
    "dedupe",
    "identifier_weights",
    "link_pairs",
    "with_cohort_links",
]


def _lookup(mapping: Mapping[str, float], key: Column) -> Column:
    """``mapping[key]`` as a column (null for keys not in it): a literal map, no join."""
    if not mapping:
        return F.lit(None).cast("double")
    pairs = [c for k, v in sorted(mapping.items()) for c in (F.lit(k), F.lit(float(v)))]
    return F.create_map(*pairs)[key]


def _div(column: str, divisor: int) -> Column:
    """Integer division ``column // divisor`` for the column's non-negative values (exact, in
    longs: no rounding through doubles)."""
    return F.expr(f"`{column}` div {int(divisor)}")


def dedupe(edges: DataFrame) -> DataFrame:
    """One row per (kind, ident, account), as ``linking.dedupe_pairs``: payees have one edge per
    currency; first = min over known firsts (-1 if none), last = max, count = sum.

    ``edges`` (see the module doc) -> kind, ident, account, first, last (long), count (long)."""
    return edges.groupBy("kind", "ident", "account").agg(
        F.coalesce(F.min(F.when(F.col("first") >= 0, F.col("first"))), F.lit(-1))
        .cast("long")
        .alias("first"),
        F.max("last").cast("long").alias("last"),
        F.sum("count").cast("long").alias("count"),
    )


def identifier_weights(edges: DataFrame, identifiers: DataFrame, params: LinkParams) -> DataFrame:
    """The eligible identifiers (``linking.eligible``) with their degree and weight
    (``linking.identifier_weights``): ``d`` = edge rows per identifier, kept when
    ``2 <= d <= degree_caps[kind]`` and, for payees, not (merchant and
    ``d > merchant_degree_cap``); ``w = kind_weights[kind] / sqrt(max(d - 1, 1))``.

    Kinds without a cap link nothing. Hubs leave here, before any join: what every later join
    sees per identifier is bounded by the caps.

    -> kind, ident, deg (long), w (double); one row per eligible identifier (``w`` may be 0 for
    a kind of weight 0: co-activation uses eligibility without weights)."""
    deg = edges.groupBy("kind", "ident").agg(F.count(F.lit(1)).alias("deg"))
    flags = identifiers.select("kind", "ident", F.col("flag").alias("merchant"))
    cap = _lookup({k: float(v) for k, v in params.degree_caps.items()}, F.col("kind"))
    merchant_hub = (
        (F.col("kind") == F.lit(PAYEE.name))
        & F.coalesce(F.col("merchant"), F.lit(False))
        & (F.col("deg") > F.lit(params.merchant_degree_cap))
    )
    weight = _lookup(params.kind_weights, F.col("kind"))
    return (
        deg.join(flags, on=["kind", "ident"], how="left")
        .where((F.col("deg") >= 2) & (F.col("deg") <= cap) & ~merchant_hub)
        .select(
            "kind",
            "ident",
            F.col("deg").cast("long").alias("deg"),
            (weight / F.sqrt(F.greatest(F.col("deg") - 1.0, F.lit(1.0)))).alias("w"),
        )
    )


def _linked_rows(edges: DataFrame, identifiers: DataFrame, params: LinkParams) -> DataFrame:
    """The folded (kind, ident, account) rows that take part in linking: eligible identifiers
    of kinds with a positive weight, each with its weight, the kind's floor and its bucket
    range and arrival bucket (see the module doc).

    -> kind, ident, account, w, floor, known (bool), lo, hi (long, time buckets; 0 for kinds
    that are not time-aware), fb (long, arrival bucket; null when not known)."""
    linking = sorted(k for k, v in params.kind_weights.items() if v > 0)
    weights = identifier_weights(edges.where(F.col("kind").isin(linking)), identifiers, params)
    rows = dedupe(edges.where(F.col("kind").isin(linking))).join(
        weights.select("kind", "ident", "w"), on=["kind", "ident"], how="inner"
    )
    floors = {k: float(f) for k, f in params.time_floors.items() if k in linking and float(f) < 1.0}
    known = (F.col("first") >= 0) & (F.col("last") >= 0)
    rows = rows.withColumn("known", known).withColumn(
        "floor", F.coalesce(_lookup(floors, F.col("kind")), F.lit(1.0))
    )
    if floors:
        bucket = params.time_bucket_days * DAY
        rows = rows.withColumn("lo", F.when(F.col("known"), _div("first", bucket) - 1)).withColumn(
            "hi",
            F.when(
                F.col("known"),
                F.expr(f"greatest(`last`, `first`) div {int(bucket)}") + 1,
            ),
        )
        # The kind's whole range, over its known edges on eligible identifiers (one row per
        # kind, broadcast): what an edge with unknown times covers.
        span = rows.groupBy("kind").agg(F.min("lo").alias("kind_lo"), F.max("hi").alias("kind_hi"))
        rows = rows.join(F.broadcast(span), on="kind", how="left").select(
            "kind",
            "ident",
            "account",
            "first",
            "known",
            "w",
            "floor",
            F.coalesce(F.col("lo"), F.col("kind_lo"), F.lit(0)).cast("long").alias("lo"),
            F.coalesce(F.col("hi"), F.col("kind_hi"), F.lit(0)).cast("long").alias("hi"),
        )
    else:
        rows = rows.withColumn("lo", F.lit(0).cast("long")).withColumn("hi", F.lit(0).cast("long"))
    fb = F.when(F.col("known"), _div("first", params.arrival_days * DAY))
    return rows.select(
        "kind", "ident", "account", "w", "floor", "known", "lo", "hi", fb.alias("fb")
    )


def link_pairs(edges: DataFrame, identifiers: DataFrame, params: LinkParams) -> DataFrame:
    """The link weight of every account pair that shares an eligible identifier: the upper
    triangle of ``linking.link_matrix``'s total and co-arrival matrices, as rows.

    One self-join of the linked rows on (kind, ident) with ``a < b``, one term per (pair,
    identifier), summed per pair (closed forms in the module doc)::

        link_i    = w_i * (f_k + (1 - f_k) * overlap / sqrt(span_a * span_b))
        arrival_i = w_i * max(0, 3 - |fb_a - fb_b|) / 3       (both known; else 0)
        s         = sum_i link_i + arrival_bonus * sum_i arrival_i

    ``arrival`` is 0 throughout when ``arrival_bonus <= 0`` (as in-process).

    -> a string, b string (account ids, a < b), s double, arrival double; one row per pair with
    ``s != 0``."""
    rows = _linked_rows(edges, identifiers, params)
    left = rows.select(
        "kind",
        "ident",
        "w",
        "floor",
        F.col("account").alias("a"),
        F.col("known").alias("known_a"),
        F.col("lo").alias("lo_a"),
        F.col("hi").alias("hi_a"),
        F.col("fb").alias("fb_a"),
    )
    right = rows.select(
        "kind",
        "ident",
        F.col("account").alias("b"),
        F.col("known").alias("known_b"),
        F.col("lo").alias("lo_b"),
        F.col("hi").alias("hi_b"),
        F.col("fb").alias("fb_b"),
    )
    pairs = left.join(right, on=["kind", "ident"], how="inner").where(F.col("a") < F.col("b"))
    overlap = F.greatest(
        F.least(F.col("hi_a"), F.col("hi_b")) - F.greatest(F.col("lo_a"), F.col("lo_b")) + 1,
        F.lit(0),
    )
    spans = (F.col("hi_a") - F.col("lo_a") + 1) * (F.col("hi_b") - F.col("lo_b") + 1)
    cos = overlap / F.sqrt(spans.cast("double"))
    link = F.when(
        F.col("floor") < 1.0, F.col("w") * (F.col("floor") + (1.0 - F.col("floor")) * cos)
    ).otherwise(F.col("w"))
    if params.arrival_bonus > 0:
        close = F.greatest(F.lit(3) - F.abs(F.col("fb_a") - F.col("fb_b")), F.lit(0)) / 3.0
        arrival = F.when(F.col("known_a") & F.col("known_b"), F.col("w") * close).otherwise(0.0)
    else:
        arrival = F.lit(0.0)
    bonus = float(max(params.arrival_bonus, 0.0))
    return (
        pairs.select("a", "b", link.alias("link"), arrival.alias("arrival"))
        .groupBy("a", "b")
        .agg(F.sum("link").alias("link"), F.sum("arrival").alias("arrival"))
        .select(
            "a",
            "b",
            (F.col("link") + F.lit(bonus) * F.col("arrival")).alias("s"),
            F.col("arrival").cast("double").alias("arrival"),
        )
        .where(F.col("s") != 0.0)
    )


def burst_cohorts(
    edges: DataFrame,
    identifiers: DataFrame,
    accounts: DataFrame,
    link: LinkParams,
    params: CoactivationParams,
    *,
    fresh: bool = False,
) -> DataFrame:
    """Every payee's burst cohort, as ``coactivation.burst_cohorts`` (rules in its module doc);
    with ``fresh`` its onboarding cohort (``first <= t0 + fresh_burst_days * DAY`` and
    ``0 <= quiet <= fresh_days``).

    Per eligible payee ``p`` over its folded payments with a known first payment:
    ``t0(p) = min first``, ``payers(p)`` = their count; a payer is a member when
    ``first <= t0 + burst_days * DAY`` and ``quiet = (first - created) / DAY >= quiet_days``
    (``quiet = -1`` when created is unknown); the cohort is kept when its ``size >= min_members``
    and ``size >= born_share * max(payers, 1)``.

    -> one row per (account, cohort): account string, payee string (the cohort's payee ident),
    quiet_days double (days the account was open before its first payment to this payee),
    least_quiet_days double (the least ``quiet_days`` over the account's cohorts: the in-process
    ``Cohorts.quiet_days``; accounts in no cohort have no row, in-process -1)."""
    payments = edges.where(F.col("kind") == F.lit(PAYEE.name))
    elig = identifier_weights(payments, identifiers, link).select("ident")
    rows = (
        dedupe(payments)
        .join(elig, on="ident", how="left_semi")
        .where(F.col("first") >= 0)
        .select("ident", "account", "first")
    )
    per_payee = rows.groupBy("ident").agg(
        F.min("first").alias("t0"), F.count(F.lit(1)).alias("payers")
    )
    created = accounts.select("account", F.col("created").alias("created"))
    rows = rows.join(per_payee, on="ident", how="inner").join(created, on="account", how="left")
    quiet = F.when(
        F.coalesce(F.col("created"), F.lit(-1)) >= 0,
        (F.col("first") - F.col("created")).cast("double") / float(DAY),
    ).otherwise(-1.0)
    if fresh:
        rule = (
            (F.col("first") <= F.col("t0") + params.fresh_burst_days * DAY)
            & (F.col("quiet_days") >= 0.0)
            & (F.col("quiet_days") <= float(params.fresh_days))
        )
    else:
        rule = (F.col("first") <= F.col("t0") + params.burst_days * DAY) & (
            F.col("quiet_days") >= float(params.quiet_days)
        )
    members = rows.withColumn("quiet_days", quiet).where(rule)
    size = members.groupBy("ident", "payers").agg(F.count(F.lit(1)).alias("size"))
    good = size.where(
        (F.col("size") >= params.min_members)
        & (F.col("size") >= params.born_share * F.greatest(F.col("payers"), F.lit(1)))
    ).select("ident")
    kept = members.join(good, on="ident", how="left_semi")
    return kept.select(
        "account",
        F.col("ident").alias("payee"),
        "quiet_days",
        F.min("quiet_days").over(Window.partitionBy("account")).alias("least_quiet_days"),
    )


def coactivation_pairs(
    cohorts: DataFrame, params: CoactivationParams, *, fresh: bool = False
) -> DataFrame:
    """``coactivation.coactivation_matrix``'s upper triangle: ``weight`` (with ``fresh``,
    ``fresh_weight``) times the number of cohorts a pair shares (``weight * C C^T``), by a
    self-join of :func:`burst_cohorts`' rows on the payee.

    -> a string, b string (a < b), w double; pairs with ``w == 0`` (weight 0) dropped."""
    weight = params.fresh_weight if fresh else params.weight
    left = cohorts.select("payee", F.col("account").alias("a"))
    right = cohorts.select("payee", F.col("account").alias("b"))
    return (
        left.join(right, on="payee", how="inner")
        .where(F.col("a") < F.col("b"))
        .groupBy("a", "b")
        .agg(F.count(F.lit(1)).alias("shared"))
        .select("a", "b", (F.lit(float(weight)) * F.col("shared")).alias("w"))
        .where(F.col("w") != 0.0)
    )


def all_links(
    edges: DataFrame,
    identifiers: DataFrame,
    accounts: DataFrame,
    link: LinkParams,
    coactivation: CoactivationParams | None,
) -> DataFrame:
    """Every link ``detect`` works from: :func:`link_pairs` plus co-activation and onboarding
    cohorts, added to both the link weight and the arrival part (``s + co``, ``arrival + co``),
    as ``detect`` does when ``coactivation_weight > 0`` (``fresh_weight > 0``). ``coactivation``
    None (or of weights <= 0) leaves them out.

    -> a string, b string (a < b), s double, arrival double; one row per linked pair."""
    pairs = link_pairs(edges, identifiers, link)
    if coactivation is None:
        return pairs
    return with_cohort_links(pairs, edges, identifiers, accounts, link, coactivation)


def with_cohort_links(
    pairs: DataFrame,
    edges: DataFrame,
    identifiers: DataFrame,
    accounts: DataFrame,
    link: LinkParams,
    params: CoactivationParams,
    cohorts: DataFrame | None = None,
) -> DataFrame:
    """``pairs`` (a, b, s, arrival) plus the wake cohorts' links (``cohorts``, computed here
    when None) and the onboarding cohorts' links, each where its weight is positive."""
    extra = []
    if params.weight > 0:
        wake = (
            cohorts
            if cohorts is not None
            else burst_cohorts(edges, identifiers, accounts, link, params)
        )
        extra.append(coactivation_pairs(wake, params))
    if params.fresh_weight > 0:
        fresh = burst_cohorts(edges, identifiers, accounts, link, params, fresh=True)
        extra.append(coactivation_pairs(fresh, params, fresh=True))
    if not extra:
        return pairs
    for co in extra:
        pairs = pairs.unionByName(
            co.select("a", "b", F.col("w").alias("s"), F.col("w").alias("arrival"))
        )
    return pairs.groupBy("a", "b").agg(F.sum("s").alias("s"), F.sum("arrival").alias("arrival"))
