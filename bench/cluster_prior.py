"""Train the cluster score's learned prior (``models/cluster_prior.txt``) on generated worlds.

    python bench/cluster_prior.py --worlds 188 189 ... [--accounts 100000] [--work DIR]
        [--lowo] [--no-write]

Why: the prior is what the cluster score falls back on where a platform's labels are silent
(``models/cluster_prior.py``). It is learned from many generated worlds, each drawing the
generator's mechanics from wide ranges (``--world`` randomisation), so that no one world's base
rates are built in; the platform's labels then rescale and correct it.

Steps: each world is generated and its projection read once (``bench/worlds_offline.py
prepare``, cached under ``--work``); detection proposes its clusters (linking, communities,
splits, boundaries: ``models.detect.propose``, the clusters any scorer sees); a cluster's
target is the evaluation's true positive (at least half its members fraud, from the world's
truth); every world weighs the same in total. The trees (``models.cluster_prior.PARAMS``,
deterministic, boosted from the hand-set prior's logit) are written to
``models/cluster_prior.txt`` with the worlds recorded in ``bench/results/cluster-prior.json``.

``--lowo``: first, for every world, the prior trained on the others and detection run on it
with that prior (rings only, the learned scorer on its own labels, reassembly: as ``bench/
worlds_offline.py evaluate``), against the hand-set prior on the same world: the development
check that the prior generalises to a world it did not see. Worlds used here are development
worlds: report on others (``bench/worlds.py``).
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import worlds_offline as wo  # noqa: E402

from ringscope.models import cluster_prior as cp  # noqa: E402
from ringscope.models import clusters as cl  # noqa: E402
from ringscope.models import detect as D  # noqa: E402
from ringscope.models.evaluate import _read, _true_positives  # noqa: E402
from ringscope.models.projection import F64, Projection  # noqa: E402


def _world(work: Path, seed: int, accounts: int) -> tuple[Projection, Path]:
    # Our own pickles, written by worlds_offline.prepare under --work: not untrusted input.
    proj, truth = pickle.loads(wo._pickle(work, seed, accounts).read_bytes())  # noqa: S301
    return proj, Path(truth)


Rows = tuple[cl.ClusterTable, F64, list[str]]


def training_rows(work: Path, seed: int, accounts: int, cfg: D.DetectConfig) -> Rows:
    """A world's proposed clusters (their table), each one's target (0/1), and the typology of
    the ring most of its members belong to ("" for none)."""
    proj, truth = _world(work, seed, accounts)
    proposal = D.propose(proj, D.link(proj, cfg), cfg, None, {})
    ids = np.asarray(proj.ids, dtype=object)
    members = [ids[g].tolist() for g in proposal.groups]
    rings = _read(truth / "rings.csv", ("typology", "account_id"))
    typology = dict(zip(rings["account_id"], rings["typology"], strict=True))
    typ = []
    for m in members:
        kinds = Counter(typology.get(a, "") for a in m).most_common(1)
        typ.append(kinds[0][0] if kinds and 2 * kinds[0][1] >= len(m) else "")
    targets = _true_positives(members, wo.fraud_ids(truth)).astype(np.float64)
    return proposal.table, targets, typ


def train(rows: Sequence[Rows], without: str | None = None) -> cp.ClusterPrior:
    """Every world weighs the same in total, whatever its number of clusters. ``without``: the
    clusters of that typology left out, as if the generator had never made one."""
    kept = [
        np.array([t != without for t in typ], dtype=bool) if without else np.ones(len(y), bool)
        for _, y, typ in rows
    ]
    total = sum(int(k.sum()) for k in kept)
    weights = [np.full(int(k.sum()), total / (len(rows) * max(int(k.sum()), 1))) for k in kept]
    tables = [_subset(t, k) for (t, _, _), k in zip(rows, kept, strict=True)]
    targets = [y[k] for (_, y, _), k in zip(rows, kept, strict=True)]
    return cp.ClusterPrior.train(tables, targets, weights)


def _subset(table: cl.ClusterTable, keep: np.ndarray) -> cl.ClusterTable:
    if keep.all():
        return table
    feats = {n: np.asarray(v)[keep] for n, v in table.features.items()}
    return cl.ClusterTable(int(keep.sum()), feats, {}, [])


def evaluate(work: Path, seed: int, accounts: int, cfg: D.DetectConfig) -> dict[str, Any]:
    proj, truth = _world(work, seed, accounts)
    members, scores = wo.detect_offline(proj, cfg)
    return wo.world_metrics(members, scores, truth, cfg.flag_threshold)


def _line(name: str, ms: Sequence[dict[str, Any]]) -> str:
    tot, typ = wo.pooled(ms)
    fpr = sum(m["benign_hit"] for m in ms) / max(1, sum(m["benign"] for m in ms))
    return (
        f"{name}: recall {tot['found'] / tot['rings']:.3f} precision "
        f"{tot['true'] / max(1, tot['flagged']):.3f} R@P0.9 {np.mean([m['r90'] for m in ms]):.3f} "
        f"benign FPR {fpr:.4f} | " + " ".join(f"{k} {h}/{n}" for k, (h, n) in sorted(typ.items()))
    )


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--worlds", type=int, nargs="+", required=True)
    ap.add_argument("--accounts", type=int, default=100_000)
    ap.add_argument("--work", type=Path, default=Path("/tmp/ringscope-worlds-offline"))  # noqa: S108
    ap.add_argument("--lowo", action="store_true", help="leave-one-world-out check first")
    ap.add_argument("--no-write", action="store_true", help="do not write the model")
    ap.add_argument(
        "--without",
        help="with --lowo: leave this typology's clusters out of every training set (a typology "
        "the generator never made), to see what the prior does with rings it never saw; "
        "writes nothing",
    )
    args = ap.parse_args(argv)
    wo.prepare(args.worlds, args.accounts, args.work)
    cfg = D.DetectConfig()
    rows = {}
    for seed in args.worlds:
        t = time.perf_counter()
        rows[seed] = training_rows(args.work, seed, args.accounts, cfg)
        y = rows[seed][1]
        print(f"world {seed}: {len(y)} clusters, {int(y.sum())} rings "
              f"({time.perf_counter() - t:.0f} s)", flush=True)  # fmt: skip
    report: dict[str, Any] = {
        "worlds": args.worlds,
        "accounts": args.accounts,
        "clusters": {str(s): len(y) for s, (_, y, _) in rows.items()},
        "rings": {str(s): int(y.sum()) for s, (_, y, _) in rows.items()},
        "params": {**cp.PARAMS, "rounds": cp.ROUNDS},
        "features": list(cp.FEATURES),
        "direction": cp.DIRECTION,
    }
    shipped = cp.shipped
    if args.lowo:
        learned, hand = [], []
        for seed in args.worlds:
            prior = train([rows[s] for s in args.worlds if s != seed], args.without)
            cp.shipped = lambda prior=prior: prior  # type: ignore[assignment]
            learned.append(evaluate(args.work, seed, args.accounts, cfg))
            hand.append(evaluate(args.work, seed, args.accounts,
                                 replace(cfg, cluster_prior="hand-set")))  # fmt: skip
            print(f"world {seed}: " + _line("worlds prior", learned[-1:]) + "  ||  "
                  + _line("hand-set", hand[-1:]), flush=True)  # fmt: skip
        cp.shipped = shipped
        unseen = f", {args.without} never seen" if args.without else ""
        print(_line(f"pooled, worlds prior (each world unseen by its prior{unseen})", learned))
        print(_line("pooled, hand-set prior", hand))
        report["lowo"] = {
            "worlds_prior": [_line(str(s), [m]) for s, m in zip(args.worlds, learned, strict=True)],
            "hand_set": [_line(str(s), [m]) for s, m in zip(args.worlds, hand, strict=True)],
            "pooled": [_line("worlds prior", learned), _line("hand-set", hand)],
        }
    if args.without:  # a check only: its record, never the model
        report["without"] = args.without
        out = REPO / "bench" / "results" / f"cluster-prior-without-{args.without}.json"
        out.write_text(json.dumps(report, indent=1, default=str) + "\n")
        print(f"wrote {out}")
    elif not args.no_write:
        prior = train([rows[s] for s in args.worlds])
        prior.write()
        print(f"wrote {cp.MODEL_FILE}")
        out = REPO / "bench" / "results" / "cluster-prior.json"
        out.write_text(json.dumps(report, indent=1, default=str) + "\n")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
