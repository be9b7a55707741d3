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
Each account's row depends on its own edges and on the sizes and flags of what it uses (only
two of its columns on the sizes: how many of its identifiers of a kind are shared, and the size
of the busiest). The writers stamp ``moved_at`` on an account when any of that moves (its own
relationships; an identifier of at most ``MARK_DEGREE`` relationships that gains one; a flag:
``graph.cypher``, "What a screen's table rows depend on"), so a screen reads one property per
account, not its relationships: a row is current when the account's stamp is older than the
build's read (:attr:`ScreenTable.since_ms`, :func:`read_since`: the read's start, or the start
of the oldest transaction then running). The sizes of the identifiers bigger than
``MARK_DEGREE`` at the build are not stamped (a carrier IP gains accounts all day): the table
lists each account's big identifiers, a screen reads their sizes live
(``SCREEN_TABLE_DEGREES``, by internal id, checked by number) and :meth:`ScreenTable.sharing`
puts the two columns back together from them and the build's counts over the small ones. An
account whose row is stale has its edges read as before (``SCREEN_TABLE_LINKS``). Age and KYC
are recomputed from the account node and "now" (:func:`profile_columns`), and what the event
itself adds is applied by :meth:`ScreenTable.rows`: an identifier the event joins is one account
bigger, which can make it shared or the busiest of its kind for the accounts on it. Until the
first build after an upgrade writes a table of this form, screens read every neighbour's edges.

