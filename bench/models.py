"""Does the learned account risk help the ring detector? Generated data, several seeds, the
structural detector alone against the detector fed with the tree model's and with the chosen
(tree/GNN/blend) model's scores, side by side on the same loaded graph.

    python bench/models.py --accounts 100000 --seeds 7 11 13

Per seed and variant: ring recall and cluster precision at the flag threshold, ring recall at
fixed precision (0.9 and 0.95), account AUROC/AUPRC of the build's scores over all accounts and
of the model's probability over the accounts without a label (the honest one: labelled accounts
are easy), training and scoring seconds, and the peak RSS of this process. Writes
``bench/results/models-<accounts>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.csv as pacsv
from sklearn.metrics import average_precision_score, roc_auc_score

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.datasets import generate  # noqa: E402
from ringscope.graph import EmbeddedNeo4j, connect, init_schema  # noqa: E402
from ringscope.ingest import load  # noqa: E402
from ringscope.models.builds import write_build  # noqa: E402
from ringscope.models.detect import DetectConfig, detect  # noqa: E402
from ringscope.models.evaluate import evaluate, recall_at_precision  # noqa: E402
from ringscope.models.projection import read_projection  # noqa: E402
from ringscope.models.risk import AccountRiskModel  # noqa: E402
from ringscope.settings import Settings  # noqa: E402


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def truth_vector(truth: Path, ids: list[str]) -> np.ndarray:
    t = pacsv.read_csv(truth / "accounts.csv").to_pydict()
    fraud = {
        a for a, f in zip(t["account_id"], t["is_fraud"], strict=True) if str(f).lower() == "true"
    }
    return np.array([a in fraud for a in ids], dtype=bool)


def run_seed(settings: Settings, accounts: int, seed: int, work: Path) -> dict[str, Any]:
    root = work / f"seed-{seed}"
    data = generate(accounts, root, seed)
    truth = root / f"truth-{accounts}"
    out: dict[str, Any] = {"seed": seed}
    with connect(settings) as g:
        init_schema(g)
        t = time.perf_counter()
        load(data, g, settings, report_dir=root / "report", progress=False)
        out["ingest_s"] = round(time.perf_counter() - t, 1)
        proj = read_projection(g)
        y = truth_vector(truth, proj.ids)
        unlabelled = proj.label < 0
        flag = DetectConfig().flag_threshold
        variants: dict[str, dict[str, Any]] = {}
        for name, use_gnn in (("structural", None), ("+tree", False), ("+tree+gnn", True)):
            row: dict[str, Any] = {}
            scores = None
            if use_gnn is not None:
                t = time.perf_counter()
                model = AccountRiskModel(seed=0, use_gnn=use_gnn).fit(proj)
                row["train_s"] = round(time.perf_counter() - t, 1)
                t = time.perf_counter()
                p = model.predict_proba(proj)
                row["score_s"] = round(time.perf_counter() - t, 1)
                row["chosen"] = model.choice
                row["validation"] = model.metrics["validation"]
                row["model_auroc_unlabelled"] = round(
                    float(roc_auc_score(y[unlabelled], p[unlabelled])), 4
                )
                row["model_auprc_unlabelled"] = round(
                    float(average_precision_score(y[unlabelled], p[unlabelled])), 4
                )
                scores = dict(zip(proj.ids, p.tolist(), strict=True))
            t = time.perf_counter()
            det = detect(g, projection=proj, account_model_scores=scores)
            row["detect_s"] = round(time.perf_counter() - t, 1)
            info = write_build(g, det)
            ev = evaluate(g, truth, build_id=info.id, flag_threshold=flag)
            row["typology_recall"] = {t.typology: t.recall for t in ev.typologies if t.rings}
            row["benign_fpr_by_kind"] = {k.kind: k.fpr for k in ev.benign_kinds}
            row.update(
                ring_recall=ev.ring_recall,
                precision=ev.precision,
                benign_fpr=ev.benign_fpr,
                account_auroc=ev.auroc,
                account_auprc=ev.auprc,
            )
            for target in (0.9, 0.95):
                r, thr = recall_at_precision(g, truth, precision=target, build_id=info.id)
                row[f"recall_at_p{int(target * 100)}"] = round(r, 4)
                row[f"threshold_at_p{int(target * 100)}"] = thr
            variants[name] = row
            print(json.dumps({"seed": seed, "variant": name, **row}), flush=True)
        out["variants"] = variants
    out["peak_rss_gib"] = round(peak_rss_gib(), 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--accounts", type=int, default=100_000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[7, 11, 13])
    ap.add_argument(
        "--work", type=Path, default=Path(tempfile.gettempdir()) / "ringscope-bench-models"
    )
    ap.add_argument("--port", type=int, default=17950)
    args = ap.parse_args()
    runs = []
    for seed in args.seeds:  # a fresh store per seed: no giant delete between seeds
        state = args.work / f"state-{seed}"
        shutil.rmtree(state, ignore_errors=True)
        settings = Settings(
            data_dir=state, neo4j_port=args.port, neo4j_heap="2g", neo4j_pagecache="2g"
        )
        neo = EmbeddedNeo4j(settings)
        neo.start()
        try:
            runs.append(run_seed(settings, args.accounts, seed, args.work))
        finally:
            neo.stop()
            shutil.rmtree(state, ignore_errors=True)
    summary: dict[str, dict[str, float]] = {}
    for name in runs[0]["variants"]:
        keys = [k for k, v in runs[0]["variants"][name].items() if isinstance(v, int | float)]
        summary[name] = {
            k: round(float(np.mean([r["variants"][name][k] or 0.0 for r in runs])), 4) for k in keys
        }
    result = {
        "accounts": args.accounts,
        "seeds": args.seeds,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "runs": runs,
        "mean": summary,
    }
    dest = REPO / "bench" / "results" / f"models-{args.accounts}.json"
    dest.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    print(f"wrote {dest}")


if __name__ == "__main__":
    main()
