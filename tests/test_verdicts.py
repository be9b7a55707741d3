"""Investigators' verdicts as labels, read for some accounts: the same labels as the whole read,
through the accounts (HAS_VERDICT) rather than through every verdict's member list, so explain
and screen do not slow down as verdicts accumulate. Against the real Neo4j."""

from __future__ import annotations

from typing import Any, LiteralString

import pytest

from ringscope.graph import Graph, connect, cypher, init_schema
from ringscope.models.verdicts import verdict_labels
from ringscope.settings import Settings

pytestmark = pytest.mark.neo4j


def _ring(g: Graph, vid: str, members: list[str], verdict: str) -> None:
    g.write_records(
        cypher.API_VERDICT_RING,
        {
            "id": vid,
            "target_id": "RING-" + vid,
            "verdict": verdict,
            "note": "",
            "author": "test",
            "key_id": "k",
            "build_id": "b",
            "members": members,
        },
    )


def _account(g: Graph, vid: str, account: str, verdict: str) -> None:
    g.write_records(
        cypher.API_VERDICT_ACCOUNT,
        {
            "id": vid,
            "target_id": account,
            "verdict": verdict,
            "note": "",
            "author": "test",
            "key_id": "k",
            "build_id": "b",
        },
    )


def _db_hits(g: Graph, text: LiteralString, params: dict[str, Any]) -> int:
    """Neo4j's own count of storage accesses for one run of the query (PROFILE): what the
    query touches, independent of the machine's speed."""
    _, summary, _ = g.driver.execute_query("PROFILE " + text, params)

    def total(op: dict[str, Any]) -> int:
        return int(op.get("dbHits", 0)) + sum(total(c) for c in op.get("children", []))

    assert summary.profile is not None
    return total(summary.profile)


def test_verdicts_of_some_accounts_match_the_whole_read_and_ignore_other_verdicts(
    neo4j_settings: Settings,
) -> None:
    with connect(neo4j_settings) as g:
        g.write(cypher.DELETE_ALL)
        init_schema(g)
        g.write("UNWIND range(0, 399) AS i CREATE (:Account {id: 'V' + toString(i)})")
        _ring(g, "VR-1", ["V0", "V1", "V-GHOST"], "legit")
        _account(g, "VA-1", "V1", "fraud")
        _ring(g, "VR-2", ["V1", "V2"], "fraud")  # later than V1's own verdict, which still wins
        ids = ["V0", "V1", "V2", "V3"]
        mine = verdict_labels(g, ids)
        whole = verdict_labels(g)
        assert mine == {a: v for a, v in whole.items() if a in ids}
        assert {a: v[0] for a, v in mine.items()} == {"V0": "legit", "V1": "fraud", "V2": "fraud"}
        params = {"ids": ids}
        hits = _db_hits(g, cypher.API_VERDICT_LABELS_FOR, params)
        scan = _db_hits(g, cypher.API_VERDICT_LABELS, {})
        for i in range(100):  # investigators work through other rings
            _ring(g, f"VX-{i}", [f"V{10 + 3 * i}", f"V{11 + 3 * i}", f"V{12 + 3 * i}"], "fraud")
        assert verdict_labels(g, ids) == mine
        assert _db_hits(g, cypher.API_VERDICT_LABELS_FOR, params) == hits
        assert _db_hits(g, cypher.API_VERDICT_LABELS, {}) > scan  # the whole read grows


def test_ring_verdicts_given_before_the_links_are_linked_by_init_schema(
    neo4j_settings: Settings,
) -> None:
    """A ring verdict written as before (members listed, no HAS_VERDICT) is found by the
    per-account read once ``init_schema`` has run, as every start-up and load does."""
    with connect(neo4j_settings) as g:
        g.write(cypher.DELETE_ALL)
        init_schema(g)
        g.write("UNWIND range(0, 9) AS i CREATE (:Account {id: 'W' + toString(i)})")
        g.write(
            "CREATE (:Verdict {id: 'OLD-1', target_kind: 'ring', target_id: 'R-OLD', "
            "verdict: 'fraud', members: ['W1', 'W2'], created_at: datetime()})"
        )
        assert verdict_labels(g, ["W1", "W2", "W3"]) == {}
        init_schema(g)
        init_schema(g)  # idempotent: one link per member
        assert {a: v[0] for a, v in verdict_labels(g, ["W1", "W2", "W3"]).items()} == {
            "W1": "fraud",
            "W2": "fraud",
        }
        n = g.read(
            "MATCH (:Account)-[r:HAS_VERDICT]->(:Verdict {id: 'OLD-1'}) RETURN count(r) AS n"
        )
        assert n[0]["n"] == 2


