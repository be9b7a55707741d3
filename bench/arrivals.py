"""Screening new accounts as they arrive, against what a full rebuild later knows about them
(issue #17, item 5).

    python bench/arrivals.py --seeds 150 151 152 --accounts 20000 [--split 0.9] [--events 3]
        [--ring-return-share 0.5]

What is measured: how well ``screen(event)`` (``ringscope.api.service.screen_event``), scoring an
event against the graph and build as they stand, catches fraudulent accounts at the moment they
arrive, compared with the ceiling: the same model retrained on the whole world, scoring those
accounts once everything about them is in the graph. Why: a risk engine decides at sign-up and
at each later event, long before the next rebuild, so the screen's score and its ``linkedRings``
are what it acts on; a screen much weaker than the rebuild, or one that links honest newcomers
to rings, is not worth calling.

How, per world seed W (``WorldParams.draw(W)``, data seed W, as ``bench/worlds.py`` does;
``--ring-return-share`` switches on rings that come back after they struck, the last-opened
quarter of their members opening new accounts on the ring's devices, numbers and documents,
``ringscope.synth.rings._return``: without it few ring members arrive after T at all, and
attribution could not be judged):

1. **Split at T**, the ``--split`` quantile (0.9) of ``accounts.created_at``. The *before* data
   set is every contract row as of T: accounts created before T; their observations
   (``seen_at`` < T) and payments (``paid_at`` < T); their labels (``labelled_at`` < T; labels of
   arrivals are dropped); the device, phone and payee rows those rows reference (``--entities
   all`` keeps every entity row instead: as if device and number intelligence were known for the
   arrivals' new devices and numbers, which events cannot carry). Activity of pre-T accounts
   after T is left out altogether: only arrivals change the graph after T. The before set is
   bulk-loaded into a private embedded Neo4j (its own store and free port) and rebuilt with
   ``retrain=True`` (LightGBM, ``model_use_gnn=False``).
2. **Arrivals** are the accounts created at or after T. Each one's contract rows become events
   (the event construction below); all arrivals' events are interleaved in time order, and each
   event is screened (``screen_event``, budget ``--budget``) and then recorded
   (``record_events``, one event per call; ``--batch k`` screens k consecutive events before
   recording them in one call). An account's **screen score** is the score of its first event
   (its sign-up); its score over all its screened events is reported as well (max).
3. **Metrics on arrivals**, against the generator's truth (``truth/accounts.csv``: fraud is
   ``is_fraud``, ring members and lone fraudsters): AUROC and AUPRC of the score, fraud recall at
   1% false-positive rate (the best true-positive rate of the ROC curve at FPR <= 0.01). **Ring
   attribution**: among arriving ring members *eligible* for it (they share with a pre-T member
   of their true ring an identifier that member used before T and that is no hub, i.e. held by
   at most the kind's ``degree_cap`` accounts in the whole world, ``ringscope.kinds``, and they
   present that identifier in one of their screened events), the share whose ``linkedRings``
   over their events include the build ring *mapped* to their true ring (a flagged cluster maps
   to the true ring holding a strict majority of its members). **Honest linked**: the share of
   honest arrivals whose events reach any flagged ring.
4. **The ceiling**: the whole world (every row, labels included) loaded into a fresh store and
   rebuilt with ``retrain=True``; the same metrics for the same arrivals from that build: its
   model scores (``model_scores``; an unscored account counts 0), attribution = the arrival is a
   member of a flagged cluster mapped to its true ring, honest linked = an honest arrival in any
   flagged cluster.
5. Goals (issue #17): screen recall@1%FPR >= 0.8 x the ceiling's; attribution >= 0.9; honest
   linked <= 2%. Tables per world and the mean; ``bench/results/arrivals-<accounts>-<seeds>.json``
   with every number, the event counts and the wall times (per screen and per record, in
   process: median, p99, mean).

**Event construction.** The generator's accounts show their first identifiers hours to days
after opening (median ~20 h for honest ones, longer for fraud); a first-hour sign-up would
carry almost nothing. So the first event is a ``SIGNUP`` at ``created_at`` with the account's
KYC level and every identifier (device, phone, IP, email, ID document, bank card; payees not)
it was seen with in its first ``--signup-hours`` (24) hours, as the values appear in the files
(the screen normalises them: phones in six spellings, e-mails in mixed case); an account with
nothing in that window signs up bare (KYC only), and the report gives the share that did. Its
other rows (later observations, and every payment) are grouped per hour since opening: each
hour is one event at the time of its last row, carrying the hour's identifiers (each distinct
value once) and its first payment (a ``PAYMENT``; else a ``BIND_CARD`` when it binds a card,
else a ``LOGIN``); each further payment of the hour is a ``PAYMENT`` event of its own at its
``paid_at``. An account's first ``--events`` (3) events, sign-up included, are screened and
recorded; the rest of its rows are not used (they are in the ceiling). Repeated sightings of
one value within an event count once, so the recorded counts are below the files'. With
``--details on`` each event also carries, for the devices and phones it names, the world's
``devices`` and ``phones`` rows (os and emulator flag, carrier and virtual flag) as
``deviceDetails`` and ``phoneDetails``: what a risk engine's device fingerprint and number
lookup know at that moment. Off, a new device or number is screened and recorded without them
(only the ceiling, which loads every row, knows its flag).

Diagnostics in the JSON: per eligible arrival, whether its ring was found before T (a flagged
cluster mapped to it), whether a pre-T holder of the shared identifier is in that cluster (then
the screen had a link to report; ``missed_with_link`` lists those it did not report), and the
rings it was linked to; honest arrivals linked to clusters that map to a true ring apart from
false-positive clusters, and the kinds the links went through; sign-ups that carried nothing;
arrivals labelled in the ceiling's data (its model was trained on their labels); invalid fields
and anomalies (an event not recorded, a known account screened as new); ``--trace`` writes every
screen and record as a JSON line. The commit and a digest of the working tree's diff are
recorded, since the screening code was changing while this was written.

Neo4j: a private embedded instance under ``--work`` (1 GiB heap, 1 GiB page cache), its store
dropped between the before load and the whole load, stopped at the end. Keep worlds modest on a
shared machine: 20,000 accounts take ~2,000 arrivals, ~6,000 screens and records per world.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from ringscope.api import service
from ringscope.api.service import record_events, screen_event
from ringscope.graph import EmbeddedNeo4j, Graph, connect, init_schema
from ringscope.ingest import load
from ringscope.ingest.events import DETAIL_FIELDS, MAX_EVENT_VALUES, Event
from ringscope.ingest.normalise import VALUE_NORMALISERS, Context, phones
from ringscope.jobs.rebuild import rebuild
from ringscope.kinds import BY_NAME
from ringscope.models.builds import all_clusters, current_build, model_scores
from ringscope.models.store import ModelStore
from ringscope.settings import Settings
from ringscope.synth.generate import generate
from ringscope.synth.params import WorldParams

REPO = Path(__file__).resolve().parents[1]
REGION = "CN"
HOUR_US = 3_600_000_000
FPR_POINT = 0.01
GOAL_RECALL_RATIO = 0.8  # screen recall@1%FPR >= this x the ceiling's
GOAL_ATTRIBUTION = 0.9
GOAL_HONEST_LINKED = 0.02
ENTITY_TABLES = {
    "devices": ("device_id", "device"),
    "phones": ("phone", "phone"),
    "payees": ("payee_id", "payee"),
}


# --- the world and its split ------------------------------------------------------------------


def world_dirs(
    seed: int, accounts: int, work: Path, reuse: bool, ring_return_share: float = 0.0
) -> tuple[Path, Path]:
    """The data and truth directories of world ``seed`` (generated unless ``reuse`` finds them
    written for the same world parameters); ``ring_return_share``: rings that come back after
    they struck (``WorldParams.ring_return_share``), the case a screen is for."""
    root = work / "worlds" / f"world-{seed}-{accounts}"
    data, truth = root / "data", root / "truth"
    world = dataclasses.replace(WorldParams.draw(seed), ring_return_share=ring_return_share)
    manifest = truth / "manifest.json"
    if (
        reuse
        and manifest.exists()
        and json.loads(manifest.read_text()).get("world") == world.to_dict()
    ):
        return data, truth
    shutil.rmtree(root, ignore_errors=True)
    generate(data, truth, accounts, seed, world=world)
    return data, truth


def read_tables(data: Path) -> dict[str, pa.Table]:
    return {p.stem: pq.read_table(p) for p in sorted(data.glob("*.parquet"))}


def _us(col: pa.ChunkedArray | pa.Array) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Timestamps as int64 microseconds since the epoch (null: -1)."""
    ints = pc.cast(col, pa.timestamp("us", "UTC")).cast(pa.int64())
    return np.asarray(pc.fill_null(ints, -1).to_numpy(zero_copy_only=False), dtype=np.int64)