Files: ``<models dir>/screen/<build id>/`` holds ``nodes.npy`` (account numbers, ``seq``, as the
build's projection names accounts; sorted), ``keys.npy`` (64-bit hashes of their business ids,
so a store cleared and reloaded, whose numbers start again, matches nothing), ``x.npy``
(``account_features``, float32), ``small.npy`` (per account and kind, the shared count and the
busiest size over its small identifiers), ``big_ptr.npy``, ``big_kind.npy``, ``big_seq.npy``
and ``big_node.npy`` (per account, its big identifiers' kinds, numbers and internal ids) and
``meta.json`` (the feature schema, the form, ``MARK_DEGREE`` and the build's read time).
Written whole to a temporary folder and renamed, so a killed build leaves none; loaded
memory-mapped, so the API's processes share the pages; a rebuild keeps the tables of the builds
it keeps.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import neo4j
import numpy as np
import numpy.typing as npt

from ringscope.graph import cypher
from ringscope.graph.connection import Graph
from ringscope.graph.cypher import MARK_DEGREE
from ringscope.models.features import (
    F32,
    FEATURE_SCHEMA,
    account_features,
    identifier_sizes,
    profile_columns,
    segment_max,
)
from ringscope.models.linking import dedupe_pairs
from ringscope.models.projection import I64, KIND_NAMES, Projection
from ringscope.settings import Settings

__all__ = [
    "FORM",
    "Current",
    "Kept",
    "ScreenTable",
    "TableRows",
    "build_table",
    "load_table",
    "prune_tables",
    "read_node_ids",
    "read_since",
    "save_table",
    "sharing_parts",
]

FORM = 3  # the files' form: 3 reads writers' stamps (1 read a fingerprint of every neighbour)
BIG = int(MARK_DEGREE)  # identifiers above this size are read live, not stamped
_FILES = ("nodes", "keys", "x", "small", "big_ptr", "big_kind", "big_seq", "big_node")
_COL = {name: j for j, name in enumerate(FEATURE_SCHEMA.account)}
_PROFILE = ("age_days_log", "created_unknown", "kyc_0", "kyc_1", "kyc_2", "kyc_3", "kyc_unknown")
_KIND = {kind: k for k, kind in enumerate(KIND_NAMES)}
_SHARED = [_COL[f"shared_{kind}"] for kind in KIND_NAMES]
_BUSIEST = [_COL[f"hub_{kind}"] for kind in KIND_NAMES]


def _key(account_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(account_id.encode(), digest_size=8).digest(), "little")


def sharing_parts(
    proj: Projection,
) -> tuple[npt.NDArray[np.int32], I64, npt.NDArray[np.int8], I64]:
    """What a screen needs to put the sharing columns back together, per account of a
    whole-graph projection (projection order): ``small`` (n, kinds, 2), the shared count and
    the busiest size over its identifiers of at most :data:`BIG` relationships; and its bigger
    identifiers as CSR (``ptr`` (n + 1), their kind's position in ``KIND_NAMES``, their
    numbers)."""
    n = proj.n
    small = np.zeros((n, len(KIND_NAMES), 2), dtype=np.int32)  # small numbers
    accs: list[I64] = []
    kinds: list[npt.NDArray[np.int8]] = []
    seqs: list[I64] = []
    for k, kind in enumerate(KIND_NAMES):
        e = proj.kinds.get(kind)
        if e is None or not len(e.acc):
            continue
        acc, ident, _, _, _ = dedupe_pairs(e)
        size = identifier_sizes(e)[ident]
        low = size <= BIG
        small[:, k, 0] = np.bincount(acc[low], weights=size[low] >= 2, minlength=n)
        small[:, k, 1] = segment_max(size[low].astype(np.float64), acc[low], n)
        accs.append(acc[~low])
        kinds.append(np.full(int((~low).sum()), k, dtype=np.int8))
        seqs.append(e.nodes[ident[~low]].astype(np.int64))
    acc = np.concatenate(accs) if accs else np.zeros(0, dtype=np.int64)
    order = np.argsort(acc, kind="stable")
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(acc, minlength=n), out=ptr[1:])
    kind_arr = np.concatenate(kinds)[order] if kinds else np.zeros(0, dtype=np.int8)
    seq_arr = np.concatenate(seqs)[order] if seqs else np.zeros(0, dtype=np.int64)
    return small, ptr, kind_arr, seq_arr


@dataclass(frozen=True)
class ScreenTable:
    """One build's rows (see the module doc); arrays indexed alike, sorted by ``nodes``; the
    big identifiers of row ``r`` are ``big_kind``/``big_seq[big_ptr[r]:big_ptr[r + 1]]``."""

    build_id: str
    nodes: I64
    keys: npt.NDArray[np.uint64]
    x: F32
    small: npt.NDArray[np.int32]
    big_ptr: I64
    big_kind: npt.NDArray[np.int8]
    big_seq: I64
    big_node: I64  # their internal ids, which a screen seeks (checked against big_seq)
    since_ms: int  # a stamp from this on is a move since the build (read_since, epoch ms)

    def match(self, accounts: Iterable[Mapping[str, Any]]) -> Kept:
        """The accounts (``SCREEN_TABLE_NEIGHBOURHOOD`` records) whose row is current: in the
        table under the same business id, and not stamped since the build. One lookup for all
        of them, in arrays: a screen brings up to a few thousand, and a search or an object per
        account cost more than the rest of the match. Their sharing is put in by
        :meth:`sharing`."""
        accs = list(accounts)
        if not accs or not len(self.nodes):
            return Kept.empty()
        # An account numbered since the build, or not yet (-1), has no row.
        nodes = np.fromiter(
            (-1 if a["seq"] is None else int(a["seq"]) for a in accs),
            dtype=np.int64,
            count=len(accs),
        )
        pos = np.minimum(np.searchsorted(self.nodes, nodes), len(self.nodes) - 1)
        held = np.flatnonzero(self.nodes[pos] == nodes).tolist()  # the rest opened since
        near = [accs[j] for j in held]
        ids = [str(a["id"]) for a in near]
        n = len(ids)
        keys = np.fromiter((_key(a) for a in ids), dtype=np.uint64, count=n)
        moved = np.fromiter(
            (-1 if a["moved"] is None else int(a["moved"]) for a in near), dtype=np.int64, count=n
        )
        rows = pos[held]
        ok = (keys == self.keys[rows]) & ((moved < 0) | (moved < self.since_ms))
        keep = np.flatnonzero(ok).tolist()
        return Kept(
            [ids[j] for j in keep],
            rows[keep],
            np.fromiter((int(near[j]["created"]) for j in keep), dtype=np.int64, count=len(keep)),
            np.fromiter((int(near[j]["kyc"]) for j in keep), dtype=np.int64, count=len(keep)),
        )

    def big(self, current: Kept) -> list[int]:
        """The internal ids of the big identifiers of the accounts ``current`` holds."""
        rows = current.rows
        starts = np.asarray(self.big_ptr[rows])
        counts = np.asarray(self.big_ptr[rows + 1]) - starts
        at = _spans(starts, counts, int(counts.sum()))
        return np.unique(np.asarray(self.big_node[at])).tolist() if len(at) else []

    def sharing(self, current: Kept, sizes: tuple[Sequence[int], Sequence[int]]) -> Kept:
        """``current`` with each account's sharing (per kind: shared count, busiest size): the
        build's counts over its small identifiers with its big ones at their live ``sizes``
        (numbers and sizes, as SCREEN_TABLE_DEGREES returns them; a big identifier is always
        shared). An account whose big identifier was not found under its number is left out
        (read from its edges instead). All accounts at once: a payment's screen brings a few
        hundred big identifiers of a hundred accounts."""
        if not current:
            return current
        rows = current.rows
        out = np.array(self.small[rows], dtype=np.int64)  # (m, kinds, 2)
        starts = np.asarray(self.big_ptr[rows])
        counts = np.asarray(self.big_ptr[rows + 1]) - starts
        at = _spans(starts, counts, int(counts.sum()))
        found = np.ones(len(current), dtype=bool)
        if len(at):
            owner = np.repeat(np.arange(len(current)), counts)
            kind = np.asarray(self.big_kind[at], dtype=np.int64)
            want = np.asarray(self.big_seq[at], dtype=np.int64)
            seqs, live = sizes
            have = np.asarray(seqs, dtype=np.int64)  # numbers are unique among data nodes
            order = np.argsort(have)
            have, by_seq = have[order], np.asarray(live, dtype=np.int64)[order]
            pos = np.minimum(np.searchsorted(have, want), max(len(have) - 1, 0))
            hit = have[pos] == want if len(have) else np.zeros(len(want), dtype=bool)
            found[owner[~hit]] = False
            size = np.where(hit, by_seq[pos] if len(have) else 0, 0)
            np.add.at(out[:, :, 0], (owner, kind), 1)
            np.maximum.at(out[:, :, 1], (owner, kind), size)
        return current.with_sharing(out).take(found)

    def rows(
        self,
        current: Kept,
        grown: Mapping[str, Sequence[tuple[str, int, int]]],
        now: int,
    ) -> TableRows:
        """``account_features`` rows of the accounts ``current`` holds as they stand once an
        event is applied: age and KYC at ``now``, sharing as :meth:`sharing` put it, and for
        each identifier the event made bigger that the account is on (``grown``: id -> (kind,
        size before, size after)), its kind's shared count and busiest size moved."""
        x = np.array(self.x[current.rows], dtype=np.float32)
        if not current:
            return TableRows(current.at, x)
        prof = profile_columns(current.created, current.kyc, now)
        for name in _PROFILE:
            x[:, _COL[name]] = prof[name].astype(np.float32)
        share = current.sharing.copy()  # (m, kinds, 2)
        for account, changes in grown.items():
            r = current.at.get(account)
            if r is None:
                continue
            for kind, before, after in changes:
                k = _KIND[kind]
                share[r, k, 0] += before < 2 <= after
                share[r, k, 1] = max(share[r, k, 1], after)
        # The sharing columns, written at once (log1p as account_features; a kind the account
        # does not use holds 0 in both, as its row does).
        x[:, _SHARED] = np.log1p(share[:, :, 0].astype(np.float64)).astype(np.float32)
        x[:, _BUSIEST] = np.log1p(share[:, :, 1].astype(np.float64)).astype(np.float32)
        return TableRows(current.at, x)


@dataclass(frozen=True)
class Current:
    """An account whose table row is current: its row, and what is read live beside it."""

    row: int
    created: int
    kyc: int
    # Per kind (KIND_NAMES order): shared identifiers, the busiest one's size; (kinds, 2).
    sharing: I64


class Kept(Mapping[str, Current]):
    """The accounts whose table row is current (:meth:`ScreenTable.match`), by business id,
    held as arrays (position ``at[id]``): their rows, opening times, KYC levels and sharing
    (per kind: shared count, busiest size; zeros until :meth:`ScreenTable.sharing`)."""

    __slots__ = ("at", "created", "ids", "kyc", "rows", "sharing")

    def __init__(
        self, ids: list[str], rows: I64, created: I64, kyc: I64, sharing: I64 | None = None
    ) -> None:
        self.ids = ids
        self.at = {a: i for i, a in enumerate(ids)}
        self.rows = np.asarray(rows, dtype=np.int64)
        self.created = np.asarray(created, dtype=np.int64)
        self.kyc = np.asarray(kyc, dtype=np.int64)
        self.sharing = (
            np.zeros((len(ids), len(KIND_NAMES), 2), dtype=np.int64) if sharing is None else sharing
        )

    @classmethod
    def empty(cls) -> Kept:
        none = np.zeros(0, dtype=np.int64)
        return cls([], none, none, none)

    def __getitem__(self, account: str) -> Current:
        i = self.at[account]
        return Current(int(self.rows[i]), int(self.created[i]), int(self.kyc[i]), self.sharing[i])

    def __iter__(self) -> Iterator[str]:
        return iter(self.ids)

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, account: object) -> bool:
        return account in self.at

    def take(self, keep: npt.NDArray[np.bool_]) -> Kept:
        """The accounts ``keep`` marks."""
        if keep.all():
            return self
        j = np.flatnonzero(keep)
        return Kept([self.ids[i] for i in j.tolist()], self.rows[j], self.created[j],
                    self.kyc[j], self.sharing[j])  # fmt: skip

    def without(self, account: str) -> Kept:
        """All but ``account``."""
        if account not in self.at:
            return self
        keep = np.ones(len(self.ids), dtype=bool)
        keep[self.at[account]] = False
        return self.take(keep)

    def with_sharing(self, sharing: I64) -> Kept:
        """The same accounts with ``sharing`` put in (their positions kept)."""
        out = copy.copy(self)
        out.sharing = sharing
        return out


