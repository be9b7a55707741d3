"""Versioned builds in the real Neo4j: write-back, the atomic switch, clean-up, pruning, stable
ring ids, ring history and cursor pagination."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pytest

from ringscope.graph import Graph
from ringscope.models import builds
from ringscope.models.builds import (
    BuildInProgressError,
    BuildNotFoundError,
    BuildWriter,
    InvalidCursorError,
    match_rings,
    write_build,
)
from ringscope.models.builds import writer as build_writer
from ringscope.models.detect import Cluster, Detection

ACCOUNTS = [f"A{i:03d}" for i in range(60)]


def cl(
    members: Iterable[str], score: float, *, reasons: Sequence[str] = ("shared device",)
) -> Cluster:
    ms = tuple(sorted(members))
    return Cluster(
        members=ms,
        score=score,
        reasons=tuple(reasons),
        features={"size": float(len(ms)), "shared_devices": 2.0},
        key_identifiers=(("device", "D1", len(ms)), ("phone", "+4412345", 2)),
        density=0.75,
    )


def det(*clusters: Cluster, scores: dict[str, float] | None = None) -> Detection:
    acc = {a: 0.01 for a in ACCOUNTS}
    for c in clusters:
        for m in c.members:
            acc[m] = c.score
    acc.update(scores or {})
    return Detection(tuple(clusters), acc, {"projection": 0.1})


def accounts(graph: Graph, ids: Sequence[str] = ACCOUNTS) -> None:
    graph.write("UNWIND $ids AS id CREATE (:Account {id: id})", {"ids": list(ids)})


def count(graph: Graph, text: str, **params: object) -> int:
    return int(graph.read(text, params)[0][0])


def rng(prefix: str, lo: int, hi: int) -> list[str]:
    return [f"{prefix}{i:03d}" for i in range(lo, hi)]


RING_X = rng("A", 0, 6)
RING_Y = rng("A", 10, 15)
RING_Z = rng("A", 20, 24)


# --- pure matching ----------------------------------------------------------------------------


def test_match_rings_rules() -> None:
    old = [["a", "b", "c", "d"], ["e", "f", "g", "h"], ["x", "y"]]
    new = [
        ["a", "b", "c", "d", "e"],  # grew by one: continues old 0
        ["f", "g"],  # kept half of old 1 (Jaccard 0.5): continues old 1
        ["p", "q", "r"],  # nothing in common: new
        ["x", "z", "w", "v", "u"],  # Jaccard 1/6 and kept 1 of 2 (half): continues old 2
    ]
    assert match_rings(new, old) == [0, 1, None, 2]
    # One-to-one and greedy by overlap: the bigger half of a split ring keeps the id.
    split = [["a", "b"], ["c", "d", "e", "f", "g"]]
    assert match_rings(split, [["a", "b", "c", "d", "e", "f", "g"]]) == [None, 0]
    assert match_rings([["a"]], []) == [None]
    assert match_rings([], [["a"]]) == []


# --- write and read ---------------------------------------------------------------------------


def test_write_build_and_read_back(graph: Graph) -> None:
    accounts(graph)
    d = det(cl(RING_X, 0.9), cl([*RING_Y, "GHOST"], 0.7), cl(RING_Z, 0.2, reasons=()))
    info = write_build(graph, d, model_version="m1", metrics={"auroc": 0.91})
    assert info.status == "complete" and info.current
    assert info.id.startswith("b-") and info.model_version == "m1"
    assert info.clusters == 3
    assert info.memberships == 6 + 5 + 4 and info.members_missing == 1  # GHOST has no Account
    assert info.accounts_scored == len(ACCOUNTS) + 1 and info.rings_new == 3
    assert info.metrics == {"auroc": 0.91} and info.stage_seconds["detect_projection"] == 0.1
    assert info.finished_at is not None and info.started_at is not None

    cur = builds.current_build(graph)
    assert cur is not None and cur.id == info.id
    assert [b.id for b in builds.list_builds(graph)] == [info.id]

    page = builds.clusters(graph)
    assert page.build_id == info.id and page.total == 3 and not page.has_next
    assert [c.score for c in page.items] == [0.9, 0.7, 0.2]
    top = page.items[0]
    assert top.members == tuple(RING_X) and top.size == 6 and top.density == 0.75
    assert top.reasons == ("shared device",) and top.features["size"] == 6.0
    assert top.key_identifiers == (("device", "D1", 6), ("phone", "+4412345", 2))
    assert top.first_seen_build == info.id and top.id == f"{info.id}/{top.ring_id}"
    assert page.items[2].reasons == ()
    assert builds.clusters(graph, min_score=0.5).total == 2

    by_ring = builds.cluster(graph, top.ring_id)
    assert by_ring == top
    assert builds.cluster(graph, top.id) == top
    assert builds.cluster(graph, "R-doesnotexist") is None

    # Memberships are relationships with the build id and the account's score.
    assert (
        count(
            graph,
            "MATCH (a:Account {id: $a})-[m:MEMBER_OF {build_id: $b}]->(c:Cluster)-[:IN_BUILD]->"
            "(:Build {id: $b}) WHERE m.score = 0.9 RETURN count(*)",
            a="A000",
            b=info.id,
        )
        == 1
    )

    bid, scores = builds.account_scores(graph)
    assert bid == info.id and scores["A000"] == 0.9 and scores["A059"] == 0.01
    assert len(scores) == len(ACCOUNTS) + 1
    assert builds.account_score(graph, ["A010", "A059", "nobody"]) == {"A010": 0.7, "A059": 0.01}


def test_score_chunks_cover_many_accounts(graph: Graph, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build_writer, "SCORE_CHUNK", 7)
    monkeypatch.setattr(build_writer, "SCORE_BATCH", 20)
    ids = [f"C{i:04d}" for i in range(50)]
    d = Detection((), {a: i / 100 for i, a in enumerate(ids)}, {})
    write_build(graph, d, batch_rows=20)
    _, scores = builds.account_scores(graph)
    assert scores == d.account_scores
    assert builds.account_score(graph, ["C0000", "C0006", "C0007", "C0049"]) == {
        "C0000": 0.0,
        "C0006": 0.06,
        "C0007": 0.07,
        "C0049": 0.49,
    }
    assert builds.clusters(graph).items == ()


def test_score_cache_answers_like_cypher_across_builds(
    graph: Graph, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The API's chunk cache gives what the Cypher lookup gives, per build, holds at most its
    limit, and never serves a pruned build."""
    monkeypatch.setattr(build_writer, "SCORE_CHUNK", 7)
    ids = [f"C{i:04d}" for i in range(50)]
    first = write_build(graph, Detection((), {a: i / 100 for i, a in enumerate(ids)}, {}))
    second = write_build(graph, Detection((), {a: 1 - i / 100 for i, a in enumerate(ids)}, {}))
    cache = builds.ScoreCache(max_chunks=3)
    ask = ["C0049", "C0000", "nobody", "C0013", "C0014", "C00135", "A"]
    for build in (first.id, second.id, first.id):
        plain = builds.account_score(graph, ask, build)
        assert builds.account_score(graph, ask, build, cache) == plain
        assert set(plain) == {"C0049", "C0000", "C0013", "C0014"}
        assert len(cache._chunks) <= 3
    assert builds.account_score(graph, ["C0049"], second.id, cache) == {"C0049": 0.51}
    write_build(graph, Detection((), {a: 0.5 for a in ids}, {}), keep=1)  # prunes both
    with pytest.raises(BuildNotFoundError):
        builds.account_score(graph, ["C0049"], first.id, cache)


