"""GNN training and scoring time at the 1M-account scale, on a GPU and on the CPU beside it.

    python bench/gnn_device.py [--shape bench/results/gnn-shape-1m.json] [--epochs 20]

The graph is synthetic but has the real one's shape: node counts per type, feature widths and
edge counts per relation are read from ``gnn-shape-1m.json`` (written from the loaded 1M graph:
``to_hetero`` of its projection). Edges are drawn at random, labels at the real fraud rate, so
the timings are those of ``models.gnn.GNNClassifier`` (full batch, mean-normalised sparse CSR
adjacency) at that size; its accuracy on random data means nothing and is not reported. The GPU
trains ``--epochs`` epochs; the CPU of the same machine runs ``--cpu-epochs`` as the baseline,
in the same run. Prints one JSON object (and writes it to ``$OUT`` when set).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch_geometric.data import HeteroData

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ringscope.models.gnn import GNNClassifier, MeanAdjacency  # noqa: E402


def synthetic(shape: dict[str, Any], seed: int) -> tuple[HeteroData, np.ndarray]:
    rng = np.random.default_rng(seed)
    data = HeteroData()
    for t, n in shape["nodes"].items():
        data[t].x = torch.from_numpy(rng.normal(size=(n, shape["features"][t])).astype(np.float32))
        data[t].num_nodes = n
    n_acc = shape["nodes"]["account"]
    for key, m in shape["edges"].items():
        src, rel, dst = key.split("|")
        if rel != "uses":
            continue
        acc = rng.integers(0, n_acc, m)
        ident = rng.integers(0, max(shape["nodes"][dst], 1), m) if m else np.zeros(0, int)
        ei = torch.from_numpy(np.stack([acc, ident]).astype(np.int64))
        data[src, "uses", dst].edge_index = ei
        data[dst, "used_by", src].edge_index = ei.flip(0).contiguous()
    rate = shape["labelled_fraud"] / n_acc
    y = (rng.random(n_acc) < rate).astype(np.int64)
    return MeanAdjacency()(data), y


def run(data: HeteroData, y: np.ndarray, device: str, epochs: int, threads: int) -> dict[str, Any]:
    n = len(y)
    idx = np.random.default_rng(1).permutation(n)
    tr, va = idx[: int(0.8 * n)], idx[int(0.8 * n) :]
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
    gnn = GNNClassifier(
        device=device, epochs=epochs, eval_every=5, patience=10**6, threads=threads, seed=0
    )
    t = time.perf_counter()
    gnn.fit(data, "account", tr, y[tr], va, y[va])
    train_s = time.perf_counter() - t
    t = time.perf_counter()
    p = gnn.predict_proba(data, "account")
    score_s = time.perf_counter() - t
    out: dict[str, Any] = {
        "device": device,
        "threads": threads,
        "epochs": gnn.report.epochs,
        "train_s": round(train_s, 2),
        "s_per_epoch": round(train_s / max(gnn.report.epochs, 1), 3),
        "score_1m_s": round(score_s, 2),
        "scored": int(p.shape[0]),
    }
    if device.startswith("cuda"):
        out["gpu_peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        out["gpu"] = torch.cuda.get_device_name()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", default=str(REPO / "bench" / "results" / "gnn-shape-1m.json"))
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--cpu-epochs", type=int, default=2)
    args = ap.parse_args()
    shape = json.loads(Path(args.shape).read_text())
    t = time.perf_counter()
    data, y = synthetic(shape, seed=0)
    result: dict[str, Any] = {
        "shape": shape,
        "build_s": round(time.perf_counter() - t, 1),
        "torch": torch.__version__,
        "runs": [],
    }
    if torch.cuda.is_available():
        result["runs"].append(run(data, y, "cuda", args.epochs, threads=1))
    cores = os.cpu_count() or 1
    result["runs"].append(run(data, y, "cpu", args.cpu_epochs, threads=cores))
    result["runs"].append(run(data, y, "cpu", args.cpu_epochs, threads=1))
    result["peak_rss_gib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    text = json.dumps(result, indent=2)
    print(text)
    if os.environ.get("OUT"):
        (Path(os.environ["OUT"]) / "gnn-device-1m.json").write_text(text)


if __name__ == "__main__":
    main()
