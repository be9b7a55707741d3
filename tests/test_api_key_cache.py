"""The API key cache (issue #19): random key ids do not each cost a Neo4j read, and the cache is a
bounded LRU that a flood of unknown ids cannot empty of valid keys. The real Neo4j, with its reads
counted by a thin subclass of the real Graph."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator, Mapping
from typing import Any, LiteralString

import neo4j
import pytest

from ringscope.api.auth import UNANSWERED, KeyVerifier, create_key, revoke_key
from ringscope.graph import Graph, connect, cypher, init_schema
from ringscope.settings import Settings

pytestmark = pytest.mark.neo4j


class CountingGraph(Graph):
    """The real Graph, counting the reads that reach Neo4j."""

    reads = 0

    def read(
        self, text: LiteralString, params: Mapping[str, Any] | None = None
    ) -> list[neo4j.Record]:
        self.reads += 1
        return super().read(text, params)


@pytest.fixture(scope="module")
def graph(neo4j_settings: Settings) -> Iterator[CountingGraph]:
    with connect(neo4j_settings) as g:
        g.write(cypher.DELETE_ALL)
        init_schema(g)
        counting = CountingGraph(g.driver, g.database, g.query_timeout)
        yield counting


def random_key() -> str:
    return f"rsk_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"


def bearer(key: str) -> str:
    return f"Bearer {key}"


def test_random_key_ids_do_not_each_read_neo4j(graph: CountingGraph) -> None:
    valid = create_key(graph, "risk_engine", "engine")
    verifier = KeyVerifier(graph, 10.0)  # the defaults: 1 s negative cache
    assert verifier.verify(bearer(valid.key)) is not None
    before = graph.reads
    t0 = time.monotonic()
    refused = [verifier.verify(bearer(random_key())) for _ in range(500)]
    elapsed = time.monotonic() - t0
    assert refused == [None] * 500
    reads = graph.reads - before
    # One read of the key list per second at most (it is refreshed when 1 s old).
    print(f"500 random key ids: {reads} Neo4j reads in {elapsed:.2f} s")
    assert reads <= 2 + elapsed
    # The valid key is still cached: no read to verify it again.
    before = graph.reads
    assert verifier.verify(bearer(valid.key)) is not None
    assert graph.reads == before
    # A wrong secret for a real key id is still refused.
    key_id = valid.key.split("_")[1]
    assert verifier.verify(bearer(f"rsk_{key_id}_{secrets.token_urlsafe(32)}")) is None


def test_the_cache_is_a_bounded_lru(graph: CountingGraph) -> None:
    a, b, c = (create_key(graph, "investigator", n) for n in ("a", "b", "c"))
    verifier = KeyVerifier(graph, 60.0, max_entries=2)
    for k in (a, b, a, c):  # c pushes out b, the least recently used; a stays
        assert verifier.verify(bearer(k.key)) is not None
    before = graph.reads
    assert verifier.verify(bearer(a.key)) is not None
    assert verifier.verify(bearer(c.key)) is not None
    assert graph.reads == before
    assert verifier.verify(bearer(b.key)) is not None
    assert graph.reads == before + 1  # b was evicted, so read again
    # A flood of unknown ids never enters the verified cache: a and c stay.
    for _ in range(50):
        verifier.verify(bearer(random_key()))
    before = graph.reads
    assert verifier.verify(bearer(b.key)) is not None
    assert verifier.verify(bearer(c.key)) is not None
    assert graph.reads == before


def test_a_new_key_works_once_the_negative_cache_expires(graph: CountingGraph) -> None:
    verifier = KeyVerifier(graph, 60.0, negative_ttl=0.5)
    assert verifier.verify(bearer(random_key())) is None  # reads the key list
    fresh = create_key(graph, "investigator", "late")
    deadline = time.monotonic() + 30
    while verifier.verify(bearer(fresh.key)) is None:
        assert time.monotonic() < deadline, "a new key was refused for 30 s"
        time.sleep(0.1)


def test_revoked_keys_and_many_keys(graph: CountingGraph) -> None:
    key = create_key(graph, "admin", "root")
    verifier = KeyVerifier(graph, 0.2, negative_ttl=0.2)
    assert verifier.verify(bearer(key.key)) is not None
    revoke_key(graph, key.key_id)
    deadline = time.monotonic() + 30
    while verifier.verify(bearer(key.key)) is not None:
        assert time.monotonic() < deadline, "a revoked key still works after 30 s"
        time.sleep(0.05)
    # More keys than the list keeps: unknown ids are remembered one by one instead.
    verifier = KeyVerifier(graph, 60.0, negative_ttl=60.0, max_listed=1)
    unknown = random_key()
    assert verifier.verify(bearer(unknown)) is None
    before = graph.reads
    for _ in range(20):
        assert verifier.verify(bearer(unknown)) is None
    assert graph.reads == before
    # ttl 0: no cache at all (every verification reads), as the tests' servers use.
    verifier = KeyVerifier(graph, 0.0)
    other = create_key(graph, "risk_engine", "e2")
    before = graph.reads
    for _ in range(3):
        assert verifier.verify(bearer(other.key)) is not None
    assert graph.reads == before + 3


def test_the_cached_answer_is_verifys_and_never_reads(graph: CountingGraph) -> None:
    """The server asks ``verify_cached`` on its event loop and goes to a worker thread only for
    UNANSWERED: every answer it gives must be ``verify``'s, without a read."""
    key = create_key(graph, "investigator", "cached")
    key_id = key.key.split("_")[1]
    wrong = bearer(f"rsk_{key_id}_{secrets.token_urlsafe(32)}")
    verifier = KeyVerifier(graph, 60.0, negative_ttl=60.0)
    before = graph.reads
    assert verifier.verify_cached(bearer(key.key)) is UNANSWERED  # nothing cached yet
    assert verifier.verify_cached(wrong) is UNANSWERED
    assert verifier.verify_cached(bearer(random_key())) is UNANSWERED  # no list read yet
    assert verifier.verify_cached("Basic abc") is None  # malformed: no read needed
    assert verifier.verify_cached(None) is None
    assert graph.reads == before
    unknown = bearer(random_key())
    assert verifier.verify(unknown) is None  # reads the list of key ids
    principal = verifier.verify(bearer(key.key))
    assert principal is not None
    before = graph.reads
    assert verifier.verify_cached(bearer(key.key)) == principal
    assert verifier.verify_cached(wrong) is None  # the cached hash still checks the secret
    assert verifier.verify_cached(unknown) is None
    assert verifier.verify_cached(bearer(random_key())) is None  # not in the fresh list
    assert graph.reads == before
    # ttl 0 (no caching): every well-formed key needs a read.
    assert KeyVerifier(graph, 0.0).verify_cached(bearer(key.key)) is UNANSWERED