class TableRows(Mapping[str, F32]):
    """``account_features`` rows by business id (:meth:`ScreenTable.rows`): one matrix, row
    ``at[id]``, so a neighbourhood of a few thousand takes its rows in one indexing."""

    __slots__ = ("at", "x")

    def __init__(self, at: dict[str, int], x: F32) -> None:
        self.at = at
        self.x = x

    def __getitem__(self, account: str) -> F32:
        row: F32 = self.x[self.at[account]]
        return row

    def __iter__(self) -> Iterator[str]:
        return iter(self.at)

    def __len__(self) -> int:
        return len(self.at)

    def __contains__(self, account: object) -> bool:
        return account in self.at


def read_since(graph: Graph, settings: Settings) -> int:
    """The time before a build's read from which a stamp says "moved since the build" (Neo4j's
    clock, epoch ms): now, or the start of the oldest transaction running now if earlier. A
    write stamps with its transaction's clock, so one that began before and commits during the
    read (which may miss it) carries a stamp at or after its own start; one that committed
    before is in the read. Where the server will not list its transactions, now less the
    longest a transaction lives (the larger query timeout and a minute; an hour where one is
    unbounded)."""
    now = int(graph.read(cypher.CLOCK_MS)[0]["ms"])
    try:
        oldest = graph.read(cypher.OLDEST_TRANSACTION_MS)[0]["ms"]
    except neo4j.exceptions.ClientError:
        timeouts = (settings.neo4j_query_timeout, settings.api_query_timeout)
        margin_s = max(timeouts) + 60 if min(timeouts) > 0 else 3600
        return now - int(1000 * margin_s)
    return now if oldest is None else min(now, int(oldest))


