"""Reaching Neo4j: the external server named by NEO4J_URI, or else the embedded default.

Everything that needs the graph goes through :func:`connect`; it is the only place that decides
whether to launch anything. The driver it returns is injected into the code that uses it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, LiteralString, Protocol, TypeVar

import neo4j
from neo4j.exceptions import (
    AuthError,
    ConnectionPoolError,
    DatabaseUnavailable,
    DriverError,
    Neo4jError,
    ServiceUnavailable,
    SessionExpired,
)

from ringscope.errors import Neo4jAuthError, Neo4jUnavailableError
from ringscope.graph.embedded import EmbeddedNeo4j
from ringscope.settings import Settings

T = TypeVar("T")

# The driver's ways of saying that Neo4j cannot be reached right now (refused, timed out, gone
# mid-transaction, no connection within the acquisition timeout, the database offline). They
# become Neo4jUnavailableError, a named error: the CLI prints it in one line and the API answers
# it as such (a GraphQL error, or a 503) instead of "Internal server error."
UNAVAILABLE: tuple[type[Exception], ...] = (
    ServiceUnavailable,
    SessionExpired,
    ConnectionPoolError,
    DatabaseUnavailable,
)
_CONNECT_FAILURES: tuple[type[Exception], ...] = (*UNAVAILABLE, OSError, ValueError)
UNAVAILABLE_MESSAGE = (
    "Neo4j is unavailable (it refused the connection or did not answer in time); retry shortly."
)


def unavailable() -> Neo4jUnavailableError:
    """The named error for a driver error in :data:`UNAVAILABLE`. Raised ``from`` the driver's
    error, which stays in the cause (for the log): its text names the server's address, which
    an API client has no business seeing."""
    return Neo4jUnavailableError(UNAVAILABLE_MESSAGE)


class Reader(Protocol):
    """What a read function needs of where its statements run: ``run``. A managed transaction
    (:meth:`Graph.read_tx`) is one; so is :meth:`Graph.read_auto`'s auto-commit session."""

    def run(
        self, query: LiteralString, parameters: dict[str, Any] | None = None
    ) -> neo4j.Result: ...


class _AutoCommit:
    """Each statement its own auto-commit transaction, with the configured timeout."""

    def __init__(self, session: neo4j.Session, timeout: float) -> None:
        self._session = session
        self._timeout = timeout

    def run(self, query: LiteralString, parameters: dict[str, Any] | None = None) -> neo4j.Result:
        return self._session.run(neo4j.Query(query, timeout=self._timeout), parameters)


class Reads(Protocol):
    """Statements that each return their records: :meth:`Graph.read` (each its own transaction),
    or the reads of one open transaction (:meth:`Graph.reads`)."""

    def read(
        self, text: LiteralString, params: Mapping[str, Any] | None = None
    ) -> list[neo4j.Record]: ...


class _TxReads:
    """:meth:`Graph.read`'s shape over one open transaction."""

    def __init__(self, tx: neo4j.Transaction) -> None:
        self._tx = tx

    def read(
        self, text: LiteralString, params: Mapping[str, Any] | None = None
    ) -> list[neo4j.Record]:
        return list(self._tx.run(text, dict(params or {})))


@dataclass(frozen=True)
class Target:
    """Where to connect and as whom. ``embedded`` says whether RingScope owns the server."""

    uri: str
    user: str
    password: str | None
    database: str
    embedded: bool


def resolve_target(settings: Settings, *, start: bool = True) -> Target:
    """NEO4J_URI when set (nothing is launched), else the embedded instance (started if needed)."""
    if settings.neo4j_uri:
        password = settings.neo4j_password.get_secret_value() if settings.neo4j_password else None
        return Target(
            settings.neo4j_uri, settings.neo4j_user, password, settings.neo4j_database, False
        )
    embedded = EmbeddedNeo4j(settings)
    instance = embedded.start()[0] if start else embedded.status()
    if instance is None:
        raise Neo4jUnavailableError(
            "The embedded Neo4j is not running; start it with `ringscope neo4j start`."
        )
    return Target(instance.uri, instance.user, instance.password, settings.neo4j_database, True)