def test_the_verdict_read_costs_nothing_per_relationship_of_an_account_without_a_verdict(
    neo4j_settings: Settings,
) -> None:
    """Reading the verdicts of accounts that have none (nearly all of a screen's neighbours)
    tests their ``HasVerdict`` label, not their relationships: the cost stays the same however
    many relationships they have. Before the label, Neo4j walked each account's whole
    relationship chain to find no ``HAS_VERDICT`` (47,000 of the 86,000 db hits of a screen
    reading 1,900 accounts)."""
    with connect(neo4j_settings) as g:
        g.write(cypher.DELETE_ALL)
        init_schema(g)
        g.write("UNWIND range(0, 49) AS i CREATE (:Account {id: 'H' + toString(i)})")
        g.write("CREATE (:Account {id: 'H-J'})")
        _account(g, "VH-1", "H-J", "fraud")
        ids = [f"H{i}" for i in range(50)] + ["H-J"]
        params = {"ids": ids}
        labels = verdict_labels(g, ids)
        few = _db_hits(g, cypher.API_VERDICT_LABELS_FOR, params)
        g.write(  # 40 devices each: a relationship chain to walk
            "MATCH (a:Account) WHERE a.id STARTS WITH 'H' AND a.id <> 'H-J' "
            "UNWIND range(0, 39) AS j MERGE (d:Device {id: a.id + '-D' + toString(j)}) "
            "CREATE (a)-[:USES_DEVICE {count: 1}]->(d)"
        )
        assert verdict_labels(g, ids) == labels
        assert {a: v[0] for a, v in labels.items()} == {"H-J": "fraud"}
        assert _db_hits(g, cypher.API_VERDICT_LABELS_FOR, params) == few


def test_accounts_linked_to_a_verdict_before_the_label_are_marked_by_init_schema(
    neo4j_settings: Settings,
) -> None:
    """An account linked to its verdict by an earlier version (``HAS_VERDICT``, no
    ``HasVerdict`` label) has its verdict read again once ``init_schema`` has run, as every
    start-up and load does; every writer of ``HAS_VERDICT`` marks its accounts itself."""
    with connect(neo4j_settings) as g:
        g.write(cypher.DELETE_ALL)
        init_schema(g)
        g.write("UNWIND range(0, 4) AS i CREATE (:Account {id: 'M' + toString(i)})")
        _account(g, "VM-1", "M0", "fraud")
        _ring(g, "VM-2", ["M1", "M2"], "legit")
        g.write(  # as an earlier version left them
            "MATCH (a:Account {id: 'M3'}) CREATE (a)-[:HAS_VERDICT]->(:Verdict {id: 'VM-OLD', "
            "target_kind: 'account', target_id: 'M3', verdict: 'fraud', members: ['M3'], "
            "created_at: datetime()})"
        )
        unmarked = (
            "MATCH (a:Account)-[:HAS_VERDICT]->() WHERE NOT a:" + cypher.VERDICT_MARK + " "
            "RETURN collect(DISTINCT a.id) AS ids"
        )
        assert g.read(unmarked)[0]["ids"] == ["M3"]  # the writers marked M0, M1 and M2
        init_schema(g)
        assert g.read(unmarked)[0]["ids"] == []
        got = verdict_labels(g, ["M0", "M1", "M2", "M3", "M4"])
        assert {a: v[0] for a, v in got.items()} == {
            "M0": "fraud",
            "M1": "legit",
            "M2": "legit",
            "M3": "fraud",
        }
