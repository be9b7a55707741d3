"""Per-key token buckets: how often one API key may run an expensive operation.

One ``explain`` reads an account's whole neighbourhood and runs the model on it (1.4 to 12 s on
a hub-linked account, issue #19), so each key gets a budget of them: a bucket of ``capacity``
tokens, refilled at ``per_minute`` tokens a minute, one token per call. An empty bucket answers
HTTP 429 with ``Retry-After`` (the seconds until the next token), not a queue: a client that
waits that long is served.

Buckets are keyed by (key id, role) and live in memory, in one process: with ``--workers N`` a
key may run up to N times the budget, and a restart refills every bucket. That is enough to stop
one key from tying up the server's threads; it is not a quota. Buckets of keys unused for long
enough to be full again are dropped, so the table holds only recently active keys.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ringscope.errors import RingScopeError


class RateLimitedError(RingScopeError):
    """A key spent its budget of an operation; ``retry_after`` seconds until the next token."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    @property
    def retry_after_header(self) -> str:
        """``Retry-After`` in whole seconds, rounded up (at least 1)."""
        return str(max(1, math.ceil(self.retry_after)))


@dataclass
class _Bucket:
    tokens: float
    at: float


class KeyBuckets:
    """Token buckets per (key id, role); thread-safe (requests execute on several threads)."""

    def __init__(
        self,
        what: str,
        capacity: int,
        per_minute: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"a {what} bucket holds at least 1 token, not {capacity}")
        if per_minute <= 0:
            raise ValueError(f"a {what} bucket refills at more than 0 a minute, not {per_minute}")
        self.what = what
        self.capacity = capacity
        self.per_second = per_minute / 60.0
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._full_after = capacity / self.per_second  # seconds for an empty bucket to refill
        self._last_sweep = clock()

    def take(self, key_id: str, role: str) -> None:
        """Spend one token of this key's bucket, or raise :class:`RateLimitedError`."""
        now = self._clock()
        with self._lock:
            self._sweep(now)
            b = self._buckets.get((key_id, role))
            if b is None:
                b = self._buckets[(key_id, role)] = _Bucket(float(self.capacity), now)
            b.tokens = min(float(self.capacity), b.tokens + (now - b.at) * self.per_second)
            b.at = now
            if b.tokens >= 1.0:
                b.tokens -= 1.0
                return
            wait = (1.0 - b.tokens) / self.per_second
        raise RateLimitedError(
            f"Too many {self.what} calls: this API key may make {self.capacity} at once and "
            f"{self.per_second * 60:g} a minute after that; retry in {math.ceil(wait)} s.",
            wait,
        )

    def __len__(self) -> int:
        with self._lock:
            return len(self._buckets)

    def _sweep(self, now: float) -> None:
        """Drop buckets that have refilled completely: they are the same as no bucket."""
        if now - self._last_sweep < self._full_after:
            return
        self._last_sweep = now
        full = [k for k, b in self._buckets.items() if now - b.at >= self._full_after]
        for k in full:
            del self._buckets[k]


__all__ = ["KeyBuckets", "RateLimitedError"]
