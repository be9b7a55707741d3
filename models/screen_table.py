"""Every account's feature row as its build computed it, kept for screening at decision time.

A screen (:mod:`models.screen`) scores the event's account with the tree, whose row holds the
mean and max of the account features of every account on the event's non-hub identifiers (the
tree's two hops). Those features are functions of all of each such account's edges and of the
sizes of everything it uses, so a screen read all their edges: at 1M accounts about 180 accounts
and 2,600 edges a screen, with the size of each identifier they reach, and assembling them was
most of its time (docs/screening.md). A build computes every account's row anyway; the table
keeps it, and a screen reads the accounts on the event's identifiers, the edges on those
identifiers, and rows.

A row is as current as its build, and the graph moves between builds (``recordEvents``, ingest).
Each account's row depends on its own edges and on the sizes of what it uses, and only two of
its columns on the sizes: how many of its identifiers of a kind are shared, and the size of the
busiest. Those two are read live at screen time (``SCREEN_SHARING``: degrees, no edge returned),
so a hub that gains an account since the build (a carrier IP does all day) leaves its accounts'
rows usable. For the rest, each row keeps a fingerprint of the account's own edges, read again
beside the sharing: its relationships, the sum of their counts, and how many reach a flagged
identifier. Relationships and counts only grow, so an event recorded on the account since the
build moves it; an account whose fingerprint differs is stale and its edges are read as before
(``SCREEN_TABLE_LINKS``). Age and KYC are recomputed from the account node and "now"
(:func:`profile_columns`), and what the event itself adds is applied by
:meth:`ScreenTable.rows`: an identifier the event joins is one account bigger, which can make it
shared or the busiest of its kind for the accounts on it.

Files: ``<models dir>/screen/<build id>/`` holds ``nodes.npy`` (account numbers, ``seq``, as the
build's projection names accounts; sorted), ``keys.npy`` (64-bit hashes of their business ids,
so a store cleared and reloaded, whose numbers start again, matches nothing), ``x.npy``
(``account_features``, float32), ``finger.npy`` and ``meta.json`` (the feature schema). Written
whole to a temporary folder and renamed, so a killed build leaves none; loaded memory-mapped, so
the API's processes share the pages; a rebuild keeps the tables of the builds it keeps.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ringscope.models.features import F32, FEATURE_SCHEMA, account_features, profile_columns
from ringscope.models.projection import I64, Projection

__all__ = [
    "Current",
    "ScreenTable",
    "build_table",
    "fingerprints",
    "load_table",
    "prune_tables",
    "save_table",
]

_FILES = ("nodes", "keys", "x", "finger")
_COL = {name: j for j, name in enumerate(FEATURE_SCHEMA.account)}
_PROFILE = ("age_days_log", "created_unknown", "kyc_0", "kyc_1", "kyc_2", "kyc_3", "kyc_unknown")


def _key(account_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(account_id.encode(), digest_size=8).digest(), "little")


def fingerprints(proj: Projection) -> npt.NDArray[np.int64]:
    """Per account, (relationships, sum of their counts, how many reach a flagged identifier):
    ``SCREEN_SHARING``'s fingerprint on the graph the projection was read from. Shape (n, 3)."""
    out = np.zeros((proj.n, 3), dtype=np.int64)
    for e in proj.kinds.values():
        if not len(e.acc):
            continue
        acc = e.acc.astype(np.int64)
        out[:, 0] += np.bincount(acc, minlength=proj.n)
        np.add.at(out[:, 1], acc, e.count.astype(np.int64))
        np.add.at(out[:, 2], acc, e.flag[e.ident].astype(np.int64))
    return out


def _parts(account: Mapping[str, Any]) -> tuple[list[int], dict[str, tuple[int, int]]]:
    """An account record's fingerprint and, per kind, (shared, busiest) (``SCREEN_SHARING``)."""
    finger = [0, 0, 0]
    sharing: dict[str, tuple[int, int]] = {}
    for kind, n, c, f, shared, busiest in account["parts"]:
        finger = [finger[0] + int(n), finger[1] + int(c), finger[2] + int(f)]
        sharing[str(kind)] = (int(shared), int(busiest))
    return finger, sharing


