"""Split proposals on hand-made arrays (no Neo4j): each proposed part is judged on its own members.

A group of ``split_min_size`` or more gets two proposals (Leiden's parts, and the parts made of
one-wave links), which cover the same accounts. The feature table labels each account with one
cluster, so scoring both proposals in one table let the later one take the earlier one's
members: its parts were scored with the wrong size and shares.
"""

from __future__ import annotations

import numpy as np

from ringscope.models import clusters as cl
from ringscope.models.detect import DetectConfig, _proposal_scores
from ringscope.models.linking import link_matrix
from ringscope.models.projection import KindEdges, Projection

DAY = 86_400
T0 = 1_600_000_000


def kind(name: str, rows: list[tuple[int, int]], first: int) -> KindEdges:
    acc = np.asarray([a for a, _ in rows], dtype=np.int32)
    ident = np.asarray([x for _, x in rows], dtype=np.int32)
    m = int(ident.max()) + 1
    return KindEdges(
        kind=name,
        acc=acc,
        ident=ident,
        first=np.full(len(rows), first, dtype=np.int64),
        last=np.full(len(rows), first + 30 * DAY, dtype=np.int64),
        count=np.ones(len(rows), dtype=np.int64),
        nodes=np.arange(m, dtype=np.int64),
        flag=np.zeros(m, dtype=bool),
    )


def world() -> Projection:
    """Eight accounts: 0-3 share a device and were opened on one day (a farm); 4-7 are a
    family sharing a card, opened years apart; account 3 also shares the family's card."""
    n = 8
    created = np.asarray([T0] * 4 + [T0 - k * 400 * DAY for k in range(1, 5)], dtype=np.int64)
    proj = Projection(
        ids=[f"a{i}" for i in range(n)],
        nodes=np.arange(n, dtype=np.int64),
        created=created,
        kyc=np.asarray([0, 0, 0, 0, 2, 2, 2, 2], dtype=np.int64),
        label=np.full(n, -1, dtype=np.int64),
    )
    proj.kinds["device"] = kind("device", [(0, 0), (1, 0), (2, 0), (3, 0)], T0)
    proj.kinds["bank_card"] = kind("bank_card", [(a, 0) for a in (3, 4, 5, 6, 7)], T0 - 1500 * DAY)
    return proj


def test_overlapping_proposals_are_each_scored_on_their_own_members() -> None:
    proj = world()
    params = DetectConfig().link_params()
    s, _ = link_matrix(proj, params)
    upper = cl.upper_links(s)
    sig = cl.account_signals(proj, None)
    leiden = [np.arange(0, 4), np.arange(4, 8)]  # the farm; the family
    wave = [np.arange(0, 3), np.arange(3, 8)]  # the farm without 3; the family with 3
    parts = leiden + wave

    got = _proposal_scores(proj, parts, upper, params, sig, None)

    alone = [cl.score(cl.cluster_table(proj, [p], upper, params, sig, None))[0][0] for p in parts]
    np.testing.assert_allclose(got, alone)
    # The farm of four is judged with all four members: every one opened on the same day.
    table = cl.cluster_table(proj, [parts[0]], upper, params, sig, None)
    assert table.features["size"][0] == 4
