"""Synthetic data generator: a bank's worth of accounts, identifiers and payments, with known rings.

Why it matters: RingScope has no access to a real bank's data, so this generator is how detection
quality is measured. Every precision/recall number the team reports is computed against the ground
truth written here, so the data must be hard in the ways real data is hard. Fraud rings of five
typologies hide among benign sharing that looks just like them (households, offices, campuses,
internet cafes, carrier NAT IPs, recycled phone numbers), ring members camouflage themselves with
normal activity, popular merchants are supernodes, and the labels a model may learn from are
partial and noisy, as a real bank's chargeback and review labels are. A generator that is too easy
makes every detector look good; one that is wrong in a systematic way (an id that leaks fraud, a
timestamp out of order) makes the numbers meaningless. See ``docs/generator.md``.

It writes the data contract v1 (nine tables, Parquet or CSV) into ``out`` and the ground truth
(CSV plus ``manifest.json``) into ``truth``. Output is a pure function of the arguments: the same
arguments give byte-identical files. Everything is vectorised with numpy; Python loops run per
ring or per ring link, never per row, so a million accounts take a couple of minutes on two cores.

Internally every entity is an integer index; strings (ids, phone numbers, IPs, emails, document
and card numbers) are only built when a table is written, with pyarrow ``take`` on small lookup
arrays. Account ids are assigned in creation order and device and payee ids in first-seen order,
so ids carry no information about who is a fraudster beyond what real sequential ids carry.

The mechanics of the world (how many honest phones look like emulators, household sizes, label
delays, ring sizes and timing, ...) are a :class:`~ringscope.synth.params.WorldParams`:
``world=None`` is the one world this generator always built, ``world=WorldParams.draw(s)`` a
differently built one, so that detection can be measured on many worlds (``bench/worlds.py``).
``seed`` draws the data, ``world`` fixes the mechanics it is drawn with.

This module runs the stages in order; each has its module: ``world.py`` (the world and its
codes), ``params.py`` (its mechanics), ``accounts.py`` (accounts, merchants, everyday life),
``rings.py`` (fraud typologies), ``benign.py`` (benign look-alike groups), ``families.py`` (what
families share, fraudsters' families), ``labels.py``, ``write.py`` (the contract tables),
``truth.py`` (the ground truth), with ``arrays.py``, ``phones.py``, ``strings.py`` and
``schema.py`` beneath them. Each stage draws from its own named random stream (``_rng``) and
builds on what the earlier ones left in the world, so the order of the calls below is part of
the output: keep it.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from ringscope.synth.accounts import _accounts, _merchants, _normal
from ringscope.synth.arrays import _ids, _rng
from ringscope.synth.benign import _benign, _recycled_setup
from ringscope.synth.families import _families
from ringscope.synth.labels import _emit_labels, _labels
from ringscope.synth.params import WorldParams
from ringscope.synth.phones import _phone_plan
from ringscope.synth.rings import _choose_fraud, _lone, _ring
from ringscope.synth.schema import CONTRACT_VERSION, SCHEMAS, TABLES
from ringscope.synth.truth import _write_ground_truth
from ringscope.synth.world import _UTC_OFFSET_H, BENIGN_KINDS, TYPOLOGIES, _World
from ringscope.synth.write import (
    _emit_accounts,
    _emit_devices,
    _emit_identifiers,
    _emit_payees_payments,
    _emit_phones,
    _Out,
)

__all__ = [
    "BENIGN_KINDS",
    "CONTRACT_VERSION",
    "SCHEMAS",
    "TABLES",
    "TYPOLOGIES",
    "WorldParams",
    "generate",
]


def generate(
    out: Path,
    truth: Path,
    accounts: int,
    seed: int,
    fmt: str = "parquet",
    default_region: str = "CN",
    *,
    years: float = 3.0,
    world: WorldParams | None = None,
    fraud_rate: float | None = None,
    ring_share: float | None = None,
    household_share: float | None = None,
    office_share: float | None = None,
    campus_share: float | None = None,
    cafe_share: float | None = None,
    recycled_phone_share: float | None = None,
    foreign_share: float | None = None,
    payments_per_year: float | None = None,
    fraud_label_rate: float | None = None,
    legit_label_rate: float | None = None,
    label_noise: float | None = None,
) -> dict[str, int]:
    """Write a synthetic bank (contract v1) into ``out`` and its ground truth into ``truth``.

    ``fmt`` is ``"parquet"`` or ``"csv"``; ``default_region`` is the ISO region whose mobile
    numbers, currency and time zone the bank uses. ``world`` holds the mechanics (default: the
    generator's historical world, ``WorldParams()``). The other keyword-only knobs, when given,
    override the world's: the fraud share of accounts, the share of fraud in rings (the rest are
    lone fraudsters), the share of legitimate accounts in each kind of benign group, activity
    and labelling rates. Returns the number of rows written per table plus ``truth_*`` counts.
    """
    if fmt not in ("parquet", "csv"):
        raise ValueError(f"fmt must be 'parquet' or 'csv', not {fmt!r}")
    if accounts < 1:
        raise ValueError("accounts must be at least 1")
    region = default_region.upper()
    plan = _phone_plan(region)
    overrides: dict[str, Any] = {
        "fraud_rate": fraud_rate, "ring_share": ring_share, "household_share": household_share,
        "office_share": office_share, "campus_share": campus_share, "cafe_share": cafe_share,
        "recycled_phone_share": recycled_phone_share, "foreign_share": foreign_share,
        "payments_per_year": payments_per_year, "fraud_label_rate": fraud_label_rate,
        "legit_label_rate": legit_label_rate, "label_noise": label_noise,
    }  # fmt: skip
    p = dataclasses.replace(
        world or WorldParams(), **{k: v for k, v in overrides.items() if v is not None}
    )
    out, truth = Path(out), Path(truth)
    out.mkdir(parents=True, exist_ok=True)
    truth.mkdir(parents=True, exist_ok=True)

    w = _World(accounts, seed, region, years, _UTC_OFFSET_H.get(region, 0), p)
    country = _accounts(w, _rng(seed, "accounts"))
    _merchants(w, _rng(seed, "merchants"))
    rings, lone = _choose_fraud(w, _rng(seed, "fraud"))
    _recycled_setup(w, _rng(seed, "recycled"))
    rr = _rng(seed, "rings")
    for ty, members in rings:
        _ring(w, rr, ty, members)
    _lone(w, _rng(seed, "lone"), lone)
    _benign(w, _rng(seed, "benign"))
    _families(w)
    _normal(w, _rng(seed, "normal"))
    lab_who, lab_fraud, lab_when = _labels(w, _rng(seed, "labels"))

    srng = _rng(seed, "strings")
    # accounts, numbered in order of creation
    order = np.argsort(w.created, kind="stable")
    arank = np.empty(w.n, dtype=np.int64)
    arank[order] = np.arange(w.n)
    acc_ids = _ids("A", w.n, 7)
    o = _Out(out, fmt, srng, arank, acc_ids)
    _emit_accounts(w, o, order, country, region)
    _emit_devices(w, o)
    _emit_phones(w, o, plan)
    payee_accounts = _emit_payees_payments(w, o, region)
    _emit_identifiers(w, o)
    counts = o.counts

    _emit_labels(o, lab_who, lab_fraud, lab_when)
    _write_ground_truth(truth, w, order, o, lab_fraud, payee_accounts)
    params = {"accounts": accounts, "seed": seed, "fmt": fmt, "default_region": region,
              "years": years, **{k: getattr(p, k) for k in overrides}}  # fmt: skip
    manifest: dict[str, object] = {
        "contract": CONTRACT_VERSION,
        "generator": "ringscope.synth.generate",
        "world_end": "2025-06-30T00:00:00+00:00",
        "parameters": params,
        "counts": counts,
    }
    # The default world's manifest is the one it always had; any other world is recorded, so
    # that a report can say what each world was (WorldParams.from_dict reads it back).
    if world is not None and world != WorldParams():
        manifest["world"] = p.to_dict()
    (truth / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return counts
