"""Stable ring ids: which cluster of a new build continues which ring of the previous one.

A new cluster inherits the ring id of the previous build's ring it overlaps enough (Jaccard, or
the share of the old ring it kept); any other cluster gets a fresh id. ``docs/builds.md``
explains the rule and its costs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from scipy import sparse

MATCH_JACCARD = 0.5  # a new cluster inherits a ring id at this Jaccard overlap ...
MATCH_KEPT = 0.5  # ... or when it keeps at least this share of the old ring's members


@dataclass(frozen=True)
class PreviousRing:
    ring_id: str
    members: Sequence[str]
    first_seen_build: str
    first_seen_at: datetime | None


def _incidence(
    groups: Sequence[Sequence[str]], index: dict[str, int]
) -> Any:  # a scipy.sparse CSR matrix
    sizes = np.fromiter((len(g) for g in groups), dtype=np.int64, count=len(groups))
    rows = np.repeat(np.arange(len(groups), dtype=np.int64), sizes)
    cols = np.fromiter(
        (index.setdefault(m, len(index)) for g in groups for m in g),
        dtype=np.int64,
        count=int(sizes.sum()),
    )
    m = sparse.csr_matrix(
        (np.ones(len(rows), dtype=np.int32), (rows, cols)), shape=(len(groups), max(1, len(index)))
    )
    m.data[:] = 1  # duplicates within a group were summed; count each member once
    return m


def overlaps(
    left: Sequence[Sequence[str]], right: Sequence[Sequence[str]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every (left, right) pair of groups sharing a member: indices, shared count, sizes.

    Returns ``(li, ri, inter, left_sizes, right_sizes)``; one sparse product, no Python loop over
    pairs. Also used by the evaluation to compare clusters with the ground truth.
    """
    index: dict[str, int] = {}
    a = _incidence(left, index)
    b = _incidence(right, index)
    n = max(a.shape[1], b.shape[1])
    a.resize((a.shape[0], n))
    b.resize((b.shape[0], n))
    prod = (a @ b.T).tocoo()
    ls = np.asarray(a.sum(axis=1)).ravel().astype(np.int64)
    rs = np.asarray(b.sum(axis=1)).ravel().astype(np.int64)
    return (
        prod.row.astype(np.int64),
        prod.col.astype(np.int64),
        prod.data.astype(np.int64),
        ls,
        rs,
    )


def match_rings(new: Sequence[Sequence[str]], old: Sequence[Sequence[str]]) -> list[int | None]:
    """For each new cluster, the index of the old ring it continues, or None.

    A pair is eligible when the Jaccard overlap is >= 0.5 or the new cluster kept at least half of
    the old ring's members. Pairs are taken greedily, largest shared-member count first (then
    higher Jaccard, then lower indices), each old ring and each new cluster at most once.
    """
    result: list[int | None] = [None] * len(new)
    if not new or not old:
        return result
    ni, oi, inter, ns, os_ = overlaps(new, old)
    union = ns[ni] + os_[oi] - inter
    jac = inter / np.maximum(union, 1)
    ok = (jac >= MATCH_JACCARD) | (inter >= MATCH_KEPT * os_[oi])
    ni, oi, inter, jac = ni[ok], oi[ok], inter[ok], jac[ok]
    order = np.lexsort((oi, ni, -jac, -inter))
    old_taken = np.zeros(len(old), dtype=bool)
    for k in order.tolist():
        n, o = int(ni[k]), int(oi[k])
        if result[n] is None and not old_taken[o]:
            result[n] = o
            old_taken[o] = True
    return result


def mint_ring_id(build_id: str, smallest_member: str, attempt: int = 0) -> str:
    """``R-<12 hex>``, deterministic from the build and the cluster's smallest member."""
    salt = f"{build_id}\x00{smallest_member}\x00{attempt}".encode()
    return "R-" + hashlib.sha256(salt).hexdigest()[:12]