def _spans(starts: I64, counts: I64, total: int) -> I64:
    """The positions ``starts[i] .. starts[i] + counts[i] - 1``, one span after another."""
    first = np.zeros(len(counts), dtype=np.int64)
    np.cumsum(counts[:-1], out=first[1:])
    return np.arange(total, dtype=np.int64) + np.repeat(starts - first, counts)


def build_table(
    proj: Projection,
    build_id: str,
    since_ms: int,
    node_ids: Callable[[str, list[int]], Mapping[int, int]],
) -> ScreenTable:
    """The table of a whole-graph projection (the build's), read after ``since_ms``;
    ``node_ids(kind, numbers)`` gives the internal ids of identifiers of a kind by number
    (:func:`read_node_ids`), which a screen seeks its big identifiers by."""
    order = np.argsort(proj.nodes, kind="stable")
    keys = np.asarray([_key(proj.ids[i]) for i in order.tolist()], dtype=np.uint64)
    small, ptr, kind, seq = sharing_parts(proj)
    # The big identifiers' CSR in the table's order (rows sorted by account number).
    counts = np.diff(ptr)[order]
    table_ptr = np.zeros(len(order) + 1, dtype=np.int64)
    np.cumsum(counts, out=table_ptr[1:])
    at = _spans(ptr[:-1][order], counts, int(table_ptr[-1]))
    node = np.full(len(seq), -1, dtype=np.int64)
    for k in np.unique(kind).tolist():
        mine = kind == k
        wanted = np.unique(seq[mine])
        found = node_ids(KIND_NAMES[k], wanted.tolist())
        ids = np.fromiter((found.get(s, -1) for s in wanted.tolist()), dtype=np.int64)
        node[mine] = ids[np.searchsorted(wanted, seq[mine])]
    return ScreenTable(
        build_id=build_id,
        nodes=proj.nodes[order].astype(np.int64),
        keys=keys,
        x=account_features(proj)[order],
        small=small[order],
        big_ptr=table_ptr,
        big_kind=kind[at],
        big_seq=seq[at],
        big_node=node[at],
        since_ms=int(since_ms),
    )


