"""Node features and the PyG export: the projection (``models.projection``, the same arrays the
ring detector reads) turned into a versioned feature schema and a ``HeteroData``.

Every feature is a plain function of the graph, so an account that arrived after training gets
its features (and a score) from its neighbourhood without retraining. ``FEATURE_SCHEMA`` is the
contract between a trained model and the graph it scores: its version and names are stored in the
model manifest, and loading a model against a different schema fails (``models.artefacts``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
import torch
from torch_geometric.data import HeteroData

from ringscope.models.linking import dedupe_pairs
from ringscope.models.projection import F64, I64, KIND_NAMES, KindEdges, Projection

__all__ = [
    "FEATURE_SCHEMA",
    "FeatureSchema",
    "account_features",
    "identifier_features",
    "incidence",
    "label_counts",
    "label_features",
    "profile_columns",
    "ring_features",
    "segment_max",
    "to_hetero",
]

DAY = 86_400.0
F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class FeatureSchema:
    """Names of the columns of each node type's ``x``, in order, and the schema's version."""

    version: str
    account: tuple[str, ...]
    identifier: tuple[str, ...]
    kinds: tuple[str, ...]

    def digest(self) -> str:
        blob = json.dumps(
            [self.version, self.account, self.identifier, self.kinds], separators=(",", ":")
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, object]:
        return {
            "version": self.version,
            "digest": self.digest(),
            "account": list(self.account),
            "identifier": list(self.identifier),
            "kinds": list(self.kinds),
        }


_ACCOUNT = (
    ("age_days_log", "log(1 + days since the account was opened); 0 when unknown"),
    ("created_unknown", "1 when the opening time is unknown"),
    ("kyc_0", "KYC level 0 (none)"),
    ("kyc_1", "KYC level 1 (phone verified)"),
    ("kyc_2", "KYC level 2 (ID verified)"),
    ("kyc_3", "KYC level 3 (ID and face verified)"),
    ("kyc_unknown", "KYC level unknown"),
    *((f"deg_{k}", f"log(1 + distinct {k}s used)") for k in KIND_NAMES),
    *((f"shared_{k}", f"log(1 + {k}s this account shares with others)") for k in KIND_NAMES),
    *((f"hub_{k}", f"log(1 + accounts on the busiest {k} it uses)") for k in KIND_NAMES),
    ("emulator", "uses an emulator device"),
    ("virtual_phone", "uses a virtual phone number"),
    ("payments_log", "log(1 + payments made)"),
    ("amount_log", "log(1 + total amount paid)"),
    ("round_share", "share of payments in round amounts"),
    ("merchant_share", "share of payments to merchants"),
    ("payees_log", "log(1 + distinct payees)"),
    ("activity_days_log", "log(1 + days between its first and last observation)"),
    ("observations_log", "log(1 + observations of all its identifiers)"),
)
_IDENTIFIER = (
    ("degree_log", "log(1 + accounts using it): hubness"),
    ("flag", "emulator device / virtual phone / merchant payee"),
    ("observations_log", "log(1 + observations)"),
    ("span_days_log", "log(1 + days between first and last observation)"),
    ("arrival_spread_log", "log(1 + std of its accounts' first-use times, in days)"),
    ("amount_log", "payees: log(1 + total amount received)"),
    ("round_share", "payees: share of payments in round amounts"),
)
FEATURE_DESCRIPTIONS: dict[str, str] = dict(_ACCOUNT) | {f"id:{n}": d for n, d in _IDENTIFIER}
# Version 2: identifiers are sized by their relationships (identifier_sizes), where version 1
# counted a payee's distinct payers; the same values wherever each payer uses one currency.
# Version 3: the tree reads the ring features (ring_features) after the label features; a
# version-2 model's tree has four columns fewer and is retrained, not misread.
FEATURE_SCHEMA = FeatureSchema(
    version="3",
    account=tuple(n for n, _ in _ACCOUNT),
    identifier=tuple(n for n, _ in _IDENTIFIER),
    kinds=KIND_NAMES,
)


def _log1p(a: npt.ArrayLike) -> F64:
    return np.log1p(np.maximum(np.asarray(a, dtype=np.float64), 0.0))


def segment_max(values: F64, segments: npt.NDArray[np.integer], n: int, empty: float = 0.0) -> F64:
    """Per segment (0..n-1), the max of ``values`` in it; ``empty`` where a segment has none."""
    out = np.full(n, -np.inf)
    np.maximum.at(out, segments, values)
    out[np.isinf(out)] = empty
    return out


def identifier_sizes(e: KindEdges) -> I64:
    """Each identifier's size in the whole graph: its relationships from accounts.

    For every kind but payees that is its distinct accounts (ingest MERGEs one relationship per
    account and identifier); a payee has one PAID per account and currency, so an account that
    paid it in two currencies counts twice. Relationships, not distinct accounts, because Neo4j
    answers a node's relationship count from its degree store at once, where counting a big
    merchant's distinct payers walks hundreds of thousands of relationships: ``explain`` and
    ``screen`` size identifiers on the decision path, and must size them as the rebuild does.
    (Every generated world pays each payee in one currency per account: no value changes.)
    """
    if e.full_degree is not None:
        return e.full_degree
    return e.degree()


def accounts_per_identifier(e: KindEdges, ident: npt.NDArray[np.integer]) -> I64:
    """Each identifier's size (:func:`identifier_sizes`); ``ident`` is ``dedupe_pairs``'s."""
    del ident
    return identifier_sizes(e)


def identifier_features(e: KindEdges) -> F32:
    """``x`` for one identifier kind, columns as in ``FEATURE_SCHEMA.identifier``."""
    acc, ident, first, _, _ = dedupe_pairs(e)
    m = e.m
    deg = accounts_per_identifier(e, ident).astype(np.float64)
    obs = np.bincount(e.ident, weights=e.count, minlength=m)
    lo = np.full(m, np.inf)
    np.minimum.at(lo, e.ident, np.where(e.first < 0, np.inf, e.first).astype(np.float64))
    hi = np.full(m, -np.inf)
    np.maximum.at(hi, e.ident, np.where(e.last < 0, -np.inf, e.last).astype(np.float64))
    span = np.where(np.isfinite(lo) & np.isfinite(hi), (hi - lo) / DAY, 0.0)
    known = first >= 0
    f_days = np.where(known, first / DAY, 0.0)
    n_k = np.bincount(ident, weights=known, minlength=m)
    s1 = np.bincount(ident, weights=f_days, minlength=m)
    s2 = np.bincount(ident, weights=f_days**2, minlength=m)
    mean = np.divide(s1, n_k, out=np.zeros(m), where=n_k > 0)
    var = np.divide(s2, n_k, out=np.zeros(m), where=n_k > 0) - mean**2
    amount: F64 = np.zeros(m)
    round_share: F64 = np.zeros(m)
    if e.total is not None and e.round_count is not None:
        amount = np.bincount(e.ident, weights=e.total, minlength=m).astype(np.float64)
        rnd = np.bincount(e.ident, weights=e.round_count, minlength=m)
        round_share = np.divide(rnd, obs, out=np.zeros(m), where=obs > 0)
    cols = [
        _log1p(deg),
        e.flag.astype(np.float64),
        _log1p(obs),
        _log1p(span),
        _log1p(np.sqrt(np.maximum(var, 0.0))),
        _log1p(amount),
        round_share,
    ]
    del acc
    return np.column_stack(cols).astype(np.float32)


def profile_columns(created: I64, kyc: I64, now: int) -> dict[str, F64]:
    """The account columns read off the account node and "now" alone (age, KYC): the ones a
    precomputed feature row (``models.screen_table``) recomputes at decision time."""
    known = created >= 0
    cols: dict[str, F64] = {
        "age_days_log": np.where(known, _log1p((now - created) / DAY), 0.0),
        "created_unknown": (~known).astype(np.float64),
    }
    for level in range(4):
        cols[f"kyc_{level}"] = (kyc == level).astype(np.float64)
    cols["kyc_unknown"] = ((kyc < 0) | (kyc > 3)).astype(np.float64)
    return cols


def account_features(proj: Projection) -> F32:
    """``x`` for accounts, columns as in ``FEATURE_SCHEMA.account``."""
    n = proj.n
    cols = profile_columns(proj.created, proj.kyc, proj.now())
    lo = np.full(n, np.inf)
    hi = np.full(n, -np.inf)
    obs = np.zeros(n)
    flags = {"device": np.zeros(n), "phone": np.zeros(n)}
    for kind in KIND_NAMES:
        e = proj.kinds.get(kind)
        if e is None or len(e.acc) == 0:
            for p in ("deg", "shared", "hub"):
                cols[f"{p}_{kind}"] = np.zeros(n)
            continue
        acc, ident, _, _, _ = dedupe_pairs(e)
        deg_i = accounts_per_identifier(e, ident)
        cols[f"deg_{kind}"] = _log1p(np.bincount(acc, minlength=n))
        cols[f"shared_{kind}"] = _log1p(np.bincount(acc, weights=deg_i[ident] >= 2, minlength=n))
        cols[f"hub_{kind}"] = _log1p(segment_max(deg_i[ident].astype(np.float64), acc, n))
        np.minimum.at(lo, e.acc, np.where(e.first < 0, np.inf, e.first).astype(np.float64))
        np.maximum.at(hi, e.acc, np.where(e.last < 0, -np.inf, e.last).astype(np.float64))
        obs += np.bincount(e.acc, weights=e.count, minlength=n)
        if kind in flags:
            flags[kind] = segment_max(e.flag[e.ident].astype(np.float64), e.acc.astype(np.int64), n)
    cols["emulator"] = flags["device"]
    cols["virtual_phone"] = flags["phone"]
    pay = proj.kinds.get("payee")
    if pay is not None and pay.total is not None and pay.round_count is not None:
        cnt = np.bincount(pay.acc, weights=pay.count, minlength=n)
        cols["payments_log"] = _log1p(cnt)
        cols["amount_log"] = _log1p(np.bincount(pay.acc, weights=pay.total, minlength=n))
        rnd = np.bincount(pay.acc, weights=pay.round_count, minlength=n)
        cols["round_share"] = np.divide(rnd, cnt, out=np.zeros(n), where=cnt > 0)
        merch = np.bincount(pay.acc, weights=pay.count * pay.flag[pay.ident], minlength=n)
        cols["merchant_share"] = np.divide(merch, cnt, out=np.zeros(n), where=cnt > 0)
        pacc, _, _, _, _ = dedupe_pairs(pay)
        cols["payees_log"] = _log1p(np.bincount(pacc, minlength=n))
    else:
        for name in ("payments_log", "amount_log", "round_share", "merchant_share", "payees_log"):
            cols[name] = np.zeros(n)
    span = np.where(np.isfinite(lo) & np.isfinite(hi), (hi - lo) / DAY, 0.0)
    cols["activity_days_log"] = _log1p(span)
    cols["observations_log"] = _log1p(obs)
    return np.column_stack([cols[name] for name in FEATURE_SCHEMA.account]).astype(np.float32)


def incidence(proj: Projection, max_degree: int | None = None) -> sp.csr_matrix:
    """Accounts x all identifiers (kinds stacked in ``KIND_NAMES`` order), 0/1 entries.

    ``max_degree`` leaves hubs out (an IP behind 3,000 accounts says nothing about any one).

    Built in one pass from the edges, in the layout the per-kind build (a matrix per kind,
    times the diagonal hub mask, stacked) left: within a row, kinds in order, and inside a
    kind identifiers ascending, or descending once hubs are masked (scipy's product emits a
    row's entries in reverse). Sums over a row follow that order, so the layout is kept bit for
    bit (``tests/test_models_risk.py``); a screen's neighbourhood of a few dozen accounts paid
    a millisecond of scipy's per-call cost for the old way.
    """
    accs: list[npt.NDArray[np.int64]] = []
    keys: list[npt.NDArray[np.int64]] = []
    starts = [0]  # each kind's first column, and the width after the last
    for kind in KIND_NAMES:
        e = proj.kinds.get(kind)
        m = e.m if e is not None else 0
        if e is not None and m:
            acc, ident = e.acc.astype(np.int64), e.ident.astype(np.int64)
            if max_degree is not None:
                keep = (identifier_sizes(e) <= max_degree)[ident]
                acc, ident = acc[keep], ident[keep]
                ident = m - 1 - ident  # sorted ascending here, read back descending below
            accs.append(acc)
            keys.append(ident + starts[-1])
        starts.append(starts[-1] + m)
    offset = starts[-1]
    acc = np.concatenate(accs) if accs else np.zeros(0, dtype=np.int64)
    if not len(acc):  # no edges, or every one to a hub
        return sp.csr_matrix((proj.n, offset))
    key = np.concatenate(keys)
    # One sort key per (account, column): row-major, then the key order within the row.
    order = np.sort(acc * max(offset, 1) + key)
    order = order[np.r_[True, order[1:] != order[:-1]]]  # a pair once (a payee per currency)
    acc, key = order // max(offset, 1), order % max(offset, 1)
    if max_degree is not None:  # back from the reversed keys to the kind's columns
        bounds = np.asarray(starts, dtype=np.int64)
        block = np.searchsorted(bounds, key, side="right") - 1
        key = bounds[block] + (bounds[block + 1] - 1 - key)
    indptr = np.zeros(proj.n + 1, dtype=np.int64)
    np.cumsum(np.bincount(acc, minlength=proj.n), out=indptr[1:])
    return sp.csr_matrix((np.ones(len(key)), key, indptr), shape=(proj.n, offset))


def label_counts(b: sp.csr_matrix, known: I64) -> tuple[F64, F64, F64]:
    """Per identifier (column of ``b``): its accounts, its known fraud and its known legit ones
    (``known`` as in :func:`label_features`)."""
    coo = b.tocoo()
    return edge_label_counts(coo.row.astype(np.int64), coo.col.astype(np.int64), known, b.shape[1])


def edge_label_counts(acc: I64, ident: I64, known: I64, m: int) -> tuple[F64, F64, F64]:
    """:func:`label_counts` from the edges (account, identifier) of ``m`` identifiers."""
    deg = np.bincount(ident, minlength=m).astype(np.float64)
    fraud = np.bincount(ident, weights=(known == 1).astype(np.float64)[acc], minlength=m)
    legit = np.bincount(ident, weights=(known == 0).astype(np.float64)[acc], minlength=m)
    return deg, fraud.astype(np.float64), legit.astype(np.float64)


def label_features(b: sp.csr_matrix, known: I64, counts: tuple[F64, F64, F64] | None = None) -> F32:
    """Leak-free neighbour-label features: for each account, over the identifiers it uses, the
    known fraud and legit accounts on them **other than itself** (max share and log count).

    ``known`` is 1 fraud, 0 legit, -1 unknown; pass only the labels the model may see (training
    labels while fitting), so a held-out account's own label never leaks into its features.
    ``counts`` (:func:`label_counts` of the whole graph, per column of ``b``) is for a ``b``
    that holds some accounts only (the Spark engine scores accounts a bucket at a time): the
    identifiers' other accounts then count without being rows here.
    """
    coo = b.tocoo()
    counts = counts if counts is not None else label_counts(b, known)
    return edge_label_features(
        coo.row.astype(np.int64), coo.col.astype(np.int64), b.shape[0], known, counts
    )


def edge_label_features(
    acc: I64, ident: I64, n: int, known: I64, counts: tuple[F64, F64, F64]
) -> F32:
    """:func:`label_features` from the edges (account, identifier) of ``n`` accounts, in the
    order their sums take them, and the identifiers' ``counts``."""
    deg, fraud_per_id, legit_per_id = counts
    fraud = (known == 1).astype(np.float64)
    legit = (known == 0).astype(np.float64)
    cols = []
    for lab, per_id in ((fraud, fraud_per_id), (legit, legit_per_id)):
        others = per_id[ident] - lab[acc]  # the account's own label taken out
        share = others / np.maximum(deg[ident] - 1.0, 1.0)
        cols.append(segment_max(share, acc, n))
        cols.append(_log1p(np.bincount(acc, weights=others, minlength=n)))
    return np.column_stack(cols).astype(np.float32)


LABEL_FEATURES = ("fraud_nbr_share_max", "fraud_nbr_log", "legit_nbr_share_max", "legit_nbr_log")


def ring_tops(b: sp.csr_matrix, ring: F64) -> tuple[F64, F64, F64]:
    """Per identifier (column of ``b``): the sum, the largest and the second largest of its
    accounts' ring priors (the second counts a tie: two accounts at 0.9 give 0.9 and 0.9)."""
    coo = b.tocoo()
    return edge_ring_tops(coo.row.astype(np.int64), coo.col.astype(np.int64), ring, b.shape[1])


def edge_ring_tops(acc: I64, ident: I64, ring: F64, m: int) -> tuple[F64, F64, F64]:
    """:func:`ring_tops` from the edges (account, identifier) of ``m`` identifiers, each
    identifier's sum taken in their order."""
    v = ring[acc]
    total = np.bincount(ident, weights=v, minlength=m).astype(np.float64)
    top1 = segment_max(v, ident, m)
    # Take one holder at the top out of each identifier; the max of the rest is the second.
    order = np.lexsort((-v, ident))
    first = np.ones(len(order), dtype=bool)
    first[1:] = ident[order][1:] != ident[order][:-1]
    rest = order[~first]
    top2 = segment_max(v[rest], ident[rest], m)
    return total, top1, top2


def ring_features(b: sp.csr_matrix, ring: F64, tops: tuple[F64, F64, F64] | None = None) -> F32:
    """What the last build said about the rings around each account, leak-free of its own.

    ``ring`` (n,) is each account's *ring prior*: the label-free score of its cluster in the
    build current when the graph was read (``ClusterScorer.unlabelled_proba``; 0 outside any
    cluster or before any build). Per account, over the identifiers it uses (columns of ``b``,
    accounts x identifiers, hubs already left out):

    * ``ring_nbr_max``: ``max_{i in ids(a)} max_{b on i, b != a} ring[b]``, the strongest
      cluster among the other accounts on its identifiers;
    * ``ring_nbr_log``: ``log(1 + sum_{i in ids(a)} sum_{b on i, b != a} ring[b])``.

    The account's own prior is left out on purpose: a new account (a screen's, or one opened
    since the last build) has none, and a model that learnt from its own cluster's score would
    not transfer to it. So an account on a flagged ring's farm device reads the ring's score
    through the device, whether the build knew it or not. ``tops`` (:func:`ring_tops` of the
    whole graph, per column of ``b``) is for a ``b`` that holds some accounts only.
    Shape: (n, 2) float32.
    """
    coo = b.tocoo()
    tops = tops if tops is not None else ring_tops(b, ring)
    return edge_ring_features(
        coo.row.astype(np.int64), coo.col.astype(np.int64), b.shape[0], ring, tops
    )


def edge_ring_features(acc: I64, ident: I64, n: int, ring: F64, tops: tuple[F64, F64, F64]) -> F32:
    """:func:`ring_features` from the edges (account, identifier) of ``n`` accounts, in the
    order their sums take them, and the identifiers' ``tops``. Shape: (n, 2) float32."""
    total, top1, top2 = tops
    own = ring[acc]
    # The others' max: the second largest where the account holds the largest.
    others_max = np.where(own >= top1[ident], top2[ident], top1[ident])
    others_sum = np.maximum(total[ident] - own, 0.0)
    return np.column_stack(
        [segment_max(others_max, acc, n), _log1p(np.bincount(acc, weights=others_sum, minlength=n))]
    ).astype(np.float32)


RING_FEATURES = ("ring_nbr_max", "ring_nbr_log")


def to_hetero(proj: Projection, min_degree: int = 2) -> HeteroData:
    """The PyG graph: ``account`` plus one node type per identifier kind, ``uses`` edges from
    accounts and ``used_by`` edges back, features as in ``FEATURE_SCHEMA``.

    Identifiers used by fewer than ``min_degree`` accounts are left out: an unshared device
    passes no message between accounts (its count is already in ``deg_*``), and dropping them
    shrinks the graph several-fold (most identifiers are personal).
    """
    data = HeteroData()
    data["account"].x = torch.from_numpy(account_features(proj))
    data["account"].num_nodes = proj.n
    width = len(FEATURE_SCHEMA.identifier)
    for kind in KIND_NAMES:  # every kind, even an empty one: the model's relations are fixed
        e = proj.kinds.get(kind)
        if e is None or e.m == 0:
            data[kind].x = torch.zeros(0, width)
            data[kind].num_nodes = 0
            ei = torch.zeros(2, 0, dtype=torch.int64)
        else:
            acc, ident, _, _, _ = dedupe_pairs(e)
            keep = accounts_per_identifier(e, ident) >= min_degree
            new_index = np.cumsum(keep) - 1
            on = keep[ident]
            data[kind].x = torch.from_numpy(identifier_features(e)[keep])
            data[kind].num_nodes = int(keep.sum())
            ei = torch.from_numpy(np.stack([acc[on], new_index[ident[on]]]).astype(np.int64))
        data["account", "uses", kind].edge_index = ei
        data[kind, "used_by", "account"].edge_index = ei.flip(0).contiguous()
    return data