@dataclass(frozen=True)
class ScreenTable:
    """One build's rows (see the module doc); arrays indexed alike, sorted by ``nodes``."""

    build_id: str
    nodes: I64
    keys: npt.NDArray[np.uint64]
    x: F32
    finger: npt.NDArray[np.int64]

    def match(self, accounts: Iterable[Mapping[str, Any]]) -> dict[str, Current]:
        """The accounts (``SCREEN_TABLE_NEIGHBOURHOOD`` records) whose row is current, with
        what :meth:`rows` takes of them. One lookup for all of them: a screen brings up to a
        few hundred, and a per-account search cost more than the rest of the match."""
        accs = list(accounts)
        if not accs or not len(self.nodes):
            return {}
        # An account numbered since the build, or not yet (-1), has no row.
        nodes = np.fromiter(
            (-1 if a["seq"] is None else int(a["seq"]) for a in accs),
            dtype=np.int64,
            count=len(accs),
        )
        pos = np.minimum(np.searchsorted(self.nodes, nodes), len(self.nodes) - 1)
        held = np.flatnonzero(self.nodes[pos] == nodes)  # the rest opened since the build
        keys = self.keys[pos[held]].tolist()
        fingers = self.finger[pos[held]].tolist()
        rows = pos[held].tolist()
        out: dict[str, Current] = {}
        for j, key, finger_then, row in zip(held.tolist(), keys, fingers, rows, strict=True):
            a = accs[j]
            if key != _key(str(a["id"])):
                continue
            finger, sharing = _parts(a)
            if finger != finger_then:
                continue
            out[str(a["id"])] = Current(row, int(a["created"]), int(a["kyc"]), sharing)
        return out

    def rows(
        self,
        current: Mapping[str, Current],
        grown: Mapping[str, Sequence[tuple[str, int, int]]],
        now: int,
    ) -> dict[str, F32]:
        """``account_features`` rows of the accounts ``current`` holds as they stand once an
        event is applied: age and KYC at ``now``, sharing as read, and for each identifier
        the event made bigger that the account is on (``grown``: id -> (kind, size before,
        size after)), its kind's shared count and busiest size moved."""
        if not current:
            return {}
        accounts = list(current)
        x = np.array(self.x[[current[a].row for a in accounts]], dtype=np.float32)
        prof = profile_columns(
            np.asarray([current[a].created for a in accounts], dtype=np.int64),
            np.asarray([current[a].kyc for a in accounts], dtype=np.int64),
            now,
        )
        for name in _PROFILE:
            x[:, _COL[name]] = prof[name].astype(np.float32)
        # The live sharing columns, gathered and written at once (log1p as account_features).
        at: list[int] = []
        cols: list[int] = []
        values: list[float] = []
        for r, account in enumerate(accounts):
            sharing = current[account].sharing
            moved = grown.get(account)
            if moved:
                sharing = dict(sharing)
                for kind, before, after in moved:
                    shared, busiest = sharing.get(kind, (0, 0))
                    sharing[kind] = (shared + (before < 2 <= after), max(busiest, after))
            for kind, (shared, busiest) in sharing.items():
                at += (r, r)
                cols += (_COL[f"shared_{kind}"], _COL[f"hub_{kind}"])
                values += (float(shared), float(busiest))
        if at:
            x[at, cols] = np.log1p(np.asarray(values, dtype=np.float64)).astype(np.float32)
        return dict(zip(accounts, x, strict=True))


@dataclass(frozen=True)
class Current:
    """An account whose table row is current: its row, and what is read live beside it."""

    row: int
    created: int
    kyc: int
    sharing: dict[str, tuple[int, int]]  # kind -> (shared identifiers, busiest one's size)


def build_table(proj: Projection, build_id: str) -> ScreenTable:
    """The table of a whole-graph projection (the build's)."""
    order = np.argsort(proj.nodes, kind="stable")
    keys = np.asarray([_key(proj.ids[i]) for i in order.tolist()], dtype=np.uint64)
    return ScreenTable(
        build_id=build_id,
        nodes=proj.nodes[order].astype(np.int64),
        keys=keys,
        x=account_features(proj)[order],
        finger=fingerprints(proj)[order],
    )


def _root(models_dir: Path) -> Path:
    return models_dir / "screen"


def save_table(table: ScreenTable, models_dir: Path) -> Path:
    """Write the table under ``<models dir>/screen/<build id>`` whole (temporary folder, then
    a rename)."""
    final = _root(models_dir) / table.build_id
    tmp = final.with_name(f".{table.build_id}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in _FILES:
        np.save(tmp / f"{name}.npy", getattr(table, name))
    (tmp / "meta.json").write_text(
        json.dumps({"build_id": table.build_id, "schema": FEATURE_SCHEMA.digest()})
    )
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    return final


def prune_tables(models_dir: Path, keep: Iterable[str]) -> None:
    """Remove the tables of builds not in ``keep`` (and any temporary folder left by a build
    that was killed)."""
    root = _root(models_dir)
    if not root.is_dir():
        return
    kept = set(keep)
    for path in root.iterdir():
        if path.name not in kept:
            shutil.rmtree(path, ignore_errors=True)
            _CACHE.pop((str(models_dir), path.name), None)


_CACHE: OrderedDict[tuple[str, str], ScreenTable | None] = OrderedDict()
_LOCK = threading.Lock()


def load_table(models_dir: Path, build_id: str) -> ScreenTable | None:
    """The build's table, memory-mapped (once per process and build), or None where the build
    has none or it was written for another feature schema."""
    key = (str(models_dir), build_id)
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key]
    path = _root(models_dir) / build_id
    table: ScreenTable | None = None
    try:
        meta = json.loads((path / "meta.json").read_text())
        if meta.get("schema") == FEATURE_SCHEMA.digest():
            arrays = {name: np.load(path / f"{name}.npy", mmap_mode="r") for name in _FILES}
            table = ScreenTable(build_id=build_id, **arrays)
    except (OSError, ValueError):
        table = None
    with _LOCK:
        _CACHE[key] = table
        while len(_CACHE) > 4:
            _CACHE.popitem(last=False)
    return table
