"""Detection across many differently built worlds, so that tuning on one world cannot hide.

    python bench/worlds.py --worlds 101 102 103 --accounts 20000 [--no-model] [--label dev]

Why: the detector's constants were set on the generator's one default world, and on an
independently built world its precision fell from 0.96 to 0.45 (issue #20). Each world here
draws every mechanic of the generator (``ringscope.synth.params.WorldParams.draw``: household
sizes and what families share, how often honest phones look like emulators or virtual numbers,
KYC levels, label rates, noise and delays, ring density, sizes and timing, sleepers that wake
together, fraudsters' own families, ...) from wide ranges, and the detector is judged on the mean
and on the WORST world, not on the one it was tuned on.

Seeds: world seeds 1-99 are for development (look at them, tune on them); world seeds 100 and up
are held out: report on them only, never tune on them. A world's data is drawn with the world
seed as the data seed too, so ``--worlds 101`` always means the same files.

Per world W: generate ``--accounts`` accounts with ``WorldParams.draw(W)`` (in a subprocess, so
its memory is not this process's); empty the graph and load the data (on the embedded Neo4j
through the offline importer); rebuild (``ringscope.jobs.rebuild``; ``--no-model`` skips the
learned model, otherwise the model is retrained on that world's labels); evaluate at
``DetectConfig().flag_threshold`` (``ringscope.models.evaluate``). Reported per world: ring
recall and cluster precision at the flag point, ring recall at precision 0.9, benign-group
false-positive rate overall and per benign kind, ring recall per typology (sleeper included),
account AUROC/AUPRC, and the cluster score's reliability table (clusters per score bin, the share
that match a planted ring and the share that are true positives). Then the mean and the worst
value of each across worlds (worst: the lowest recall or precision, the highest FPR), and the
reliability table pooled over worlds. Prints tables; writes ``bench/results/worlds-<label>.json``.

Neo4j: a private embedded instance under ``--work`` (its own store, a free port), emptied for
every world and stopped at the end. With NEO4J_URI set, that server's graph is EMPTIED instead
and loaded through Cypher (slower).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

# This checkout's ringscope first, not the editable install's: a before/after run from a
# worktree must measure the worktree's code.
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ringscope.graph import EmbeddedNeo4j, Graph, connect, cypher, init_schema  # noqa: E402
from ringscope.ingest import load  # noqa: E402
from ringscope.jobs.rebuild import rebuild  # noqa: E402
from ringscope.models.detect import DetectConfig  # noqa: E402
from ringscope.models.evaluate import (  # noqa: E402
    MISS_CAUSES,
    evaluate,
    recall_at_precision,
    reliability,
)
from ringscope.settings import Settings  # noqa: E402
from ringscope.synth.generate import BENIGN_KINDS, TYPOLOGIES  # noqa: E402
from ringscope.synth.params import WorldParams  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
HELD_OUT_FROM = 100  # world seeds from here on are held out: report on them, never tune on them
DEFAULT_DATA_SEED = 42  # the data seed of the default world's reference row (--default-world)
# Per metric: True when higher is better (its worst is the minimum), False for rates of error.
HIGHER_IS_BETTER = {
    "ring_recall": True,
    "precision": True,
    "recall_at_p90": True,
    "benign_fpr": False,
    "auroc": True,
    "auprc": True,
}


def _generated(truth: Path, world_seed: int | None) -> bool:
    """Whether ``truth`` holds this world as ``WorldParams.draw`` draws it now."""
    path = truth / "manifest.json"
    if not path.exists():
        return False
    recorded = json.loads(path.read_text()).get("world")
    expected = None if world_seed is None else WorldParams.draw(world_seed).to_dict()
    return bool(recorded == expected)


def generate_world(world_seed: int | None, accounts: int, root: Path) -> tuple[Path, Path]:
    """The data and truth directories of one world, generated in a subprocess. Kept for the
    next run while the world's parameters are unchanged (delete ``root`` after changing the
    generator's code)."""
    name = "default" if world_seed is None else f"world-{world_seed}"
    data, truth = root / f"{name}-{accounts}" / "data", root / f"{name}-{accounts}" / "truth"
    if not _generated(truth, world_seed):
        code = (
            "import sys; from pathlib import Path; "
            "from ringscope.synth.generate import WorldParams, generate; "
            "w = None if sys.argv[5] == 'default' else WorldParams.draw(int(sys.argv[5])); "
            "generate(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), "
            "world=w)"
        )
        seed = DEFAULT_DATA_SEED if world_seed is None else world_seed
        subprocess.run(
            [sys.executable, "-c", code, str(data), str(truth), str(accounts), str(seed),
             "default" if world_seed is None else str(world_seed)],
            check=True, cwd=REPO,
        )  # fmt: skip
    return data, truth


