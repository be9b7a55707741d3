"""A deadline on reading each request, for the server's HTTP connections (issue #19).

Why: uvicorn times out an idle keep-alive connection (``timeout_keep_alive``), but nothing
bounds how long a client may take to *send* a request. A connection that sends half its headers,
or a ``Content-Length`` and then a trickle of body, is held open for ever. In the review, 200
such half-open connections were all still held after 10 s (slowloris): each costs a socket and
a file descriptor, and enough of them exhaust the process's descriptors or the concurrency
limit, and then honest clients are refused.

:class:`ReadDeadlineProtocol` is uvicorn's httptools protocol with one more timer: armed when a
connection opens and when each request's first byte arrives, disarmed when the request's headers
*and* body are in. If it fires first, the connection is closed (an app already reading the body
sees ``http.disconnect``). Requests already read are unaffected, however long they take to
answer: the query deadlines bound those.

The deadline is a class attribute set by :func:`configure` from ``api_read_timeout_s``, not a
constructor argument: with several worker processes uvicorn passes its config (this class
included) to each by pickling, so the class must be importable by name, and each worker's app
factory calls :func:`configure` with the worker's own settings before it accepts a connection.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ringscope.settings import Settings


class ReadDeadlineProtocol(HttpToolsProtocol):
    """httptools' protocol, with the connection closed when a request is not read in time."""

    read_timeout_s: float = 10.0
    _read_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()  # a keep-alive connection's next request: its own deadline

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def _arm(self) -> None:
        self._disarm()
        self._read_deadline = self.loop.call_later(self.read_timeout_s, self._read_expired)

    def _disarm(self) -> None:
        if self._read_deadline is not None:
            self._read_deadline.cancel()
            self._read_deadline = None

    def _read_expired(self) -> None:
        self._read_deadline = None
        if not self.transport.is_closing():
            self.transport.close()


def configure(settings: Settings) -> type[ReadDeadlineProtocol]:
    """Set the read deadline from the settings; returns the protocol class for uvicorn."""
    ReadDeadlineProtocol.read_timeout_s = settings.api_read_timeout_s
    return ReadDeadlineProtocol
