"""Fraud: who is in a ring (of which typology) and who acts alone, and what each typology
leaves in the data (shared devices, phones, IPs, documents, cards and payees; see
``docs/generator.md``)."""

from __future__ import annotations

import math

import numpy as np

from ringscope.synth.arrays import Arr, _counts, _power_sizes
from ringscope.synth.world import (
    _ANDROID,
    _ROUND_CENTS,
    _WINDOWS,
    DAY,
    HOUR_S,
    LONE,
    TYPOLOGIES,
    YEAR,
    _World,
)


def _choose_fraud(w: _World, rng: np.random.Generator) -> tuple[list[tuple[int, Arr]], Arr]:
    """Pick ring members (with typologies) and lone fraudsters. ATO members are old accounts."""
    p = w.p
    n_fraud = round(w.n * p.fraud_rate)
    budget = round(n_fraud * p.ring_share)
    sizes: list[int] = []
    while budget - sum(sizes) >= 3:
        s = int(_power_sizes(rng, 3, p.ring_size_max, p.ring_size_alpha, 1)[0])
        sizes.append(min(s, budget - sum(sizes)))
    while len(sizes) < min(len(TYPOLOGIES), budget // 3) and max(sizes) >= 6:
        big = sizes.pop(sizes.index(max(sizes)))  # split a big ring so every typology shows
        sizes += [big // 2, big - big // 2]
    typos = list(rng.permutation(len(TYPOLOGIES)) + 1)[: len(sizes)]
    weights = np.array(p.typology_weights)
    weights /= weights.sum()
    typos += list(rng.choice(len(TYPOLOGIES), size=max(0, len(sizes) - len(typos)), p=weights) + 1)
    old_cut = w.t_end - 2 * YEAR
    perm = rng.permutation(w.n)
    old = perm[w.created[perm] < old_cut]
    young = perm[w.created[perm] >= old_cut]
    # half the old accounts may be ATO victims; fraudsters' own accounts come from the rest
    # (their creation times are rewritten anyway)
    old_for_ato = old[: len(old) // 2]
    fresh = np.concatenate([young, old[len(old) // 2 :]])
    ia = ifr = 0
    rings: list[tuple[int, Arr]] = []
    for s, ty in zip(sizes, typos, strict=True):
        if ty == 4 and ia + s <= len(old_for_ato):
            members = old_for_ato[ia : ia + s]
            ia += s
        else:
            if ty == 4:
                ty = 1
            members = fresh[ifr : ifr + s]
            ifr += s
        rings.append((int(ty), members))
        w.typology[members] = ty
    lone = fresh[ifr : ifr + max(0, n_fraud - sum(sizes))]
    w.typology[lone] = LONE
    return rings, lone


def _ring(w: _World, rng: np.random.Generator, ty: int, m: Arr) -> None:
    s = len(m)
    rid = len(w.rings)
    w.rings.append((ty, m))
    w.typology[m] = ty
    w.ring[m] = rid
    name = TYPOLOGIES[ty - 1]
    marks = w.row_marks()
    if name == "cash_out":
        _cash_out(w, rng, m, s)
    elif name == "mule":
        _mule(w, rng, m, s)
    elif name == "synthetic":
        _synthetic(w, rng, m, s)
    elif name == "ato":
        _ato(w, rng, m, s)
    else:
        _sleeper(w, rng, m, s)
    if w.p.ring_return_share > 0 and name != "ato":
        _return(w, w.stream("ring-return"), m, marks)


def _return(w: _World, rng: np.random.Generator, m: Arr, marks: tuple[int, ...]) -> None:
    """Perhaps (``ring_return_share``): the ring comes back. Its last-opened quarter (at least
    one member) opens only after the others struck (their median fraud time), within two to
    twelve weeks, a few days apart, and lives its whole ring life from then: the same farm
    devices, numbers, documents and payees, which the rest of the ring used before. What the
    risk engine screens at sign-up (issue #17). Takeover victims are old accounts: they never
    "come back". Drawn from its own stream, so switching it on reshuffles no other ring."""
    if len(m) < 4 or rng.random() >= w.p.ring_return_share:
        return
    k = max(1, len(m) // 4)
    order = np.argsort(w.created[m], kind="stable")
    back, rest = m[order[-k:]], m[order[:-k]]
    strike = int(np.median(w.fraud_t[rest]))
    start = strike + int(rng.integers(14, 85)) * DAY
    new = start + rng.integers(0, 5 * DAY, k)
    ok = new < w.t_end - 7 * DAY
    if not ok.any():
        return
    back, new = back[ok], new[ok]
    delta = np.zeros(w.n, dtype=np.int64)
    delta[back] = np.maximum(new - w.created[back], 0)
    w.delay(marks, delta)
    w.created[back] += delta[back]
    w.fraud_t[back] = np.minimum(w.fraud_t[back] + delta[back], w.t_end)
    w.returned[back] = True


def _cash_out(w: _World, rng: np.random.Generator, m: Arr, s: int) -> None:
    """New low-KYC accounts, a few emulators, virtual phones, round payments to one merchant."""
    t0 = int(rng.integers(w.t0 + w.span // 3, w.t_end - 45 * DAY))
    c = t0 + rng.integers(0, int(rng.integers(2, w.p.cash_out_window_max_days + 1)) * DAY, s)
    w.created[m] = c
    w.kyc[m] = rng.choice(2, size=s)
    w.own_phone[m] = False
    w.n_dev[m] = rng.random(s) < 0.3  # camouflage: some keep a personal phone too
    w.own_home[m] = rng.random(s) < 0.3
    w.own_doc[m] = False
    w.friends[m] = False
    w.pay_scale[m] = 0.3
    end = c + 30 * DAY
    nd = max(1, math.ceil(s / int(rng.integers(4, 11))))
    devs = w.dev.new(nd, os=_ANDROID, emu=True)
    k = rng.integers(1, 3, s)
    acc = np.repeat(m, k)
    w.sight(
        w.e_dev, rng, acc, devs[rng.integers(0, nd, len(acc))], np.repeat(c, k),
        np.repeat(end, k), rng.integers(2, 7, len(acc)),
    )  # fmt: skip
    nph = max(1, math.ceil(s * rng.uniform(0.3, 1.0)))
    phones = w.phone.new(nph, virtual=True)
    w.sight(w.e_phone, rng, m, phones[rng.permutation(s) % nph], c, end, rng.integers(1, 3, s))
    ips = w.ip.new(int(rng.integers(1, 4)))
    w.sight(w.e_id["ip"], rng, m, ips[rng.integers(0, len(ips), s)], c, end, rng.integers(1, 4, s))
    merchant = w.payee.new(1, individual=False, cur=0)
    k = rng.integers(1, 4, s)
    t = np.repeat(c, k) + rng.integers(HOUR_S, 7 * DAY, int(k.sum()))
    t = np.minimum(t, w.t_end)
    w.pay(np.repeat(m, k), merchant, t, rng.choice(_ROUND_CENTS, size=len(t)))
    w.fraud_t[m] = c + 7 * DAY


def _mule(w: _World, rng: np.random.Generator, m: Arr, s: int) -> None:
    """A burst of openings sharing bank cards and/or ID documents, paying shared collectors."""
    t0 = int(rng.integers(w.t0 + w.span // 3, w.t_end - 90 * DAY))
    burst = int(rng.integers(1, w.p.mule_burst_max_days + 1)) * DAY
    late = rng.random(s) < w.p.mule_late_share
    c = t0 + np.where(late, rng.integers(0, 60 * DAY, s), rng.integers(0, burst, s))
    w.created[m] = c
    mode = int(rng.choice(3, p=[0.4, 0.3, 0.3]))  # 0 cards, 1 documents, 2 both
    w.kyc[m] = rng.choice([1, 2], size=s, p=[0.3, 0.7])
    w.n_dev[m] = 1
    w.own_home[m] = rng.random(s) < 0.6
    w.friends[m] = False
    w.pay_scale[m] = 0.5
    if mode in (1, 2):
        nd = max(1, s // int(rng.integers(3, 9)))
        docs = w.doc.new(nd)
        w.kyc[m] = np.maximum(w.kyc[m], 2)
        w.own_doc[m] = False
        w.sight(w.e_id["id_document"], rng, m, docs[rng.permutation(s) % nd], c, c + 3 * DAY,
                rng.integers(1, 3, s))  # fmt: skip
    if mode in (0, 2):
        nc = max(1, s // int(rng.integers(2, 7)))
        cards = w.card.new(nc)
        w.own_card[m] = rng.random(s) < 0.3
        w.sight(w.e_id["bank_card"], rng, m, cards[rng.permutation(s) % nc], c, c + 60 * DAY,
                rng.integers(1, 4, s))  # fmt: skip
    if rng.random() < 0.5:
        handlers = w.dev.new(int(rng.integers(1, 3)), os=_ANDROID, emu=False)
        sub = m[rng.random(s) < rng.uniform(0.3, 0.6)]
        if len(sub):
            cs = w.created[sub]
            w.sight(w.e_dev, rng, sub, handlers[rng.integers(0, len(handlers), len(sub))], cs,
                    cs + 60 * DAY, rng.integers(1, 5, len(sub)))  # fmt: skip
    collectors = w.payee.new(int(rng.integers(1, 4)), individual=True, cur=0)
    k = rng.integers(2, 9, s)
    cr = np.repeat(c, k)
    t = w.times(rng, cr + 3 * DAY, cr + 60 * DAY)
    cents = np.exp(rng.normal(math.log(3000.0), 0.6, len(t))) * 100
    w.pay(np.repeat(m, k), collectors[rng.integers(0, len(collectors), len(t))], t, cents)
    w.fraud_t[m] = np.minimum(c + 45 * DAY, w.t_end)


def _synthetic(w: _World, rng: np.random.Generator, m: Arr, s: int) -> None:
    """Reused ID documents, recycled or virtual phones, a device farm, then a bust-out."""
    t0 = int(rng.integers(w.t0 + int(0.6 * w.span), w.t_end - 150 * DAY))
    c = t0 + rng.integers(0, int(rng.integers(30, w.p.synthetic_window_max_days + 1)) * DAY, s)
    w.created[m] = c
    w.kyc[m] = rng.choice([2, 3], size=s, p=[0.7, 0.3])
    w.own_doc[m] = False
    w.own_phone[m] = False
    w.n_dev[m] = 0
    w.own_home[m] = False
    w.friends[m] = False
    w.pay_scale[m] = 0.6
    bust = np.minimum(c + rng.integers(90, 300, s) * DAY, w.t_end)
    nd = max(1, s // int(rng.integers(3, 7)))
    docs = w.doc.new(nd)
    w.sight(w.e_id["id_document"], rng, m, docs[rng.permutation(s) % nd], c, c + 2 * DAY,
            rng.integers(1, 3, s))  # fmt: skip
    recycled = rng.random(s) < 0.5
    mr, mv = m[recycled], m[~recycled]
    if len(mr):
        phones = w.phone.new(len(mr), virtual=False)
        cr = w.created[mr]
        w.sight(w.e_phone, rng, mr, phones, cr, bust[recycled], rng.integers(1, 4, len(mr)))
        prev = w.prev_owners(len(mr))
        pc_ = w.created[prev]
        hi = np.minimum(pc_ + 180 * DAY, cr - YEAR)
        w.sight(w.e_phone, rng, prev, phones, pc_, hi, rng.integers(1, 4, len(mr)))
    if len(mv):
        nv = max(1, len(mv) // int(rng.integers(1, 4)))
        vphones = w.phone.new(nv, virtual=True)
        w.sight(w.e_phone, rng, mv, vphones[rng.permutation(len(mv)) % nv], w.created[mv],
                bust[~recycled], rng.integers(1, 4, len(mv)))  # fmt: skip
    nf = max(1, s // int(rng.integers(3, 9)))
    emu = bool(rng.random() < w.p.synthetic_emulator_share)
    farm = w.dev.new(nf, os=_ANDROID, emu=emu)
    k = rng.integers(1, 3, s)
    acc = np.repeat(m, k)
    years = (bust - c) / YEAR
    w.sight(w.e_dev, rng, acc, farm[rng.integers(0, nf, len(acc))], np.repeat(c, k),
            np.repeat(bust, k), _counts(rng, np.repeat(3 * years, k)))  # fmt: skip
    ips = w.ip.new(int(rng.integers(1, 3)))
    w.sight(w.e_id["ip"], rng, m, ips[rng.integers(0, len(ips), s)], c, bust,
            _counts(rng, 4 * years))  # fmt: skip
    k = rng.integers(1, 4, s)
    br = np.repeat(bust, k)
    t = w.times(rng, br - 3 * DAY, br)
    cents = np.exp(rng.normal(math.log(8000.0), 0.5, len(t))) * 100
    w.pay(np.repeat(m, k), w.zipf_merchants(rng, len(t)), t, cents)
    w.fraud_t[m] = bust


def _ato(w: _World, rng: np.random.Generator, m: Arr, s: int) -> None:
    """Old accounts suddenly seen on a shared set of new devices and IPs, then drained."""
    t0 = int(rng.integers(w.t_end - YEAR, w.t_end - 3 * DAY))
    t1 = min(t0 + int(rng.integers(1, w.p.ato_window_max_days + 1)) * DAY, w.t_end)
    nd = max(1, math.ceil(s / int(rng.integers(4, 11))))
    os_ = rng.choice([_ANDROID, _WINDOWS], size=nd)
    devs = w.dev.new(nd, os=os_, emu=rng.random(nd) < w.p.ato_emulator_share)
    k = rng.integers(1, 3, s)
    acc = np.repeat(m, k)
    w.sight(w.e_dev, rng, acc, devs[rng.integers(0, nd, len(acc))], t0, t1,
            rng.integers(1, 4, len(acc)))  # fmt: skip
    ips = w.ip.new(int(rng.integers(1, 4)))
    w.sight(w.e_id["ip"], rng, m, ips[rng.integers(0, len(ips), s)], t0, t1,
            rng.integers(1, 3, s))  # fmt: skip
    swapped = m[rng.random(s) < 0.4]
    if len(swapped):
        nv = max(1, len(swapped) // int(rng.integers(2, 5)))
        vph = w.phone.new(nv, virtual=True)
        w.sight(w.e_phone, rng, swapped, vph[rng.integers(0, nv, len(swapped))], t0, t1, 1)
    drains = w.payee.new(int(rng.integers(1, 4)), individual=True, cur=0)
    k = rng.integers(1, 4, s)
    t = w.times(rng, np.full(int(k.sum()), t0), np.full(int(k.sum()), t1))
    cents = np.exp(rng.normal(math.log(5000.0), 0.6, len(t))) * 100
    w.pay(np.repeat(m, k), drains[rng.integers(0, len(drains), len(t))], t, cents)
    w.fraud_t[m] = t0


_SLEEPER_LINKS = ("device", "phone", "ip", "email", "bank_card", "id_document", "payee")
_SLEEPER_P = np.array([0.2, 0.15, 0.2, 0.1, 0.15, 0.1, 0.1])


def _sleeper(w: _World, rng: np.random.Generator, m: Arr, s: int) -> None:
    """A chain: each member shares exactly one identifier with its one or two neighbours.
    Some worlds' sleepers also wake together (``_wake``)."""
    p = w.p
    t0 = int(rng.integers(w.t0 + w.span // 5, w.t_end - 200 * DAY))
    window = int(rng.integers(p.sleeper_window_min_days, p.sleeper_window_max_days + 1)) * DAY
    c = np.minimum(t0 + rng.integers(0, window, s), w.t_end - 30 * DAY)
    w.created[m] = c
    w.kyc[m] = rng.choice([1, 2], size=s)
    w.n_dev[m] = 1
    w.friends[m] = False
    w.pay_scale[m] = 0.3
    has_doc_link = np.zeros(s, dtype=bool)
    for i in range(s - 1):
        a, b = m[i], m[i + 1]
        lp = _SLEEPER_P.copy()
        if has_doc_link[i] or has_doc_link[i + 1]:
            lp[_SLEEPER_LINKS.index("id_document")] = 0.0
        kind = _SLEEPER_LINKS[int(rng.choice(len(lp), p=lp / lp.sum()))]
        pair = np.array([a, b])
        lo = np.full(2, max(int(c[i]), int(c[i + 1])))
        hi = np.full(2, w.t_end)
        k = rng.integers(1, 3, 2)
        if kind == "device":
            w.sight(w.e_dev, rng, pair, w.dev.new(1, os=_ANDROID, emu=False), lo, hi, k)
        elif kind == "phone":
            w.sight(w.e_phone, rng, pair, w.phone.new(1, virtual=False), lo, hi, k)
        elif kind == "payee":
            friend = w.payee.new(1, individual=True, cur=0)
            kr = np.repeat(pair, k)
            t = w.times(rng, np.repeat(lo, k), np.repeat(hi, k))
            w.pay(kr, friend, t, np.exp(rng.normal(math.log(800.0), 0.7, len(t))) * 100)
        else:
            if kind == "id_document":
                has_doc_link[i] = has_doc_link[i + 1] = True
                w.kyc[pair] = np.maximum(w.kyc[pair], 2)
                w.own_doc[pair] = False
            pool = {"ip": w.ip, "email": w.email, "bank_card": w.card, "id_document": w.doc}[kind]
            w.sight(w.e_id[kind], rng, pair, pool.new(1), lo, hi, k)
    w.fraud_t[m] = np.minimum(c + rng.integers(100, 300, s) * DAY, w.t_end)
    if p.sleeper_burst_share > 0 and _wake(w, w.stream("sleeper-burst"), m, c):
        w.woke.add(int(w.ring[m[0]]))


def _wake(w: _World, rng: np.random.Generator, m: Arr, c: Arr) -> bool:
    """Perhaps (``sleeper_burst_share``): the dormant ring wakes at once, weeks after its last
    opening, and every member pays the same few new payees within two days. Drawn from its own
    stream, so that switching this on does not reshuffle the other rings."""
    if rng.random() >= w.p.sleeper_burst_share:
        return False
    wake = min(int(c.max()) + int(rng.integers(21, 181)) * DAY, w.t_end - 2 * DAY)
    payees = w.payee.new(int(rng.integers(1, 4)), individual=True, cur=0)
    k = rng.integers(1, 5, len(m))
    t = w.times(rng, np.full(int(k.sum()), wake), np.full(int(k.sum()), wake + 2 * DAY))
    cents = np.exp(rng.normal(math.log(2500.0), 0.6, len(t))) * 100
    w.pay(np.repeat(m, k), payees[rng.integers(0, len(payees), len(t))], t, cents)
    w.fraud_t[m] = wake
    return True


def _lone(w: _World, rng: np.random.Generator, m: Arr) -> None:
    """Fraudsters acting alone: new account, often an emulator or a virtual phone, round cash."""
    s = len(m)
    if not s:
        return
    w.typology[m] = LONE
    c = rng.integers(w.t_end - 2 * YEAR, w.t_end - 14 * DAY, s)
    w.created[m] = c
    w.kyc[m] = rng.choice(3, size=s, p=[0.4, 0.4, 0.2])
    w.friends[m] = False
    w.pay_scale[m] = 0.4
    emu = rng.random(s) < w.p.lone_emulator_share
    w.n_dev[m] = np.where(emu, 0, 1)
    if emu.any():
        me = m[emu]
        devs = w.dev.new(len(me), os=_ANDROID, emu=True)
        w.sight(w.e_dev, rng, me, devs, w.created[me], w.t_end, _counts(rng, np.full(len(me), 3.0)))
    virt = rng.random(s) < w.p.lone_virtual_share
    if virt.any():
        mv = m[virt]
        w.own_phone[mv] = False
        ph = w.phone.new(len(mv), virtual=True)
        w.sight(
            w.e_phone,
            rng,
            mv,
            ph,
            w.created[mv],
            w.created[mv] + 60 * DAY,
            rng.integers(1, 3, len(mv)),
        )
    k = rng.integers(1, 5, s)
    cr = np.repeat(c, k)
    t = w.times(rng, cr, cr + 14 * DAY)
    w.pay(np.repeat(m, k), w.zipf_merchants(rng, len(t)), t, rng.choice(_ROUND_CENTS, size=len(t)))
    w.fraud_t[m] = c + 7 * DAY
