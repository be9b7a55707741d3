"""One cluster's links out of the whole graph's sparse matrix.

Why this is its own function: scipy's ``m[rows][:, cols]`` selects the columns through a mask
of the matrix's full width, so every call costs O(n) in the number of accounts, not in the
cluster's size. The detector takes a sub-matrix per cluster, per split proposal and per trimmed
core: tens of thousands of calls, each paying for a million columns at 1M accounts (profiled:
the features stage's largest cost). Here only the selected rows' entries are touched.

Shapes: ``m`` is (n, n) CSR; ``rows`` (r,) and ``cols`` (c,) are arrays of distinct indices
into it; the result is the (r, c) CSR matrix with ``out[i, j] == m[rows[i], cols[j]]``, the
same matrix scipy's fancy indexing gives.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

__all__ = ["internal_links", "submatrix", "within_groups"]


def submatrix(
    m: sp.csr_matrix, rows: npt.NDArray[np.int64], cols: npt.NDArray[np.int64] | None = None
) -> sp.csr_matrix:
    """``m[rows][:, cols]`` (``cols`` defaults to ``rows``) in time linear in the selected
    rows' entries (see the module doc). Indices within ``rows`` and within ``cols`` must be
    distinct, as a cluster's members are."""
    cols = rows if cols is None else cols
    picked = m[rows]  # row selection is cheap in CSR: O(entries of those rows)
    order = np.argsort(cols, kind="stable")
    sorted_cols = cols[order]
    indices = picked.indices
    pos = np.searchsorted(sorted_cols, indices)
    pos[pos == len(sorted_cols)] = 0
    hit = sorted_cols[pos] == indices if len(sorted_cols) else np.zeros(len(indices), bool)
    row = np.repeat(np.arange(len(rows), dtype=np.int64), np.diff(picked.indptr))
    return sp.csr_matrix(
        (picked.data[hit], (row[hit], order[pos[hit]])),
        shape=(len(rows), len(cols)),
        dtype=m.dtype,
    )


def _inside(
    m: sp.csr_matrix, groups: list[npt.NDArray[np.int64]]
) -> tuple[
    npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]
]:
    """The entries of ``m`` with both ends in one of the (disjoint) ``groups``: their group,
    row, column (in ``m``'s coordinates) and value."""
    owner = np.full(m.shape[0], -1, dtype=np.int64)
    for g, grp in enumerate(groups):
        owner[grp] = g
    coo = m.tocoo()
    row, col = coo.row.astype(np.int64), coo.col.astype(np.int64)
    keep = np.flatnonzero((owner[row] >= 0) & (owner[row] == owner[col]))
    return owner[row[keep]], row[keep], col[keep], coo.data[keep].astype(np.float64)


def within_groups(m: sp.csr_matrix, groups: list[npt.NDArray[np.int64]]) -> sp.csr_matrix:
    """``m`` without the entries that join two groups or leave them (same shape)."""
    _, row, col, value = _inside(m, groups)
    return sp.csr_matrix((value, (row, col)), shape=m.shape)


def internal_links(
    m: sp.csr_matrix, groups: list[npt.NDArray[np.int64]]
) -> list[tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]]:
    """Per group, the entries of ``m`` with both ends in it, as local ``(row, col, weight)``
    arrays in (row, col) order: ``submatrix(m, grp)`` in coordinate form, for all groups in one
    pass over ``m`` instead of one sparse-matrix construction each (their fixed cost was most of
    the split step at 1M accounts). Groups are sorted arrays of distinct indices, disjoint from
    each other."""
    local = np.zeros(m.shape[0], dtype=np.int64)
    for grp in groups:
        local[grp] = np.arange(len(grp), dtype=np.int64)
    g_of, row, col, w = _inside(m, groups)
    r, c = local[row], local[col]
    order = np.lexsort((c, r, g_of))
    g_of, r, c, w = g_of[order], r[order], c[order], w[order]
    bounds = np.searchsorted(g_of, np.arange(len(groups) + 1, dtype=np.int64))
    return [
        (r[a:b], c[a:b], w[a:b])
        for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True)
    ]