def _trim(col: pa.ChunkedArray) -> pa.Array:
    return pc.utf8_trim_whitespace(col.combine_chunks())


def normalised(kind: str, raw: pa.ChunkedArray, ctx: Context) -> pa.Array:
    """Identifier values as the loader stores them (the node ids), so that sharing and degrees
    here are the graph's."""
    values = _trim(raw)
    if kind == "phone":
        return phones(values, ctx)[0]
    return VALUE_NORMALISERS.get(kind, lambda v: v)(values)


def observations(tables: dict[str, pa.Table]) -> pa.Table:
    """Every observation and payment as one table: account, kind, raw value (as in the file),
    norm (the node id), t (us), and for payments payment id, amount (text) and currency."""
    ctx = Context(REGION, None, lambda ids: np.ones(len(ids), dtype=bool))
    parts: list[pa.Table] = []

    def part(
        t: pa.Table,
        kind: pa.Array,
        raw: pa.ChunkedArray,
        norm: pa.Array,
        when: str,
        pay: bool = False,
    ) -> None:
        n = t.num_rows
        parts.append(
            pa.table(
                {
                    "account": t.column("account_id").combine_chunks(),
                    "kind": kind,
                    "raw": raw.combine_chunks(),
                    "norm": norm,
                    "t": pa.array(_us(t.column(when))),
                    "payment_id": t.column("payment_id").combine_chunks()
                    if pay
                    else pa.nulls(n, pa.string()),
                    "amount": pc.cast(t.column("amount"), pa.string()).combine_chunks()
                    if pay
                    else pa.nulls(n, pa.string()),
                    "currency": t.column("currency").combine_chunks()
                    if pay
                    else pa.nulls(n, pa.string()),
                }
            )
        )

    def const(kind: str, n: int) -> pa.Array:
        return pa.array([kind] * n, pa.string())

    if "account_devices" in tables:
        t = tables["account_devices"]
        raw = t.column("device_id")
        part(t, const("device", t.num_rows), raw, normalised("device", raw, ctx), "seen_at")
    if "account_phones" in tables:
        t = tables["account_phones"]
        raw = t.column("phone")
        part(t, const("phone", t.num_rows), raw, normalised("phone", raw, ctx), "seen_at")
    if "account_identifiers" in tables:
        t = tables["account_identifiers"]
        kinds = pc.utf8_lower(_trim(t.column("kind")))
        for kind in pc.unique(kinds).to_pylist():
            sub = t.filter(pc.equal(kinds, kind))
            raw = sub.column("value")
            part(sub, const(kind, sub.num_rows), raw, normalised(kind, raw, ctx), "seen_at")
    if "payments" in tables:
        t = tables["payments"]
        raw = t.column("payee_id")
        part(t, const("payee", t.num_rows), raw, normalised("payee", raw, ctx), "paid_at", pay=True)
    return pa.concat_tables(parts)


@dataclass
class Split:
    t_us: int
    before: set[str]
    arrivals: list[str]  # in creation order
    created: dict[str, int]  # us
    kyc: dict[str, int | None]


def split_world(tables: dict[str, pa.Table], quantile: float) -> Split:
    acc = tables["accounts"]
    ids: list[str] = acc.column("account_id").to_pylist()
    created = _us(acc.column("created_at"))
    known = np.sort(created[created >= 0])
    t_us = int(known[min(len(known) - 1, int(quantile * len(known)))])
    kyc = (
        acc.column("kyc_level").to_pylist()
        if "kyc_level" in acc.column_names
        else [None] * len(ids)
    )
    arrivals = sorted((c, i) for i, c in zip(ids, created.tolist(), strict=True) if c >= t_us)
    return Split(
        t_us=t_us,
        before={i for i, c in zip(ids, created.tolist(), strict=True) if c < t_us},
        arrivals=[i for _, i in arrivals],
        created=dict(zip(ids, created.tolist(), strict=True)),
        kyc={i: (None if k is None else int(k)) for i, k in zip(ids, kyc, strict=True)},
    )