def test_no_build_yet(graph: Graph) -> None:
    assert builds.current_build(graph) is None
    assert builds.list_builds(graph) == []
    with pytest.raises(BuildNotFoundError):
        builds.clusters(graph)


# --- the atomic switch, failures, pruning ----------------------------------------------------


def test_readers_see_the_old_build_until_the_switch(graph: Graph) -> None:
    accounts(graph)
    b1 = write_build(graph, det(cl(RING_X, 0.9), cl(RING_Y, 0.6)))
    writer = BuildWriter(graph)
    b2 = writer.begin()
    writer.write(det(cl(RING_X, 0.95), cl(RING_Z, 0.8), cl(RING_Y, 0.1)))

    # Build 2 is completely written but not switched: readers still see build 1, and only it.
    cur = builds.current_build(graph)
    assert cur is not None and cur.id == b1.id
    page = builds.clusters(graph, first=10)
    assert page.build_id == b1.id and [c.score for c in page.items] == [0.9, 0.6]
    assert {c.build_id for c in page.items} == {b1.id}
    x = builds.cluster(graph, page.items[0].ring_id)
    assert x is not None and x.build_id == b1.id and x.score == 0.9
    assert builds.account_scores(graph)[1]["A020"] == 0.01
    with pytest.raises(BuildNotFoundError, match="running"):
        builds.clusters(graph, build_id=b2)
    assert {b.id: b.status for b in builds.list_builds(graph)} == {b1.id: "complete", b2: "running"}

    info = writer.finish()
    assert info.id == b2 and info.current and info.previous_build == b1.id
    page = builds.clusters(graph, first=10)
    assert page.build_id == b2 and [c.score for c in page.items] == [0.95, 0.8, 0.1]
    assert builds.account_scores(graph)[1]["A020"] == 0.8
    # Build 1 is still readable by id (kept), but no longer current.
    assert [c.score for c in builds.clusters(graph, build_id=b1.id).items] == [0.9, 0.6]


