"""Accounts, merchants and everyday life: creation times, KYC levels and countries, the Zipf
merchants and individual payees, and the personal devices, phones, emails, home and carrier IPs,
documents, cards and payments that every account gets (fraud roles switch parts of it off)."""

from __future__ import annotations

import math

import numpy as np

from ringscope.synth.arrays import Arr, _counts, _distinct
from ringscope.synth.world import _ANDROID, _FOREIGN, _ROUND_CENTS, DAY, YEAR, _World


def _accounts(w: _World, rng: np.random.Generator) -> Arr:
    """Creation times (exponential growth over the span), KYC levels, countries."""
    g = 1.0
    x = np.log1p(rng.random(w.n) * math.expm1(g)) / g
    w.created[:] = w.t0 + (x * (w.span - 2 * DAY)).astype(np.int64)
    w.created[:] = w.times(rng, w.created, w.created + DAY)
    kyc_p = np.array(w.p.kyc_p)
    w.kyc[:] = rng.choice(4, size=w.n, p=kyc_p / kyc_p.sum())
    w.n_dev[:] = np.where(rng.random(w.n) < w.p.second_device_share, 2, 1)
    foreign = [c for c in _FOREIGN if c != w.region]
    return np.where(
        rng.random(w.n) < w.p.foreign_share, rng.integers(0, len(foreign), w.n) + 1, 0
    ).astype(np.int8)