def write_before(
    tables: dict[str, pa.Table], obs: pa.Table, split: Split, out: Path, all_entities: bool
) -> dict[str, int]:
    """The contract tables as of T into ``out`` (see the module doc). Returns rows per table."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    before = pa.array(sorted(split.before), pa.string())
    t_us = split.t_us
    rows: dict[str, int] = {}

    def in_before(t: pa.Table) -> pa.Array:
        return pc.is_in(t.column("account_id"), value_set=before)

    def earlier(t: pa.Table, col: str) -> pa.Array:
        return pa.array(_us(t.column(col)) < t_us)

    kept: dict[str, pa.Table] = {}
    acc = tables["accounts"]
    kept["accounts"] = acc.filter(in_before(acc))
    for name, col in (
        ("account_devices", "seen_at"),
        ("account_phones", "seen_at"),
        ("account_identifiers", "seen_at"),
        ("payments", "paid_at"),
    ):
        if name in tables:
            t = tables[name]
            # -1 (no time) < T: an undated row of a pre-T account is kept
            kept[name] = t.filter(pc.and_(in_before(t), earlier(t, col)))
    if "labels" in tables:
        t = tables["labels"]
        mask = in_before(t)
        if "labelled_at" in t.column_names:
            mask = pc.and_(mask, earlier(t, "labelled_at"))
        kept["labels"] = t.filter(mask)
    # Entity rows the kept rows reference (by node id, so a phone spelled otherwise still counts).
    seen = obs.filter(
        pc.and_(pc.is_in(obs.column("account"), value_set=before), pc.less(obs.column("t"), t_us))
    )
    ctx = Context(REGION, None, lambda ids: np.ones(len(ids), dtype=bool))
    for name, (col, kind) in ENTITY_TABLES.items():
        if name not in tables:
            continue
        t = tables[name]
        if all_entities:
            kept[name] = t
            continue
        used = pc.unique(seen.filter(pc.equal(seen.column("kind"), kind)).column("norm"))
        norm = normalised(kind, t.column(col), ctx)
        kept[name] = t.filter(pc.fill_null(pc.is_in(norm, value_set=used), False))
    for name, t in kept.items():
        pq.write_table(t, out / f"{name}.parquet")
        rows[name] = t.num_rows
    return rows


# --- events -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    kind: str
    raw: str
    norm: str | None
    t: int  # us
    payment: tuple[str, str, str | None] | None  # (payment id, amount, currency)


@dataclass
class Planned:
    event: Event
    account: str
    created: int
    seq: int
    norms: set[tuple[str, str]]  # (kind, node id) the event carries


def _event_type(rows: Sequence[Row], paying: bool) -> str:
    if paying:
        return "PAYMENT"
    return "BIND_CARD" if any(r.kind == "bank_card" for r in rows) else "LOGIN"


def _identifiers(rows: Sequence[Row]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for r in sorted(rows, key=lambda r: r.t):
        vals = out.setdefault(r.kind, [])
        if r.raw not in vals and len(vals) < MAX_EVENT_VALUES:
            vals.append(r.raw)
    return out


def _at(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1e6, UTC)


# kind -> normalised id -> the entity table's row (raw key left out): what a risk engine's
# device fingerprint and phone lookup say of an identifier (``--details on``).
Described = dict[str, dict[str, dict[str, Any]]]


def described(tables: dict[str, pa.Table]) -> Described:
    """The world's devices and phones tables, by normalised id, as the events' details."""
    ctx = Context(REGION, None, lambda ids: np.ones(len(ids), dtype=bool))
    out: Described = {}
    for kind, d in DETAIL_FIELDS.items():
        t = tables.get(d.table.name)
        if t is None:
            continue
        key, *rest = d.table.columns
        ids = normalised(kind, t.column(key), ctx).to_pylist()
        cols = {c: t.column(c).to_pylist() for c in rest}
        out[kind] = {v: {c: cols[c][i] for c in rest} for i, v in enumerate(ids) if v is not None}
    return out


def _details(rows: Sequence[Row], about: Described) -> dict[str, list[dict[str, Any]]]:
    """The event's details: for each device and phone it carries that the world describes,
    the entity table's row with the value spelt as the event spells it."""
    out: dict[str, list[dict[str, Any]]] = {}
    for kind, d in DETAIL_FIELDS.items():
        seen: set[str] = set()
        for r in sorted(rows, key=lambda r: r.t):
            row = about.get(kind, {}).get(r.norm or "")
            if r.kind == kind and row is not None and r.raw not in seen:
                seen.add(r.raw)
                out.setdefault(kind, []).append({d.table.columns[0]: r.raw, **row})
    return {k: v[:MAX_EVENT_VALUES] for k, v in out.items()}


