"""Ring boundaries: a cluster's core, and the members merely attached to it.

Why: a ring member's own family shares a home IP or a parent's bank card with them, so community
detection pulls the family into the ring's cluster. The cluster then counts as a false positive,
and innocent relatives inherit a ring score. The ring itself is held together by many ties among
its members (a device farm, a collector payee, reused documents); the family hangs on by the one
member it is related to.

The core is the largest *block* of the cluster's strong-link subgraph: its biconnected component
with the most members (ties: the most internal link weight). A block has no single member whose
removal splits it; a family hanging on one ring member forms a block of its own that meets the
ring only at that member (an articulation point, who stays in the core). So the family is
attached, the member they know is core. What the core leaves out is not dropped: its own
connected groups of three or more (the family, or a second ring joined by one member) become
clusters of their own, scored on their own evidence (:func:`attached_groups`). Rings that are
chains by design (mules passing money along) have no block of ``min_core`` members or more; for
those the whole cluster is the core, so trimming never breaks a chain apart.

Shapes: ``members`` is a (m,) array of account indices, ``strong`` the (n, n) upper-triangular
strong-link matrix (``communities.strong_graph``); :func:`core_mask` returns a (m,) bool mask.
"""

from __future__ import annotations

import networkx as nx
import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from ringscope.models.projection import I64
from ringscope.models.subgraph import submatrix


def core_mask(members: I64, strong: sp.csr_matrix, min_core: int = 3) -> npt.NDArray[np.bool_]:
    """Per member of one cluster, whether it is in the cluster's core (see the module doc)."""
    m = len(members)
    everyone = np.ones(m, dtype=bool)
    if m < 2 * min_core:  # too small to hold a core and an attached group of its own
        return everyone
    sub = submatrix(strong, members)
    sub = (sub + sub.T).tocoo()
    g = nx.Graph()
    g.add_nodes_from(range(m))
    for i, j, w in zip(sub.row.tolist(), sub.col.tolist(), sub.data.tolist(), strict=True):
        if i < j:
            g.add_edge(i, j, weight=w)
    best: tuple[int, float] = (0, 0.0)
    core: set[int] = set()
    for comp in nx.biconnected_components(g):
        weight = float(g.subgraph(comp).size(weight="weight"))
        if (len(comp), weight) > best:
            best, core = (len(comp), weight), set(comp)
    if len(core) < min_core:
        return everyone
    out = np.zeros(m, dtype=bool)
    out[list(core)] = True
    return out


def attached_groups(
    rest: I64,
    strong: sp.csr_matrix,
    min_size: int = 3,
    core: I64 | None = None,
    wave: sp.csr_matrix | None = None,
) -> list[I64]:
    """The attached members' own groups: connected parts of the strong links among ``rest``
    (the members a core left out) with at least ``min_size`` members, largest first.

    Why: a cluster can hold two rings joined by one member, or a ring and a family of three
    that shares a card with one ring member. Trimming keeps the biggest block as the core; the
    rest is not dropped but scored on its own, so a second ring is still found and a family is
    judged as a family.

    A part too small to be a group alone (two members) is extended by the ``core`` members it
    is tied to by ``wave`` links (strong links made in one wave of first use), when every member
    of the extended group has such a link inside it: three accounts taken over in one wave, one
    of whom stays in the core with their family, are a group of three. That member is then in
    two clusters (the family's and the takeover's), as they are in two groups in life."""
    if len(rest) < 2:
        return []

    def local(a: I64, b: I64, m: sp.csr_matrix) -> sp.csr_matrix:
        """The links between ``a`` and ``b`` in either direction (``m`` is triangular)."""
        return sp.csr_matrix(submatrix(m, a, b) + submatrix(m, b, a).T)

    n_parts, part = connected_components(local(rest, rest, strong), directed=False)
    sizes = np.bincount(part, minlength=n_parts)
    out = []
    for p in np.argsort(-sizes, kind="stable").tolist():
        grp = rest[part == p]
        if sizes[p] < min_size and core is not None and wave is not None and sizes[p] >= 2:
            # Too small alone: with the core members it is tied to by links made in one wave
            # of first use (a takeover wave's victims, one of whom stays in the core with
            # their family).
            touch = core[np.asarray(local(grp, core, wave).sum(axis=0)).ravel() > 0]
            ext = np.concatenate([grp, touch])
            inner = np.asarray(local(ext, ext, wave).sum(axis=1)).ravel()
            if len(touch) and (inner > 0).all():
                grp = ext
        if len(grp) >= min_size:
            out.append(np.sort(grp))
    return out
