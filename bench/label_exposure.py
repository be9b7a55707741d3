"""Label exposure in the account model (``models.risk.label_exposure``): the learned account
score with young unlabelled accounts read as plain negatives, against the same model with
exposure, side by side on the same generated worlds, judged against the generator's truth.

    python bench/label_exposure.py prepare  --worlds 188 190 --accounts 100000 [--work DIR]
    python bench/label_exposure.py evaluate --worlds 188 190 --accounts 100000 [--work DIR]
        [--out FILE]

Why: fraud labels arrive weeks to months after the fraud, so a platform's youngest accounts are
unlabelled whatever they are. A model that reads unlabelled as negative learns "new means safe":
it scores the newest accounts, the ones a decision-time screen and an investigator's queue of
recent sign-ups care about most, lowest. Exposure weighs each unlabelled account by the chance
that its label would have arrived by now (docs/models.md).

``prepare`` generates each world (``WorldParams.draw``), bulk-loads it into a private embedded
Neo4j and keeps the projection the rebuild reads, with the fraud labels' opening and labelling
times, as a pickle under ``--work``. ``evaluate`` fits the tree model (no GNN, as screening's fast
path) both ways on each pickle and scores every account. Truth metrics over the accounts without
a label (the labelled ones are what it trained on): AUROC, AUPRC and recall at 1% false-positive
rate, for all of them, for those opened in the last 30 and 90 days (where the delay bites) and
for the older rest; the median score of young fraud and young honest accounts; each fit's
seconds and the process's peak resident memory during it (sampled every 20 ms: LightGBM's own
allocations included). Writes ``--out`` (JSON) and prints a table.
"""

from __future__ import annotations

import argparse
import csv
import json
import pickle
import platform
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from worlds_offline import prepare_worlds  # noqa: E402

from ringscope.graph import Graph  # noqa: E402
from ringscope.models import projection as P  # noqa: E402
from ringscope.models.risk import AccountRiskModel  # noqa: E402

DAY = 86_400
# Each variant's RiskConfig overrides; "frequency" is exposure with Elkan and Noto's label
# frequency (RiskConfig.label_frequency, session 25).
VARIANTS: dict[str, dict[str, bool]] = {
    "plain": {"label_exposure": False},
    "exposure": {"label_exposure": True},
    "frequency": {"label_exposure": True, "label_frequency": True},
}


def _pickle(work: Path, seed: int, accounts: int) -> Path:
    return work / "projections" / f"world-{seed}-{accounts}-times.pkl"


def prepare(seeds: Sequence[int], accounts: int, work: Path) -> None:
    """Each world generated, loaded, and its projection and label times kept."""

    def read(graph: Graph, truth: Path) -> object:
        return P.read_projection(graph), P.read_fraud_label_times(graph), str(truth)

    prepare_worlds(seeds, accounts, work, lambda seed: _pickle(work, seed, accounts), read)


class PeakRSS:
    """The process's resident memory, sampled while the block runs: its peak, in MiB."""

    def __enter__(self) -> PeakRSS:
        self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._rss())

    @staticmethod
    def _rss() -> float:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0


def _recall_at_fpr(y: np.ndarray, s: np.ndarray, fpr: float = 0.01) -> float:
    neg = np.sort(s[~y])[::-1]
    if not len(neg) or not y.any():
        return float("nan")
    k = int(np.floor(fpr * len(neg)))
    thr = neg[k] if k < len(neg) else -np.inf
    return float(np.mean(s[y] > thr))


def _metrics(y: np.ndarray, s: np.ndarray) -> dict[str, Any]:
    if y.all() or not y.any():
        return {"n": len(y), "fraud": int(y.sum())}
    return {
        "n": len(y),
        "fraud": int(y.sum()),
        "auroc": round(float(roc_auc_score(y, s)), 4),
        "auprc": round(float(average_precision_score(y, s)), 4),
        "recall_at_1pct_fpr": round(_recall_at_fpr(y, s), 4),
    }


