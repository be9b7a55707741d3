"""riskNeighbourhood's reads: the head statement (the start and its first two hops in one
Cypher statement, ``cypher.API_NB_HEAD``) must give exactly what reading each hop by its own
statement gives (``head_hops=0``, the rules written once in Python), on a generated world loaded
by ingest, for every kind of start, hop count, node limit (truncation), score floor and hub
degree; and the auto-commit reads must fall back to a retried transaction on a retryable error.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import neo4j
import pytest

from ringscope.api import service
from ringscope.graph import Graph, Reader, cypher
from ringscope.kinds import KINDS
from ringscope.models.builds import ScoreCache, write_build
from ringscope.settings import Settings
from tests.api_support import detection
from tests.helpers import generated_graph

pytestmark = pytest.mark.neo4j

ACCOUNTS = 1_500


@pytest.fixture(scope="module")
def world(neo4j_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Graph]:
    """A generated world through ingest, and a build whose scores spread over 0..1, so that a
    score floor drops some accounts and keeps others."""
    with generated_graph(neo4j_settings, tmp_path_factory.mktemp("nb-reads"), ACCOUNTS, 11) as g:
        ids = [r["id"] for r in g.read("MATCH (a:Account) RETURN a.id AS id ORDER BY id")]
        rng = random.Random(5)
        write_build(g, detection([], {a: rng.random() for a in ids}), model_version="test-1")
        yield g


def _starts(g: Graph) -> list[tuple[str, str]]:
    rng = random.Random(7)
    starts: list[tuple[str, str]] = []
    for k in KINDS:
        ids = [r["id"] for r in g.read(f"MATCH (n:{k.label}) RETURN n.id AS id ORDER BY id")]
        starts += [(k.name, i) for i in rng.sample(ids, min(len(ids), 40 if k.rel is None else 6))]
    # The identifiers most shared: hubs at the small hub degrees, truncation at small limits.
    for r in g.read(
        "MATCH (x)<-[r]-(:Account) WHERE NOT x:Account WITH x, count(r) AS n "
        "ORDER BY n DESC, x.id LIMIT 6 RETURN labels(x)[0] AS label, x.id AS id"
    ):
        starts.append((next(k.name for k in KINDS if k.label == r["label"]), r["id"]))
    return starts


def test_the_head_statement_reads_what_the_per_hop_reads_do(world: Graph) -> None:
    cache = ScoreCache()
    compared = truncated = dropped = hubs = 0
    for kind, entity in _starts(world):
        for hops in (1, 2, 3):
            for limit in (2, 7, 40):
                for min_score in (0.0, 0.5):
                    for hub_degree in (4, 200):
                        args: dict[str, Any] = {
                            "hops": hops,
                            "limit": limit,
                            "min_score": min_score,
                            "hub_degree": hub_degree,
                            "cache": cache,
                        }
                        head = service.neighbourhood(world, kind, entity, **args)
                        per_hop = service.neighbourhood(world, kind, entity, head_hops=0, **args)
                        assert head == per_hop, (kind, entity, args)
                        assert head is not None
                        compared += 1
                        truncated += head.truncated
                        dropped += min_score > 0 and len(head.nodes) < limit
                        hubs += any(n.hub for n in head.nodes.values())
    # The comparison covered the cases the head statement has rules for.
    assert compared > 1_000 and truncated > 200 and dropped > 100 and hubs > 100


def test_the_head_statement_is_one_statement_for_two_hops(world: Graph) -> None:
    """Two hops from an account: one statement (the head), scores from the cache."""
    cache = ScoreCache()
    account = world.read("MATCH (a:Account) RETURN a.id AS id ORDER BY id LIMIT 1")[0]["id"]
    service.neighbourhood(
        world, "account", account, hops=2, limit=100, min_score=0, hub_degree=200, cache=cache
    )  # fills the cache
    ran: list[str] = []
    real = world.read_auto

    def counting(work: Any) -> Any:
        def counted(tx: Reader) -> Any:
            class Spy:
                def run(self, query: Any, parameters: Any = None) -> neo4j.Result:
                    ran.append(query)
                    return tx.run(query, parameters)

            return work(Spy())

        return real(counted)

    world.read_auto = counting  # type: ignore[method-assign]
    try:
        nb = service.neighbourhood(
            world, "account", account, hops=2, limit=100, min_score=0, hub_degree=200, cache=cache
        )
    finally:
        del world.read_auto
    assert nb is not None and len(nb.nodes) > 1
    assert ran == [cypher.API_NB_HEAD["account"]]


def test_auto_commit_reads_fall_back_to_a_retried_transaction(world: Graph) -> None:
    """A retryable error in an auto-commit read runs the work again in a managed transaction;
    an error that is not retryable is raised as it is."""
    calls: list[str] = []

    def flaky(tx: Reader) -> int:
        calls.append(type(tx).__name__)
        if len(calls) == 1:
            raise neo4j.exceptions.TransientError("a transient failure")
        return int(tx.run("RETURN 41 + 1 AS x").single(strict=True)["x"])

    assert world.read_auto(flaky) == 42
    assert calls == ["_AutoCommit", "ManagedTransaction"]

    def broken(tx: Reader) -> int:
        tx.run("RETURN nope").consume()
        return 0

    with pytest.raises(neo4j.exceptions.CypherSyntaxError):
        world.read_auto(broken)


def test_reads_past_the_head_share_one_transaction(world: Graph) -> None:
    """Element ids pass from the head to a third hop's statement: those statements run in one
    managed transaction (Neo4j promises an element id's meaning only within one); two hops from
    an account, one statement, run as an auto-commit read."""
    used: list[str] = []
    real_auto, real_tx = world.read_auto, world.read_tx

    def auto(work: Any) -> Any:
        used.append("auto")
        return real_auto(work)

    def tx(work: Any) -> Any:
        used.append("tx")
        return real_tx(work)

    world.read_auto, world.read_tx = auto, tx  # type: ignore[method-assign]
    account = world.read("MATCH (a:Account) RETURN a.id AS id ORDER BY id LIMIT 1")[0]["id"]
    try:
        for hops in (2, 3):
            service.neighbourhood(
                world, "account", account, hops=hops, limit=100, min_score=0, hub_degree=200
            )
    finally:
        del world.read_auto, world.read_tx
    assert used == ["auto", "tx"]
