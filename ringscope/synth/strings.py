"""Identifier strings: IPs, emails, resident identity numbers and card numbers (valid check
characters), and the words names are made of. Each is a bijection of an entity index, so
distinct entities get distinct values."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ringscope.synth.arrays import _const, _digits, _fixed, _int_str, _join, _scramble

# fmt: off
_SURNAMES = (
    "wang", "li", "zhang", "liu", "chen", "yang", "huang", "zhao", "wu", "zhou", "xu", "sun",
    "ma", "zhu", "hu", "guo", "he", "gao", "lin", "luo", "zheng", "liang", "xie", "song", "tang",
    "han", "feng", "deng", "cao", "peng", "zeng", "xiao", "tian", "dong", "pan", "yuan",
)
_GIVEN = (
    "wei", "fang", "na", "min", "jing", "li", "qiang", "lei", "jun", "yang", "yong", "yan",
    "jie", "tao", "ming", "chao", "xiu", "xia", "hui", "ping", "gang", "hua", "fei", "bin",
    "ying", "hong", "lan", "jian", "bo", "yu", "xin", "hao", "yi", "ting", "kai",
)
_BRANDS = (
    "Golden Dragon", "Jade", "Lucky Star", "Harmony", "Sunrise", "Panda", "Red Lantern",
    "Silk Road", "Bamboo", "Pearl River", "Blue Sky", "Evergreen", "Phoenix", "Great Wall",
    "Lotus", "Peony", "Summit", "Orient", "Mingyue", "Fortune",
)
_CATEGORIES = (
    "Supermarket", "Coffee", "Noodle House", "Electronics", "Pharmacy", "Mobile Top-up",
    "Cinema", "Bookstore", "Fashion", "Hotpot", "Bakery", "Fuel", "Taxi", "Food Delivery",
    "Games", "Travel", "Convenience Store", "Hotel", "Tea House", "Home Goods",
)
# fmt: on
_EMAIL_DOMAINS = (
    "qq.com",
    "163.com",
    "126.com",
    "gmail.com",
    "outlook.com",
    "sina.com",
    "foxmail.com",
    "hotmail.com",
)  # fmt: skip
_EMAIL_DOMAIN_P = (0.35, 0.2, 0.1, 0.1, 0.08, 0.07, 0.06, 0.04)
_ID_REGIONS = (110101, 110105, 310104, 310115, 440106, 440305, 510107, 330106, 320102, 420106,
               610113, 500103, 120101, 370202, 350203, 210102)  # fmt: skip
_CARD_BINS = (2100, 2148, 2260, 2284, 2580, 2662, 2700, 2880)


def _ip_strings(n: int, salt: int) -> pa.Array:
    allowed = np.array([o for o in range(1, 224) if o not in (10, 100, 127, 169, 172, 192, 198)])
    v = _scramble(np.arange(n), len(allowed) << 24, salt)
    octets = [allowed[v >> 24], (v >> 16) & 255, (v >> 8) & 255, v & 255]
    return pc.binary_join_element_wise(*[_int_str(o) for o in octets], ".")


def _email_strings(rng: np.random.Generator, n: int, salt: int) -> pa.Array:
    space = max(10**7, 10 ** len(str(2 * n)))
    num = _scramble(np.arange(n), space, salt)
    domain = rng.choice(len(_EMAIL_DOMAINS), size=n, p=_EMAIL_DOMAIN_P)
    sur = pa.array(_SURNAMES).take(pa.array(rng.integers(0, len(_SURNAMES), n)))
    given = pa.array(_GIVEN).take(pa.array(rng.integers(0, len(_GIVEN), n)))
    sep = pa.array(["", ".", "_", ""]).take(pa.array(rng.integers(0, 4, n)))
    name = _join(given, sep, sur)
    qq = domain == 0
    local = pc.if_else(pa.array(qq), _int_str(num + 10**8 + space), _join(name, _int_str(num)))
    return _join(local, "@", pa.array(_EMAIL_DOMAINS).take(pa.array(domain)))


def _doc_strings(n: int, salt: int) -> pa.Array:
    """18-character resident identity numbers with a valid ISO 7064 check character."""
    n_days = 52 * 365  # born 1955..2006
    space = len(_ID_REGIONS) * n_days * 1000
    v = _scramble(np.arange(n), space, salt)
    region = np.array(_ID_REGIONS)[v // (n_days * 1000)]
    day = (v // 1000) % n_days
    seq = v % 1000
    date = np.datetime64("1955-01-01") + day.astype("timedelta64[D]")
    y = date.astype("datetime64[Y]").astype(np.int64) + 1970
    mo = date.astype("datetime64[M]").astype(np.int64) % 12 + 1
    d = (date - date.astype("datetime64[M]")).astype(np.int64) + 1
    body = np.concatenate(
        [_digits(region, 6), _digits(y, 4), _digits(mo, 2), _digits(d, 2), _digits(seq, 3)], axis=1
    )
    weights = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2])
    check = np.frombuffer(b"10X98765432", dtype=np.uint8)[((body - 48) @ weights) % 11]
    return _fixed([body, check[:, None]])


def _card_strings(n: int, salt: int) -> pa.Array:
    """16-digit UnionPay-style card numbers with a valid Luhn check digit."""
    v = _scramble(np.arange(n), len(_CARD_BINS) * 10**9, salt)
    bins = np.array(_CARD_BINS)[v // 10**9]
    body = np.concatenate([_const("62", n), _digits(bins, 4), _digits(v % 10**9, 9)], axis=1)
    dig = (body - 48).astype(np.int64)
    doubled = dig[:, ::-1][:, ::2] * 2  # rightmost payload digit and every second one leftwards
    total = (doubled - 9 * (doubled > 9)).sum(axis=1) + dig[:, ::-1][:, 1::2].sum(axis=1)
    check = (10 - total % 10) % 10
    return _fixed([body, _digits(check, 1)])
