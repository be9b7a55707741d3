"""What reading one neighbourhood's verdicts costs as investigators' verdicts accumulate: the
member-list scan ``explain`` and ``screen`` used before session 18 against the per-account read
through ``HAS_VERDICT`` (``cypher.API_VERDICT_LABELS_FOR``), side by side in the same run.

    RINGSCOPE_DATA_DIR=... python bench/verdicts.py [--verdicts 0 1000 10000] [--samples 50]

On the graph ``Settings()`` points at, which must hold accounts (any loaded world; nothing else
is read). Neighbourhoods: for ``--samples`` random accounts, the accounts sharing an identifier
with each (identifiers of at most 200 accounts, as the tree's ``hub_degree``), the id lists
``explain`` and ``screen`` ask verdicts for. Verdicts: ring verdicts of 10 random accounts each,
one in ten an account verdict instead, written through the API's own Cypher
(``API_VERDICT_RING``, ``API_VERDICT_ACCOUNT``) with ids ``BENCHV-*``, added step by step up to
each count in ``--verdicts``, and deleted at the end. At each count, every neighbourhood is read
both ways, alternating, three times: median and p99 wall time per read (driver round trip
included), Neo4j's database hits (``PROFILE``) for the first neighbourhood, and a check that
both give the same labels. Writes ``bench/results/verdicts-<accounts>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any, LiteralString

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ringscope.graph import Graph, connect, cypher, init_schema  # noqa: E402
from ringscope.settings import Settings  # noqa: E402

# The read before session 18 (SCREEN_NEIGHBOURHOOD's and, through the whole read, explain's).
SCAN: LiteralString = (
    "WITH $ids AS ids MATCH (v:Verdict) WHERE v.target_kind IN ['account', 'ring'] "
    "UNWIND v.members AS account WITH account, v, ids WHERE account IN ids "
    "WITH account, v ORDER BY CASE v.target_kind WHEN 'account' THEN 1 ELSE 0 END, "
    "v.created_at, v.id WITH account, last(collect(v)) AS v "
    "RETURN account, v.verdict AS label, v.created_at AS labelled_at, "
    "v.target_kind AS source, v.id AS verdict_id"
)
NEIGHBOURS: LiteralString = (
    "MATCH (a:Account {id: $id})-->(x) WHERE COUNT { (x)<--(:Account) } <= 200 "
    "MATCH (x)<--(b:Account) RETURN collect(DISTINCT b.id) AS ids"
)


def db_hits(graph: Graph, text: LiteralString, params: dict[str, Any]) -> int:
    _, summary, _ = graph.driver.execute_query("PROFILE " + text, params)

    def total(op: dict[str, Any]) -> int:
        return int(op.get("dbHits", 0)) + sum(total(c) for c in op.get("children", []))

    return total(summary.profile or {})


def add_verdicts(graph: Graph, ids: list[str], start: int, stop: int, rng: random.Random) -> None:
    for i in range(start, stop):
        common = {"note": "", "author": "bench", "key_id": "bench", "build_id": "bench"}
        if i % 10 == 9:
            graph.write_records(
                cypher.API_VERDICT_ACCOUNT,
                {"id": f"BENCHV-{i}", "target_id": rng.choice(ids), "verdict": "legit", **common},
            )
        else:
            graph.write_records(
                cypher.API_VERDICT_RING,
                {
                    "id": f"BENCHV-{i}",
                    "target_id": f"BENCH-RING-{i}",
                    "verdict": "fraud",
                    "members": rng.sample(ids, 10),
                    **common,
                },
            )


def timed(graph: Graph, text: LiteralString, ids: list[str]) -> tuple[float, list[Any]]:
    t = time.perf_counter()
    rows = graph.read(text, {"ids": ids})
    return time.perf_counter() - t, sorted((r["account"], r["verdict_id"]) for r in rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--verdicts", type=int, nargs="+", default=[0, 1000, 10000])
    ap.add_argument("--samples", type=int, default=50)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    graph = connect(Settings())
    init_schema(graph)  # HAS_VERDICT links for ring verdicts given before them
    ids = [r["id"] for r in graph.read("MATCH (a:Account) RETURN a.id AS id")]
    hoods = [graph.read(NEIGHBOURS, {"id": a})[0]["ids"] for a in rng.sample(ids, args.samples)]
    existing = graph.read("MATCH (v:Verdict) RETURN count(v) AS n")[0]["n"]
    print(f"{len(ids):,} accounts, {existing} verdicts already there; neighbourhoods of "
          f"{statistics.median(len(h) for h in hoods)} accounts (median)", flush=True)  # fmt: skip
    rows: list[dict[str, Any]] = []
    added = 0
    try:
        for target in sorted(args.verdicts):
            add_verdicts(graph, ids, added, target, rng)
            added = max(added, target)
            secs: dict[str, list[float]] = {"scan": [], "per_account": []}
            same = True
            for _ in range(3):
                for h in hoods:
                    a, ra = timed(graph, SCAN, h)
                    b, rb = timed(graph, cypher.API_VERDICT_LABELS_FOR, h)
                    secs["scan"].append(a)
                    secs["per_account"].append(b)
                    same = same and ra == rb
            row: dict[str, Any] = {"verdicts": target + existing, "same_labels": same}
            for name, text in (("scan", SCAN), ("per_account", cypher.API_VERDICT_LABELS_FOR)):
                v = sorted(secs[name])
                row[name] = {
                    "median_ms": round(1e3 * statistics.median(v), 3),
                    "p99_ms": round(1e3 * v[min(len(v) - 1, int(0.99 * len(v)))], 3),
                    "db_hits": db_hits(graph, text, {"ids": hoods[0]}),
                }
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        graph.write("MATCH (v:Verdict) WHERE v.id STARTS WITH 'BENCHV-' DETACH DELETE v")
    out = REPO / "bench" / "results" / f"verdicts-{len(ids)}.json"
    out.write_text(
        json.dumps(
            {
                "accounts": len(ids),
                "samples": args.samples,
                "machine": {
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                },
                "runs": rows,
            },
            indent=1,
        )
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