def _merchants(w: _World, rng: np.random.Generator) -> None:
    m = max(50, w.n // 100)
    w.n_merchants = m
    ranks = np.arange(m, dtype=np.float64)
    p = 1.0 / (ranks + 2.0) ** 1.05
    w.merchant_p = p / p.sum()
    w.merchant_median = np.exp(rng.normal(math.log(60.0), 1.0, m)) * 100
    foreign = rng.random(m) < 0.03
    w.payee.new(m, individual=False, cur=foreign.astype(np.int8))
    w.individual_pool = w.payee.new(max(20, w.n // 3), individual=True, cur=0)


def _normal(w: _World, rng: np.random.Generator) -> None:
    """Everyday life for every account (fraud roles have switched parts of it off)."""
    n = w.n
    p_w = w.p
    acc = np.arange(n, dtype=np.int64)
    years = (w.t_end - w.created) / YEAR
    end = np.full(n, w.t_end)

    # personal devices: one or two; with two, half the time the second replaces the first
    nd = w.n_dev.astype(np.int64)
    owner = np.repeat(acc, nd)
    second = np.zeros(len(owner), dtype=bool)
    second[1:] = owner[1:] == owner[:-1]
    os_ = rng.choice(4, size=len(owner), p=[0.6, 0.32, 0.05, 0.03])
    # developers, gamers, and "dual app" cloners, which look like emulators
    emu = (os_ == _ANDROID) & (rng.random(len(owner)) < p_w.honest_emulator_rate)
    devs = w.dev.new(len(owner), os=os_, emu=emu)
    co = w.created[owner]
    switch = co + ((w.t_end - co) * rng.uniform(0.2, 0.8, n)[owner]).astype(np.int64)
    upgrade = (rng.random(n) < 0.5)[owner] & (nd[owner] == 2)
    first_of_upgrade = upgrade & ~second
    lo = np.where(upgrade & second, switch, co)
    hi = np.where(first_of_upgrade, switch, w.t_end)
    w.sight(w.e_dev, rng, owner, devs, lo, hi, _counts(rng, 4 * (hi - lo) / YEAR))

    # own phone (a few have a second one), seen at sign-up and now and then
    has = w.own_phone
    k2 = (rng.random(n) < 0.08) & has
    owners = np.concatenate([acc[has], acc[k2]])
    virtual: Arr | bool = False
    if p_w.honest_virtual_phone_rate > 0:  # honest users of virtual operators' numbers
        virtual = w.stream("honest-virtual").random(len(owners)) < p_w.honest_virtual_phone_rate
    phones = w.phone.new(len(owners), virtual=virtual)
    w.sight(w.e_phone, rng, owners, phones, w.created[owners], w.t_end,
            _counts(rng, 1.0 * years[owners]))  # fmt: skip

    # email: one each
    emails = w.email.new(n)
    w.sight(w.e_id["email"], rng, acc, emails, w.created, end, _counts(rng, 0.5 * years))

    # home IP (household members use the household's)
    h = acc[w.own_home]
    w.sight(w.e_id["ip"], rng, h, w.ip.new(len(h)), w.created[h], w.t_end,
            _counts(rng, 3 * years[h]))  # fmt: skip

    # carrier NAT: a few hundred mobile IPs each shared by thousands of accounts
    n_nat = max(2, round(n / p_w.nat_accounts_per_ip))
    nat = w.ip.new(n_nat)
    p = 1.0 / (np.arange(n_nat) + 3.0)
    p /= p.sum()
    mobile = acc[rng.random(n) < 0.85]
    k = rng.integers(1, 4, len(mobile))
    a = np.repeat(mobile, k)
    ip = rng.choice(n_nat, size=len(a), p=p)
    pair = _distinct(a * n_nat + ip)
    a, ip = pair // n_nat, pair % n_nat
    w.sight(w.e_id["ip"], rng, a, nat[ip], w.created[a], w.t_end, rng.integers(1, 5, len(a)))
    order = np.argsort(ip, kind="stable")
    sizes = np.bincount(ip, minlength=n_nat)
    keep = sizes > 0
    w.groups("carrier_nat", sizes[keep], a[order])

    # ID document for ID-verified accounts, seen at verification
    d = acc[(w.kyc >= 2) & w.own_doc]
    w.sight(w.e_id["id_document"], rng, d, w.doc.new(len(d)), w.created[d],
            w.created[d] + 3 * DAY, rng.integers(1, 3, len(d)))  # fmt: skip

    # bank cards: one, sometimes two
    cc = w.own_card
    owners = np.concatenate([acc[cc], acc[cc & (rng.random(n) < 0.15)]])
    w.sight(w.e_id["bank_card"], rng, owners, w.card.new(len(owners)), w.created[owners],
            w.t_end, _counts(rng, 1.0 * years[owners]))  # fmt: skip

    # merchant payments: heavy-tailed activity, Zipf popularity, so a few payees are supernodes
    activity = (
        np.exp(rng.normal(0.0, 0.8, n)) * p_w.payments_per_year * w.pay_scale / math.exp(0.32)
    )
    k = rng.poisson(activity * np.maximum(years, 7 / 365))
    a = np.repeat(acc, k)
    merchant = w.zipf_merchants(rng, len(a))
    t = w.times(rng, w.created[a], np.full(len(a), w.t_end))
    cents = w.merchant_median[merchant] * np.exp(rng.normal(0.0, 0.8, len(a)))
    round_ = rng.random(len(a)) < 0.04
    cents = np.where(round_, rng.choice(_ROUND_CENTS[:3] // 5, size=len(a)), cents)
    w.pay(a, merchant, t, cents)

    # friends and family: a few individual payees each
    f = acc[w.friends & (rng.random(n) < 0.6)]
    nf = rng.integers(1, 4, len(f))
    a = np.repeat(f, nf)
    friend = w.individual_pool[rng.integers(0, len(w.individual_pool), len(a))]
    kk = rng.integers(1, 4, len(a))
    a2 = np.repeat(a, kk)
    t = w.times(rng, w.created[a2], np.full(len(a2), w.t_end))
    cents = np.where(
        rng.random(len(a2)) < 0.5,
        rng.choice(np.array([5000, 10000, 20000, 52000, 100000, 131400]), size=len(a2)),
        np.exp(rng.normal(math.log(300.0), 1.0, len(a2))) * 100,
    )
    w.pay(a2, np.repeat(friend, kk), t, cents)
