"""Hard negatives: groups of legitimate accounts that share devices, IPs or phones as rings do
(households, offices, campuses, internet cafes, recycled phone numbers; carrier NAT is part of
everyday life, in accounts.py)."""

from __future__ import annotations

import numpy as np

from ringscope.synth.arrays import Arr, _counts, _sizes_to_cover
from ringscope.synth.world import (
    _ANDROID,
    _IOS,
    _WINDOWS,
    _WORK_HOURS,
    DAY,
    TYPOLOGIES,
    YEAR,
    _World,
)


def _benign(w: _World, rng: np.random.Generator) -> None:
    """Hard negatives: groups of legitimate accounts that share devices, IPs or phones."""
    p = w.p
    legit = np.flatnonzero((w.typology == 0) | (w.typology == TYPOLOGIES.index("ato") + 1))
    years_left = (w.t_end - w.created) / YEAR

    def cover(share: float, lo: int, hi: int, alpha: float) -> Arr:
        """Heavy-tailed group sizes for ``share`` of the legitimate accounts."""
        total = int(len(legit) * share)
        return np.array(_sizes_to_cover(rng, total, lo, hi, alpha), dtype=np.int64)

    # households: a tablet, the home IP, sometimes a family phone (cards and documents that
    # families share, and fraudsters' own families, come later: families.py)
    perm = rng.permutation(legit)
    sizes = cover(p.household_share, 2, p.household_size_max, p.household_size_alpha)
    if len(sizes):
        mem = perm[: sizes.sum()]
        g = w.groups("household", sizes, mem)
        nh = len(sizes)
        cr = w.created[mem]
        tablet = rng.random(nh) < p.household_tablet_share
        dev = w.dev.new(nh, os=rng.choice([_ANDROID, _IOS], size=nh, p=[0.5, 0.5]), emu=False)
        sel = tablet[g]
        w.sight(w.e_dev, rng, mem[sel], dev[g[sel]], cr[sel], w.t_end,
                _counts(rng, 2 * years_left[mem[sel]]))  # fmt: skip
        shared_ip = rng.random(nh) < p.household_ip_share
        ips = w.ip.new(nh)
        sel = shared_ip[g]
        w.own_home[mem[sel]] = False
        w.sight(w.e_id["ip"], rng, mem[sel], ips[g[sel]], cr[sel], w.t_end,
                _counts(rng, 3 * years_left[mem[sel]]))  # fmt: skip
        fam = rng.random(nh) < p.household_phone_share
        phones = w.phone.new(nh, virtual=False)
        sel = fam[g]
        w.sight(w.e_phone, rng, mem[sel], phones[g[sel]], cr[sel], w.t_end,
                rng.integers(1, 3, int(sel.sum())))  # fmt: skip
        w.hh_members, w.hh_index, w.hh_ip, w.hh_shares_ip = mem, g, ips, shared_ip

    # offices (weekday working hours) and campuses: one public IP shared by tens to hundreds
    for kind, share, lo, hi, alpha in (
        ("office", p.office_share, p.office_size_min, p.office_size_max, p.office_size_alpha),
        ("campus", p.campus_share, p.campus_size_min, p.campus_size_max, p.campus_size_alpha),
    ):
        perm = rng.permutation(legit)
        sizes = cover(share, lo, hi, alpha)
        if not len(sizes):
            continue
        mem = perm[: sizes.sum()]
        g = w.groups(kind, sizes, mem)
        ips = w.ip.new(len(sizes))
        w.sight(w.e_id["ip"], rng, mem, ips[g], w.created[mem], w.t_end,
                _counts(rng, 4 * years_left[mem], base=2), profile=_WORK_HOURS,
                weekdays=kind == "office")  # fmt: skip

    # internet cafes: a handful of PCs used by dozens of unrelated people, one IP
    perm = rng.permutation(legit)
    sizes = cover(p.cafe_share, p.cafe_size_min, p.cafe_size_max, p.cafe_size_alpha)
    if len(sizes):
        mem = perm[: sizes.sum()]
        g = w.groups("cafe", sizes, mem)
        npc = rng.integers(3, p.cafe_pcs_max + 1, len(sizes))
        first = np.concatenate([[0], np.cumsum(npc)[:-1]])
        pcs = w.dev.new(int(npc.sum()), os=_WINDOWS, emu=False)
        k = rng.integers(1, 5, len(mem))
        acc = np.repeat(mem, k)
        gr = np.repeat(g, k)
        dev = pcs[first[gr] + (rng.random(len(acc)) * npc[gr]).astype(np.int64)]
        t = w.times(rng, w.created[acc], np.full(len(acc), w.t_end))
        w.e_dev.add(acc, dev, t)
        w.e_id["ip"].add(acc, w.ip.new(len(sizes))[gr], t)

    # recycled phones: an old account's number, dropped, reissued to a new customer years later
    a, b = w.recycled_a, w.recycled_b
    n_pairs = len(a)
    if n_pairs:
        w.groups("recycled_phone", np.full(n_pairs, 2), np.stack([a, b], axis=1).ravel())
        recycled = w.phone.new(n_pairs, virtual=False)
        later = w.phone.new(n_pairs, virtual=False)
        ca = w.created[a]
        drop = ca + rng.integers(60, 240, n_pairs) * DAY
        w.sight(w.e_phone, rng, a, recycled, ca, drop, rng.integers(1, 4, n_pairs))
        w.sight(w.e_phone, rng, a, later, drop + 30 * DAY, w.t_end,
                _counts(rng, (w.t_end - drop) / YEAR))  # fmt: skip
        w.sight(w.e_phone, rng, b, recycled, w.created[b], w.t_end,
                _counts(rng, years_left[b]))  # fmt: skip


def _recycled_setup(w: _World, rng: np.random.Generator) -> None:
    """Choose the benign recycled-number pairs and the pool of former owners for synthetics."""
    pure = np.flatnonzero(w.typology == 0)
    old = rng.permutation(pure[w.created[pure] < w.t0 + w.span // 4])
    new = rng.permutation(pure[w.created[pure] > w.t0 + int(0.8 * w.span)])
    n_pairs = min(int(w.n * w.p.recycled_phone_share / 2), len(old) // 2, len(new))
    w.recycled_a, w.recycled_b = old[:n_pairs], new[:n_pairs]
    w.own_phone[w.recycled_a] = False
    w.own_phone[w.recycled_b] = False
    w.prev_pool = old[n_pairs:]
