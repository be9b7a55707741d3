"""A cluster's reasons name every identifier they cite by its business id, never by the number
the projection keys it with (pure: a projection built in memory, no Neo4j)."""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np

from ringscope.kinds import IDENTIFIER_KINDS
from ringscope.models.detect import DetectConfig
from ringscope.models.partition import detect_partitioned
from ringscope.models.projection import KindEdges, Projection

DAY = 86_400


def _edges(kind: str, pairs: list[tuple[int, int]], t0: int) -> KindEdges:
    """(account, identifier number) pairs as one kind's edges, all seen over the same month."""
    numbers = sorted({x for _, x in pairs})
    n = len(pairs)
    return KindEdges(
        kind=kind,
        acc=np.array([a for a, _ in pairs], dtype=np.int32),
        ident=np.array([numbers.index(x) for _, x in pairs], dtype=np.int32),
        first=np.full(n, t0, np.int64),
        last=np.full(n, t0 + 30 * DAY, np.int64),
        count=np.full(n, 3, np.int64),
        nodes=np.array(numbers, np.int64),
        flag=np.zeros(len(numbers), bool),
        round_count=np.zeros(n, np.int64) if kind == "payee" else None,
        total=np.zeros(n) if kind == "payee" else None,
    )


def _chain() -> Projection:
    """Five accounts: a0 and a1 share device 20 and IPs 1, 2 and 3; IP 50 joins a1 to a2, device
    21 a2 to a3, device 22 a3 to a4. IP 50 holds the group together (the identifier whose
    removal splits it, on the most shortest paths), but it is neither the cluster's key
    identifier (a device, whose kind weighs more, leads) nor among the IPs a sentence lists
    (the three lowest numbers): only the "holds the group together" sentence cites it."""
    t0 = 1_700_000_000
    kinds = {k.name: _edges(k.name, [], t0) for k in IDENTIFIER_KINDS}
    kinds["device"] = _edges("device", [(0, 20), (1, 20), (2, 21), (3, 21), (3, 22), (4, 22)], t0)
    ips = [(0, 1), (1, 1), (0, 2), (1, 2), (0, 3), (1, 3), (1, 50), (2, 50)]
    kinds["ip"] = _edges("ip", ips, t0)
    return Projection(
        ids=[f"a{i}" for i in range(5)],
        nodes=np.arange(100, 105, dtype=np.int64),
        created=np.full(5, t0 - DAY, np.int64),
        kyc=np.zeros(5, np.int64),
        label=np.array([1, -1, -1, -1, -1], np.int64),
        kinds=kinds,
    )


def test_the_identifier_that_holds_a_group_together_is_named() -> None:
    proj = _chain()

    def names_of(nodes: list[int]) -> dict[int, str]:
        return {n: f"ID-{n}" for n in nodes}

    cfg = replace(DetectConfig(), analyse_min_score=0.0, max_key_identifiers=1)
    found = detect_partitioned(proj, cfg, names_of)
    whole = [c for c in found.clusters if len(c.members) == 5]
    assert whole, [c.members for c in found.clusters]
    reasons = " ".join(whole[0].reasons)
    assert "holds the group together" in reasons
    assert "IP address ID-50 holds the group together" in reasons, reasons
    assert not re.search(r"#\d", reasons), reasons
