"""Outages: the API's driver limits, and ``/healthz``'s read of Neo4j within its own deadline.

With the driver's defaults a dead (``kill -9``) or frozen (``SIGSTOP``) Neo4j made requests hang
for 15-38 s, and ``/healthz`` hung for 36 s and then answered 200. Three things bound that now
(docs/api.md#outages):

* the API's driver gives up quickly: 2 s to connect (``api_neo4j_connection_timeout``), 2 s to
  get a connection (``api_neo4j_acquisition_timeout``), which includes checking a pooled one
  with a round trip before every use (so a frozen server is noticed before a query is sent to
  it), and no transaction retries (``api_neo4j_max_retry_time``; clients retry). Its errors
  become ``Neo4jUnavailableError``, which a query answers by name, and for the next second
  (``api_neo4j_unavailable_hold_s``) every call fails the same way at once, so requests do
  not queue behind the worker threads that wait out a frozen server;
* a read already in flight when the server froze is bounded by the server's receive-timeout
  hint (the embedded Neo4j's ``neo4j_recv_timeout``, 4 s);
* ``/healthz`` reads Neo4j in a thread of its own with a deadline of its own
  (``api_health_timeout``, 2 s): :class:`HealthProbe`.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import Future, ThreadPoolExecutor

from ringscope.graph.connection import Graph
from ringscope.models.builds import BuildInfo, current_build
from ringscope.settings import Settings


def api_driver_settings(settings: Settings) -> Settings:
    """The settings the API's driver is opened with: its query timeout and its short driver
    limits in place of the ones every other command uses; a pooled connection idle longer than
    ``api_neo4j_liveness_check_s`` is checked (one round trip) before it is used."""
    return settings.model_copy(
        update={
            "neo4j_query_timeout": settings.api_query_timeout,
            "neo4j_connection_timeout": settings.api_neo4j_connection_timeout,
            "neo4j_acquisition_timeout": settings.api_neo4j_acquisition_timeout,
            "neo4j_max_retry_time": settings.api_neo4j_max_retry_time,
            "neo4j_liveness_check_timeout": settings.api_neo4j_liveness_check_s,
            "neo4j_unavailable_hold_s": settings.api_neo4j_unavailable_hold_s,
        }
    )


class HealthProbe:
    """Reads the current build for ``/healthz`` within ``timeout`` seconds.

    In a thread of its own, not the request threads: those may all be waiting on a frozen
    Neo4j, and health must still answer. One read at a time: while a read hangs, more reads
    would only pile up blocked threads, so a later probe waits on the same read, and a read
    already older than the deadline is an answer in itself (Neo4j is not answering): the probe
    fails at once. A read that ends, however late, lets the next probe start a fresh one, so
    health comes back as soon as Neo4j does.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="ringscope-health")
        self._pending: tuple[float, Future[BuildInfo | None]] | None = None

    async def current_build(self, graph: Graph) -> BuildInfo | None:
        """The current build; raises TimeoutError past the deadline, or the read's own error.
        Called on the event loop only (no lock needed for the pending read)."""
        now = time.monotonic()
        if self._pending is None or self._pending[1].done():
            self._pending = (now, self._executor.submit(current_build, graph))
        started, read = self._pending
        remaining = started + self.timeout - now
        if remaining <= 0:
            raise TimeoutError(f"Neo4j has not answered for {now - started:.1f} s")
        answer = asyncio.wrap_future(read)
        answer.add_done_callback(_retrieve)
        # shield: a probe that gives up must not cancel the read other probes wait on.
        return await asyncio.wait_for(asyncio.shield(answer), remaining)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _retrieve(answer: asyncio.Future[BuildInfo | None]) -> None:
    """Take the read's error out of a future nobody awaits any more (the probe gave up): else
    asyncio logs "Future exception was never retrieved" for every late failure."""
    if not answer.cancelled():
        answer.exception()