def empty(graph: Graph, settings: Settings) -> None:
    """An empty database: the embedded one's store is dropped (a bulk load needs a store that
    never held nodes, and dropping is faster than deleting); a server's graph is deleted."""
    if not settings.neo4j_uri:
        EmbeddedNeo4j(settings).drop_database()
        graph.reconnect(settings)
    else:
        with graph.driver.session(database=graph.database) as session:
            session.run(cypher.INGEST_CLEAR_IN_BATCHES).consume()
    init_schema(graph)


def world_report(graph: Graph, truth: Path, flag_threshold: float) -> dict[str, Any]:
    """Detection on the loaded, rebuilt world against its ground truth ``truth``."""
    ev = evaluate(graph, truth, flag_threshold=flag_threshold)
    r90, _ = recall_at_precision(graph, truth, precision=0.9)
    bins = reliability(graph, truth)
    manifest = json.loads((truth / "manifest.json").read_text())
    world = WorldParams.from_dict(manifest["world"]) if "world" in manifest else WorldParams()
    by_typology = {t.typology: t for t in ev.typologies}
    sl = by_typology.get("sleeper")
    return {
        "world_seed": world.seed,
        "world": world.to_dict(),
        "accounts": ev.accounts,
        "fraud_accounts": ev.fraud_accounts,
        "flag_threshold": flag_threshold,
        "rings": ev.rings,
        "rings_found": ev.rings_found,
        "ring_recall": ev.ring_recall,
        "clusters": ev.clusters,
        "flagged_clusters": ev.flagged_clusters,
        "flagged_true": ev.flagged_true,
        "precision": ev.precision,
        "recall_at_p90": r90,
        "benign_groups": ev.benign_groups,
        "benign_flagged": ev.benign_flagged,
        "benign_fpr": ev.benign_fpr,
        "benign_fpr_by_kind": {
            k: next((b.fpr for b in ev.benign_kinds if b.kind == k), None) for k in BENIGN_KINDS
        },
        "benign_groups_by_kind": {
            k: next((b.groups for b in ev.benign_kinds if b.kind == k), 0) for k in BENIGN_KINDS
        },
        "recall_by_typology": {
            t: by_typology[t].recall if t in by_typology else None for t in TYPOLOGIES
        },
        "rings_by_typology": {
            t: by_typology[t].rings if t in by_typology else 0 for t in TYPOLOGIES
        },
        # Why the missed rings were missed (models.evaluate.MISS_CAUSES), per typology.
        "missed_by_typology": {
            t: dict(by_typology[t].missed) if t in by_typology else {} for t in TYPOLOGIES
        },
        # Sleeper rings apart: those that woke together inside the data, and those that left
        # only a chain of single shared identifiers (the truth's ``woke_together``).
        "sleeper_split": {
            "woke": sl.recall_woke if sl else None,
            "woke_rings": sl.woke if sl else 0,
            "chain": sl.recall_not_woke if sl else None,
            "chain_rings": sl.rings - sl.woke if sl else 0,
        },
        "auroc": ev.auroc,
        "auprc": ev.auprc,
        "calibration": [asdict(b) for b in bins],
    }


