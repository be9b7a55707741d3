"""Detection across worlds without Neo4j in the loop: for developing the detector (issue #20).

    python bench/worlds_offline.py prepare  --worlds 1 3 4 --accounts 100000 [--work DIR]
    python bench/worlds_offline.py evaluate --worlds 1 3 4 --accounts 100000 [--work DIR]
        [--set reassemble_chains=False ...]

Why: ``bench/worlds.py`` loads and rebuilds each world through Neo4j (about 1.5 minutes a world
at 100k), which is right for reporting but slow for trying a detector change on ten or sixteen
development worlds. ``prepare`` does the Neo4j part once per world (generate, bulk-load into a
private embedded Neo4j, read the projection the rebuild reads) and keeps the projection as a
pickle under ``--work``; ``evaluate`` then runs the in-process detector on each pickle (linking,
communities, splits, trimming, the fitted cluster scorer, reassembly: ``models.detect``'s own
steps, rings only, no account model, as ``bench/worlds.py --no-model``) in a few seconds a world,
and scores the clusters against the world's truth with ``models.evaluate``'s rules. Session 20
checked that this reproduces the Neo4j bench's numbers exactly on two worlds. ``--set`` overrides
a ``DetectConfig`` field (a Python literal) for every world, to compare variants.

Printed per world and pooled: ring recall and cluster precision at the flag point, recall at
precision 0.9, benign-group false-positive rate, recall per typology (sleeper chains that never
woke apart), and why the missed rings were missed. For development worlds only: report held-out
worlds with ``bench/worlds.py``.
"""

from __future__ import annotations

import argparse
import ast
import pickle
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from worlds import bench_settings, empty, generate_world  # noqa: E402

from ringscope.graph import EmbeddedNeo4j, Graph, connect  # noqa: E402
from ringscope.ingest import load  # noqa: E402
from ringscope.models import detect as D  # noqa: E402
from ringscope.models.evaluate import (  # noqa: E402
    BENIGN_INSIDE_SHARE,
    _groups,
    _matched,
    _read,
    _true_positives,
    miss_causes,
    recall_at_precision_of,
)
from ringscope.models.projection import Projection, read_projection  # noqa: E402


def _pickle(work: Path, seed: int, accounts: int) -> Path:
    return work / "projections" / f"world-{seed}-{accounts}.pkl"


def prepare(seeds: Sequence[int], accounts: int, work: Path) -> None:
    """Each world generated, loaded into a private embedded Neo4j and its projection kept."""
    prepare_worlds(
        seeds, accounts, work, lambda seed: _pickle(work, seed, accounts),
        lambda graph, truth: (read_projection(graph), str(truth)),
    )  # fmt: skip


def prepare_worlds(
    seeds: Sequence[int],
    accounts: int,
    work: Path,
    out_of: Callable[[int], Path],
    read: Callable[[Graph, Path], object],
) -> None:
    """Each world generated (``bench/worlds.py``), bulk-loaded into a private embedded Neo4j
    (or ``NEO4J_URI``'s, emptied) and what ``read`` takes from the graph (given the world's
    truth directory) pickled to ``out_of(seed)``; worlds already pickled are skipped."""
    settings = bench_settings(work)
    graph = connect(settings)
    try:
        for seed in seeds:
            out = out_of(seed)
            if out.exists():
                continue
            out.parent.mkdir(parents=True, exist_ok=True)
            t = time.perf_counter()
            data, truth = generate_world(seed, accounts, work / "worlds")
            empty(graph, settings)
            load(data, graph, settings, report_dir=work / "reports" / str(seed), progress=False,
                 bulk=True)  # fmt: skip
            out.write_bytes(pickle.dumps(read(graph, truth)))
            print(f"world {seed}: prepared in {time.perf_counter() - t:.0f} s", flush=True)
    finally:
        graph.close()
        if not settings.neo4j_uri:
            EmbeddedNeo4j(settings).stop()


def detect_offline(proj: Projection, cfg: D.DetectConfig) -> tuple[list[list[str]], np.ndarray]:
    """The clusters (member ids) and scores a rings-only rebuild would write."""
    links = D.link(proj, cfg)
    proposal = D.propose(proj, links, cfg, None, {})
    scorer = D.fit_scorer(proposal.table, cfg)
    scores, contrib = D.final_scores(scorer, proposal)
    proposal, scores, _ = D.reassemble(proj, links, proposal, scores, contrib, scorer, cfg)
    ids = np.asarray(proj.ids, dtype=object)
    return [sorted(ids[g].tolist()) for g in proposal.groups], scores


def fraud_ids(truth: Path) -> set[str]:
    """The world's fraud accounts (its truth's ``accounts.csv``)."""
    acc = _read(truth / "accounts.csv", ("account_id", "is_fraud"))
    return {a for a, f in zip(acc["account_id"], acc["is_fraud"], strict=True)
            if str(f).strip().lower() in ("true", "1", "t", "yes")}  # fmt: skip


def pooled(
    ms: Sequence[dict[str, Any]], key: str = "typologies"
) -> tuple[dict[str, int], dict[str, list[int]]]:
    """Worlds' :func:`world_metrics` summed: ring, flagged and true-cluster counts, and per
    typology ``[found, rings]`` (``key="members"``: ``[members flagged, members]``)."""
    total = {k: sum(m[k] for m in ms) for k in ("rings", "found", "flagged", "true")}
    typ: dict[str, list[int]] = {}
    for m in ms:
        for k, (hit, n) in m[key].items():
            typ.setdefault(k, [0, 0])
            typ[k][0] += hit
            typ[k][1] += n
    return total, typ