def world_report(proj: P.Projection, times: tuple[Any, Any], truth: Path) -> dict[str, Any]:
    with (truth / "accounts.csv").open() as f:
        fraud = {
            r["account_id"] for r in csv.DictReader(f) if r["is_fraud"] in ("True", "true", "1")
        }
    y = np.asarray([a in fraud for a in proj.ids])
    age = (proj.now() - proj.created) / DAY
    unl = proj.label == -1
    bands = {
        "unlabelled": unl,
        "unlabelled_30d": unl & (age < 30),
        "unlabelled_90d": unl & (age < 90),
        "unlabelled_older": unl & (age >= 90),
    }
    out: dict[str, Any] = {"accounts": proj.n, "fraud_labels_with_times": len(times[0])}
    for name, on in VARIANTS.items():
        t = time.perf_counter()
        with PeakRSS() as mem:
            model = AccountRiskModel(seed=0, use_gnn=False, **on).fit(proj, times)
        fit_s = time.perf_counter() - t
        p = model.predict_proba(proj)
        young = bands["unlabelled_30d"]
        out[name] = {
            "fit_seconds": round(fit_s, 2),
            "peak_rss_mib": round(mem.peak, 1),
            "metrics": {b: _metrics(y[m], p[m]) for b, m in bands.items()},
            "median_score_young_fraud": round(float(np.median(p[young & y])), 5)
            if (young & y).any()
            else None,
            "median_score_young_honest": round(float(np.median(p[young & ~y])), 5)
            if (young & ~y).any()
            else None,
            "exposure": model.metrics.get("label_exposure"),
        }
    return out


def evaluate(seeds: Sequence[int], accounts: int, work: Path, out: Path | None) -> None:
    reports: dict[str, Any] = {}
    for seed in seeds:
        # Our own pickles, written by ``prepare`` under --work: not untrusted input.
        proj, times, truth = pickle.loads(_pickle(work, seed, accounts).read_bytes())  # noqa: S301
        reports[str(seed)] = world_report(proj, times, Path(truth))
        r = reports[str(seed)]
        for band in ("unlabelled", "unlabelled_30d", "unlabelled_90d", "unlabelled_older"):
            ms = [r[v]["metrics"][band] for v in VARIANTS]
            print(
                f"world {seed} {band:17s} n={ms[0]['n']:6d} fraud={ms[0]['fraud']:5d}  "
                + "  ".join(
                    f"{k} " + " -> ".join(f"{m.get(k, float('nan')):.3f}" for m in ms)
                    for k in ("auroc", "auprc", "recall_at_1pct_fpr")
                ),
                flush=True,
            )
        print(
            f"world {seed} fit "
            + " / ".join(f"{r[v]['fit_seconds']} s" for v in VARIANTS)
            + ", peak RSS "
            + " / ".join(f"{r[v]['peak_rss_mib']} MiB" for v in VARIANTS)
            + f" ({' / '.join(VARIANTS)})",
            flush=True,
        )
    if out is not None:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=REPO, check=False
        ).stdout.strip()
        out.write_text(
            json.dumps(
                {
                    "accounts": accounts,
                    "worlds": list(seeds),
                    "machine": platform.platform(),
                    "commit": commit,
                    "model": "tree only (use_gnn=False), seed 0",
                    "per_world": reports,
                },
                indent=1,
            )
        )
        print(f"wrote {out}")


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("step", choices=("prepare", "evaluate"))
    ap.add_argument("--worlds", type=int, nargs="+", required=True)
    ap.add_argument("--accounts", type=int, default=100_000)
    ap.add_argument("--work", type=Path, default=Path("/tmp/ringscope-exposure"))  # noqa: S108
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.step == "prepare":
        prepare(args.worlds, args.accounts, args.work)
    else:
        evaluate(args.worlds, args.accounts, args.work, args.out)


if __name__ == "__main__":
    main()
