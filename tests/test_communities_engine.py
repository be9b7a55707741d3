"""The community step behind its interface: the in-process engine gives exactly what the module
functions give (the detector calls those today), and engines are picked by name."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from ringscope.errors import RingScopeError
from ringscope.models.communities import (
    CommunityEngine,
    InProcessEngine,
    UnknownEngineError,
    communities,
    engine_for,
    engine_names,
    register_engine,
    risk_splits,
    strong_graph,
)
from ringscope.models.projection import I64

THRESHOLD = 0.25


def _links() -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """A small symmetric link matrix and its co-arrival part.

    0-2: a triangle; 3-6: a chain; 7-8: a pair (too small); 9: alone; 10-27: two cliques of 9
    joined by one strong link (too big for max_size 10: Leiden must cut it); 28-29: a weak pair
    (below the threshold). The second clique is linked in one wave, the first is not.
    """
    n = 30
    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []

    def link(a: int, b: int, w: float) -> None:
        rows.extend([a, b])
        cols.extend([b, a])
        vals.extend([w, w])

    for a, b in [(0, 1), (1, 2), (0, 2)]:
        link(a, b, 0.9)
    for a in range(3, 6):
        link(a, a + 1, 0.5)
    link(7, 8, 1.0)
    cliques = [list(range(10, 19)), list(range(19, 28))]
    for members in cliques:
        for i, a in enumerate(members):
            for b in members[i + 1 :]:
                link(a, b, 0.6)
    link(18, 19, 0.3)
    link(28, 29, 0.1)
    s = sp.csr_matrix((vals, (rows, cols)), shape=(n, n))
    in_wave = [(r, c) for r, c in zip(rows, cols, strict=True) if 19 <= r < 28 and 19 <= c < 28]
    wr, wc = zip(*in_wave, strict=True)
    arrival = sp.csr_matrix((np.full(len(in_wave), 0.5), (wr, wc)), shape=(n, n))
    return s, arrival


def _same_groups(a: list[I64], b: list[I64]) -> bool:
    return len(a) == len(b) and all(
        x.dtype == y.dtype and np.array_equal(x, y) for x, y in zip(a, b, strict=True)
    )


def test_in_process_engine_matches_the_functions() -> None:
    s, arrival = _links()
    strong = strong_graph(s, THRESHOLD)
    wave = strong.multiply(strong_graph(arrival, 0.3) > 0).tocsr()

    expected = communities(strong, min_size=3, max_size=10, resolution=1.0, seed=0)
    engine = engine_for("in-process")
    assert isinstance(engine, InProcessEngine)
    assert isinstance(engine, CommunityEngine)
    assert engine.name == "in-process"
    got = engine.communities(strong, min_size=3, max_size=10, resolution=1.0, seed=0)
    assert _same_groups(got, expected)

    # The case is not trivial: the triangle, the chain and the two cliques Leiden cut apart.
    assert [g.tolist() for g in got] == [
        [0, 1, 2],
        [3, 4, 5, 6],
        list(range(10, 19)),
        list(range(19, 28)),
    ]

    # Risk splits, on the components before the size cut (so the clique pair can be split).
    whole = communities(strong, min_size=3, max_size=100, resolution=1.0, seed=0)
    want = risk_splits(strong, whole, min_size=3, split_min_size=6, seed=0, wave=wave)
    have = engine.risk_splits(strong, whole, min_size=3, split_min_size=6, seed=0, wave=wave)
    assert [gi for gi, _ in have] == [gi for gi, _ in want]
    assert all(_same_groups(p, q) for (_, p), (_, q) in zip(have, want, strict=True))
    assert have, "expected at least one proposed split"
    # Leiden's cut of the clique pair, and the one-wave clique peeled off on its own.
    assert [[p.tolist() for p in parts] for _, parts in have] == [
        [list(range(10, 19)), list(range(19, 28))],
        [list(range(19, 28))],
    ]
    no_wave = engine.risk_splits(strong, whole, min_size=3, split_min_size=6, seed=0)
    assert len(no_wave) == 1


def test_unknown_engine_names_the_known_ones() -> None:
    with pytest.raises(UnknownEngineError) as err:
        engine_for("gds")
    assert isinstance(err.value, RingScopeError)
    assert str(err.value) == "Unknown community engine 'gds'; known engines: 'in-process'."


def test_a_second_engine_registers_without_touching_the_rest() -> None:
    from ringscope.models import communities as mod

    class Recording(InProcessEngine):
        @property
        def name(self) -> str:
            return "recording"

    register_engine("recording", Recording)
    try:
        assert engine_names() == ["in-process", "recording"]
        assert engine_for("recording").name == "recording"
        with pytest.raises(ValueError, match="already registered"):
            register_engine("in-process", InProcessEngine)
    finally:
        mod._ENGINES.pop("recording", None)


def test_a_dense_ring_in_an_oversized_part_is_not_shattered() -> None:
    """Two cliques of 12 joined by one link, with max_size 10: Leiden cuts the component into
    the two cliques, each still over the limit. A clique cut again on its own subgraph at the
    same resolution stays whole (Leiden will not cut it); at a doubled resolution (the code
    before session 17) every pair's null term outweighs its link and the clique fell apart
    into groups below a ring's size."""
    n, size = 24, 12
    rows, cols = [], []
    for base in (0, size):
        for a in range(base, base + size):
            for b in range(a + 1, base + size):
                rows.append(a)
                cols.append(b)
    rows.append(size - 1)
    cols.append(size)
    s = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    groups = communities(
        strong_graph(s + s.T, THRESHOLD), min_size=3, max_size=10, resolution=1.0, seed=0
    )
    assert sorted(len(g) for g in groups) == [size, size]
    assert [g.tolist() for g in groups] == [list(range(size)), list(range(size, n))]