# Detector variants compared on the same loaded world: settings each rebuild runs with.
# "before" is the detector as it was before issue #20 (hand-set weights, whole clusters, no
# co-activation); "prior" adds co-activation (the default until session 10); "learned" adds the
# learned score on whole clusters; "after" is today's default (learned score, trimmed cores).
_OFF = {"cluster_scorer": "prior", "detect_trim_attached": False, "detect_coactivation": False}
VARIANTS: dict[str, dict[str, Any]] = {
    "before": _OFF,
    "prior": {**_OFF, "detect_coactivation": True},
    "learned": {**_OFF, "cluster_scorer": "learned", "detect_coactivation": True},
    "after": {
        "cluster_scorer": "learned",
        "detect_trim_attached": True,
        "detect_coactivation": True,
    },
    # Today's default less reassembly (session 17): its own effect, on the same loaded world.
    "unassembled": {"detect_reassemble": False},
    # Today's default with the hand-set prior instead of the one learned from generated worlds
    # (session 27, models/cluster_prior.py): the learned prior's own effect.
    "hand_set_prior": {"cluster_prior": "hand-set"},
}


def run_world(
    graph: Graph,
    settings: Settings,
    world_seed: int | None,
    accounts: int,
    work: Path,
    *,
    use_model: bool = False,
    bulk: bool = True,
    flag_threshold: float | None = None,
    variants: Sequence[str] = ("configured",),
) -> list[dict[str, Any]]:
    """One world end to end into ``graph``, which must be empty: generate, load, then per
    detector variant a rebuild and its evaluation (``configured``: ``settings`` as given).
    ``world_seed`` None is the default world (data seed 42), for reference."""
    seconds: dict[str, float] = {}
    t = time.perf_counter()
    data, _ = generate_world(world_seed, accounts, work / "worlds")
    seconds["generate"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    name = "default" if world_seed is None else str(world_seed)
    load(data, graph, settings, report_dir=work / "reports" / name, progress=False, bulk=bulk)
    seconds["load"] = round(time.perf_counter() - t, 1)
    return [
        _evaluate_variant(
            graph,
            settings,
            world_seed,
            accounts,
            work,
            use_model,
            flag_threshold,
            v,
            seconds if i == 0 else {},
        )
        for i, v in enumerate(variants)
    ]


def _variant_settings(settings: Settings, variant: str) -> Settings:
    return settings if variant == "configured" else settings.model_copy(update=VARIANTS[variant])


def _evaluate_variant(
    graph: Graph,
    settings: Settings,
    world_seed: int | None,
    accounts: int,
    work: Path,
    use_model: bool,
    flag_threshold: float | None,
    variant: str,
    seconds: dict[str, float],
) -> dict[str, Any]:
    """Rebuild the loaded world with one variant's settings and evaluate it."""
    _, truth = generate_world(world_seed, accounts, work / "worlds")
    t = time.perf_counter()
    # retrain: a model from another world (the store's current one) must not score this one
    rebuild(graph, _variant_settings(settings, variant), use_model=use_model, retrain=use_model)
    seconds["rebuild"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    threshold = DetectConfig().flag_threshold if flag_threshold is None else flag_threshold
    report = world_report(graph, truth, threshold)
    seconds["evaluate"] = round(time.perf_counter() - t, 1)
    return {**report, "use_model": use_model, "variant": variant, "seconds": dict(seconds)}


def _aggregate(values: Sequence[float | None], higher: bool) -> dict[str, float | int | None]:
    """Mean and worst of the defined values (a world with no flagged cluster has no precision)."""
    v = [x for x in values if x is not None]
    if not v:
        return {"mean": None, "worst": None, "worlds": 0}
    return {"mean": sum(v) / len(v), "worst": min(v) if higher else max(v), "worlds": len(v)}


def summarise(reports: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean and worst across worlds of every headline, typology and benign-kind metric, and the
    reliability table pooled over the worlds."""
    out: dict[str, Any] = {
        m: _aggregate([r[m] for r in reports], hi) for m, hi in HIGHER_IS_BETTER.items()
    }
    out["recall_by_typology"] = {
        t: _aggregate([r["recall_by_typology"][t] for r in reports], True) for t in TYPOLOGIES
    }
    out["sleeper_split"] = {
        part: _aggregate([r.get("sleeper_split", {}).get(part) for r in reports], True)
        for part in ("woke", "chain")
    }
    out["benign_fpr_by_kind"] = {
        k: _aggregate([r["benign_fpr_by_kind"][k] for r in reports], False) for k in BENIGN_KINDS
    }
    pooled = []
    for i, b in enumerate(reports[0]["calibration"] if reports else []):
        n = sum(r["calibration"][i]["clusters"] for r in reports)
        rings = sum(r["calibration"][i]["rings"] for r in reports)
        tp = sum(r["calibration"][i]["true_positives"] for r in reports)
        pooled.append({
            "lo": b["lo"], "hi": b["hi"], "clusters": n, "rings": rings, "true_positives": tp,
            "ring_share": rings / n if n else None, "true_positive_share": tp / n if n else None,
        })  # fmt: skip
    out["calibration_pooled"] = pooled
    out["missed_pooled"] = {
        t: {
            c: sum(r.get("missed_by_typology", {}).get(t, {}).get(c, 0) for r in reports)
            for c in MISS_CAUSES
        }
        for t in TYPOLOGIES
    }
    return out


def _f(x: float | int | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def _name(r: dict[str, Any]) -> str:
    return "default" if r["world_seed"] is None else str(r["world_seed"])


def render(reports: Sequence[dict[str, Any]], summary: dict[str, Any], console: Console) -> None:
    """Three tables: detection per world (then mean and worst over the measured worlds), benign
    FPR per kind, and the reliability of the cluster score per world and pooled."""
    measured = any(r["world_seed"] is not None for r in reports)
    aggs = ("mean", "worst") if measured else ()
    flag = reports[0]["flag_threshold"] if reports else "-"
    t = Table(title=f"Detection per world at the flag threshold {flag} (typology: recall (rings))")
    for col in ("world", "rings", "recall", "precision", "R@P.9", "benign FPR", *TYPOLOGIES,
                "sleeper woke", "sleeper chain", "flagged/clusters"):  # fmt: skip
        t.add_column(col, justify="right")
    for r in reports:
        typ = [f"{_f(r['recall_by_typology'][x])} ({r['rings_by_typology'][x]})"
               for x in TYPOLOGIES]  # fmt: skip
        sp = r.get("sleeper_split", {})
        split = [f"{_f(sp.get(x))} ({sp.get(x + '_rings', 0)})" for x in ("woke", "chain")]
        t.add_row(_name(r), str(r["rings"]), _f(r["ring_recall"]), _f(r["precision"]),
                  _f(r["recall_at_p90"]), _f(r["benign_fpr"]), *typ, *split,
                  f"{r['flagged_clusters']}/{r['clusters']}")  # fmt: skip
    t.add_section()
    for agg in aggs:
        row = [summary[m][agg] for m in ("ring_recall", "precision", "recall_at_p90", "benign_fpr")]
        typ = [_f(summary["recall_by_typology"][x][agg]) for x in TYPOLOGIES]
        split = [_f(summary["sleeper_split"][x][agg]) for x in ("woke", "chain")]
        t.add_row(agg, "", *map(_f, row), *typ, *split, "")
    console.print(t)

    k = Table(title="Benign false-positive rate per kind (groups)")
    for col in ("world", *BENIGN_KINDS):
        k.add_column(col, justify="right")
    for r in reports:
        k.add_row(_name(r), *(f"{_f(r['benign_fpr_by_kind'][x])} ({r['benign_groups_by_kind'][x]})"
                              for x in BENIGN_KINDS))  # fmt: skip
    k.add_section()
    for agg in aggs:
        k.add_row(agg, *(_f(summary["benign_fpr_by_kind"][x][agg]) for x in BENIGN_KINDS))
    console.print(k)

    c = Table(title="Cluster score reliability: clusters in the bin: share that match a ring / "
                    "share that are true positives")  # fmt: skip
    c.add_column("score", justify="right")
    for r in reports:
        c.add_column(f"world {_name(r)}", justify="right")
    pooled = summary["calibration_pooled"] if measured else []
    if pooled:
        c.add_column("pooled", justify="right")
    for i, b in enumerate(reports[0]["calibration"] if reports else []):
        cells = [r["calibration"][i] for r in reports] + ([pooled[i]] if pooled else [])
        c.add_row(f"{b['lo']:.1f}-{b['hi']:.1f}", *(
            f"{x['clusters']}: {_f(x['ring_share'])} / {_f(x['true_positive_share'])}"
            for x in cells
        ))  # fmt: skip
    console.print(c)

    if measured:
        w = Table(title="Missed rings by cause, all worlds (models.evaluate.MISS_CAUSES)")
        w.add_column("typology")
        for cause in MISS_CAUSES:
            w.add_column(cause.replace("_", " "), justify="right")
        for x in TYPOLOGIES:
            w.add_row(x, *(str(summary["missed_pooled"][x][cause]) for cause in MISS_CAUSES))
        console.print(w)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bench_settings(work: Path) -> Settings:
    """NEO4J_URI's server when set, else a private embedded instance under ``work``."""
    settings = Settings()
    if settings.neo4j_uri:
        return settings
    return settings.model_copy(update={"data_dir": work / "neo4j", "neo4j_port": free_port()})


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--worlds", type=int, nargs="*", default=[],
                    help=f"world seeds (1-{HELD_OUT_FROM - 1} development, "
                    f"{HELD_OUT_FROM}+ held out)")  # fmt: skip
    ap.add_argument("--accounts", type=int, default=20_000)
    ap.add_argument("--no-model", action="store_true", help="rings only: no learned model")
    ap.add_argument(
        "--default-world",
        action="store_true",
        help="also run the default world (for reference: not in the mean or the worst)",
    )
    ap.add_argument("--variants", nargs="+", default=["configured"],
                    choices=["configured", *VARIANTS],
                    help="detector variants, each rebuilt and evaluated on the same loaded "
                    "world (configured: the RINGSCOPE_* settings as they are)")  # fmt: skip
    ap.add_argument("--label", default="dev")
    ap.add_argument("--work", type=Path, default=Path("/tmp/ringscope-worlds"))  # noqa: S108
    args = ap.parse_args(argv)
    if not args.worlds and not args.default_world:
        ap.error("name some --worlds (or --default-world)")
    console = Console(width=max(Console().width, 160))  # the tables are wide; files get all
    held_out = [w for w in args.worlds if w >= HELD_OUT_FROM]
    if held_out and any(w < HELD_OUT_FROM for w in args.worlds):
        console.print("[yellow]mixing development and held-out world seeds[/yellow]")
    settings = bench_settings(args.work)
    bulk = not settings.neo4j_uri
    seeds: list[int | None] = [*([None] if args.default_world else []), *args.worlds]
    reports: list[dict[str, Any]] = []

    def say(msg: str) -> None:
        console.print(msg, style="dim")

    # A plain kill (SIGTERM) ends Python without running ``finally``: the private Neo4j below
    # then outlived the bench (2 GiB of heap, its directory deleted under it). As SystemExit,
    # the ``finally`` stops it.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        with connect(settings) as graph:
            for seed in seeds:
                say(f"world {seed if seed is not None else 'default'}: generate, load, rebuild")
                empty(graph, settings)
                for r in run_world(graph, settings, seed, args.accounts, args.work,
                                   use_model=not args.no_model, bulk=bulk,
                                   variants=args.variants):  # fmt: skip
                    say(f"  {r['variant']}: recall {_f(r['ring_recall'])} precision "
                        f"{_f(r['precision'])} in {sum(r['seconds'].values()):.0f} s "
                        f"{r['seconds']}")  # fmt: skip
                    reports.append(r)
    finally:
        if not settings.neo4j_uri:
            EmbeddedNeo4j(settings).stop()
    summaries: dict[str, Any] = {}
    for v in args.variants:
        mine = [r for r in reports if r["variant"] == v]
        summaries[v] = summarise([r for r in mine if r["world_seed"] is not None])
        console.rule(f"variant: {v}")
        render(mine, summaries[v], console)
    doc = {
        "label": args.label,
        "accounts": args.accounts,
        "use_model": not args.no_model,
        "worlds": args.worlds,
        "held_out": bool(held_out) and len(held_out) == len(args.worlds),
        "flag_threshold": DetectConfig().flag_threshold,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "variants": args.variants,
        "summary": summaries[args.variants[0]] if len(args.variants) == 1 else summaries,
        "per_world": reports,
    }
    dest = REPO / "bench" / "results" / f"worlds-{args.label}.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(doc, indent=2) + "\n")
    console.print(f"wrote {dest}")


if __name__ == "__main__":
    main()
