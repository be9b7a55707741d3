"""The rows a Spark engine step hands to a Python worker, and back to numpy: one wide table
(every row type in one schema, ``rec`` saying which) grouped by component or bucket, so one
``applyInPandas`` call holds a group's accounts, edges, internal links and cohort memberships at
once, and :func:`local_rows` turns them into the local projection the in-process code runs on
(``models.partition``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from ringscope.kinds import IDENTIFIER_KINDS, PAYEE
from ringscope.models.coactivation import Cohorts
from ringscope.models.detect import Links
from ringscope.models.partition import LocalEdges, local_projection
from ringscope.models.projection import F64, Projection

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame

__all__ = [
    "ACCOUNT",
    "COHORT",
    "EDGE",
    "KIND_NAMES",
    "PAIR",
    "WIDE_COLUMNS",
    "Local",
    "cut",
    "local_rows",
    "wide",
]

KIND_NAMES = tuple(k.name for k in IDENTIFIER_KINDS)

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
    ("model", "double"),
)


@dataclass
class Local:
    """One group's rows as numpy: the local projection, its links (empty without pairs), the
    identifiers' names by the keys the projection numbers them with, and the account model's
    scores in the projection's account order (None when no model ran)."""

    proj: Projection
    links: Links
    names: dict[int, str]
    model: F64 | None


def local_rows(pdf: pd.DataFrame, now: int, with_links: bool = True) -> Local:
    """The local projection, links, identifier names and model scores of one group's rows.

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
    # The account model's scores when it ran (on any row), an account without one at 0.0 as
    # ``detect(account_model_scores=...)`` reads a missing account; None when no model ran.
    scored = acc["model"].notna().to_numpy() if "model" in acc else np.zeros(n, dtype=bool)
    model = acc["model"].fillna(0.0).to_numpy(dtype=np.float64) if scored.any() else None
    if not with_links:
        empty = sp.csr_matrix((n, n), dtype=np.float64)
        return Local(proj, Links(empty, empty, None), names, model)
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
    return Local(proj, Links(s, arrival, cohorts), names, model)


def cut(df: DataFrame) -> DataFrame:
    """``df`` computed now, kept, and with its lineage cut: a checkpoint where the session has
    a checkpoint directory (reliable storage on a cluster), a local one otherwise."""
    if df.sparkSession.sparkContext.getCheckpointDir():
        return df.checkpoint(eager=True)
    return df.localCheckpoint(eager=True)


def wide(df: DataFrame, rec: str, **cols: Any) -> DataFrame:
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
