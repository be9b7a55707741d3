"""Reassembly (models.reassembly) on hand-built graphs in the real Neo4j: the flagged pieces of
one ring, cut apart by Leiden, come back together through the identifier only the ring uses;
two rings that only share a popular shop and one bridging device stay two; pieces that are
strong components of their own come together too; a sleeper chain cut into pieces comes back
through the identifiers only the accounts at each cut used."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ringscope.graph import Graph
from ringscope.models.detect import DetectConfig, detect
from ringscope.models.partition import detect_partitioned
from ringscope.models.projection import identifier_ids, read_projection
from tests.test_detect_rings import World, household

pytestmark = pytest.mark.neo4j

# Small enough that Leiden must cut a 12-account component in two.
SPLIT = DetectConfig(max_cluster_size=8)


def _ring(w: World, prefix: str, merchant: str) -> list[str]:
    """Six new low-KYC accounts, three on each of two emulators, the two trios bridged by one
    shared phone (one strong component); virtual numbers, round payments to ``merchant``, and
    ordinary shopping at a popular shop that the background pays too."""
    members = []
    for i in range(6):
        created = f"2025-05-0{1 + i % 2}T0{i}:00:00Z"
        a = w.account(f"{prefix}{i}", created, kyc=i % 2)
        w.link("device", a, f"{prefix}-EMU-{i // 3}", created, "2025-05-20T00:00:00Z", flag=True)
        w.link("phone", a, f"+8617000{prefix}{i:02d}", created, "2025-05-20T00:00:00Z", flag=True)
        w.link(
            "payee", a, merchant, "2025-05-05T00:00:00Z", "2025-05-10T00:00:00Z",
            count=3, round_count=3, total=1500.0,
        )  # fmt: skip
        w.link("payee", a, "SHOP0", "2025-05-03T00:00:00Z", total=40.0)
        members.append(a)
    for a in (members[2], members[3]):
        w.link("phone", a, f"{prefix}-BRIDGE-SIM", "2025-05-02T00:00:00Z", "2025-05-20T00:00:00Z")
    return members


def _pieces(w: World, merchant_a: str, merchant_b: str) -> tuple[list[str], list[str]]:
    """Two such groups of six, bridged by one shared device: one strong component of 12."""
    a = _ring(w, "RA", merchant_a)
    b = _ring(w, "RB", merchant_b)
    w.link("device", a[0], "BRIDGE-DEV", "2025-05-02T00:00:00Z", "2025-05-20T00:00:00Z")
    w.link("device", b[0], "BRIDGE-DEV", "2025-05-02T00:00:00Z", "2025-05-20T00:00:00Z")
    return a, b


def test_the_pieces_of_one_ring_are_one_cluster(graph: Graph) -> None:
    """One ring: both pieces pay the same colluding merchant (12 payers, over the merchant cap,
    so it links nobody), and nobody else pays it. Leiden and the risk splits cut the ring into
    flagged pieces along its devices; the merchant puts them back together."""
    w = World()
    w.background()
    a, b = _pieces(w, "M-COLLUDE-X", "M-COLLUDE-X")
    w.write(graph)
    flag = SPLIT.flag_threshold

    apart = detect(graph, config=DetectConfig(max_cluster_size=8, reassemble_share=0.0))
    pieces = [set(c.members) for c in apart.clusters if c.score >= flag]
    assert len(pieces) >= 2 and set(a + b) == set().union(*pieces)  # in pieces without it

    whole = detect(graph, config=SPLIT)
    ring = [c for c in whole.clusters if set(c.members) & set(a + b)]
    assert [set(c.members) for c in ring] == [set(a + b)]
    assert ring[0].score >= flag
    assert all(whole.account_scores[x] >= flag for x in a + b)


def test_two_rings_sharing_a_popular_shop_stay_two(graph: Graph) -> None:
    """Two rings, each on its own merchant: what they share is the shop most customers pay
    (most of its payers are in no flagged cluster) and one bridging device (two accounts):
    neither joins them."""
    w = World()
    w.background()
    a, b = _pieces(w, "M-COLLUDE-A", "M-COLLUDE-B")
    w.write(graph)

    d = detect(graph, config=SPLIT)
    flagged = [set(c.members) for c in d.clusters if c.score >= SPLIT.flag_threshold]
    assert set(a + b) <= set().union(*flagged)
    assert not any(c & set(a) and c & set(b) for c in flagged), flagged


def test_one_component_at_a_time_reassembles_as_the_whole_graph(graph: Graph) -> None:
    """Reassembly works within strong components, so the detector run one component at a time
    (what the Spark engine distributes, models.partition) merges exactly what it merges on the
    whole graph: the same clusters, scores and account scores."""
    w = World()
    w.background()
    a, b = _pieces(w, "M-COLLUDE-X", "M-COLLUDE-X")
    household(w, "H")
    _ring(w, "RC", "M-COLLUDE-C")  # a second ring in its own component
    w.write(graph)
    proj = read_projection(graph)

    whole = detect(graph, config=SPLIT, projection=proj)
    parts = detect_partitioned(proj, SPLIT, lambda nodes: identifier_ids(graph, nodes))
    assert any(set(c.members) == set(a + b) for c in whole.clusters)
    assert parts.clusters == whole.clusters
    assert parts.account_scores == whole.account_scores


def test_pieces_in_separate_components_are_one_cluster(graph: Graph) -> None:
    """A mule ring's groups are strong components of their own: nothing but the collector they
    all pay (12 payers: too many to link anyone) holds them together. Reassembly is not limited
    to one component, so they come back as one ring, in one process and one component at a
    time alike."""
    w = World()
    w.background()
    a = _ring(w, "RA", "M-COLLECT")  # no bridging device: two components of six
    b = _ring(w, "RB", "M-COLLECT")
    household(w, "H")
    w.write(graph)
    proj = read_projection(graph)
    flag = SPLIT.flag_threshold

    whole = detect(graph, config=SPLIT, projection=proj)
    ring = [c for c in whole.clusters if set(c.members) & set(a + b)]
    assert [set(c.members) for c in ring] == [set(a + b)] and ring[0].score >= flag
    assert all(whole.account_scores[x] >= flag for x in a + b)
    parts = detect_partitioned(proj, SPLIT, lambda nodes: identifier_ids(graph, nodes))
    assert parts.clusters == whole.clusters
    assert parts.account_scores == whole.account_scores


_CHAIN_KINDS = ("email", "bank_card", "device", "phone", "id_document", "ip")


def _chain(w: World, prefix: str, size: int) -> list[str]:
    """A dormant ring: accounts opened weeks apart, low KYC, each sharing one identifier (of
    changing kinds, used by no one else) with the next; nothing is held by all."""
    members = [
        w.account(f"{prefix}{i:02d}", f"2024-{1 + i // 2:02d}-{1 + 14 * (i % 2):02d}T12:00:00Z", 1)
        for i in range(size)
    ]
    since = "2024-08-01T00:00:00Z"
    for i in range(size - 1):
        kind = _CHAIN_KINDS[i % len(_CHAIN_KINDS)]
        for a in members[i : i + 2]:
            w.link(kind, a, f"{prefix}-{kind}-{i}", since)
    return members


def test_a_sleeper_chain_cut_into_pieces_is_one_cluster(graph: Graph) -> None:
    """A chain of twelve is cut by Leiden into flagged pieces; nothing is shared by half of any
    piece, so only the chain rule joins them: the identifier each cut runs through was used by
    its two ends alone. In one process and one component at a time alike."""
    w = World()
    w.background()
    chain = _chain(w, "S", 12)
    household(w, "H")
    w.write(graph)
    proj = read_projection(graph)
    flag = SPLIT.flag_threshold

    apart = detect(graph, config=replace(SPLIT, reassemble_chains=False), projection=proj)
    pieces = [set(c.members) for c in apart.clusters if set(c.members) & set(chain)]
    assert len(pieces) >= 2 and set(chain) == set().union(*pieces)
    assert all(c.score >= flag for c in apart.clusters if set(c.members) & set(chain))

    whole = detect(graph, config=SPLIT, projection=proj)
    ring = [c for c in whole.clusters if set(c.members) & set(chain)]
    assert [set(c.members) for c in ring] == [set(chain)] and ring[0].score >= flag
    parts = detect_partitioned(proj, SPLIT, lambda nodes: identifier_ids(graph, nodes))
    assert parts.clusters == whole.clusters
    assert parts.account_scores == whole.account_scores
