"""Hub-aware linking: the weighted account-account graph of what accounts share.

For each identifier kind ``k`` with incidence matrix ``B_k`` (accounts x identifiers) and a
diagonal of identifier weights ``W_k`` the link matrix is ``S = sum_k B_k W_k B_k^T`` (diagonal
dropped). An identifier's weight is ``kind_weight[k] / sqrt(deg - 1)``: it falls as more accounts
use it, and identifiers used by more than ``degree_cap[k]`` accounts are left out entirely. Payees
link only when they are individuals or have few payers. Time enters through a second product on
time-bucketed columns (see :func:`link_matrix` and ``docs/detection.md``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from ringscope.kinds import PAYEE
from ringscope.models.projection import F64, I64, KindEdges, Projection

DAY = 86_400
_INT64_MAX = np.iinfo(np.int64).max  # "no first use yet" while taking minima


@dataclass(frozen=True)
class LinkParams:
    # Every identifier kind has a weight and a cap (DetectConfig checks): a kind left out would
    # otherwise link nothing without a word.
    kind_weights: dict[str, float]
    degree_caps: dict[str, int]
    merchant_degree_cap: int
    time_bucket_days: int
    time_floors: dict[str, float]  # per kind; kinds not named are not time-aware (floor 1)
    arrival_days: int
    arrival_bonus: float


def eligible(edges: KindEdges, params: LinkParams) -> npt.NDArray[np.bool_]:
    """Per identifier: does it take part in linking (shared, and not a hub)?"""
    deg = edges.degree()
    ok = (deg >= 2) & (deg <= params.degree_caps[edges.kind])
    if edges.kind == PAYEE.name:
        ok &= ~edges.flag | (deg <= params.merchant_degree_cap)
    return ok


def identifier_weights(edges: KindEdges, params: LinkParams) -> F64:
    """Weight of each identifier (0 for those left out of linking)."""
    deg = edges.degree().astype(np.float64)
    w = params.kind_weights[edges.kind] / np.sqrt(np.maximum(deg - 1.0, 1.0))
    return np.where(eligible(edges, params), w, 0.0)


def dedupe_pairs(edges: KindEdges) -> tuple[I64, I64, I64, I64, I64]:
    """One row per (account, identifier): PAID has one per currency; first=min, last=max,
    count summed. Returns (account, identifier, first, last, count), by account then
    identifier. Segment reductions over one sort (``reduceat``), not ``ufunc.at`` scatters,
    which were most of this step's time at 1M accounts (profiled)."""
    m = max(edges.m, 1)
    key = edges.acc.astype(np.int64) * m + edges.ident
    if not len(key):
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty.copy(), empty.copy(), empty.copy(), empty.copy()
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    new = np.empty(len(sorted_key), dtype=bool)
    new[0] = True
    np.not_equal(sorted_key[1:], sorted_key[:-1], out=new[1:])
    start = np.flatnonzero(new)
    uniq = sorted_key[start]
    first = np.minimum.reduceat(np.where(edges.first < 0, _INT64_MAX, edges.first)[order], start)
    first = np.where(first == _INT64_MAX, -1, first)
    last = np.maximum.reduceat(edges.last[order], start)
    count = np.add.reduceat(edges.count[order].astype(np.int64), start)
    return uniq // m, uniq % m, first, last, count