def plan_events(
    account: str,
    created: int,
    kyc: int | None,
    rows: list[Row],
    signup_hours: float,
    cap: int,
    about: Described | None = None,
) -> list[Planned]:
    """One arrival's first ``cap`` events (see the module doc); with ``about``, each carries
    the details of its devices and phones."""
    window = created + int(signup_hours * HOUR_US)
    signup = [r for r in rows if r.payment is None and r.t < window]
    rest = [r for r in rows if not (r.payment is None and r.t < window)]
    drafts: list[tuple[int, int, str, list[Row], Row | None]] = []  # (at, seq, type, ids, pay)
    drafts.append((created, 0, "SIGNUP", signup, None))
    by_hour: dict[int, list[Row]] = defaultdict(list)
    for r in rest:
        by_hour[max(0, r.t - created) // HOUR_US].append(r)
    seq = 1
    for hour in sorted(by_hour):
        group = by_hour[hour]
        ids = [r for r in group if r.payment is None]
        pays = sorted((r for r in group if r.payment is not None), key=lambda r: r.t)
        first = pays[0] if pays else None
        at = max(r.t for r in [*ids, *([first] if first else [])])
        drafts.append((at, seq, _event_type(ids, first is not None), ids, first))
        seq += 1
        for p in pays[1:]:
            drafts.append((p.t, seq, "PAYMENT", [], p))
            seq += 1
    drafts.sort(key=lambda d: (d[0], d[1]))
    out: list[Planned] = []
    for n, (at, s, typ, ids, pay) in enumerate(drafts[:cap]):
        norms = {(r.kind, r.norm) for r in ids if r.norm is not None}
        payee = amount = currency = None
        if pay is not None:
            assert pay.payment is not None
            payee, (_, amount, currency) = pay.raw, pay.payment
            if pay.norm is not None:
                norms.add(("payee", pay.norm))
        ev = Event(
            event_id=f"arr-{account}-{n}",
            account_id=account,
            at=_at(at),
            type=typ,
            identifiers=_identifiers(ids),
            payee=payee,
            amount=amount,
            currency=currency,
            kyc_level=kyc if typ == "SIGNUP" else None,
            details=_details(ids, about) if about is not None else {},
        )
        out.append(Planned(ev, account, created, s, norms))
    return out


def rows_by_account(obs: pa.Table, accounts: set[str]) -> dict[str, list[Row]]:
    sub = obs.filter(pc.is_in(obs.column("account"), value_set=pa.array(sorted(accounts))))
    cols = {c: sub.column(c).to_pylist() for c in sub.column_names}
    out: dict[str, list[Row]] = defaultdict(list)
    for i in range(sub.num_rows):
        pay = cols["payment_id"][i]
        out[cols["account"][i]].append(
            Row(
                cols["kind"][i],
                cols["raw"][i],
                cols["norm"][i],
                cols["t"][i],
                None if pay is None else (pay, cols["amount"][i], cols["currency"][i]),
            )
        )
    return out


# --- truth and metrics ------------------------------------------------------------------------


@dataclass
class Truth:
    fraud: dict[str, bool]
    ring: dict[str, str | None]
    typology: dict[str, str | None]

    @classmethod
    def read(cls, truth: Path) -> Truth:
        rows = pacsv.read_csv(
            truth / "accounts.csv", convert_options=pacsv.ConvertOptions(strings_can_be_null=True)
        )
        ids = rows.column("account_id").to_pylist()
        fraud = [bool(x) for x in rows.column("is_fraud").to_pylist()]
        ring = [x or None for x in rows.column("ring_id").to_pylist()]
        typ = [x or None for x in rows.column("typology").to_pylist()]
        return cls(
            dict(zip(ids, fraud, strict=True)),
            dict(zip(ids, ring, strict=True)),
            dict(zip(ids, typ, strict=True)),
        )


def score_metrics(y: Sequence[bool], s: Sequence[float]) -> dict[str, Any]:
    """AUROC, AUPRC and recall at 1% FPR (None when a class is missing)."""
    pos = int(sum(y))
    out: dict[str, Any] = {
        "n": len(y),
        "fraud": pos,
        "auroc": None,
        "auprc": None,
        "recall_at_1pct_fpr": None,
    }
    if 0 < pos < len(y):
        yt, st = np.asarray(y, dtype=bool), np.asarray(s, dtype=np.float64)
        out["auroc"] = float(roc_auc_score(yt, st))
        out["auprc"] = float(average_precision_score(yt, st))
        fpr, tpr, _ = roc_curve(yt, st, drop_intermediate=False)
        out["recall_at_1pct_fpr"] = float(tpr[fpr <= FPR_POINT].max())
    return out


def ring_map(clusters: Sequence[Any], truth: Truth) -> dict[str, str]:
    """Flagged cluster's ring id -> the true ring holding a strict majority of its members."""
    out: dict[str, str] = {}
    for c in clusters:
        rings = Counter(truth.ring.get(m) for m in c.members)
        top, n = max(
            ((r, n) for r, n in rings.items() if r is not None),
            key=lambda x: (x[1], x[0]),
            default=(None, 0),
        )
        if top is not None and 2 * n > len(c.members):
            out[c.ring_id] = top
    return out


def membership(
    clusters: Sequence[Any], truth: Truth
) -> tuple[dict[str, str], dict[str, set[str]], set[str]]:
    """A build's flagged clusters against the truth: the ring map (:func:`ring_map`), each
    account's true rings through its mapped clusters, and every account in a flagged cluster."""
    mapping = ring_map(clusters, truth)
    rings: dict[str, set[str]] = defaultdict(set)
    flagged: set[str] = set()
    for c in clusters:
        for m in c.members:
            flagged.add(m)
            if c.ring_id in mapping:
                rings[m].add(mapping[c.ring_id])
    return mapping, rings, flagged


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def _pct(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def _timing(values: Sequence[float]) -> dict[str, Any]:
    ms = [v * 1e3 for v in values]
    return {
        "n": len(ms),
        "median_ms": _pct(ms, 50),
        "p99_ms": _pct(ms, 99),
        "mean_ms": statistics.fmean(ms) if ms else None,
        "max_ms": max(ms) if ms else None,
    }


# --- one world --------------------------------------------------------------------------------


@dataclass
class Screened:
    first: float | None = None
    last: float = 0.0  # the score of its last screened event
    best: float = 0.0
    rings: set[str] = field(default_factory=set)  # build ring ids reached, over its events
    first_rings: set[str] = field(default_factory=set)
    events: int = 0
    norms: set[tuple[str, str]] = field(default_factory=set)
    via: set[str] = field(default_factory=set)  # kinds its links to rings went through


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def empty(graph: Graph, settings: Settings) -> None:
    """A fresh, never-used database (a bulk load needs one), as bench/worlds.py does."""
    EmbeddedNeo4j(settings).drop_database()
    graph.reconnect(settings)
    init_schema(graph)


def flagged_clusters(graph: Graph) -> tuple[str, float, list[Any]]:
    info = current_build(graph)
    assert info is not None, "no build"
    _, clusters = all_clusters(graph, info.id, min_score=info.flag_threshold)
    return info.id, info.flag_threshold, clusters


def run_world(
    graph: Graph, base: Settings, seed: int, args: argparse.Namespace, say: Any
) -> dict[str, Any]:
    work: Path = args.work
    secs: dict[str, float] = {}
    t = time.perf_counter()
    data, truth_dir = world_dirs(seed, args.accounts, work, args.reuse, args.ring_return_share)
    secs["generate"] = time.perf_counter() - t
    t = time.perf_counter()
    tables = read_tables(data)
    truth = Truth.read(truth_dir)
    obs = observations(tables)
    split = split_world(tables, args.split)
    wdir = work / f"world-{seed}-{args.accounts}"
    before_dir = wdir / "before"
    before_rows = write_before(tables, obs, split, before_dir, args.entities == "all")
    arrivals = split.arrivals
    arr_set = set(arrivals)
    rows = rows_by_account(obs, arr_set)
    planned: list[Planned] = []
    bare = {"fraud": 0, "honest": 0}
    about = described(tables) if args.details == "on" else None
    for a in arrivals:
        evs = plan_events(
            a,
            split.created[a],
            split.kyc[a],
            rows.get(a, []),
            args.signup_hours,
            args.events,
            about,
        )
        if not evs[0].event.identifiers:
            bare["fraud" if truth.fraud.get(a) else "honest"] += 1
        planned.extend(evs)
    planned.sort(key=lambda p: (p.event.at, p.created, p.account, p.seq))
    secs["split"] = time.perf_counter() - t
    say(
        f"  T = {_at(split.t_us).isoformat()}: {len(split.before):,} accounts before, "
        f"{len(arrivals):,} arrivals, {len(planned):,} events"
    )

    # --- the before graph, its build, and screening ------------------------------------------
    settings = base.model_copy(update={"model_dir": wdir / "models-before"})
    shutil.rmtree(wdir / "models-before", ignore_errors=True)
    t = time.perf_counter()
    empty(graph, settings)
    load(before_dir, graph, settings, report_dir=wdir / "report-before", progress=False, bulk=True)
    secs["load_before"] = time.perf_counter() - t
    t = time.perf_counter()
    # A platform always has a build before the one that trains: its clusters are the ring
    # priors the model reads (models.features.ring_features). One rings-only build first.
    rebuild(graph, settings, use_model=False)
    rebuild(graph, settings, retrain=True)
    secs["rebuild_before"] = time.perf_counter() - t
    build_id, threshold, clusters = flagged_clusters(graph)
    mapping = ring_map(clusters, truth)
    flagged_before: dict[str, set[str]] = defaultdict(set)  # pre-T account -> its flagged rings
    for c in clusters:
        for m in c.members:
            flagged_before[m].add(c.ring_id)
    say(
        f"  before build: {len(clusters)} flagged clusters, {len(mapping)} mapped to rings, "
        f"load {secs['load_before']:.0f} s, rebuild {secs['rebuild_before']:.0f} s"
    )
    models = ModelStore(settings.models_dir)
    t = time.perf_counter()
    models.current()  # loaded once, before the clock of the first screen starts
    secs["model_load"] = time.perf_counter() - t
    t = time.perf_counter()
    warm = getattr(service, "warm_screening", None)  # as the API server does at start-up
    if warm is not None:
        warm(graph, models, REGION)
    secs["warm_up"] = time.perf_counter() - t
    trace = args.trace.open("a") if args.trace else None

    got: dict[str, Screened] = {a: Screened() for a in arrivals}
    screen_s: list[float] = []
    screen_inner_s: list[float] = []
    record_s: list[float] = []
    accounts_read: list[int] = []
    invalid: Counter[str] = Counter()
    anomalies: Counter[str] = Counter()
    via_kinds: Counter[str] = Counter()
    t = time.perf_counter()
    batch = max(1, args.batch)
    for lo in range(0, len(planned), batch):
        chunk = planned[lo : lo + batch]
        for p in chunk:
            t0 = time.perf_counter()
            rec, bad = screen_event(graph, models, p.event, region=REGION, budget=args.budget)
            screen_s.append(time.perf_counter() - t0)
            screen_inner_s.append(rec.seconds)
            accounts_read.append(rec.accounts_read)
            for f in bad:
                invalid[f"{f.field.split('[')[0]}: {f.reason}"] += 1
            s = got[p.account]
            if rec.known_account != (s.events > 0) and batch == 1:
                anomalies["known_account mismatch"] += 1
            if rec.build_id != build_id:
                anomalies["build id changed"] += 1
            if s.first is None:
                s.first = rec.score
                s.first_rings = {r.ring_id for r in rec.linked_rings}
            s.best = max(s.best, rec.score)
            s.last = rec.score
            s.rings |= {r.ring_id for r in rec.linked_rings}
            s.events += 1
            s.norms |= p.norms
            for r in rec.linked_rings:
                via_kinds.update({v[0] for v in r.via})
                s.via |= {v[0] for v in r.via}
            if trace is not None:
                trace.write(
                    json.dumps(
                        {
                            "world": seed,
                            "event": p.event.event_id,
                            "account": p.account,
                            "type": p.event.type,
                            "at": p.event.at.isoformat(),
                            "known": rec.known_account,
                            "score": rec.score,
                            "seconds": screen_s[-1],
                            "inner": rec.seconds,
                            "accounts_read": rec.accounts_read,
                            "rings": [r.ring_id for r in rec.linked_rings],
                            "via": [[r.ring_id, *v] for r in rec.linked_rings for v in r.via],
                            "kinds": sorted(p.event.identifiers),
                            "payee": p.event.payee is not None,
                            "top": [list(f) for f in rec.top_features],
                        }
                    )
                    + "\n"
                )
        t0 = time.perf_counter()
        out = record_events(graph, [p.event for p in chunk], region=REGION)
        record_s.append(time.perf_counter() - t0)
        if trace is not None:
            trace.write(
                json.dumps(
                    {
                        "record": [p.event.event_id for p in chunk],
                        "seconds": record_s[-1],
                        "rows": out.rows_written,
                    }
                )
                + "\n"
            )
        if len(out.recorded) != len(chunk):
            anomalies["events not recorded"] += len(chunk) - len(out.recorded)
        if out.rows_written == 0:
            anomalies["record wrote no rows"] += 1
    secs["screen_and_record"] = time.perf_counter() - t
    if trace is not None:
        trace.close()
    say(
        f"  screened and recorded {len(planned):,} events in {secs['screen_and_record']:.0f} s "
        f"(screen median {1e3 * statistics.median(screen_s):.0f} ms)"
    )

    # --- the same information, rebuilt: the batch path the screen stands in for ------------
    # The next scheduled rebuild over the before graph plus the recorded events (the current
    # model, as a score-only rebuild uses it): what the arrivals would get by waiting for it.
    t = time.perf_counter()
    rebuild(graph, settings)
    secs["rebuild_same_information"] = time.perf_counter() - t
    _, scores_same = model_scores(graph)
    _, _, clusters_same = flagged_clusters(graph)
    _, in_same, flagged_same = membership(clusters_same, truth)
    say(
        f"  same information rebuilt: {len(clusters_same)} flagged clusters, "
        f"{secs['rebuild_same_information']:.0f} s"
    )

    # --- the ceiling: the whole world, rebuilt -----------------------------------------------
    settings_all = base.model_copy(update={"model_dir": wdir / "models-all"})
    shutil.rmtree(wdir / "models-all", ignore_errors=True)
    t = time.perf_counter()
    empty(graph, settings_all)
    load(data, graph, settings_all, report_dir=wdir / "report-all", progress=False, bulk=True)
    secs["load_all"] = time.perf_counter() - t
    t = time.perf_counter()
    rebuild(graph, settings_all, use_model=False)  # the ring priors, as above
    rebuild(graph, settings_all, retrain=True)
    secs["rebuild_all"] = time.perf_counter() - t
    _, scores_all = model_scores(graph)
    _, threshold_all, clusters_all = flagged_clusters(graph)
    mapping_all, in_cluster, in_flagged = membership(clusters_all, truth)
    say(
        f"  ceiling: {len(clusters_all)} flagged clusters, {len(mapping_all)} mapped, "
        f"load {secs['load_all']:.0f} s, rebuild {secs['rebuild_all']:.0f} s"
    )

    # --- metrics -----------------------------------------------------------------------------
    y = [truth.fraud.get(a, False) for a in arrivals]
    first = [got[a].first or 0.0 for a in arrivals]
    best = [got[a].best for a in arrivals]
    ceil = [scores_all.get(a, 0.0) for a in arrivals]
    last = [got[a].last for a in arrivals]
    same = [scores_same.get(a, 0.0) for a in arrivals]
    # How far each arrival's last screen is from the rebuild's score of it: apart only where a
    # later arrival joined its identifiers after that screen, or "now" moved on.
    gap = sorted(abs(x - z) for x, z in zip(last, same, strict=True))
    eligible = eligible_members(obs, split, truth, got)
    members = [a for a in arrivals if truth.ring.get(a)]
    honest = [a for a in arrivals if not truth.fraud.get(a, False)]
    fraud = [a for a in arrivals if truth.fraud.get(a, False)]

    def attributed(a: str) -> bool:
        ring = truth.ring[a]
        return any(mapping.get(r) == ring for r in got[a].rings)

    def attributed_first(a: str) -> bool:
        ring = truth.ring[a]
        return any(mapping.get(r) == ring for r in got[a].first_rings)

    def attributed_all(a: str) -> bool:
        return truth.ring[a] in in_cluster.get(a, set())

    n_el = len(eligible)
    # Why an eligible arrival was or was not attributed: its ring found before T (some flagged
    # cluster mapped to it), a pre-T holder of a shared identifier in such a cluster (then the
    # screen had a link to report), and the rings it was linked to.
    detail = []
    for a, shared in eligible.items():
        ring = truth.ring[a]
        holders = set().union(*shared.values())
        detail.append(
            {
                "account": a,
                "ring": ring,
                "typology": truth.typology.get(a),
                "shared": sorted(f"{k}:{v}" for k, v in shared),
                "ring_found_before": ring in mapping.values(),
                "holder_in_ring_cluster": any(
                    mapping.get(r) == ring for h in holders for r in flagged_before.get(h, ())
                ),
                "holder_in_any_flagged": any(flagged_before.get(h) for h in holders),
                "attributed": attributed(a),
                "linked": sorted(got[a].rings),
                "attributed_by_ceiling": attributed_all(a),
            }
        )
    labelled_arrivals = 0
    if "labels" in tables:
        labelled_arrivals = int(
            pc.sum(
                pc.is_in(tables["labels"].column("account_id"), value_set=pa.array(arrivals))
            ).as_py()
            or 0
        )
    report: dict[str, Any] = {
        "world_seed": seed,
        "accounts": args.accounts,
        "split": args.split,
        "t": _at(split.t_us).isoformat(),
        "before_rows": before_rows,
        "arrivals": len(arrivals),
        "fraud_arrivals": len(fraud),
        "ring_arrivals": len(members),
        "eligible_ring_arrivals": n_el,
        "arrivals_by_typology": dict(Counter(truth.typology.get(a) or "honest" for a in arrivals)),
        "events": len(planned),
        "events_by_type": dict(Counter(p.event.type for p in planned)),
        "bare_signups": {
            "fraud": _ratio(bare["fraud"], len(fraud)),
            "honest": _ratio(bare["honest"], len(honest)),
        },
        "labelled_arrivals_in_ceiling": labelled_arrivals,
        "before_build": {
            "flagged_clusters": len(clusters),
            "mapped": len(mapping),
            "flag_threshold": threshold,
        },
        "ceiling_build": {
            "flagged_clusters": len(clusters_all),
            "mapped": len(mapping_all),
            "flag_threshold": threshold_all,
        },
        "screen_first": score_metrics(y, first),
        "screen_max": score_metrics(y, best),
        "ceiling": score_metrics(y, ceil),
        "screen_last": score_metrics(y, last),
        "same_information": score_metrics(y, same),
        "same_information_gap": {
            "median": _pct(gap, 50),
            "p99": _pct(gap, 99),
            "within_1e-3": _ratio(sum(g <= 1e-3 for g in gap), len(gap)),
            "flagged_clusters": len(clusters_same),
            "attribution": _ratio(
                sum(truth.ring[a] in in_same.get(a, set()) for a in eligible), len(eligible)
            ),
            "honest_in_flagged": _ratio(sum(a in flagged_same for a in honest), len(honest)),
        },
        "attribution": {
            "eligible": n_el,
            "screen": _ratio(sum(attributed(a) for a in eligible), n_el),
            "screen_first_event": _ratio(sum(attributed_first(a) for a in eligible), n_el),
            "ceiling": _ratio(sum(attributed_all(a) for a in eligible), n_el),
            # every arriving ring member, eligible or not
            "all_members": len(members),
            "screen_all_members": _ratio(sum(attributed(a) for a in members), len(members)),
            "ceiling_all_members": _ratio(sum(attributed_all(a) for a in members), len(members)),
            "ring_found_before": sum(d["ring_found_before"] for d in detail),
            "holder_in_ring_cluster": sum(d["holder_in_ring_cluster"] for d in detail),
            # had a link to report (a holder in the ring's flagged cluster) yet not attributed
            "missed_with_link": [
                d["account"] for d in detail if d["holder_in_ring_cluster"] and not d["attributed"]
            ],
            "detail": detail,
        },
        "honest_linked": {
            "honest": len(honest),
            "screen": _ratio(sum(bool(got[a].rings) for a in honest), len(honest)),
            "screen_first_event": _ratio(
                sum(bool(got[a].first_rings) for a in honest), len(honest)
            ),
            "ceiling": _ratio(sum(a in in_flagged for a in honest), len(honest)),
            # to a flagged cluster that is mostly one true ring (not a false-positive cluster)
            "screen_to_ring_clusters": _ratio(
                sum(any(r in mapping for r in got[a].rings) for a in honest), len(honest)
            ),
            "ceiling_to_ring_clusters": _ratio(
                sum(bool(in_cluster.get(a)) for a in honest), len(honest)
            ),
            # honest arrivals linked through each kind (one arrival may count under several)
            "screen_via": dict(Counter(k for a in honest for k in got[a].via)),
        },
        "fraud_linked": {
            "screen": _ratio(sum(bool(got[a].rings) for a in fraud), len(fraud)),
            "ceiling": _ratio(sum(a in in_flagged for a in fraud), len(fraud)),
        },
        "linked_via_kinds": dict(via_kinds),
        "invalid_fields": dict(invalid),
        "anomalies": dict(anomalies),
        "timing": {
            "screen": _timing(screen_s),
            "screen_inner": _timing(screen_inner_s),
            "record_call": _timing(record_s),
            "accounts_read": {
                "median": _pct(accounts_read, 50),
                "p99": _pct(accounts_read, 99),
                "max": max(accounts_read) if accounts_read else None,
            },
            "batch": batch,
        },
        "seconds": {k: round(v, 1) for k, v in secs.items()},
    }
    report["goals"] = goals(report)
    return report


def eligible_members(
    obs: pa.Table, split: Split, truth: Truth, got: dict[str, Screened]
) -> dict[str, dict[tuple[str, str], set[str]]]:
    """Arriving ring members that present, in a screened event, a non-hub identifier a pre-T
    member of their true ring used before T (see the module doc): per such arrival, those
    identifiers, each with the pre-T members of the ring that used it."""
    degree: dict[tuple[str, str], int] = {}
    deg = (
        obs.filter(pc.is_valid(obs.column("norm")))
        .group_by(["kind", "norm"])
        .aggregate([("account", "count_distinct")])
    )
    for k, n, d in zip(
        deg.column("kind").to_pylist(),
        deg.column("norm").to_pylist(),
        deg.column("account_count_distinct").to_pylist(),
        strict=True,
    ):
        degree[(k, n)] = int(d)
    pre_members = [a for a in split.before if truth.ring.get(a)]
    pre = obs.filter(
        pc.and_(
            pc.is_in(obs.column("account"), value_set=pa.array(pre_members, pa.string())),
            pc.less(obs.column("t"), split.t_us),
        )
    )
    holders: dict[str, dict[tuple[str, str], set[str]]] = defaultdict(lambda: defaultdict(set))
    for a, k, n in zip(
        pre.column("account").to_pylist(),
        pre.column("kind").to_pylist(),
        pre.column("norm").to_pylist(),
        strict=True,
    ):
        ring = truth.ring[a]
        if n is not None and ring is not None:
            holders[ring][(k, n)].add(a)
    out: dict[str, dict[tuple[str, str], set[str]]] = {}
    for a in split.arrivals:
        ring = truth.ring.get(a)
        if ring is None or ring not in holders:
            continue
        mine = holders[ring]
        shared = {
            x: mine[x]
            for x in got[a].norms
            if x in mine and degree.get(x, 0) <= BY_NAME[x[0]].degree_cap
        }
        if shared:
            out[a] = shared
    return out


def goals(r: dict[str, Any]) -> dict[str, Any]:
    sc, ce = r["screen_first"]["recall_at_1pct_fpr"], r["ceiling"]["recall_at_1pct_fpr"]
    ratio = sc / ce if sc is not None and ce else None
    # Like for like: the screen's last event against the rebuild over the same events.
    sl, si = r["screen_last"]["recall_at_1pct_fpr"], r["same_information"]["recall_at_1pct_fpr"]
    ratio_same = sl / si if sl is not None and si else None
    att, hon = r["attribution"]["screen"], r["honest_linked"]["screen"]
    return {
        "recall_ratio": ratio,
        "recall_ratio_same_information": ratio_same,
        "recall_ratio_ok": None if ratio is None else ratio >= GOAL_RECALL_RATIO,
        "attribution_ok": None if att is None else att >= GOAL_ATTRIBUTION,
        "honest_linked_ok": None if hon is None else hon <= GOAL_HONEST_LINKED,
    }


# --- summary and tables -----------------------------------------------------------------------

SUMMARY_PATHS = {
    "auroc_first": ("screen_first", "auroc"),
    "auroc_max": ("screen_max", "auroc"),
    "auroc_ceiling": ("ceiling", "auroc"),
    "auprc_first": ("screen_first", "auprc"),
    "auprc_max": ("screen_max", "auprc"),
    "auprc_ceiling": ("ceiling", "auprc"),
    "recall_first": ("screen_first", "recall_at_1pct_fpr"),
    "recall_max": ("screen_max", "recall_at_1pct_fpr"),
    "recall_ceiling": ("ceiling", "recall_at_1pct_fpr"),
    "recall_ratio": ("goals", "recall_ratio"),
    "auroc_last": ("screen_last", "auroc"),
    "auroc_same": ("same_information", "auroc"),
    "auprc_last": ("screen_last", "auprc"),
    "auprc_same": ("same_information", "auprc"),
    "recall_last": ("screen_last", "recall_at_1pct_fpr"),
    "recall_same": ("same_information", "recall_at_1pct_fpr"),
    "recall_ratio_same_information": ("goals", "recall_ratio_same_information"),
    "attribution_screen": ("attribution", "screen"),
    "attribution_ceiling": ("attribution", "ceiling"),
    "attribution_all_screen": ("attribution", "screen_all_members"),
    "attribution_all_ceiling": ("attribution", "ceiling_all_members"),
    "honest_linked_screen": ("honest_linked", "screen"),
    "honest_linked_ceiling": ("honest_linked", "ceiling"),
}


def summarise(reports: Sequence[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, (a, b) in SUMMARY_PATHS.items():
        vals = [r[a][b] for r in reports if r[a][b] is not None]
        out[name] = {"mean": statistics.fmean(vals) if vals else None, "worlds": len(vals)}
    # attribution pooled over worlds (few eligible members per world)
    el = sum(r["attribution"]["eligible"] for r in reports)
    for side in ("screen", "ceiling"):
        hit = sum(
            round((r["attribution"][side] or 0.0) * r["attribution"]["eligible"]) for r in reports
        )
        out[f"attribution_{side}_pooled"] = {"value": _ratio(hit, el), "eligible": el}
    ratio = out["recall_ratio"]["mean"]
    att = out["attribution_screen_pooled"]["value"]
    hon = out["honest_linked_screen"]["mean"]
    out["goals"] = {
        "recall_ratio_ok": None if ratio is None else ratio >= GOAL_RECALL_RATIO,
        "attribution_ok": None if att is None else att >= GOAL_ATTRIBUTION,
        "honest_linked_ok": None if hon is None else hon <= GOAL_HONEST_LINKED,
    }
    times = [r["timing"]["screen"] for r in reports]
    out["screen_median_ms"] = statistics.fmean(t["median_ms"] for t in times)
    out["screen_p99_ms"] = statistics.fmean(t["p99_ms"] for t in times)
    return out


def _f(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _ok(flag: bool | None) -> str:
    return "" if flag is None else (" ok" if flag else " MISS")


def render(reports: Sequence[dict[str, Any]], summary: dict[str, Any], console: Console) -> None:
    t = Table(title="Arrivals: screen (first event / max over events) vs ceiling (full rebuild)")
    for col in (
        "world",
        "arrivals (fraud/ring/elig.)",
        "AUROC first/max/ceil",
        "AUPRC first/max/ceil",
        "R@1%FPR first/max/ceil",
        "ratio (>=0.8)",
        "attribution screen/ceil (>=0.9)",
        "honest linked screen/ceil (<=0.02)",
        "screen ms med/p99",
    ):
        t.add_column(col, justify="right")
    for r in reports:
        g = r["goals"]
        sf, sm, ce = r["screen_first"], r["screen_max"], r["ceiling"]
        t.add_row(
            str(r["world_seed"]),
            f"{r['arrivals']} ({r['fraud_arrivals']}/{r['ring_arrivals']}/"
            f"{r['eligible_ring_arrivals']})",
            f"{_f(sf['auroc'])}/{_f(sm['auroc'])}/{_f(ce['auroc'])}",
            f"{_f(sf['auprc'])}/{_f(sm['auprc'])}/{_f(ce['auprc'])}",
            f"{_f(sf['recall_at_1pct_fpr'])}/{_f(sm['recall_at_1pct_fpr'])}/"
            f"{_f(ce['recall_at_1pct_fpr'])}",
            _f(g["recall_ratio"], 2) + _ok(g["recall_ratio_ok"]),
            f"{_f(r['attribution']['screen'], 2)}/{_f(r['attribution']['ceiling'], 2)}"
            + _ok(g["attribution_ok"]),
            f"{_f(r['honest_linked']['screen'], 4)}/{_f(r['honest_linked']['ceiling'], 4)}"
            + _ok(g["honest_linked_ok"]),
            f"{_f(r['timing']['screen']['median_ms'], 0)}/{_f(r['timing']['screen']['p99_ms'], 0)}",
        )
    t.add_section()
    s = summary

    def m(name: str, digits: int = 3) -> str:
        return _f(s[name]["mean"], digits)

    t.add_row(
        "mean",
        "",
        f"{m('auroc_first')}/{m('auroc_max')}/{m('auroc_ceiling')}",
        f"{m('auprc_first')}/{m('auprc_max')}/{m('auprc_ceiling')}",
        f"{m('recall_first')}/{m('recall_max')}/{m('recall_ceiling')}",
        m("recall_ratio", 2) + _ok(s["goals"]["recall_ratio_ok"]),
        f"{_f(s['attribution_screen_pooled']['value'], 2)}/"
        f"{_f(s['attribution_ceiling_pooled']['value'], 2)} pooled (n="
        f"{s['attribution_screen_pooled']['eligible']})" + _ok(s["goals"]["attribution_ok"]),
        f"{m('honest_linked_screen', 4)}/{m('honest_linked_ceiling', 4)}"
        + _ok(s["goals"]["honest_linked_ok"]),
        f"{_f(s['screen_median_ms'], 0)}/{_f(s['screen_p99_ms'], 0)}",
    )
    console.print(t)
    u = Table(title="Like for like: screen (last event) vs the rebuild over the same events")
    for col in ("world", "AUROC", "AUPRC", "R@1%FPR", "ratio", "|gap| median", "gap <= 1e-3"):
        u.add_column(col, justify="right")
    for r in reports:
        sl, si, gp = r["screen_last"], r["same_information"], r["same_information_gap"]
        u.add_row(
            str(r["world_seed"]),
            f"{_f(sl['auroc'])}/{_f(si['auroc'])}",
            f"{_f(sl['auprc'])}/{_f(si['auprc'])}",
            f"{_f(sl['recall_at_1pct_fpr'])}/{_f(si['recall_at_1pct_fpr'])}",
            _f(r["goals"]["recall_ratio_same_information"], 2),
            _f(gp["median"], 4),
            _f(gp["within_1e-3"], 3),
        )
    u.add_section()
    u.add_row(
        "mean",
        f"{m('auroc_last')}/{m('auroc_same')}",
        f"{m('auprc_last')}/{m('auprc_same')}",
        f"{m('recall_last')}/{m('recall_same')}",
        m("recall_ratio_same_information", 2),
        "",
        "",
    )
    console.print(u)


def code_state() -> dict[str, Any]:
    """The commit the run measured, and whether (and how) the working tree differed from it."""

    def git(*cmd: str) -> str:
        try:
            done = subprocess.run(["git", *cmd], cwd=REPO, capture_output=True, text=True)
        except OSError:
            return ""
        return done.stdout

    diff = git("diff", "HEAD")
    return {
        "commit": git("rev-parse", "HEAD").strip(),
        "dirty": git("status", "--short", "--untracked-files=no").split("\n")[:-1],
        "diff_sha256": hashlib.sha256(diff.encode()).hexdigest() if diff else None,
    }


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


# The account model's and the detector's switches the bench can flip, on and off side by side:
# flag -> (setting, what it does). Their defaults are the settings'.
SWITCHES: dict[str, tuple[str, str]] = {
    "ring-prior": ("model_ring_prior", "train the account model with the ring features"),
    "label-frequency": ("model_label_frequency", "the account model's label frequency"),
    "ring-soft": ("model_ring_soft_labels", "train with the clusters' members as soft fraud"),
    "onboarding": ("detect_onboarding", "link new accounts that first paid a new payee together"),
}


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", required=True, help="world seeds")
    ap.add_argument("--accounts", type=int, default=20_000)
    ap.add_argument(
        "--split", type=float, default=0.9, help="T is this quantile of accounts.created_at"
    )
    ap.add_argument("--events", type=int, default=3, help="events per arrival, sign-up included")
    ap.add_argument(
        "--signup-hours",
        type=float,
        default=24.0,
        help="identifiers seen this long after opening go on the sign-up event",
    )
    ap.add_argument(
        "--batch", type=int, default=1, help="events screened before they are recorded in one call"
    )
    ap.add_argument("--budget", type=int, default=5_000, help="screen's accounts budget")
    ap.add_argument(
        "--entities",
        choices=["referenced", "all"],
        default="referenced",
        help="entity rows in the before set: those its rows reference, or all",
    )
    ap.add_argument(
        "--ring-return-share",
        type=float,
        default=0.0,
        help="share of rings whose last-opened quarter comes back after the ring struck",
    )
    for flag, (setting, what) in SWITCHES.items():
        on = bool(Settings.model_fields[setting].default)
        ap.add_argument(f"--{flag}", choices=["on", "off"], default="on" if on else "off",
                        help=f"{what} (RINGSCOPE_{setting.upper()})")  # fmt: skip
    ap.add_argument(
        "--details",
        choices=["on", "off"],
        default="off",
        help="events carry their devices' and phones' details (emulator, virtual number)",
    )
    ap.add_argument("--work", type=Path, default=Path("/tmp/ringscope-arrivals"))  # noqa: S108
    ap.add_argument("--reuse", action="store_true", help="reuse generated worlds under --work")
    ap.add_argument("--trace", type=Path, default=None, help="per-event JSON lines here")
    ap.add_argument("--keep", action="store_true", help="keep --work (stores, before sets)")
    ap.add_argument(
        "--out",
        type=Path,
        default=None,
        help="JSON path (default bench/results/arrivals-<accounts>-<seeds>.json)",
    )
    args = ap.parse_args(argv)
    console = Console(width=max(Console().width, 200))

    def say(msg: str) -> None:
        console.print(msg, style="dim")

    args.work.mkdir(parents=True, exist_ok=True)
    base = Settings(
        data_dir=args.work / "neo4j",
        cache_dir=Settings().cache_dir,
        neo4j_port=free_port(),
        neo4j_heap="1g",
        neo4j_pagecache="1g",
        model_use_gnn=False,
        **{f: getattr(args, k.replace("-", "_")) == "on" for k, (f, _) in SWITCHES.items()},
    )
    code = code_state()  # at the start: the code this process imported
    reports: list[dict[str, Any]] = []
    started = time.perf_counter()
    # A plain kill (SIGTERM) would end Python without the ``finally`` below, leaving the private
    # Neo4j running over a deleted directory (as bench/worlds.py did); as SystemExit it runs.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        with connect(base) as graph:
            for seed in args.seeds:
                say(f"world {seed}, {args.accounts:,} accounts")
                t = time.perf_counter()
                r = run_world(graph, base, seed, args, say)
                r["seconds"]["total"] = round(time.perf_counter() - t, 1)
                say(f"  world {seed} done in {r['seconds']['total']:.0f} s")
                reports.append(r)
    finally:
        EmbeddedNeo4j(base).stop()
        if not args.keep:
            shutil.rmtree(args.work / "neo4j", ignore_errors=True)
            for seed in args.seeds:
                shutil.rmtree(args.work / f"world-{seed}-{args.accounts}", ignore_errors=True)
    summary = summarise(reports)
    render(reports, summary, console)
    doc = {
        "accounts": args.accounts,
        "seeds": args.seeds,
        "options": {
            "split": args.split,
            "events": args.events,
            "signup_hours": args.signup_hours,
            "batch": args.batch,
            "budget": args.budget,
            "entities": args.entities,
            "ring_return_share": args.ring_return_share,
            "details": args.details,
            **{k.replace("-", "_"): getattr(args, k.replace("-", "_")) for k in SWITCHES},
            "primed": True,  # a rings-only build before each training one
        },
        "goals": {
            "recall_ratio": GOAL_RECALL_RATIO,
            "attribution": GOAL_ATTRIBUTION,
            "honest_linked": GOAL_HONEST_LINKED,
        },
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "code": code,
        "seconds_total": round(time.perf_counter() - started, 1),
        "summary": summary,
        "per_world": reports,
    }
    seeds = "-".join(str(s) for s in args.seeds)
    dest = args.out or REPO / "bench" / "results" / f"arrivals-{args.accounts}-{seeds}.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(doc, indent=2) + "\n")
    console.print(f"wrote {dest}")


if __name__ == "__main__":
    main()
