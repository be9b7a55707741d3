"""Communities: connected components over strong links, Leiden for the components too big to be
one ring. Only scipy and igraph here; networkx is kept for per-cluster analysis.

The step is also offered as an interface, :class:`CommunityEngine`, so that another engine (Neo4j
GDS for graphs too big for this process, see ``docs/scaling.md``) can replace the in-process one
without the detector changing: :func:`engine_for` picks one by name.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import igraph as ig
import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from ringscope.errors import RingScopeError
from ringscope.models.projection import I64
from ringscope.models.subgraph import internal_links, submatrix, within_groups

Split = tuple[int, list[I64]]  # (index of a group, the parts proposed to replace it)


def strong_graph(s: sp.csr_matrix, threshold: float) -> sp.csr_matrix:
    """The links at or above ``threshold`` (upper triangle, for igraph and components)."""
    coo = sp.triu(s, k=1).tocoo()
    keep = coo.data >= threshold
    return sp.csr_matrix(
        (coo.data[keep], (coo.row[keep], coo.col[keep])), shape=s.shape, dtype=np.float64
    )


def strong_components(strong: sp.csr_matrix, min_size: int) -> list[I64]:
    """The connected components of the strong links with at least ``min_size`` accounts
    (sorted account indices, in order of their labels)."""
    _, comp = connected_components(strong, directed=False)
    order = np.argsort(comp, kind="stable")
    bounds = np.flatnonzero(np.diff(comp[order])) + 1
    return [np.sort(g) for g in np.split(order, bounds) if len(g) >= min_size]


def _leiden(sub: sp.csr_matrix, resolution: float, seed: int) -> I64:
    coo = sub.tocoo()
    return _leiden_edges(sub.shape[0], coo.row, coo.col, coo.data, resolution, seed)


def _leiden_edges(
    n: int, row: I64, col: I64, weight: npt.NDArray[np.float64], resolution: float, seed: int
) -> I64:
    """Leiden (modularity) membership of ``n`` nodes joined by the weighted edges given."""
    g = ig.Graph(n=n, edges=list(zip(row.tolist(), col.tolist(), strict=True)))
    state = random.getstate()
    random.seed(seed)  # igraph's Leiden draws from Python's RNG: seed it for determinism
    try:
        part = g.community_leiden(
            objective_function="modularity",
            weights=weight.tolist(),
            resolution=resolution,
            # Bounded: with -1 (until stable) igraph can oscillate forever on some graphs,
            # which hung a demo run here. Ten passes are well past the quality plateau.
            n_iterations=10,
        )
    finally:
        random.setstate(state)
    return np.asarray(part.membership, dtype=np.int64)


def communities(
    strong: sp.csr_matrix,
    *,
    min_size: int,
    max_size: int,
    resolution: float,
    seed: int = 0,
) -> list[I64]:
    """Candidate clusters (sorted arrays of account indices), each of at least ``min_size``."""
    n = strong.shape[0]
    out: list[I64] = []
    stack = strong_components(strong, min_size)
    sym = (strong + strong.T).tocsr() if n else strong
    while stack:
        grp = np.sort(stack.pop())
        if len(grp) <= max_size:
            out.append(grp)
            continue
        # The same resolution at every depth: the part is cut on its own subgraph, where
        # modularity already compares it with itself. Doubling it per depth (as before) makes a
        # near-clique worse than singletons (every pair's null term k_i k_j / 2m is about 1),
        # which shattered big rings (a 79-account takeover wave into groups of 3-7).
        sub = sp.triu(submatrix(sym, grp), k=1).tocsr()
        member = _leiden(sub, resolution, seed)
        parts = [grp[member == c] for c in np.unique(member)]
        if len(parts) == 1:  # Leiden will not split it: keep it whole
            out.append(grp)
            continue
        for p in parts:
            # A Leiden part need not be connected over strong links: split into components.
            psub = submatrix(sym, p)
            _, pc = connected_components(psub, directed=False)
            for c in np.unique(pc):
                q = p[pc == c]
                if len(q) >= min_size:
                    stack.append(q)
    out.sort(key=lambda a: (int(a[0]), len(a)))
    return out


def risk_splits(
    strong: sp.csr_matrix,
    groups: list[I64],
    *,
    min_size: int,
    split_min_size: int,
    seed: int = 0,
    wave: sp.csr_matrix | None = None,
) -> list[Split]:
    """Leiden (modularity) proposals for splitting each component of ``split_min_size`` or more.

    A ring's members often bring their households along (a taken-over account still shares the
    family tablet), so a component can be a ring plus benign attachments. The caller keeps a
    split only when it concentrates risk (see ``detect``); chains, which modularity would cut
    without any gain in risk, stay whole. Two proposals per component: Leiden's communities,
    and (given ``wave``, the strong links that are also co-arrival links) the components of the
    links made in one wave of first use, which peel off households attached to a takeover wave.
    """
    big = [gi for gi, grp in enumerate(groups) if len(grp) >= split_min_size]
    # All groups' internal links in one pass (one sparse sub-matrix per group cost more in
    # scipy's fixed overhead than the Leiden runs themselves, at 1M accounts).
    links = internal_links(strong, [groups[gi] for gi in big])
    wave_label: I64 | None = None
    if wave is not None:
        # One-wave components within each group: the wave links inside the groups, one
        # components pass over all of them (labels run in order of each part's first member).
        within = within_groups(wave, [groups[gi] for gi in big])
        _, wave_label = connected_components(within, directed=False)
    out: list[Split] = []
    for gi, (r, c, w) in zip(big, links, strict=True):
        grp = groups[gi]
        member = _leiden_edges(len(grp), r, c, w, 1.0, seed)
        parts = [np.sort(grp[member == k]) for k in np.unique(member)]
        parts = [p for p in parts if len(p) >= min_size]
        if len(parts) >= 1 and not (len(parts) == 1 and len(parts[0]) == len(grp)):
            out.append((gi, parts))
        if wave_label is not None:
            wc = wave_label[grp]
            wparts = [np.sort(grp[wc == k]) for k in np.unique(wc)]
            wparts = [p for p in wparts if len(p) >= min_size]
            if wparts and not (len(wparts) == 1 and len(wparts[0]) == len(grp)):
                out.append((gi, wparts))
    return out


# --- the community step as an interface --------------------------------------------------------


class UnknownEngineError(RingScopeError):
    """No community engine is registered under the name asked for."""


@runtime_checkable
class CommunityEngine(Protocol):
    """What the detector needs from a community engine.

    Inputs are the strong links as an upper-triangular ``n x n`` CSR matrix over the accounts in
    projection order (as :func:`strong_graph` makes them); groups are sorted ``int64`` arrays of
    account indices. Any engine must be deterministic for a given ``seed``, so that the same
    graph gives the same rings (and ring ids stay stable across builds).
    """

    @property
    def name(self) -> str: ...

    def communities(
        self,
        strong: sp.csr_matrix,
        *,
        min_size: int,
        max_size: int,
        resolution: float,
        seed: int = 0,
    ) -> list[I64]:
        """Connected components of at least ``min_size``; those over ``max_size`` cut by Leiden
        (then re-split into strong components); sorted by (smallest member, size)."""
        ...

    def risk_splits(
        self,
        strong: sp.csr_matrix,
        groups: list[I64],
        *,
        min_size: int,
        split_min_size: int,
        seed: int = 0,
        wave: sp.csr_matrix | None = None,
    ) -> list[Split]:
        """Proposed splits of the groups of ``split_min_size`` or more: Leiden's communities
        and, given ``wave``, the components of the one-wave links (see :func:`risk_splits`)."""
        ...


class InProcessEngine:
    """scipy components and igraph Leiden in this process: the whole strong graph in memory."""

    @property
    def name(self) -> str:
        return "in-process"

    def communities(
        self,
        strong: sp.csr_matrix,
        *,
        min_size: int,
        max_size: int,
        resolution: float,
        seed: int = 0,
    ) -> list[I64]:
        return communities(
            strong, min_size=min_size, max_size=max_size, resolution=resolution, seed=seed
        )

    def risk_splits(
        self,
        strong: sp.csr_matrix,
        groups: list[I64],
        *,
        min_size: int,
        split_min_size: int,
        seed: int = 0,
        wave: sp.csr_matrix | None = None,
    ) -> list[Split]:
        return risk_splits(
            strong,
            groups,
            min_size=min_size,
            split_min_size=split_min_size,
            seed=seed,
            wave=wave,
        )


_ENGINES: dict[str, Callable[[], CommunityEngine]] = {"in-process": InProcessEngine}


def register_engine(name: str, factory: Callable[[], CommunityEngine]) -> None:
    """Make an engine available to :func:`engine_for` (a second engine registers itself here,
    from its own module, with whatever connection it needs bound into ``factory``)."""
    if name in _ENGINES:
        raise ValueError(f"A community engine named {name!r} is already registered.")
    _ENGINES[name] = factory


def engine_names() -> list[str]:
    return sorted(_ENGINES)


def engine_for(name: str) -> CommunityEngine:
    """The community engine registered as ``name`` (``"in-process"`` is always there)."""
    factory = _ENGINES.get(name)
    if factory is None:
        known = ", ".join(repr(n) for n in engine_names())
        raise UnknownEngineError(f"Unknown community engine {name!r}; known engines: {known}.")
    return factory()
