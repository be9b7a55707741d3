"""Labels: partial, delayed and noisy, as a bank's chargebacks and reviews are."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ringscope.synth.arrays import Arr, _ts
from ringscope.synth.world import DAY, _World
from ringscope.synth.write import _Out, _take


def _labels(w: _World, rng: np.random.Generator) -> tuple[Arr, Arr, Arr]:
    """Partial, delayed, noisy labels: chargebacks for some fraud, reviews for a little legit.
    Fraud is labelled weeks after it happens, so the most recent fraud has no label yet; in
    some worlds whole rings are not discovered yet (``unlabelled_ring_share``)."""
    pw = w.p
    base = np.array([0.0, 0.5, 0.4, 0.3, 0.55, 0.1, 0.35])  # by typology code
    fraud = w.typology > 0
    p = base[w.typology]
    if fraud.any():
        p = np.clip(p * pw.fraud_label_rate / p[fraud].mean(), 0.0, 1.0)
    fl = fraud & (rng.random(w.n) < p)
    ft = w.fraud_t + rng.integers(pw.label_delay_min_days, pw.label_delay_max_days, w.n) * DAY
    fl &= ft <= w.t_end
    if pw.unlabelled_ring_share > 0 and w.rings:
        hidden = w.stream("unlabelled-rings").random(len(w.rings)) < pw.unlabelled_ring_share
        for (_, members), h in zip(w.rings, hidden.tolist(), strict=True):
            if h:
                fl[members] = False
    ll = ~fraud & (rng.random(w.n) < pw.legit_label_rate) & (w.created + DAY < w.t_end)
    lt = w.created + DAY + (rng.random(w.n) * (w.t_end - w.created - DAY)).astype(np.int64)
    who = np.flatnonzero(fl | ll)
    label = fl[who].copy()  # True = fraud
    when = np.where(fl[who], ft[who], lt[who])
    when = np.maximum(when, w.created[who] + 3600)
    flip = rng.random(len(who)) < pw.label_noise
    label ^= flip
    return who, label, when


def _emit_labels(o: _Out, lab_who: Arr, lab_fraud: Arr, lab_when: Arr) -> None:
    """The labels table, in time order."""
    arank, acc_ids = o.arank, o.acc_ids
    lo_ = np.argsort(lab_when, kind="stable")
    lab_acc, lab_f, lab_t = arank[lab_who[lo_]], lab_fraud[lo_], lab_when[lo_]
    label_names = pa.array(["legit", "fraud"])
    o.write("labels", len(lab_t), lambda lo, hi: {
        "account_id": _take(acc_ids, lab_acc[lo:hi]),
        "label": _take(label_names, lab_f[lo:hi]),
        "labelled_at": _ts(lab_t[lo:hi]),
    })  # fmt: skip
