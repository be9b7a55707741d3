"""Writing the contract tables (Parquet or CSV), a chunk at a time: ids in creation or
first-seen order, strings built from the integer world only here."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ringscope.synth.arrays import (
    Arr,
    _decimal,
    _digits,
    _distinct,
    _ids,
    _join,
    _rng,
    _scramble,
    _ts,
)
from ringscope.synth.phones import _PHONE_ROW_P, _PHONE_TABLE_P, _phone_strings, _PhonePlan
from ringscope.synth.schema import ID_KINDS, SCHEMAS
from ringscope.synth.strings import (
    _BRANDS,
    _CATEGORIES,
    _GIVEN,
    _SURNAMES,
    _card_strings,
    _doc_strings,
    _email_strings,
    _ip_strings,
)
from ringscope.synth.world import _CURRENCY, _FOREIGN, _OS, _Edges, _World

# No quoting: the generator never writes a comma, quote or newline inside a value.
_CSV = pacsv.WriteOptions(quoting_style="none", quoting_header="none")
_CHUNK = 1 << 21


def _csv_column(col: Any) -> Any:
    if pa.types.is_timestamp(col.type):
        return pc.strftime(col.cast(pa.timestamp("s", tz="UTC")), format="%Y-%m-%dT%H:%M:%S+00:00")
    if pa.types.is_decimal(col.type):
        return col.cast(pa.string())
    return col


def _write(
    out: Path, name: str, fmt: str, n: int, build: Callable[[int, int], dict[str, Any]]
) -> int:
    """Write table ``name`` of ``n`` rows, built ``_CHUNK`` rows at a time by ``build(lo, hi)``
    so that the strings of a 15M-row table never all exist at once."""
    schema = SCHEMAS[name]
    writer: Any
    if fmt == "parquet":
        writer = pq.ParquetWriter(out / f"{name}.parquet", schema, compression="zstd")
    else:
        plain = [pa.types.is_timestamp(f.type) or pa.types.is_decimal(f.type) for f in schema]
        csv_schema = pa.schema(
            [
                pa.field(f.name, pa.string() if p else f.type)
                for f, p in zip(schema, plain, strict=True)
            ]
        )
        writer = pacsv.CSVWriter(out / f"{name}.csv", csv_schema, write_options=_CSV)
    try:
        for lo in range(0, max(n, 1), _CHUNK):
            hi = min(n, lo + _CHUNK)
            table = pa.table(build(lo, hi)).select(schema.names).cast(schema)
            if fmt == "csv":
                table = pa.table([_csv_column(c) for c in table.columns], schema=csv_schema)
            writer.write_table(table)
    finally:
        writer.close()
    return n


def _take(values: pa.Array, idx: Arr) -> pa.Array:
    return values.take(pa.array(np.asarray(idx, dtype=np.int64)))


def _first_seen_rank(n: int, ent: Arr, t: Arr) -> Arr:
    """New index for each entity: by first sighting time, never-seen ones last (by index)."""
    first = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    if len(ent):
        order = np.lexsort((t, ent))
        e_sorted = ent[order]
        starts = np.flatnonzero(np.r_[True, e_sorted[1:] != e_sorted[:-1]])
        first[e_sorted[starts]] = t[order][starts]
    by = np.lexsort((np.arange(n), first))
    rank = np.empty(n, dtype=np.int64)
    rank[by] = np.arange(n)
    return rank


@dataclass
class _Out:
    """Where and how tables are written, and what every table needs: account ids by rank."""

    out: Path
    fmt: str
    srng: np.random.Generator
    arank: Arr
    acc_ids: pa.Array
    counts: dict[str, int] = field(default_factory=dict)

    def write(self, name: str, n: int, build: Callable[[int, int], dict[str, Any]]) -> None:
        self.counts[name] = _write(self.out, name, self.fmt, n, build)

    def edges(
        self,
        e: _Edges,
        rank: Arr,
        values: pa.Array,
        col: str,
        name: str,
        stride: int = 0,
        variants: Sequence[float] = (1.0,),
    ) -> None:
        """Write one account-to-entity table in time order; with ``variants``, each row picks
        one of several spellings of its entity (spelling i of entity j is values[i*stride+j])."""
        a, ent, t = e.arrays()
        e.acc, e.ent, e.t = [], [], []
        o = np.argsort(t, kind="stable")
        a, ent, t = self.arank[a[o]], rank[ent[o]], t[o]
        if len(variants) > 1:
            ent = ent + self.srng.choice(len(variants), size=len(t), p=variants) * stride
        self.write(name, len(t), lambda lo, hi: {
            "account_id": _take(self.acc_ids, a[lo:hi]),
            col: _take(values, ent[lo:hi]),
            "seen_at": _ts(t[lo:hi]),
        })  # fmt: skip


def _emit_accounts(w: _World, o: _Out, order: Arr, country: Arr, region: str) -> None:
    """The accounts table, numbered in order of creation (``order``: account indices by it)."""
    acc_ids = o.acc_ids
    countries = pa.array([region, *[c for c in _FOREIGN if c != region]])
    o.write("accounts", w.n, lambda lo, hi: {
        "account_id": acc_ids.slice(lo, hi - lo),
        "created_at": _ts(w.created[order[lo:hi]]),
        "kyc_level": pa.array(w.kyc[order[lo:hi]]),
        "country": _take(countries, country[order[lo:hi]]),
    })  # fmt: skip


def _emit_devices(w: _World, o: _Out) -> None:
    # devices, numbered in order of first login
    _, e, t = w.e_dev.arrays()
    drank = _first_seen_rank(w.dev.n, e, t)
    n_seen = int(np.count_nonzero(np.bincount(e, minlength=w.dev.n)))  # unseen ones are left out
    dorder = np.argsort(drank)
    dev_ids = _ids("D", n_seen, 8)
    oses = pa.array(list(_OS))
    dev_os, dev_emu = w.dev.attr("os"), w.dev.attr("emu").astype(bool)
    o.write("devices", n_seen, lambda lo, hi: {
        "device_id": dev_ids.slice(lo, hi - lo),
        "os": _take(oses, dev_os[dorder[lo:hi]]),
        "is_emulator": pa.array(dev_emu[dorder[lo:hi]]),
    })  # fmt: skip
    del e, t
    o.edges(w.e_dev, drank, dev_ids, "device_id", "account_devices")


def _emit_phones(w: _World, o: _Out, plan: _PhonePlan) -> None:
    seed = w.seed
    # phones: numbers from the region's plan, spelt one of six ways (per row)
    virtual = w.phone.attr("virtual").astype(bool)
    nph = w.phone.n
    nsn = np.zeros((nph, plan.length), dtype=np.uint8)
    prefix = np.zeros(nph, dtype=np.int64)
    rest = plan.length - plan.plen
    for flag, prefixes, salt in ((False, plan.regular, 11), (True, plan.virtual, 13)):
        sel = np.flatnonzero(virtual == flag)
        v = _scramble(np.arange(len(sel)), len(prefixes) * 10**rest, seed * 7919 + salt)
        prefix[sel] = np.array(prefixes)[v // 10**rest]
        nsn[sel] = np.concatenate(
            [_digits(prefix[sel], plan.plen), _digits(v % 10**rest, rest)], axis=1
        )
    spellings = pa.concat_arrays(_phone_strings(plan, nsn))
    del nsn
    _, e, t = w.e_phone.arrays()
    porder = np.argsort(_first_seen_rank(nph, e, t))  # the phones table in first-seen order
    n_seen = int(np.count_nonzero(np.bincount(e, minlength=nph)))  # unused ones are left out
    del e, t
    table_fmt = o.srng.choice(6, size=nph, p=_PHONE_TABLE_P)
    carriers = sorted(set(plan.carriers.values()))
    cmap = np.zeros(10**plan.plen, dtype=np.int64)
    for pfx, cname in plan.carriers.items():
        cmap[pfx] = carriers.index(cname)
    carrier_names = pa.array(carriers)
    o.write("phones", n_seen, lambda lo, hi: {
        "phone": _take(spellings, table_fmt[porder[lo:hi]] * nph + porder[lo:hi]),
        "carrier": _take(carrier_names, cmap[prefix[porder[lo:hi]]]),
        "is_virtual": pa.array(virtual[porder[lo:hi]]),
    })  # fmt: skip
    o.edges(w.e_phone, np.arange(nph), spellings, "phone", "account_phones", nph, _PHONE_ROW_P)


def _emit_payees_payments(w: _World, o: _Out, region: str) -> Arr:
    """Returns the number of distinct accounts that paid each payee."""
    seed = w.seed
    # payees: popular merchants, colluding merchants, individuals; numbered by first payment
    p_acc = np.concatenate(w.pay_acc)
    p_payee = np.concatenate(w.pay_payee)
    p_t = np.concatenate(w.pay_t)
    p_cents = np.round(np.concatenate(w.pay_cents)).astype(np.int64)
    w.pay_acc, w.pay_payee, w.pay_t, w.pay_cents = [], [], [], []
    individual = w.payee.attr("individual").astype(bool)
    cur = w.payee.attr("cur").astype(np.int64)
    npay = w.payee.n
    n_merch = int((~individual).sum())
    prank = np.empty(npay, dtype=np.int64)
    for flag, offset in ((False, 0), (True, n_merch)):
        sel = np.flatnonzero(individual == flag)
        local = np.full(npay, -1, dtype=np.int64)
        local[sel] = np.arange(len(sel))
        mask = individual[p_payee] == flag
        prank[sel] = _first_seen_rank(len(sel), local[p_payee[mask]], p_t[mask]) + offset
    payee_ids = pa.concat_arrays([_ids("P", n_merch, 7), _ids("U", npay - n_merch, 7)])
    porder = np.argsort(prank)
    nr = _rng(seed, "payee-names")

    def pick(words: Sequence[str]) -> pa.Array:
        return _take(pa.array(list(words)), nr.integers(0, len(words), npay))

    shop = _join(pick(_BRANDS), " ", pick(_CATEGORIES))
    person = _join(pick([x.title() for x in _SURNAMES]), " ", pick([x.title() for x in _GIVEN]))
    names = pc.if_else(pa.array(individual), person, shop)
    kinds = pa.array(["merchant", "individual"])
    o.write("payees", npay, lambda lo, hi: {
        "payee_id": payee_ids.slice(lo, hi - lo),
        "kind": _take(kinds, individual[porder[lo:hi]]),
        "name": _take(names, porder[lo:hi]),
    })  # fmt: skip
    home_cur = _CURRENCY.get(region, "USD")
    currencies = pa.array([home_cur, "USD" if home_cur != "USD" else "EUR"])
    s = np.argsort(p_t, kind="stable")
    p_acc, p_payee, p_t, p_cents = o.arank[p_acc[s]], p_payee[s], p_t[s], p_cents[s]
    del s
    pay_ids = _ids("T", len(p_t), 9)
    o.write("payments", len(p_t), lambda lo, hi: {
        "payment_id": pay_ids.slice(lo, hi - lo),
        "account_id": _take(o.acc_ids, p_acc[lo:hi]),
        "payee_id": _take(payee_ids, prank[p_payee[lo:hi]]),
        "amount": _decimal(p_cents[lo:hi]),
        "currency": _take(currencies, cur[p_payee[lo:hi]]),
        "paid_at": _ts(p_t[lo:hi]),
    })  # fmt: skip
    pairs = _distinct(p_payee.astype(np.int64) * w.n + p_acc)
    payee_accounts = np.bincount(pairs // w.n, minlength=npay)
    return payee_accounts


def _emit_identifiers(w: _World, o: _Out) -> None:
    seed = w.seed
    # account identifiers: ip, email (spelt with stray case and spaces), id_document, bank_card
    emails = _email_strings(_rng(seed, "emails"), w.email.n, seed * 31 + 2)
    values = {
        "ip": _ip_strings(w.ip.n, seed * 31 + 1),
        "email": pa.concat_arrays([
            emails,
            pc.utf8_capitalize(emails),
            pc.utf8_upper(emails),
            _join(" ", emails, " "),
            _join(emails, " "),
        ]),
        "id_document": _doc_strings(w.doc.n, seed * 31 + 3),
        "bank_card": _card_strings(w.card.n, seed * 31 + 4),
    }  # fmt: skip
    del emails
    ids_a, ids_k, ids_v, ids_t = [], [], [], []
    base = 0
    for ki, kind in enumerate(ID_KINDS):
        a, e, t = w.e_id[kind].arrays()
        w.e_id[kind] = _Edges()
        v = e.astype(np.int64)
        if kind == "email":
            v += o.srng.choice(5, size=len(v), p=[0.82, 0.08, 0.04, 0.03, 0.03]) * w.email.n
        ids_a.append(a)
        ids_k.append(np.full(len(a), ki, dtype=np.int8))
        ids_v.append(v + base)
        ids_t.append(t)
        base += len(values[kind])
    all_values = pa.concat_arrays([values[k] for k in ID_KINDS])
    del values
    t = np.concatenate(ids_t)
    s = np.argsort(t, kind="stable")
    t = t[s]
    a = o.arank[np.concatenate(ids_a)[s]]
    k = np.concatenate(ids_k)[s]
    v = np.concatenate(ids_v)[s]
    del s, ids_a, ids_k, ids_v, ids_t
    id_kinds = pa.array(list(ID_KINDS))
    o.write("account_identifiers", len(t), lambda lo, hi: {
        "account_id": _take(o.acc_ids, a[lo:hi]),
        "kind": _take(id_kinds, k[lo:hi]),
        "value": _take(all_values, v[lo:hi]),
        "seen_at": _ts(t[lo:hi]),
    })  # fmt: skip