def kind_link_matrix(
    edges: KindEdges, n: int, params: LinkParams
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """``B W B^T`` for one kind, time-aware, without the diagonal; and its co-arrival part."""
    w_ident = identifier_weights(edges, params)
    acc, ident, first, last, _ = dedupe_pairs(edges)
    keep = w_ident[ident] > 0
    acc, ident, first, last = acc[keep], ident[keep], first[keep], last[keep]
    if len(acc) == 0:
        return sp.csr_matrix((n, n), dtype=np.float64), sp.csr_matrix((n, n), dtype=np.float64)
    # Re-index the kept identifiers compactly.
    used, col = np.unique(ident, return_inverse=True)
    w = w_ident[used]
    m = len(used)
    b = sp.csr_matrix((np.ones(len(acc)), (acc, col)), shape=(n, m))
    s_all = (b @ sp.diags(w) @ b.T).tocsr()

    # Time: each edge covers the buckets from first_seen to last_seen, widened by one bucket on
    # either side; its entries carry 1/sqrt(buckets), so for two accounts on one identifier the
    # product is the cosine of their bucket sets: 1 for the same period, 0 for disjoint ones.
    known = (first >= 0) & (last >= 0)
    floor = params.time_floors.get(edges.kind, 1.0)
    s = s_all
    if floor < 1.0:
        bucket = params.time_bucket_days * DAY
        lo = np.where(known, first // bucket - 1, 0)
        hi = np.where(known, np.maximum(last, first) // bucket + 1, 0)
        base = int(lo[known].min()) if known.any() else 0
        lo, hi = lo - base, hi - base
        nb = int(hi.max()) + 1
        span = hi - lo + 1
        # Unknown times: spread over every bucket (no evidence either way, factor stays high).
        lo = np.where(known, lo, 0)
        span = np.where(known, span, nb)
        rep = np.repeat(np.arange(len(acc)), span)
        offs = np.arange(len(rep)) - np.repeat(np.cumsum(span) - span, span)
        tcol, tinv = np.unique(col[rep].astype(np.int64) * nb + lo[rep] + offs, return_inverse=True)
        bt = sp.csr_matrix(
            (1.0 / np.sqrt(span[rep]), (acc[rep], tinv.ravel())), shape=(n, len(tcol))
        )
        s_time = (bt @ sp.diags(w[tcol // nb]) @ bt.T).tocsr()
        s = floor * s_all + (1.0 - floor) * s_time
    if params.arrival_bonus > 0:
        # Co-arrival: accounts that started using the identifier in the same few days (a device
        # farm handed out, a takeover wave) get a bonus: first_seen bucketed by arrival_days,
        # widened by one bucket each side, cosine as above (1 same bucket, 2/3 next, 1/3 two).
        step = params.arrival_days * DAY
        sel = np.flatnonzero(known)
        fb = first[sel] // step
        keys = (col[sel, None].astype(np.int64) << 32) + (fb[:, None] + np.arange(-1, 2))
        uniq, inv = np.unique(keys.ravel(), return_inverse=True)
        ba = sp.csr_matrix(
            (np.full(inv.size, 1.0 / np.sqrt(3.0)), (np.repeat(acc[sel], 3), inv.ravel())),
            shape=(n, len(uniq)),
        )
        wa = w[(uniq >> 32).astype(np.int64)]
        arrival = sp.csr_matrix(ba @ sp.diags(wa) @ ba.T)
        arrival.setdiag(0.0)
        arrival.eliminate_zeros()
        s = s + params.arrival_bonus * arrival
    else:
        arrival = sp.csr_matrix((n, n), dtype=np.float64)
    s = sp.csr_matrix(s)
    s.setdiag(0.0)
    s.eliminate_zeros()
    return s, arrival


def link_matrix(proj: Projection, params: LinkParams) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """The account-account weighted link matrix, summed over kinds (symmetric, zero diagonal),
    and its co-arrival part alone (weight of identifiers first used in the same days)."""
    total = sp.csr_matrix((proj.n, proj.n), dtype=np.float64)
    arrival = sp.csr_matrix((proj.n, proj.n), dtype=np.float64)
    for edges in proj.kinds.values():
        if params.kind_weights[edges.kind] > 0:
            s, a = kind_link_matrix(edges, proj.n, params)
            total = total + s
            arrival = arrival + a
    total = sp.csr_matrix(total)
    total.sum_duplicates()
    return total, sp.csr_matrix(arrival)
