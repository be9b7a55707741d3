"""Node numbers (graph/numbering.py) against a real Neo4j: every account and identifier node gets a
number once, whichever way it was written, and the rebuild's projection names nodes by them,
never by Neo4j's internal ids, which mean something only within one transaction."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import neo4j
import numpy as np
import pytest
from ingest_support import sample_tables, write_dataset

from ringscope.graph import Graph, cypher, number_nodes
from ringscope.ingest import load
from ringscope.ingest.events import Event, prepare_events, record_events
from ringscope.kinds import KINDS
from ringscope.models.projection import dense_unique, identifier_ids, read_projection
from ringscope.settings import Settings

pytestmark = pytest.mark.neo4j

_NUMBERS = (
    "MATCH (n) WHERE "
    + " OR ".join(f"n:{k.label}" for k in KINDS)
    + " RETURN labels(n) AS labels, n.id AS id, n.seq AS seq"
)


def _numbers(graph: Graph) -> dict[tuple[str, str], int | None]:
    return {
        (next(x for x in r["labels"] if x != cypher.UNNUMBERED), str(r["id"])): r["seq"]
        for r in graph.read(_NUMBERS)
    }


def _marked(graph: Graph) -> int:
    return int(graph.read("MATCH (n:Unnumbered) RETURN count(n) AS n")[0]["n"])


def _load(graph: Graph, settings: Settings, tmp_path: Path, n_accounts: int = 12) -> None:
    d = write_dataset(tmp_path / "d", sample_tables(n_accounts=n_accounts))
    load(d, graph, settings, report_dir=tmp_path / "r", progress=False)


def test_a_load_marks_new_nodes_and_numbering_names_each_once(
    graph: Graph, neo4j_settings: Settings, tmp_path: Path
) -> None:
    _load(graph, neo4j_settings, tmp_path)
    before = _numbers(graph)
    assert len(before) > 12 and set(before.values()) == {None}
    assert _marked(graph) == len(before)  # every node the load created is marked

    assert number_nodes(graph) == len(before)
    numbers = _numbers(graph)
    assert sorted(v for v in numbers.values() if v is not None) == list(range(len(before)))
    assert _marked(graph) == 0
    assert number_nodes(graph) == 0  # nothing left: one count-store read
    assert _numbers(graph) == numbers

    # Events recorded since: new nodes are marked, numbered above the rest; nobody renumbered.
    at = datetime(2024, 7, 1, tzinfo=UTC)
    event = Event("num-1", "acc-new", at, "PAYMENT", {"device": ["dev-new"]}, payee="p-new",
                  amount="12.50", currency="CNY")  # fmt: skip
    prepared = prepare_events([event], neo4j_settings.default_region)
    record_events(graph, prepared)
    assert _marked(graph) == 3
    assert number_nodes(graph) == 3
    after = _numbers(graph)
    assert {k: after[k] for k in numbers} == numbers
    new = {k: v for k, v in after.items() if k not in numbers}
    assert set(new) == {("Account", "acc-new"), ("Device", "dev-new"), ("Payee", "p-new")}
    assert sorted(new.values()) == [len(numbers), len(numbers) + 1, len(numbers) + 2]


def test_nodes_written_by_hand_or_deleted_are_caught_by_the_count(graph: Graph) -> None:
    """A node created without the mark (an old store, a statement by hand) has no number; the
    counter's count of numbered nodes disagrees with the count store, so the labels are
    scanned. A delete makes them disagree too, and numbering settles the count again."""
    graph.write("UNWIND range(0, 9) AS i CREATE (:Account {id: 'h-' + toString(i)})")
    graph.write("CREATE (:Device {id: 'hd-0'})")
    assert number_nodes(graph, batch=4) == 11  # several transactions of 4
    numbers = _numbers(graph)
    assert sorted(numbers.values()) == list(range(11))  # type: ignore[type-var]

    graph.write("MATCH (a:Account {id: 'h-3'}) DETACH DELETE a")
    graph.write("CREATE (:Phone {id: 'hp-0'}), (:Phone {id: 'hp-1'})")
    assert number_nodes(graph) == 2
    after = _numbers(graph)
    assert {after[("Phone", "hp-0")], after[("Phone", "hp-1")]} == {11, 12}  # never reused
    assert number_nodes(graph) == 0
    graph.write("MATCH (a:Account {id: 'h-4'}) DETACH DELETE a")
    assert number_nodes(graph) == 0  # the count settled: no scan next time
    state = graph.read(cypher.SEQ_STATE)[0]
    assert state["numbered"] == state["nodes"] == 11


def test_two_numbering_runs_at_once_never_hand_out_a_number_twice(graph: Graph) -> None:
    graph.write("UNWIND range(0, 1999) AS i CREATE (a:Account:Unnumbered {id: 'c-' + toString(i)})")
    done: list[int] = []
    threads = [
        threading.Thread(target=lambda: done.append(number_nodes(graph, batch=50)))
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(done) == 2000
    assert sorted(_numbers(graph).values()) == list(range(2000))  # type: ignore[type-var]


def test_the_projection_names_nodes_by_number_not_internal_id(
    graph: Graph, neo4j_settings: Settings, tmp_path: Path
) -> None:
    """The projection numbers what it needs, then every name it returns is a number: accounts,
    identifiers and the flags; a cluster's reasons look identifiers up by those numbers. On the
    code before node numbers, the names were internal ids (this fails there: no ``seq``)."""
    _load(graph, neo4j_settings, tmp_path, n_accounts=30)
    # Spread the numbers away from the internal ids, so the two cannot agree by chance.
    graph.write("MATCH (c:Sequence) SET c.next = 1000")
    graph.write("MATCH (n:Account) WITH n ORDER BY n.id DESC LIMIT 5 REMOVE n:Unnumbered")

    proj = read_projection(graph, chunk=7)
    numbers = _numbers(graph)
    assert all(v is not None for v in numbers.values())
    assert proj.nodes.tolist() == [numbers[("Account", a)] for a in proj.ids]
    assert proj.n == 30
    for name, label in (("device", "Device"), ("phone", "Phone"), ("payee", "Payee")):
        e = proj.kinds[name]
        by_number = {v: k[1] for k, v in numbers.items() if k[0] == label}
        assert e.m > 0 and set(e.nodes.tolist()) <= set(by_number)
        assert identifier_ids(graph, e.nodes.tolist()) == {
            n: by_number[n] for n in e.nodes.tolist()
        }
    # Told each kind's numbers, the lookup seeks one label per number (the detector's way); a
    # number it was not told of (an account's, here) is still sought under every label.
    kinds = {k: e.nodes for k, e in proj.kinds.items()}
    mixed = [int(proj.kinds[k].nodes[0]) for k in ("device", "phone", "payee", "ip")]
    want = {
        n: next(key[1] for key, v in numbers.items() if v == n and key[0] != "Account")
        for n in mixed
    }
    assert identifier_ids(graph, mixed, kinds) == want
    assert identifier_ids(graph, [*mixed, int(proj.nodes[0])], kinds) == want
    device = proj.kinds["device"]
    flagged = {int(n) for n, f in zip(device.nodes, device.flag, strict=True) if f}
    assert flagged == {numbers[("Device", "dev-0")]}  # the emulator of sample_tables
    for statement in (cypher.DETECT_ACCOUNTS, *cypher.DETECT_LINKS.values(),
                      cypher.DETECT_IDENTIFIER_IDS, *cypher.DETECT_IDENTIFIER_IDS_OF.values(),
                      cypher.DETECT_EMULATOR_DEVICES,
                      cypher.DETECT_VIRTUAL_PHONES, cypher.DETECT_MERCHANT_PAYEES):  # fmt: skip
        assert "id(" not in statement.replace("elementId(", "")


def test_a_chunked_projection_equals_one_chunk(
    graph: Graph, neo4j_settings: Settings, tmp_path: Path
) -> None:
    """Chunks are ranges of account numbers, numbered in whatever order the loads created the
    accounts; any chunking gives the arrays of one chunk."""
    _load(graph, neo4j_settings, tmp_path, n_accounts=40)
    one = read_projection(graph, chunk=1_000, readers=1)
    for chunk, readers in ((1, 2), (3, 1), (11, 2)):
        p = read_projection(graph, chunk=chunk, readers=readers)
        assert p.ids == one.ids and p.nodes.tolist() == one.nodes.tolist()
        for name, e in one.kinds.items():
            f = p.kinds[name]
            assert sorted(zip(f.acc.tolist(), f.nodes[f.ident].tolist(), f.count.tolist(),
                              strict=True)) == sorted(
                zip(e.acc.tolist(), e.nodes[e.ident].tolist(), e.count.tolist(), strict=True)
            )  # fmt: skip


def _operators(plan: Any) -> set[str]:
    ops = {str(plan["operatorType"]).split("@")[0]}
    for child in plan.get("children", []):
        ops |= _operators(child)
    return ops


def test_a_chunk_read_seeks_accounts_by_number_whatever_the_statistics(
    graph: Graph, neo4j_settings: Settings, tmp_path: Path
) -> None:
    """A chunk's accounts come from a range seek of the number index, which returns them in
    number order, so the edges' order (and the arrays) depend neither on the chunking nor on
    the plan Neo4j would pick from its statistics (it scanned the label, or started from the
    identifiers, when the index was empty or small)."""
    _load(graph, neo4j_settings, tmp_path, n_accounts=20)

    def plans() -> dict[str, set[str]]:
        out = {}
        for rel, statement in cypher.DETECT_LINKS.items():
            with graph.driver.session(database=graph.database) as session:
                params = {"low": 0, "high": 10**9}
                plan = session.run(neo4j.Query("EXPLAIN " + statement), params).consume().plan
            assert plan is not None
            out[rel] = _operators(plan)
        return out

    for when in ("before numbering: the index empty", "after"):
        for rel, ops in plans().items():
            # From the account number index (a range seek, or with an empty index's statistics
            # a scan of it: both in number order), out along each account's relationships:
            # never a cross product of accounts and identifiers checked pair by pair.
            assert ops & {"NodeIndexSeekByRange", "NodeIndexScan"}, (when, rel, ops)
            assert "Expand(All)" in ops and not ops & {"CartesianProduct", "Expand(Into)"}, ops
        number_nodes(graph)


@pytest.mark.parametrize(
    "values",
    [
        [],
        [0],
        [5, 3, 5, 0, 3, 9],  # dense: marked in a table
        list(range(10, 0, -1)) * 3,
        [2**40, 7, 2**40],  # sparse: sorted
        [-1, 4, -1],  # an unnumbered identifier's -1: sorted
    ],
)
def test_dense_unique_is_numpys_unique(values: list[int]) -> None:
    """The projection renumbers identifiers by a table of the number range where numbers are
    dense (``dense_unique``); the result is ``np.unique``'s, values and inverse, either way."""
    v = np.asarray(values, dtype=np.int64)
    uniq, inv = dense_unique(v)
    want, want_inv = np.unique(v, return_inverse=True)
    assert uniq.dtype == want.dtype and uniq.tolist() == want.tolist()
    assert inv.tolist() == want_inv.reshape(-1).tolist()
    rng = np.random.default_rng(7)
    big = rng.integers(0, 300_000, 100_000).astype(np.int64)  # long and dense: the table
    uniq, inv = dense_unique(big)
    assert np.array_equal(uniq, np.unique(big)) and np.array_equal(uniq[inv], big)