def read_node_ids(graph: Graph, kind: str, numbers: list[int]) -> dict[int, int]:
    """The internal ids of identifiers of ``kind`` by number (a build's big identifiers: a few
    thousand at 100k accounts), in batches."""
    out: dict[int, int] = {}
    for i in range(0, len(numbers), 20_000):
        rows = graph.read(cypher.TABLE_NODE_IDS[kind], {"nodes": numbers[i : i + 20_000]})
        out.update((int(r["node"]), int(r["id"])) for r in rows)
    return out


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
    meta = {"build_id": table.build_id, "schema": FEATURE_SCHEMA.digest(), "form": FORM,
            "mark_degree": BIG, "since_ms": table.since_ms}  # fmt: skip
    (tmp / "meta.json").write_text(json.dumps(meta))
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
    has none or it was written for another feature schema, form or ``MARK_DEGREE`` (the
    writers stamp by the one in force: a table split at another size would miss a move)."""
    key = (str(models_dir), build_id)
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key]
    path = _root(models_dir) / build_id
    table: ScreenTable | None = None
    try:
        meta = json.loads((path / "meta.json").read_text())
        if (meta.get("schema"), meta.get("form"), meta.get("mark_degree")) == (
            FEATURE_SCHEMA.digest(), FORM, BIG
        ):  # fmt: skip
            arrays = {name: np.load(path / f"{name}.npy", mmap_mode="r") for name in _FILES}
            table = ScreenTable(build_id=build_id, since_ms=int(meta["since_ms"]), **arrays)
    except (OSError, ValueError):
        table = None
    with _LOCK:
        _CACHE[key] = table
        while len(_CACHE) > 4:
            _CACHE.popitem(last=False)
    return table
