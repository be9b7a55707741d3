"""The ground truth: every account's fraud flag, ring and typology, each ring's members, each
benign group's members (CSV), and their ``truth_*`` counts. Detection quality is measured
against these files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from ringscope.synth.arrays import Arr, _ids
from ringscope.synth.world import _TYPO_NAMES, BENIGN_KINDS, LONE, TYPOLOGIES, _World
from ringscope.synth.write import _CSV, _Out, _take


def _write_truth(path: Path, columns: dict[str, Any]) -> None:
    pacsv.write_csv(pa.table(columns), path, write_options=_CSV)


def _write_ground_truth(
    truth: Path, w: _World, order: Arr, o: _Out, lab_fraud: Arr, payee_accounts: Arr
) -> None:
    """Write the truth CSVs into ``truth`` and add their ``truth_*`` counts to ``o.counts``."""
    arank, acc_ids, counts = o.arank, o.acc_ids, o.counts
    typ_names = pa.array(list(_TYPO_NAMES))
    ring_ids = _ids("R", max(1, len(w.rings)), 4)
    typology = w.typology[order]
    is_fraud = typology > 0
    ring_o = w.ring[order]
    none = pa.scalar(None, pa.string())
    _write_truth(truth / "accounts.csv", {
        "account_id": acc_ids,
        "is_fraud": pa.array(is_fraud),
        "ring_id": pc.if_else(pa.array(ring_o >= 0), _take(ring_ids, np.maximum(ring_o, 0)), none),
        "typology": pc.if_else(pa.array(is_fraud), _take(typ_names, typology), none),
    })  # fmt: skip
    r_members = [np.sort(arank[m]) for _, m in w.rings]
    r_idx = np.repeat(np.arange(len(w.rings)), [len(m) for m in r_members]).astype(np.int64)
    r_acc = np.concatenate(r_members) if r_members else np.zeros(0, dtype=np.int64)
    r_ty = np.array([ty for ty, _ in w.rings], dtype=np.int64)
    sleeper = TYPOLOGIES.index("sleeper") + 1
    _write_truth(truth / "rings.csv", {
        "ring_id": _take(ring_ids, r_idx),
        "typology": _take(typ_names, r_ty[r_idx] if len(r_idx) else r_idx),
        "account_id": _take(acc_ids, r_acc),
        # For sleeper rings: whether they woke together (else empty).
        "woke_together": pc.if_else(
            pa.array(r_ty[r_idx] == sleeper if len(r_idx) else np.zeros(0, dtype=bool)),
            pa.array(np.isin(r_idx, np.array(sorted(w.woke), dtype=np.int64))),
            pa.scalar(None, pa.bool_()),
        ),
        # Members that came back after their ring struck (rings._return); only in worlds where
        # rings return, so that every other world's truth stays byte for byte as it was.
        **({"returned": pa.array(w.returned[np.argsort(arank)][r_acc])}
           if w.p.ring_return_share > 0 else {}),
    })  # fmt: skip
    g_idx = np.concatenate([g for g, _ in w.group_rows]).astype(np.int64)
    g_acc = arank[np.concatenate([m for _, m in w.group_rows]).astype(np.int64)]
    go = np.lexsort((g_acc, g_idx))
    g_kind = np.array(w.groups_kind, dtype=np.int64)
    group_ids = _ids("G", max(1, w.n_groups), 7)
    _write_truth(truth / "benign_groups.csv", {
        "group_id": _take(group_ids, g_idx[go]),
        "kind": _take(pa.array(list(BENIGN_KINDS)), g_kind[g_idx[go]]),
        "account_id": _take(acc_ids, g_acc[go]),
    })  # fmt: skip

    counts["truth_fraud_accounts"] = int(is_fraud.sum())
    counts["truth_ring_accounts"] = len(r_acc)
    counts["truth_lone_accounts"] = int((typology == LONE).sum())
    counts["truth_rings"] = len(w.rings)
    counts["truth_rings_sleeper_woke"] = len(w.woke)
    if w.p.ring_return_share > 0:
        counts["truth_returned_accounts"] = int(w.returned.sum())
    for i, name in enumerate(TYPOLOGIES):
        counts[f"truth_rings_{name}"] = sum(1 for ty, _ in w.rings if ty == i + 1)
    counts["truth_benign_groups"] = w.n_groups
    counts["truth_benign_rows"] = len(g_idx)
    for i, name in enumerate(BENIGN_KINDS):
        counts[f"truth_benign_groups_{name}"] = int((g_kind == i).sum())
    counts["truth_labels_fraud"] = int(lab_fraud.sum())
    counts["truth_labels_legit"] = int((~lab_fraud).sum())
    counts["truth_top_payee_accounts"] = int(payee_accounts.max()) if len(payee_accounts) else 0
