"""The account model's tree on Spark: every account's probability from the saved model, with
the features the in-process model computes (``models.risk``), bucket by bucket.

The tree's features reach two hops (account -> identifier -> account), so they are made in
three grouped passes, each running the in-process functions on a bucket's rows::

    account x       per bucket of accounts: their edges, with       features.account_features
                    whole-graph identifier sizes
    identifier x    per bucket of identifiers: their edges          features.identifier_features
    identifier      per bucket of identifiers (hubs left out):      risk.identifier_aggregates,
    aggregates      their accounts' x, their label counts, the      features.label_counts,
                    tops of their accounts' ring priors             features.edge_ring_tops
    score           per bucket of accounts: their own x, and per     risk.tree_rows,
                    identifier it uses its x and aggregates          features.label_features,
                                                                     features.edge_ring_features,
                                                                     risk.TreeScorer

A bucket holds every row its step needs (an identifier's bucket all of its accounts; an
account's bucket every identifier it uses, with whole-graph values), so each row comes out as
the in-process model makes it. The sums of floats over an account's identifiers run in another
order than in-process (identifiers are numbered by Neo4j node there): the float64 sums may
differ in the last bit, below the float32 the tree reads.

The ring features (``features.ring_features``) read each account's ring prior, the ``ring``
column of ``accounts`` (the previous build's, read by the driver; 0 outside any cluster): a
model trained without them reads zeros there and never splits on them.

The GNN does not run here: at this scale the account model is its tree, with the tree's own
calibration (``TreeScorer``); the build records it (``jobs.rebuild``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from ringscope.models.features import (
    FEATURE_SCHEMA,
    account_features,
    edge_ring_features,
    edge_ring_tops,
    identifier_features,
    label_counts,
    label_features,
)
from ringscope.models.risk import TreeScorer, identifier_aggregates, tree_rows
from ringscope.spark.rows import ACCOUNT, EDGE, KIND_NAMES, cut, local_rows, wide

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame

__all__ = ["tree_scores"]

ACCOUNT_X = "account string, xa array<float>"
IDENTIFIER_X = "kind string, ident string, xi array<float>"
AGGREGATES = (
    "kind string, ident string, im array<float>, ix array<float>, nb long, fraud long, legit long, "
    "rs double, r1 double, r2 double"
)
SCORED = "account string, model double"
KIND_ORDER = {k: i for i, k in enumerate(KIND_NAMES)}


def _stack(values: Any, width: int) -> np.ndarray[Any, np.dtype[np.float32]]:
    """A column of arrays (Arrow's array<float>) as one float32 matrix."""
    if len(values) == 0:
        return np.zeros((0, width), dtype=np.float32)
    return np.stack([np.asarray(v, dtype=np.float32) for v in values]).astype(np.float32)


def _account_x(now: int) -> Any:
    import pandas as pd

    def run(key: tuple[Any, ...], pdf: pd.DataFrame) -> pd.DataFrame:
        del key
        local = local_rows(pdf, now, with_links=False)
        x = account_features(local.proj)
        return pd.DataFrame({"account": local.proj.ids, "xa": list(x)})

    return run


def _identifier_x(now: int) -> Any:
    import pandas as pd

    def run(key: tuple[Any, ...], pdf: pd.DataFrame) -> pd.DataFrame:
        del key
        # The edges' accounts as account rows: identifier features read no account column.
        accounts = sorted(set(pdf["account"].astype(str)))
        rows = pd.DataFrame(
            {"rec": ACCOUNT, "account": accounts, "created": -1, "kyc": -1, "label": -1}
        )
        local = local_rows(pd.concat([rows, pdf], ignore_index=True), now, with_links=False)
        kinds: list[str] = []
        idents: list[str] = []
        xs: list[Any] = []
        for kind in KIND_NAMES:
            e = local.proj.kinds.get(kind)
            if e is None or e.m == 0:
                continue
            x = identifier_features(e)
            kinds += [kind] * e.m
            idents += [local.names[int(node)] for node in e.nodes]
            xs += list(x)
        return pd.DataFrame({"kind": kinds, "ident": idents, "xi": xs})

    return run


def _aggregates(pdf: pd.DataFrame) -> pd.DataFrame:
    """Per identifier of the bucket: the mean and max of its accounts' x, its accounts, its
    known fraud and legit ones, and the sum, largest and second largest of its accounts' ring
    priors (rows: kind, ident, account, xa, label, ring; hubs already out)."""
    import pandas as pd

    width = len(FEATURE_SCHEMA.account)
    pdf = pdf.sort_values(["kind", "ident", "account"], kind="stable")
    accounts, acc = np.unique(pdf["account"].astype(str).to_numpy(), return_inverse=True)
    new, ident = _identifiers(pdf)
    first = np.unique(acc, return_index=True)[1]
    x_acc = _stack(pdf["xa"].to_numpy()[first], width)
    label = pdf["label"].to_numpy(dtype=np.int64)[first]
    ring = pdf["ring"].to_numpy(dtype=np.float64)[first]
    bt = sp.csr_matrix(
        (np.ones(len(acc)), (ident, acc.ravel())), shape=(int(new.sum()), len(accounts))
    )
    mean, mx = identifier_aggregates(bt, x_acc)
    deg, fraud, legit = label_counts(bt.T.tocsr(), label)
    total, top1, top2 = edge_ring_tops(acc.ravel().astype(np.int64), ident, ring, int(new.sum()))
    heads = pdf[new]
    return pd.DataFrame(
        {
            "kind": heads["kind"].to_numpy(),
            "ident": heads["ident"].to_numpy(),
            "im": list(mean),
            "ix": list(mx),
            "nb": deg.astype(np.int64),
            "fraud": fraud.astype(np.int64),
            "legit": legit.astype(np.int64),
            "rs": total,
            "r1": top1,
            "r2": top2,
        }
    )


def _identifiers(pdf: pd.DataFrame) -> tuple[np.ndarray[Any, np.dtype[np.bool_]], Any]:
    """For rows sorted by identifier: where each identifier starts, and each row's identifier
    number (0, 1, ... in that order)."""
    kind, ident = pdf["kind"].to_numpy(), pdf["ident"].to_numpy()
    new = np.ones(len(pdf), dtype=bool)
    new[1:] = (kind[1:] != kind[:-1]) | (ident[1:] != ident[:-1])
    return new, np.cumsum(new) - 1


def _score(scorer: Any) -> Any:
    import pandas as pd

    def run(key: tuple[Any, ...], pdf: pd.DataFrame) -> pd.DataFrame:
        del key
        a_width, i_width = len(FEATURE_SCHEMA.account), len(FEATURE_SCHEMA.identifier)
        acc_rows = pdf[pdf["rec"] == ACCOUNT].sort_values("account", kind="stable")
        ids = acc_rows["account"].astype(str).tolist()
        index = {a: i for i, a in enumerate(ids)}
        x_acc = _stack(acc_rows["xa"].to_numpy(), a_width)
        label = acc_rows["label"].to_numpy(dtype=np.int64)
        ring = acc_rows["ring"].to_numpy(dtype=np.float64)
        e = pdf[pdf["rec"] == EDGE].copy()
        # Identifiers in the whole graph's column order as far as it is known here: by kind.
        e["k"] = e["kind"].map(KIND_ORDER)
        e = e.sort_values(["k", "ident", "account"], kind="stable")
        new, col = _identifiers(e)
        heads = e[new]
        row = np.asarray([index[a] for a in e["account"].astype(str)], dtype=np.int64)
        b = sp.csr_matrix((np.ones(len(row)), (row, col)), shape=(len(ids), int(new.sum())))
        tops = (
            heads["rs"].to_numpy(dtype=np.float64),
            heads["r1"].to_numpy(dtype=np.float64),
            heads["r2"].to_numpy(dtype=np.float64),
        )
        counts = (
            heads["nb"].to_numpy(dtype=np.float64),
            heads["fraud"].to_numpy(dtype=np.float64),
            heads["legit"].to_numpy(dtype=np.float64),
        )
        x = tree_rows(
            b,
            x_acc,
            _stack(heads["xi"].to_numpy(), i_width),
            _stack(heads["im"].to_numpy(), a_width),
            _stack(heads["ix"].to_numpy(), a_width),
            label_features(b, label, counts),
            edge_ring_features(row, col.astype(np.int64), len(ids), ring, tops),
        )
        p = scorer.value.predict_proba(x) if len(ids) else np.zeros(0)
        return pd.DataFrame({"account": ids, "model": np.round(p, 6)})

    return run


def tree_scores(
    accounts: DataFrame,
    edges: DataFrame,
    now: int,
    scorer: TreeScorer,
    buckets: int,
) -> DataFrame:
    """Every account's probability from ``scorer`` (``account string, model double``, rounded
    to 6 places as the rebuild writes them). ``accounts``: account, created, kyc, label (the
    verdicts applied), ring (the ring prior; 0 where the column is missing); ``edges``: the
    engine's edges with whole-graph ``degree`` and ``flag``. Identifiers on more accounts than
    the model's ``hub_degree`` are left out of its aggregates."""
    from pyspark.sql import functions as F

    spark = accounts.sparkSession
    if "ring" not in accounts.columns:
        accounts = accounts.withColumn("ring", F.lit(0.0))
    by_account = F.abs(F.hash("account")) % buckets
    by_ident = F.abs(F.hash("kind", "ident")) % buckets
    own = wide(accounts.withColumn("comp", by_account), ACCOUNT).unionByName(
        wide(edges.withColumn("comp", by_account), EDGE)
    )
    # Computed once: the identifiers' aggregates and the accounts' rows both read it.
    xa = cut(own.groupBy("comp").applyInPandas(_account_x(now), ACCOUNT_X))
    xi = (
        wide(edges.withColumn("comp", by_ident), EDGE)
        .groupBy("comp")
        .applyInPandas(_identifier_x(now), IDENTIFIER_X)
    )
    labels = accounts.select("account", "label", "ring")
    used = (
        edges.where(F.col("degree") <= scorer.hub_degree)
        .select("account", "kind", "ident")
        .distinct()
    )
    aggregates = (
        used.join(xa, "account")
        .join(labels, "account")
        .withColumn("comp", by_ident)
        .groupBy("comp")
        .applyInPandas(_aggregates, AGGREGATES)
        .join(xi, ["kind", "ident"])
    )
    rows = (
        xa.join(labels, "account")
        .withColumn("rec", F.lit(ACCOUNT))
        .unionByName(
            used.join(aggregates, ["kind", "ident"]).withColumn("rec", F.lit(EDGE)),
            allowMissingColumns=True,
        )
        .withColumn("comp", by_account)
    )
    shared = spark.sparkContext.broadcast(scorer)
    return rows.groupBy("comp").applyInPandas(_score(shared), SCORED)
