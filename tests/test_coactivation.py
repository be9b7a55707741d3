"""Sleeper rings found through time (models.coactivation), on hand-built graphs in real Neo4j.

The sleepers here share no device, number, address, card or document: each was opened on its own
weeks apart, and months later all of them first paid one new collector within two days. Their
one shared payee alone is too weak a tie for identifier linking (eight payers: 0.13 + the
co-arrival bonus, under the 0.25 threshold), so only the synchronised wake can find them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ringscope.graph import Graph, cypher
from ringscope.jobs.rebuild import rebuild
from ringscope.models.builds import all_clusters, current_build
from ringscope.models.detect import DetectConfig, detect
from ringscope.settings import Settings
from tests.test_detect_rings import World, clusters_with, household

pytestmark = pytest.mark.neo4j

SIZE = 8


def sleepers(w: World, wake_days: list[int]) -> list[str]:
    """Eight accounts opened a month apart, each on its own phone and device, shopping a little;
    member ``i`` first pays the collector on 2025-03-(1 + wake_days[i])."""
    out = []
    for i in range(SIZE):
        created = f"2024-{1 + i:02d}-1{i}T10:00:00Z"
        a = w.account(f"Z{i}", created, kyc=2)
        w.link("device", a, f"DEV-Z{i}", created)
        w.link("phone", a, f"+86137555{i:05d}", created)
        w.link("payee", a, f"SHOP{i % 3}", created, total=64.2)
        day = 1 + wake_days[i]
        when = f"2025-{3 + (day - 1) // 28:02d}-{1 + (day - 1) % 28:02d}T20:00:00Z"
        w.link("payee", a, "COLLECTOR-1", when, payee_kind="individual", count=2, total=1800.0)
        out.append(a)
    return out


def test_a_sleeper_ring_is_found_from_co_activation_alone(graph: Graph) -> None:
    w = World()
    w.background(30)
    household(w, "H", size=4)
    ring = sleepers(w, [i % 2 for i in range(SIZE)])  # all wake within two days
    w.write(graph)

    d = detect(graph)
    found = [c for c in d.clusters if set(c.members) & set(ring)]
    assert [c.members for c in found] == [tuple(sorted(ring))]
    (c,) = found
    assert c.score >= DetectConfig().flag_threshold
    assert c.features["coactivation_share"] == 1.0
    woke = [r for r in c.reasons if "woke together" in r]
    assert woke and "COLLECTOR-1" in woke[0] and f"{SIZE} of {SIZE}" in woke[0]

    # Identifiers alone (co-activation off) do not link them: no cluster holds two of them.
    plain = detect(graph, config=DetectConfig(coactivation_weight=0.0))
    assert not [c for c in plain.clusters if len(set(c.members) & set(ring)) >= 2]


def test_payers_arriving_over_months_are_not_a_wake(graph: Graph) -> None:
    """The same accounts paying the same person, but each starting weeks after the last (a
    landlord, a tutor): no burst, no link."""
    w = World()
    w.background(30)
    ring = sleepers(w, [9 * i for i in range(SIZE)])
    w.write(graph)
    d = detect(graph)
    assert not [c for c in d.clusters if len(set(c.members) & set(ring)) >= 2]


def onboarders(w: World, prefix: str, opened: list[str], lag_days: list[int]) -> list[str]:
    """Accounts each on its own phone and device, opened at ``opened[i]`` (dates in 2025), that
    first pay merchant M-NEW ``lag_days[i]`` days after opening, in round sums."""
    out = []
    for i, day in enumerate(opened):
        created = f"2025-{day}T08:00:00Z"
        a = w.account(f"{prefix}{i}", created, kyc=i % 2)
        w.link("device", a, f"DEV-{prefix}{i}", created)
        w.link("phone", a, f"+86137666{prefix}{i:04d}", created)
        month, dom = (int(x) for x in day.split("-"))
        dom += lag_days[i]
        month, dom = month + (dom - 1) // 28, 1 + (dom - 1) % 28
        w.link(
            "payee", a, "M-NEW", f"2025-{month:02d}-{dom:02d}T20:00:00Z",
            count=2, round_count=2, total=4000.0,
        )  # fmt: skip
        out.append(a)
    return out


def test_a_cash_out_ring_is_found_from_its_merchant_alone(graph: Graph) -> None:
    """Eight new accounts opened over ten days, sharing no device, number or address, each
    spending at once at one new merchant (its only payers): the onboarding cohort links them.
    Before onboarding cohorts the merchant (eight payers: 0.11 + the co-arrival bonus) linked
    nothing and the ring was in no cluster."""
    w = World()
    w.background(30)
    household(w, "H", size=4)
    days = [f"05-{d:02d}" for d in (1, 2, 2, 4, 5, 7, 9, 10)]
    ring = onboarders(w, "N", days, [1, 0, 3, 2, 6, 1, 4, 0])
    w.write(graph)

    d = detect(graph)
    assert clusters_with(d, ring) == [tuple(sorted(ring))]
    plain = detect(graph, config=DetectConfig(fresh_weight=0.0))
    assert not [c for c in plain.clusters if len(set(c.members) & set(ring)) >= 2]


def test_sign_ups_spread_over_months_or_paying_late_are_not_a_cohort(graph: Graph) -> None:
    """The same merchant's payers, each paying on its first days but opened weeks apart (a
    neighbourhood shop's new customers), or opened together but paying it only after weeks: no
    onboarding cohort, no link."""
    w = World()
    w.background(30)
    spread = onboarders(w, "S", [f"{m:02d}-05" for m in range(1, 9)], [1] * SIZE)
    w.write(graph)
    assert not clusters_with(detect(graph), spread)

    w2 = World()
    w2.background(30)
    days = [f"05-{d:02d}" for d in (1, 2, 2, 4, 5, 7, 9, 10)]
    late = onboarders(w2, "L", days, [12, 10, 15, 9, 11, 20, 8, 14])
    graph.write(cypher.DELETE_ALL)
    w2.write(graph)
    assert not clusters_with(detect(graph), late)


def test_the_rebuild_links_onboarding_cohorts_unless_the_setting_is_off(
    graph: Graph, neo4j_settings: Settings, tmp_path: Path
) -> None:
    """``RINGSCOPE_DETECT_ONBOARDING`` reaches the rebuild's detector: on (the default), the
    build's clusters hold the ring; off, none holds two of its members."""
    w = World()
    w.background(30)
    days = [f"05-{d:02d}" for d in (1, 2, 2, 4, 5, 7, 9, 10)]
    ring = set(onboarders(w, "N", days, [1, 0, 3, 2, 6, 1, 4, 0]))
    w.write(graph)
    base = neo4j_settings.model_copy(update={"model_dir": tmp_path / "models"})
    assert base.detect_onboarding

    def clusters_holding_two() -> list[set[str]]:
        _, found = all_clusters(graph, current_build(graph).id)
        return [set(c.members) & ring for c in found if len(set(c.members) & ring) >= 2]

    rebuild(graph, base, use_model=False)
    assert clusters_holding_two() == [ring]
    rebuild(graph, base.model_copy(update={"detect_onboarding": False}), use_model=False)
    assert clusters_holding_two() == []