def test_the_current_build_and_its_scores_in_one_transaction(
    graph: Graph, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``current_account_score`` (the API's accountRisk) reads the current build and the scores
    in one read transaction, and the build it names is the one the scores come from, up to and
    across a switch."""
    assert builds.current_account_score(graph, ["A020"]) is None
    accounts(graph)
    b1 = write_build(graph, det(cl(RING_X, 0.9), cl(RING_Y, 0.6)))
    calls: list[str] = []
    for name in ("read", "read_tx"):
        real = getattr(graph, name)

        def spy(*a: Any, _real: Any = real, _name: str = name, **k: Any) -> Any:
            calls.append(_name)
            return _real(*a, **k)

        monkeypatch.setattr(graph, name, spy)
    assert builds.current_account_score(graph, ["A020", "nobody"]) == (b1.id, {"A020": 0.01})
    assert calls == ["read_tx"]
    writer = BuildWriter(graph)
    b2 = writer.begin()
    writer.write(det(cl(RING_X, 0.95), cl(RING_Z, 0.8), cl(RING_Y, 0.1)))
    assert builds.current_account_score(graph, ["A020"]) == (b1.id, {"A020": 0.01})
    writer.finish()
    assert builds.current_account_score(graph, ["A020"]) == (b2, {"A020": 0.8})


def test_failed_build_is_cleaned_up_by_the_next(
    graph: Graph, monkeypatch: pytest.MonkeyPatch
) -> None:
    accounts(graph)
    b1 = write_build(graph, det(cl(RING_X, 0.9)))

    def boom(self: BuildWriter, scores: object, model_scores: object = None) -> None:
        raise RuntimeError("disk full")

    with monkeypatch.context() as m:
        m.setattr(BuildWriter, "write_scores", boom)
        with pytest.raises(RuntimeError, match="disk full"):
            write_build(graph, det(cl(RING_Y, 0.8)))
    failed = [b for b in builds.list_builds(graph) if b.status == "failed"]
    assert len(failed) == 1 and failed[0].error == "RuntimeError: disk full"
    cur = builds.current_build(graph)
    assert cur is not None and cur.id == b1.id
    assert count(graph, "MATCH (c:Cluster {build_id: $b}) RETURN count(c)", b=failed[0].id) == 1

    b3 = write_build(graph, det(cl(RING_Z, 0.7)))
    assert {b.id for b in builds.list_builds(graph)} == {b1.id, b3.id}
    for label in ("Cluster", "ScoreChunk"):
        assert (
            count(graph, f"MATCH (c:{label} {{build_id: $b}}) RETURN count(c)", b=failed[0].id) == 0
        )
    assert (
        count(graph, "MATCH ()-[m:MEMBER_OF {build_id: $b}]->() RETURN count(m)", b=failed[0].id)
        == 0
    )


def test_killed_build_blocks_until_stale_then_is_cleaned_up(graph: Graph) -> None:
    accounts(graph)
    b1 = write_build(graph, det(cl(RING_X, 0.9)))
    killed = BuildWriter(graph)
    killed_id = killed.begin()
    killed.write_clusters([cl(RING_Y, 0.8)], {})  # ... and the process dies here
    with pytest.raises(BuildInProgressError, match=killed_id):
        write_build(graph, det(cl(RING_Z, 0.7)))
    b3 = write_build(graph, det(cl(RING_Z, 0.7)), stale_after=0)
    assert {b.id: b.status for b in builds.list_builds(graph)} == {
        b1.id: "complete",
        b3.id: "complete",
    }
    assert count(graph, "MATCH (c:Cluster {build_id: $b}) RETURN count(c)", b=killed_id) == 0
    with pytest.raises(builds.BuildError, match="no longer running"):
        killed.finish()


def test_pruning_keeps_the_last_builds(graph: Graph) -> None:
    accounts(graph)
    ids = [write_build(graph, det(cl(RING_X, 0.1 * i)), keep=2).id for i in range(1, 5)]
    kept = builds.list_builds(graph)
    assert [b.id for b in kept] == [ids[3], ids[2]]
    assert [b.current for b in kept] == [True, False]
    assert count(graph, "MATCH (c:Cluster) RETURN count(c)") == 2
    assert count(graph, "MATCH ()-[m:MEMBER_OF]->() RETURN count(m)") == 12
    assert count(graph, "MATCH (s:ScoreChunk) RETURN count(s)") == 2
    with pytest.raises(BuildNotFoundError):
        builds.clusters(graph, build_id=ids[0])
    # keep=1 leaves only the current build.
    last = write_build(graph, det(cl(RING_X, 0.9)), keep=1)
    assert [b.id for b in builds.list_builds(graph)] == [last.id]
    with pytest.raises(ValueError):
        write_build(graph, det(), keep=0)


def test_pruning_ahead_leaves_the_switch_keep_builds_and_never_the_current(graph: Graph) -> None:
    """The rebuild deletes old builds while it detects (``prune_ahead``): what the switch would
    delete, and nothing the readers use in the meantime."""
    accounts(graph)
    ids = [write_build(graph, det(cl(RING_X, 0.1 * i)), keep=5).id for i in range(1, 4)]
    writer = BuildWriter(graph)
    writer.begin()
    assert writer.prune_ahead(keep=3) == [ids[0]]  # the newest keep-1 complete builds stay
    assert [b.id for b in builds.list_builds(graph) if b.status == "complete"] == ids[:0:-1]
    assert writer.prune_ahead(keep=1) == [ids[1]]  # never the current one
    assert builds.current_build(graph).id == ids[2]
    assert builds.clusters(graph).items  # the readers' build is intact
    writer.write(det(cl(RING_X, 0.8)))
    info = writer.finish(keep=2)
    assert [b.id for b in builds.list_builds(graph)] == [info.id, ids[2]]
    assert "prune_ahead" in info.stage_seconds


# --- stable ring ids and history --------------------------------------------------------------


def ring_of(graph: Graph, member: str, build_id: str | None = None) -> str:
    page = builds.clusters(graph, build_id=build_id, first=100)
    (hit,) = [c for c in page.items if member in c.members]
    return hit.ring_id


def test_ring_ids_stay_stable_and_new_rings_get_new_ids(graph: Graph) -> None:
    accounts(graph)
    b1 = write_build(graph, det(cl(RING_X, 0.9), cl(RING_Y, 0.8)))
    x1, y1 = ring_of(graph, "A000"), ring_of(graph, "A010")
    assert x1 != y1 and x1.startswith("R-") and y1.startswith("R-")

    # X gains a member, Y loses one, Z is new.
    b2 = write_build(graph, det(cl([*RING_X, "A030"], 0.9), cl(RING_Y[:-1], 0.8), cl(RING_Z, 0.5)))
    assert ring_of(graph, "A000") == x1 and ring_of(graph, "A010") == y1
    z = ring_of(graph, "A020")
    assert z not in (x1, y1)
    assert b2.rings_kept == 2 and b2.rings_new == 1
    x = builds.cluster(graph, x1)
    assert x is not None and x.first_seen_build == b1.id and x.size == 7
    assert x.first_seen_at == builds.cluster(graph, x1, build_id=b1.id).first_seen_at  # type: ignore[union-attr]
    zc = builds.cluster(graph, z)
    assert zc is not None and zc.first_seen_build == b2.id

    # A ring that changed completely is a new ring, even where an old one was.
    write_build(graph, det(cl(rng("A", 40, 46), 0.9)))
    assert ring_of(graph, "A040") not in (x1, y1, z)


def test_ring_history_across_three_builds(graph: Graph) -> None:
    accounts(graph)
    b1 = write_build(graph, det(cl(RING_X, 0.5)))
    rid = ring_of(graph, "A000")
    b2 = write_build(graph, det(cl([*RING_X, "A030"], 0.7)))
    b3 = write_build(graph, det(cl([*RING_X[1:], "A030", "A031"], 0.8)))
    assert ring_of(graph, "A003") == rid
    hist = builds.ring_history(graph, rid)
    assert [(h.build_id, h.size, h.score) for h in hist] == [
        (b1.id, 6, 0.5),
        (b2.id, 7, 0.7),
        (b3.id, 7, 0.8),
    ]
    assert all(h.finished_at is not None for h in hist)
    assert hist[0].finished_at <= hist[1].finished_at <= hist[2].finished_at  # type: ignore[operator]
    assert builds.ring_history(graph, "R-unknown") == []


# --- pagination -------------------------------------------------------------------------------


def seven(base: int, score_bump: float = 0.0) -> Detection:
    scores = [0.9, 0.8, 0.8, 0.8, 0.5, 0.3, 0.3]  # ties are ordered by id
    return det(
        *(
            cl(rng("A", base + 3 * i, base + 3 * i + 3), s + score_bump)
            for i, s in enumerate(scores)
        )
    )


def test_cursor_pagination_within_one_build(graph: Graph) -> None:
    accounts(graph)
    b1 = write_build(graph, seven(0))
    seen: list[builds.ClusterInfo] = []
    after = None
    while True:
        page = builds.clusters(graph, first=3, after=after)
        assert page.build_id == b1.id and page.total == 7
        seen.extend(page.items)
        after = page.end_cursor
        if not page.has_next:
            break
    assert len(seen) == 7 and len({c.id for c in seen}) == 7
    keys = [(-c.score, c.id) for c in seen]
    assert keys == sorted(keys)
    # min_score filters, and the last page says there is no more.
    p = builds.clusters(graph, min_score=0.8, first=4)
    assert p.total == 4 and len(p.items) == 4 and not p.has_next

    # Between pages the build is replaced: the cursor keeps reading its own build, never mixing.
    first = builds.clusters(graph, first=3)
    b2 = write_build(graph, seven(30, score_bump=0.05))
    rest = builds.clusters(graph, first=10, after=first.end_cursor)
    assert rest.build_id == b1.id and {c.build_id for c in rest.items} == {b1.id}
    assert [c.id for c in first.items + rest.items] == [c.id for c in seen]
    assert builds.clusters(graph).build_id == b2.id
    with pytest.raises(InvalidCursorError, match="belongs to build"):
        builds.clusters(graph, build_id=b2.id, after=first.end_cursor)
    with pytest.raises(InvalidCursorError):
        builds.clusters(graph, after="not-a-cursor")

    # Once the old build is pruned, its cursor fails with a clear error.
    write_build(graph, seven(0), keep=1)
    with pytest.raises(BuildNotFoundError, match=b1.id):
        builds.clusters(graph, first=3, after=first.end_cursor)


def test_side_by_side_cluster_writers_write_what_one_writes(graph: Graph) -> None:
    """Cluster batches go to two transactions at once (``BuildWriter.streams``); clusters that
    share an account go to the same writer, so no two transactions lock one account. The build
    is the same as one writer's: every cluster, membership and member score, and the ring ids
    a later build inherits, with the previous rings read ahead (``prefetch_previous_rings``)."""
    ids = [f"S{i:03d}" for i in range(120)]
    accounts(graph, ids)
    # 30 clusters of 4; clusters 0-1 and 10-11 share an account with their neighbour.
    groups = [ids[4 * k : 4 * k + 4] for k in range(30)]
    groups[1] = [*groups[1], groups[0][0]]
    groups[11] = [*groups[11], groups[10][1]]
    d = det(*(cl(g, 0.5 + k / 100) for k, g in enumerate(groups)))
    streams = build_writer._streams([{"members": list(c.members)} for c in d.clusters], 2)
    assert len(streams) == 2 and sum(map(len, streams)) == 30
    shared = {groups[0][0], groups[10][1]}
    assert sum(bool(shared & set(r["members"])) for r in streams[0]) == 4  # all four here
    assert not any(shared & set(r["members"]) for r in streams[1])

    def written(build_id: str) -> list[tuple[str, float, tuple[str, ...], tuple[float, ...]]]:
        rows = graph.read(
            "MATCH (a:Account)-[m:MEMBER_OF {build_id: $b}]->(c:Cluster) "
            "WITH c, a.id AS id, m.score AS s ORDER BY id "
            "RETURN c.ring_id AS ring, c.score AS score, collect(id) AS ids, collect(s) AS scores",
            {"b": build_id},
        )
        return sorted((r["ring"], r["score"], tuple(r["ids"]), tuple(r["scores"])) for r in rows)

    def build(n: int) -> tuple[str, builds.BuildInfo]:
        w = BuildWriter(graph, batch_rows=9, streams=n)  # many small batches on each writer
        w.begin()
        w.prefetch_previous_rings()
        w.write(d)
        info = w.finish()
        return info.id, info

    one_id, one = build(1)
    two_id, two = build(2)
    assert one.memberships == two.memberships == 4 * 30 + 2 and two.members_missing == 0
    assert two.rings_kept == 30  # every ring continued the one-writer build's
    assert written(one_id) == written(two_id)
    assert len(written(two_id)) == 30