def world_metrics(
    members: list[list[str]], scores: np.ndarray, truth: Path, flag: float
) -> dict[str, Any]:
    """The world's rings, benign groups and misses against ``members``/``scores``."""
    fraud = fraud_ids(truth)
    rt = _read(truth / "rings.csv", ("ring_id", "typology", "account_id"), ("woke_together",))
    names, typ, rings = _groups(rt["ring_id"], rt["typology"], rt["account_id"])
    woke = {r for r, w in zip(rt["ring_id"], rt["woke_together"], strict=True)
            if str(w).strip().lower() == "true"}  # fmt: skip
    bt = _read(truth / "benign_groups.csv", ("group_id", "kind", "account_id"))
    _, _, benign = _groups(bt["group_id"], bt["kind"], bt["account_id"])
    flagged_mask = scores >= flag
    flagged = [m for m, f in zip(members, flagged_mask, strict=True) if f]
    tp = _true_positives(members, fraud)
    found, _ = _matched(rings, flagged)
    why = miss_causes(rings, members, scores.tolist(), flag, found)
    g_hit, _ = _matched(benign, flagged)
    inside = {a for m in flagged for a in m}
    b_hit = [bool(h) or sum(a in inside for a in g) > BENIGN_INSIDE_SHARE * len(g)
             for h, g in zip(g_hit, benign, strict=True)]  # fmt: skip
    r90, _ = recall_at_precision_of(members, scores.tolist(), fraud, rings, precision=0.9)
    # Members: how much of each ring the flagged clusters hold (a ring "found" through three of
    # its eight members leaves five that a screen cannot attribute to it).
    by_members: dict[str, list[int]] = {}
    for t, g in zip(typ, rings, strict=True):
        by_members.setdefault(t, [0, 0])
        by_members[t][0] += sum(a in inside for a in g)
        by_members[t][1] += len(g)
    by_typ: dict[str, list[int]] = {}
    for t, n, hit in zip(typ, names, found.tolist(), strict=True):
        for key in (t, "sleeper_chain") if t == "sleeper" and n not in woke else (t,):
            by_typ.setdefault(key, [0, 0])
            by_typ[key][0] += int(hit)
            by_typ[key][1] += 1
    return {
        "rings": len(rings), "found": int(found.sum()), "flagged": int(flagged_mask.sum()),
        "true": int(tp[flagged_mask].sum()), "r90": r90, "benign": len(benign),
        "benign_hit": int(sum(b_hit)), "typologies": by_typ, "members": by_members,
        "missed": Counter((t, w) for t, w in zip(typ, why, strict=True) if w),
    }  # fmt: skip


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def evaluate(seeds: Sequence[int], accounts: int, work: Path, overrides: dict[str, Any]) -> None:
    cfg = D.DetectConfig(**overrides)
    worlds: list[dict[str, Any]] = []
    for seed in seeds:
        # Our own pickles, written by ``prepare`` under --work: not untrusted input.
        proj, truth = pickle.loads(_pickle(work, seed, accounts).read_bytes())  # noqa: S301
        t = time.perf_counter()
        members, scores = detect_offline(proj, cfg)
        m = world_metrics(members, scores, Path(truth), cfg.flag_threshold)
        typs = " ".join(f"{k} {v[0]}/{v[1]}" for k, v in sorted(m["typologies"].items()))
        print(f"world {seed}: recall {_ratio(m['found'], m['rings']):.3f} precision "
              f"{_ratio(m['true'], m['flagged']):.3f} R@P0.9 {m['r90']:.3f} benign FPR "
              f"{_ratio(m['benign_hit'], m['benign']):.4f} | {typs} "
              f"({time.perf_counter() - t:.0f} s)", flush=True)  # fmt: skip
        worlds.append(m)
    total, typ = pooled(worlds)
    missed: Counter[tuple[str, str]] = sum((m["missed"] for m in worlds), Counter())
    print(
        f"pooled, {len(worlds)} worlds: recall {_ratio(total['found'], total['rings']):.3f} "
        f"precision {_ratio(total['true'], total['flagged']):.3f} R@P0.9 (mean) "
        f"{np.mean([m['r90'] for m in worlds]):.3f} benign FPR "
        f"{_ratio(sum(m['benign_hit'] for m in worlds), sum(m['benign'] for m in worlds)):.4f}"
    )
    print("  " + " ".join(f"{k} {v[0]}/{v[1]} ({_ratio(*v):.2f})" for k, v in sorted(typ.items())))
    print("  missed: " + ", ".join(f"{t} {w} {n}" for (t, w), n in sorted(missed.items())))
    _, flagged_members = pooled(worlds, "members")
    print("  ring members in flagged clusters: " + " ".join(
        f"{k} {v[0]}/{v[1]} ({_ratio(*v):.2f})" for k, v in sorted(flagged_members.items())
    ))  # fmt: skip


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("step", choices=["prepare", "evaluate"])
    ap.add_argument("--worlds", type=int, nargs="+", required=True)
    ap.add_argument("--accounts", type=int, default=100_000)
    ap.add_argument("--work", type=Path, default=Path("/tmp/ringscope-worlds-offline"))  # noqa: S108
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="a DetectConfig field for every world (a Python literal)")  # fmt: skip
    args = ap.parse_args(argv)
    if args.step == "prepare":
        prepare(args.worlds, args.accounts, args.work)
        return
    overrides = {}
    for item in args.set:
        name, _, value = item.partition("=")
        overrides[name.strip()] = ast.literal_eval(value.strip())
    evaluate(args.worlds, args.accounts, args.work, overrides)


if __name__ == "__main__":
    main()
