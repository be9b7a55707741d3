"""Small vectorised helpers: per-component random streams, index scrambling, ASCII digit
matrices made into string arrays, heavy-tailed sizes, decimals and timestamps.

Internally every entity is an integer index; strings are only built when a table is written, from
these helpers, so a million accounts never cost a Python object per value.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from ringscope.synth.schema import _AMOUNT, _TS

Arr = npt.NDArray[Any]
ArrLike = Arr | int  # an array, or a scalar broadcast to one


def _rng(seed: int, name: str) -> np.random.Generator:
    """An independent, stable random stream per component, so changing one part of the
    generator does not reshuffle every other part."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def _is_prime(n: int) -> bool:
    if n < 2:
        return False
    i = 2
    while i * i <= n:
        if n % i == 0:
            return False
        i += 1
    return True


@lru_cache(maxsize=64)
def _multiplier(space: int) -> int:
    """A prime multiplier coprime with ``space`` such that ``space * m`` fits in int64."""
    m = min((2**62) // max(space, 1), 2_654_435_761)
    m = max(m, 3)
    while not (_is_prime(m) and math.gcd(m, space) == 1 and m < 2**62 // max(space, 1) + 2):
        m -= 1
    return m


def _scramble(j: Arr, space: int, salt: int) -> Arr:
    """A bijection of [0, space): distinct indices give distinct, unordered-looking values."""
    j = np.asarray(j, dtype=np.int64)
    if j.size and int(j.max()) >= space:
        raise ValueError(f"index space exhausted ({int(j.max())} >= {space})")
    return (j * _multiplier(space) + salt % space) % space


def _digits(values: Arr, width: int) -> Arr:
    """ASCII digits of non-negative integers, zero padded: uint8 matrix (n, width)."""
    v = np.asarray(values, dtype=np.int64)
    pows = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    return ((v[:, None] // pows[None, :]) % 10 + 48).astype(np.uint8)


def _const(s: str, n: int) -> Arr:
    return np.broadcast_to(np.frombuffer(s.encode(), dtype=np.uint8), (n, len(s)))


def _fixed(parts: Sequence[Arr]) -> pa.Array:
    """A string array from equal-width ASCII byte matrices placed side by side."""
    mat = np.ascontiguousarray(np.concatenate(parts, axis=1), dtype=np.uint8)
    n, w = mat.shape
    offsets = np.arange(0, n * w + 1, w, dtype=np.int64)
    return pa.Array.from_buffers(
        pa.large_string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(mat)]
    ).cast(pa.string())


def _ids(prefix: str, n: int, width: int) -> pa.Array:
    """``prefix`` followed by 1..n zero padded to ``width`` digits."""
    w = max(width, len(str(n)))
    return _fixed([_const(prefix, n), _digits(np.arange(1, n + 1), w)])


def _int_str(values: Arr) -> pa.Array:
    return pc.cast(pa.array(np.asarray(values, dtype=np.int64)), pa.string())


def _join(*parts: Any) -> pa.Array:
    return pc.binary_join_element_wise(*parts, "")


def _counts(rng: np.random.Generator, lam: Arr, base: int = 1) -> Arr:
    return base + rng.poisson(np.maximum(lam, 0.0))


def _power_sizes(rng: np.random.Generator, lo: int, hi: int, alpha: float, n: int) -> Arr:
    sizes = np.arange(lo, hi + 1)
    p = sizes.astype(np.float64) ** -alpha
    return rng.choice(sizes, size=n, p=p / p.sum())


def _sizes_to_cover(
    rng: np.random.Generator, total: int, lo: int, hi: int, alpha: float
) -> list[int]:
    """Heavy-tailed group sizes in [lo, hi] summing to about ``total`` (the last one trimmed)."""
    out: list[int] = []
    left = total
    while left >= lo:
        batch = _power_sizes(rng, lo, hi, alpha, max(8, left // max(lo, 1)))
        for s in batch.tolist():
            if left < lo:
                break
            s = min(int(s), left)
            if left - s < lo:
                s = left if left <= hi else s
            out.append(s)
            left -= s
    return out


def _distinct(values: Arr) -> Arr:
    """Sorted distinct values (sort-based: faster than np.unique's hashing on big int arrays)."""
    v = np.sort(values)
    keep: Arr = v[np.r_[True, v[1:] != v[:-1]]] if len(v) else v
    return keep


def _decimal(cents: Arr) -> pa.Array:
    c = np.asarray(cents, dtype=np.int64)
    buf = np.ascontiguousarray(np.stack([c, c >> 63], axis=1))
    return pa.Array.from_buffers(_AMOUNT, len(c), [None, pa.py_buffer(buf)])


def _ts(seconds: Arr) -> pa.Array:
    return pa.array(np.asarray(seconds, dtype=np.int64) * 1_000_000, type=_TS)