class Graph:
    """A driver plus the database name, so no query forgets which database it is for.

    Two ways to run Cypher, both with the server-side timeout: one statement (:meth:`read`,
    :meth:`write`, :meth:`write_records`, through ``execute_query`` and its bookmark manager),
    or a function of one managed transaction (:meth:`read_tx`, :meth:`write_tx`, in a session
    of its own) for several statements that must see the same data, or a function of a
    :class:`Reader` whose statements each commit on their own (:meth:`read_auto`, hot reads), or
    several reads in one open transaction (:meth:`reads`) where ids pass between them.

    With ``unavailable_hold_s`` above 0 (the API's ``api_neo4j_unavailable_hold_s``), once Neo4j
    is found unavailable every call fails at once with the same named error for that long,
    instead of each waiting out the driver's timeouts; the first call after it tries Neo4j
    again. So a frozen server costs one request the acquisition timeout, not every request
    queued behind the few threads that wait on it.
    """

    def __init__(
        self,
        driver: neo4j.Driver,
        database: str,
        query_timeout: float,
        unavailable_hold_s: float = 0.0,
    ) -> None:
        self.driver = driver
        self.database = database
        self.query_timeout = query_timeout
        self.unavailable_hold_s = unavailable_hold_s
        self._unavailable_until = 0.0

    def _check_available(self) -> None:
        if self._unavailable_until and time.monotonic() < self._unavailable_until:
            raise unavailable()

    def _unavailable(self) -> Neo4jUnavailableError:
        if self.unavailable_hold_s > 0:
            self._unavailable_until = time.monotonic() + self.unavailable_hold_s
        return unavailable()

    def query(self, text: LiteralString) -> neo4j.Query:
        """Wrap a Cypher constant with the configured server-side timeout."""
        return neo4j.Query(text, timeout=self.query_timeout)

    def read(
        self, text: LiteralString, params: Mapping[str, Any] | None = None
    ) -> list[neo4j.Record]:
        """Run a read query (routed to a reader on a cluster) and return its records."""
        self._check_available()
        try:
            records, _, _ = self.driver.execute_query(
                self.query(text),
                dict(params or {}),
                database_=self.database,
                routing_=neo4j.RoutingControl.READ,
            )
        except UNAVAILABLE as exc:
            raise self._unavailable() from exc
        return records

    def write(
        self, text: LiteralString, params: Mapping[str, Any] | None = None
    ) -> neo4j.ResultSummary:
        """Run a write query in a managed (retried) transaction and return its summary."""
        return self._write(text, params)[1]

    def write_records(
        self, text: LiteralString, params: Mapping[str, Any] | None = None
    ) -> list[neo4j.Record]:
        """Run a write query in a managed (retried) transaction and return its records."""
        return self._write(text, params)[0]

    def _write(
        self, text: LiteralString, params: Mapping[str, Any] | None
    ) -> tuple[list[neo4j.Record], neo4j.ResultSummary]:
        self._check_available()
        try:
            records, summary, _ = self.driver.execute_query(
                self.query(text),
                dict(params or {}),
                database_=self.database,
                routing_=neo4j.RoutingControl.WRITE,
            )
        except UNAVAILABLE as exc:
            raise self._unavailable() from exc
        return records, summary

    def read_tx(self, work: Callable[[neo4j.ManagedTransaction], T]) -> T:
        """Run ``work`` in one managed (retried) read transaction with the configured timeout."""
        self._check_available()
        try:
            with self.driver.session(database=self.database) as session:
                return session.execute_read(neo4j.unit_of_work(timeout=self.query_timeout)(work))
        except UNAVAILABLE as exc:
            raise self._unavailable() from exc

    def read_auto(self, work: Callable[[Reader], T]) -> T:
        """Run ``work``'s statements each as its own auto-commit read: one round trip apiece
        (RUN with PULL), where a managed transaction adds BEGIN and a COMMIT round trip.

        For hot reads whose statements need no common transaction (an API request's): on the
        2-core bench machine the managed transaction cost the server about 0.3 ms and Neo4j
        about 0.3 ms of CPU per request (docs/api.md, session 29). Auto-commit statements are not
        retried by the driver, so an error the driver calls retryable (a lost connection, a
        transient failure) runs ``work`` again in :meth:`read_tx`, whose retries follow the
        driver's policy: ``work`` must only read.
        """
        self._check_available()
        try:
            with self.driver.session(
                database=self.database, default_access_mode=neo4j.READ_ACCESS
            ) as session:
                return work(_AutoCommit(session, self.query_timeout))
        except (Neo4jError, DriverError) as exc:
            if not exc.is_retryable():
                if isinstance(exc, UNAVAILABLE):
                    raise self._unavailable() from exc
                raise
        return self.read_tx(work)

    @contextmanager
    def reads(self) -> Iterator[Reads]:
        """One read transaction held open for reads that pass node ids from one statement to the
        next (an account's neighbourhood, then that neighbourhood's edges): Neo4j promises an
        internal or element id's meaning only within one transaction. With the driver's query
        bookmark manager, as :meth:`read` has, so a read after this process's write sees it.
        Not retried (a retried one would rerun the caller's code in between): for request
        paths whose client retries reads (the risk engine, the workbench).
        """
        self._check_available()
        try:
            with (
                self.driver.session(
                    database=self.database,
                    default_access_mode=neo4j.READ_ACCESS,
                    bookmark_manager=self.driver.execute_query_bookmark_manager,
                ) as session,
                session.begin_transaction(timeout=self.query_timeout) as tx,
            ):
                yield _TxReads(tx)
        except UNAVAILABLE as exc:
            raise self._unavailable() from exc

    def write_tx(self, work: Callable[[neo4j.ManagedTransaction], T]) -> T:
        """Run ``work`` in one managed (retried) write transaction with the configured timeout."""
        self._check_available()
        try:
            with self.driver.session(database=self.database) as session:
                return session.execute_write(neo4j.unit_of_work(timeout=self.query_timeout)(work))
        except UNAVAILABLE as exc:
            raise self._unavailable() from exc

    def close(self) -> None:
        self.driver.close()

    def reconnect(self, settings: Settings) -> None:
        """Swap in a fresh driver, after the store under this one was replaced (a bulk import):
        the old driver's pooled connections and causal bookmarks belong to the old store."""
        fresh = connect(settings)
        old, self.driver = self.driver, fresh.driver
        old.close()

    def __enter__(self) -> Graph:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(settings: Settings, *, start: bool = True) -> Graph:
    """Open a verified connection, translating driver errors into ones that say what to do.

    The driver's timeouts come from the settings (``neo4j_connection_timeout`` and the rest):
    its own defaults (30 s to connect, 60 s to get a connection, 30 s of retries) made a request
    to a dead or frozen Neo4j hang for 15-38 s in the API. A read already in flight on a frozen
    server is bounded by the server's ``connection.recv_timeout_seconds`` hint instead (the
    embedded Neo4j's is ``neo4j_recv_timeout``).
    """
    target = resolve_target(settings, start=start)
    auth = (target.user, target.password) if target.password is not None else None
    # Notifications (e.g. "relationship type does not exist yet") are noise for generated queries.
    driver = neo4j.GraphDatabase.driver(
        target.uri,
        auth=auth,
        notifications_min_severity="OFF",
        connection_timeout=settings.neo4j_connection_timeout,
        connection_acquisition_timeout=settings.neo4j_acquisition_timeout,
        max_transaction_retry_time=settings.neo4j_max_retry_time,
        liveness_check_timeout=settings.neo4j_liveness_check_timeout,
    )
    try:
        driver.verify_connectivity()
    except AuthError:
        driver.close()
        source = "the embedded instance's password file" if target.embedded else "NEO4J_PASSWORD"
        raise Neo4jAuthError(
            f"Neo4j at {target.uri} rejected the credentials of user {target.user!r}. "
            f"Check NEO4J_USER and {source}."
        ) from None
    except _CONNECT_FAILURES as exc:
        driver.close()
        raise Neo4jUnavailableError(
            f"Cannot reach Neo4j at {target.uri}: {exc}. Check that the server runs and that "
            "NEO4J_URI is right (bolt://, neo4j:// or neo4j+s://)."
        ) from None
    return Graph(
        driver, target.database, settings.neo4j_query_timeout, settings.neo4j_unavailable_hold_s
    )
