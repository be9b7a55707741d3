"""The ASGI application: ``/graphql``, ``/healthz`` and ``/metrics``, served by uvicorn.

A small ASGI app of its own rather than ``strawberry.asgi.GraphQL`` (which needs Starlette, not
a dependency): it does exactly what the API needs and nothing else. POST only for operations (a
GET never runs a query, so no mutation can ride on a link), one operation per request (no
batching), a bearer API key on every ``/graphql`` request, a request id, and the audit records
written before any response leaves. The Neo4j driver is opened on lifespan startup and closed on
shutdown: one per process.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import strawberry
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from strawberry.http.ides import get_graphql_ide_html

from api import service
from api.audit import AuditBuffer, AuditLog, AuditWriteError
from api.auth import KeyVerifier, init_api_schema
from api.context import Masker, RequestContext
from api.schema import build_schema
from graph.connection import Graph, connect
from ringscope.settings import Settings

log = logging.getLogger("ringscope.api")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class _BodyTooLarge(Exception):
    pass


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "ringscope_api_requests",
            "HTTP requests by path and status.",
            ["path", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "ringscope_api_graphql_seconds",
            "Time to answer a /graphql POST, end to end.",
            buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "ringscope_api_in_flight", "GraphQL requests being answered.", registry=self.registry
        )
        self.auth_failures = Counter(
            "ringscope_api_auth_failures", "Requests refused for a bad key.", registry=self.registry
        )
        self.audit_records = Counter(
            "ringscope_api_audit_records", "Audit records written.", registry=self.registry
        )
        self.audit_failures = Counter(
            "ringscope_api_audit_failures", "Requests refused: audit log failed.",
            registry=self.registry,
        )  # fmt: skip
        self.graphql_errors = Counter(
            "ringscope_api_graphql_errors", "GraphQL errors returned.", registry=self.registry
        )


class RingScopeApp:
    """The ASGI app. ``graph`` may be injected (tests, benchmarks); else lifespan connects."""

    def __init__(self, settings: Settings, graph: Graph | None = None) -> None:
        self.settings = settings
        self.schema: strawberry.Schema = build_schema(settings)
        self.metrics = Metrics()
        self.audit_log = AuditLog(settings.api_audit_dir or settings.data_dir / "audit")
        self.masker = Masker(secrets.token_bytes(32))
        self.graphiql = settings.api_env != "production"
        self._graph = graph
        self._owns_graph = graph is None
        self._verifier: KeyVerifier | None = None
        self._executor: ThreadPoolExecutor | None = None

    @property
    def graph(self) -> Graph:
        if self._graph is None:
            raise RuntimeError("The app has not started (no lifespan startup yet).")
        return self._graph

    # --- lifespan ----------------------------------------------------------------------------

    def startup(self) -> None:
        if self._graph is None:
            api_settings = self.settings.model_copy(
                update={"neo4j_query_timeout": self.settings.api_query_timeout}
            )
            self._graph = connect(api_settings)
        init_api_schema(self._graph)
        self._verifier = KeyVerifier(self._graph, self.settings.api_key_cache_seconds)

    def shutdown(self) -> None:
        if self._graph is not None and self._owns_graph:
            self._graph.close()
            self._graph = None

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    self._executor = ThreadPoolExecutor(
                        self.settings.api_threads, thread_name_prefix="ringscope-api"
                    )
                    asyncio.get_running_loop().set_default_executor(self._executor)
                    await asyncio.get_running_loop().run_in_executor(None, self.startup)
                except Exception as exc:
                    log.exception("API startup failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.shutdown()
                if self._executor is not None:
                    self._executor.shutdown(wait=False)
                await send({"type": "lifespan.shutdown.complete"})
                return

    # --- HTTP --------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return  # no websockets: no subscriptions
        path = scope.get("path", "")
        status, headers, body = await self._route(scope, receive, path)
        self.metrics.requests.labels(path if path in _PATHS else "other", str(status)).inc()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(k.encode(), v.encode()) for k, v in headers],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _route(
        self, scope: Scope, receive: Receive, path: str
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        method = scope.get("method", "GET")
        if path == "/graphql":
            return await self._graphql(scope, receive, method)
        if path == "/healthz" and method in ("GET", "HEAD"):
            return await self._healthz()
        if path == "/metrics" and method == "GET":
            return (
                200,
                [("content-type", CONTENT_TYPE_LATEST)],
                generate_latest(self.metrics.registry),
            )
        return _json(404, {"error": "Not found: the API is at /graphql."})

    async def _healthz(self) -> tuple[int, list[tuple[str, str]], bytes]:
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, service.ping, self.graph)
            build = await loop.run_in_executor(None, service.current_build_id, self.graph)
        except Exception as exc:
            return _json(503, {"status": "unavailable", "neo4j": False, "error": str(exc)})
        return _json(200, {"status": "ok", "neo4j": True, "build": build})

    async def _graphql(
        self, scope: Scope, receive: Receive, method: str
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        rid = headers.get("x-request-id", "")
        request_id = rid if _REQUEST_ID.match(rid) else uuid.uuid4().hex
        extra = [("x-request-id", request_id)]
        if method == "GET":
            if scope.get("query_string") or not self.graphiql:
                return _json(
                    405,
                    {"errors": [{"message": "Queries are sent with POST; GET cannot run them."}]},
                    [*extra, ("allow", "POST")],
                )
            html = get_graphql_ide_html("graphiql").encode()
            return 200, [*extra, ("content-type", "text/html; charset=utf-8")], html
        if method != "POST":
            return _json(405, _error("Use POST for GraphQL requests."), [*extra, ("allow", "POST")])
        if not headers.get("content-type", "").startswith("application/json"):
            return _json(415, _error("Send the request as application/json."), extra)
        verifier = self._verifier
        if verifier is None:
            return _json(503, _error("The server is starting."), extra)
        loop = asyncio.get_running_loop()
        principal = await loop.run_in_executor(None, verifier.verify, headers.get("authorization"))
        if principal is None:
            self.metrics.auth_failures.inc()
            return _json(
                401,
                _error("A valid API key is required: Authorization: Bearer rsk_<id>_<secret>."),
                [*extra, ("www-authenticate", 'Bearer realm="ringscope"')],
            )
        try:
            body = await _read_body(receive, self.settings.api_max_body_bytes)
        except _BodyTooLarge:
            return _json(413, _error("The request body is too large."), extra)
        try:
            data = json.loads(body)
        except ValueError:
            return _json(400, _error("The body is not valid JSON."), extra)
        if isinstance(data, list):
            return _json(400, _error("Batched requests are not supported: one per request."), extra)
        if not isinstance(data, dict) or not isinstance(data.get("query"), str):
            return _json(400, _error("The body needs a `query` string."), extra)
        variables = data.get("variables")
        operation = data.get("operationName")
        if variables is not None and not isinstance(variables, dict):
            return _json(400, _error("`variables` must be an object."), extra)
        if operation is not None and not isinstance(operation, str):
            return _json(400, _error("`operationName` must be a string."), extra)

        audit = AuditBuffer(request_id, principal.key_id, principal.role.value)
        ctx = RequestContext(self.graph, self.settings, principal, audit, self.masker)
        t0 = time.perf_counter()
        self.metrics.in_flight.inc()
        try:
            result = await self.schema.execute(
                data["query"], variable_values=variables, context_value=ctx,
                operation_name=operation,
            )  # fmt: skip
            try:
                await loop.run_in_executor(None, self.audit_log.write, audit.records)
            except AuditWriteError:
                log.exception("audit write failed; request %s refused", request_id)
                self.metrics.audit_failures.inc()
                return _json(
                    500,
                    _error("The audit log could not be written; the request was refused."),
                    extra,
                )
            self.metrics.audit_records.inc(len(audit.records))
        finally:
            self.metrics.in_flight.dec()
            self.metrics.latency.observe(time.perf_counter() - t0)
        payload: dict[str, Any] = {"data": result.data}
        if result.errors:
            self.metrics.graphql_errors.inc(len(result.errors))
            payload["errors"] = [e.formatted for e in result.errors]
        return _json(200, payload, extra)


_PATHS = ("/graphql", "/healthz", "/metrics")


def _error(message: str) -> dict[str, Any]:
    return {"errors": [{"message": message}]}


def _json(
    status: int, payload: Any, headers: list[tuple[str, str]] | None = None
) -> tuple[int, list[tuple[str, str]], bytes]:
    body = json.dumps(payload, separators=(",", ":"), default=str).encode()
    return status, [*(headers or []), ("content-type", "application/json")], body


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def create_app(settings: Settings | None = None, graph: Graph | None = None) -> RingScopeApp:
    return RingScopeApp(settings or Settings(), graph)


def serve(settings: Settings, host: str | None = None, port: int | None = None) -> None:
    """Run the server in this process until interrupted."""
    import uvicorn

    uvicorn.run(
        create_app(settings),
        host=host or settings.api_host,
        port=port or settings.api_port,
        lifespan="on",
        log_level="info",
        access_log=False,
    )
