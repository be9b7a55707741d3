"""Hub-aware linking on hand-made arrays (no Neo4j): the weights docs/detection.md promises."""

from __future__ import annotations

import numpy as np
import pytest

from ringscope.models.detect import DetectConfig
from ringscope.models.linking import kind_link_matrix
from ringscope.models.projection import KindEdges

DAY = 86_400
T0 = 1_600_000_000


def edges(kind: str, rows: list[tuple[int, int, int, int]], flags: int = 0) -> KindEdges:
    acc, ident, first, last = (np.asarray(c, dtype=np.int64) for c in zip(*rows, strict=True))
    m = int(ident.max()) + 1
    return KindEdges(
        kind=kind,
        acc=acc.astype(np.int32),
        ident=ident.astype(np.int32),
        first=first,
        last=last,
        count=np.ones(len(acc), dtype=np.int64),
        nodes=np.arange(m, dtype=np.int64),
        flag=np.arange(m) < flags,
    )


def link(e: KindEdges, n: int, **cfg: object) -> np.ndarray:
    params = DetectConfig(**cfg).link_params()  # type: ignore[arg-type]
    s, _ = kind_link_matrix(e, n, params)
    return np.asarray(s.toarray())


def test_weight_falls_with_degree_and_hubs_are_cut() -> None:
    # identifier 0 shared by 2 accounts, identifier 1 by 5, identifier 2 by 60 (over the cap)
    rows = [(0, 0, T0, T0), (1, 0, T0 + 100 * DAY, T0 + 100 * DAY)]
    rows += [(2 + i, 1, T0 + 40 * i * DAY, T0 + 40 * i * DAY) for i in range(5)]
    rows += [(7 + i, 2, T0 + 40 * i * DAY, T0 + 40 * i * DAY) for i in range(60)]
    s = link(edges("email", rows), 67, arrival_bonus=0.0)
    assert s[0, 1] == pytest.approx(0.8)
    assert s[2, 3] == pytest.approx(0.8 / 2)
    assert s[7:, 7:].sum() == 0.0
    assert np.allclose(s, s.T) and np.all(np.diag(s) == 0)


def test_recycled_phone_years_apart_keeps_only_the_floor() -> None:
    old = (0, 0, T0, T0 + 90 * DAY)
    new = (1, 0, T0 + 800 * DAY, T0 + 1000 * DAY)
    same = [(2, 1, T0, T0 + 900 * DAY), (3, 1, T0 + 10 * DAY, T0 + 950 * DAY)]
    s = link(edges("phone", [old, new, *same]), 4, arrival_bonus=0.0)
    assert s[0, 1] == pytest.approx(0.2 * 0.8)
    assert s[2, 3] == pytest.approx(0.8, rel=0.05)
    # documents are not time-aware: shared years apart is still one document
    d = link(edges("id_document", [old, new]), 2, arrival_bonus=0.0)
    assert d[0, 1] == pytest.approx(1.0)


def test_co_arrival_adds_to_accounts_that_joined_in_the_same_week() -> None:
    rows = [(0, 0, T0, T0 + DAY), (1, 0, T0 + 2 * DAY, T0 + 3 * DAY)]
    rows += [(2, 1, T0, T0 + 400 * DAY), (3, 1, T0 + 300 * DAY, T0 + 400 * DAY)]
    s = link(edges("device", rows), 4)
    assert s[0, 1] > 0.8 * 1.2  # bonus 0.33 x cosine (1 same week, 2/3 the next)
    assert s[2, 3] < 0.8 * 1.05


def test_merchants_link_only_while_small() -> None:
    shop = [(i, 0, T0, T0) for i in range(12)]  # a merchant with 12 payers (cap 10)
    friend = [(20, 1, T0, T0), (21, 1, T0, T0)]  # an individual with 2 payers
    s = link(edges("payee", shop + friend, flags=1), 22, arrival_bonus=0.0)
    assert s[:12, :12].sum() == 0.0
    assert s[20, 21] == pytest.approx(0.3)
