"""The ASGI application: ``/graphql``, ``/healthz`` and ``/metrics``, served by uvicorn.

A small ASGI app of its own rather than ``strawberry.asgi.GraphQL`` (which needs Starlette, not
a dependency): it does exactly what the API needs and nothing else. POST only for operations (a
GET never runs a query, so no mutation can ride on a link), one operation per request (no
batching), a bearer API key on every ``/graphql`` request, a request id, and the audit records
written (and fsynced) before any response leaves. The Neo4j driver is opened on lifespan startup
and closed on shutdown: one per process.

``/healthz`` is open and says only whether the API can serve fresh results (status, current
build, its age); ``/metrics`` is open unless ``api_metrics_token`` is set. The build metrics are
read from Neo4j at scrape time (:class:`BuildCollector`), so they are right in every replica
without any push from the rebuild job.
"""

from __future__ import annotations

import asyncio
import gc
import hmac
import ipaddress
import logging
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import partial
from typing import Any

import orjson
import uvicorn
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as prom_multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from strawberry.exceptions import MissingQueryError
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError

from ringscope.api import connection, service
from ringscope.api.audit import AuditBuffer, AuditLog, AuditWriteError
from ringscope.api.auth import UNANSWERED, KeyVerifier
from ringscope.api.context import Masker, RequestContext, load_mask_secret
from ringscope.api.execution import ExecutionLoops
from ringscope.api.health import HealthProbe, api_driver_settings
from ringscope.api.ratelimit import RateLimitedError
from ringscope.api.schema import RingScopeSchema, build_schema
from ringscope.api.service import clip
from ringscope.api.web import GRAPHIQL_PAGE, WORKBENCH_PAGE, StaticFiles
from ringscope.errors import Neo4jUnavailableError, RingScopeError
from ringscope.graph import cypher
from ringscope.graph.connection import Graph, connect
from ringscope.graph.schema import init_schema
from ringscope.models.builds import BuildInfo, ScoreCache, current_build
from ringscope.models.store import ModelStore
from ringscope.settings import Settings

log = logging.getLogger("ringscope.api")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


_LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

# Cluster score bands of ringscope_build_clusters: [0, 0.2), [0.2, 0.4), ..., [0.8, 1.0]. The
# lowest band also takes scores below 0 and the highest those above 1, so the bands sum to the
# build's cluster count.
SCORE_BANDS: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


class _BodyTooLarge(Exception):
    pass


def _finished_utc(info: BuildInfo) -> datetime | None:
    finished = info.finished_at
    if finished is not None and finished.tzinfo is None:
        finished = finished.replace(tzinfo=UTC)  # Neo4j's datetime() is UTC
    return finished


def build_age_seconds(info: BuildInfo, now: datetime | None = None) -> float | None:
    """Seconds since the build finished (0 if Neo4j's clock is ahead of ours); None if unknown."""
    finished = _finished_utc(info)
    if finished is None:
        return None
    return max(0.0, ((now or datetime.now(UTC)) - finished).total_seconds())


class BuildCollector(Collector):
    """The current build's metrics, read from Neo4j when Prometheus scrapes.

    One build lookup per scrape; the score-band counts are cached per build id (a complete
    build's clusters never change), so a scrape costs one indexed read between rebuilds. A failed
    read never fails the scrape: ``ringscope_neo4j_up`` drops to 0 and the build metrics are left
    out.
    """

    def __init__(self, graph: Callable[[], Graph | None]) -> None:
        self._graph = graph
        self._lock = threading.Lock()
        self._bands: tuple[str, list[int]] | None = None
        self._was_up = True

    def describe(self) -> Iterable[Metric]:
        return []  # no collect() at registration: that would query Neo4j before startup

    def band_counts(self, graph: Graph, build_id: str) -> list[int]:
        with self._lock:
            if self._bands is not None and self._bands[0] == build_id:
                return self._bands[1]
            counts = [0] * (len(SCORE_BANDS) - 1)
            bounds = list(SCORE_BANDS[1:-1])
            for r in graph.read(
                cypher.API_CLUSTER_SCORE_BANDS, {"build_id": build_id, "bounds": bounds}
            ):
                counts[int(r["band"])] += int(r["n"])
            self._bands = (build_id, counts)
            return counts

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily(
            "ringscope_neo4j_up", "1 if the API could read Neo4j on this scrape."
        )
        graph = self._graph()
        info: BuildInfo | None = None
        bands: list[int] = []
        try:
            if graph is None:
                raise RuntimeError("the app has not started")
            info = current_build(graph)
            if info is not None:
                bands = self.band_counts(graph, info.id)
        except Exception as exc:  # a scrape must not fail: report Neo4j as down instead
            if self._was_up:
                log.warning("metrics: cannot read the current build: %s", exc)
            self._was_up = False
            up.add_metric([], 0)
            yield up
            return
        self._was_up = True
        up.add_metric([], 1)
        yield up
        if info is None:
            return  # no build yet: the build metrics are absent (alert on absent())
        build = GaugeMetricFamily(
            "ringscope_build_info", "The current build (always 1).", labels=["build_id", "model"]
        )
        build.add_metric([info.id, info.model_version or ""], 1)
        yield build
        age = build_age_seconds(info)
        finished = _finished_utc(info)
        if age is not None and finished is not None:
            yield GaugeMetricFamily(
                "ringscope_build_age_seconds",
                "Seconds since the current build finished (computed at scrape time).",
                value=age,
            )
            yield GaugeMetricFamily(
                "ringscope_build_finished_timestamp_seconds",
                "When the current build finished (Unix time).",
                value=finished.timestamp(),
            )
        clusters = GaugeMetricFamily(
            "ringscope_build_clusters",
            "Clusters of the current build by score band (lower bound inclusive).",
            labels=["band"],
        )
        for i, n in enumerate(bands):
            clusters.add_metric([f"{SCORE_BANDS[i]:.1f}-{SCORE_BANDS[i + 1]:.1f}"], n)
        yield clusters
        steps = GaugeMetricFamily(
            "ringscope_build_step_seconds",
            "Seconds each step of the current build took (detection and write steps).",
            labels=["step"],
        )
        for step, seconds in sorted(info.stage_seconds.items()):
            steps.add_metric([step], float(seconds))
        yield steps
        yield GaugeMetricFamily(
            "ringscope_build_write_seconds",
            "Seconds the current build took to write, begin to switch.",
            value=info.write_seconds,
        )


def _multiprocess() -> bool:
    """Prometheus multiprocess mode: several server processes write their metrics to files in
    ``PROMETHEUS_MULTIPROC_DIR`` (set before the workers start) and any of them exports the sum."""
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class Metrics:
    def __init__(self, graph: Callable[[], Graph | None] = lambda: None) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "ringscope_api_requests",
            "HTTP requests by path and status.",
            ["path", "status"],
            registry=self.registry,
        )
        self.request_latency = Histogram(
            "ringscope_api_request_seconds",
            "Time to answer an HTTP request, by path (all outcomes, refusals included).",
            ["path"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.latency = Histogram(
            "ringscope_api_graphql_seconds",
            "Time to run an authenticated /graphql operation and write its audit records.",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.audit_latency = Histogram(
            "ringscope_api_audit_write_seconds",
            "Time to append and fsync one request's audit records.",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1),
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "ringscope_api_in_flight", "GraphQL requests being answered.", registry=self.registry,
            multiprocess_mode="livesum",
        )  # fmt: skip
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
        self.build = BuildCollector(graph)
        self.registry.register(self.build)
        # What /metrics exports: this process's registry, or with several processes every
        # process's request metrics (read from the shared files) plus the build metrics.
        self.exported = self.registry
        if _multiprocess():
            self.exported = CollectorRegistry()
            prom_multiprocess.MultiProcessCollector(self.exported)  # type: ignore[no-untyped-call]
            self.exported.register(self.build)


class RingScopeApp:
    """The ASGI app. ``graph`` may be injected (tests, benchmarks); else lifespan connects."""

    def __init__(self, settings: Settings, graph: Graph | None = None) -> None:
        self.settings = settings
        self.schema: RingScopeSchema = build_schema(settings)
        self._graph = graph
        self.metrics = Metrics(lambda: self._graph)
        self.audit_log = AuditLog(settings.api_audit_dir or settings.data_dir / "audit")
        self.masker = Masker(load_mask_secret(settings))
        self.models = ModelStore(settings.models_dir)
        # 0 turns the cache off (scores read in Cypher per request; the bench's baseline).
        n = settings.api_score_cache_chunks
        self.scores = ScoreCache(n) if n > 0 else None
        self.graphiql = settings.api_env != "production"
        self.static = StaticFiles()
        token = settings.api_metrics_token
        self._metrics_token: bytes | None = None
        if token is not None:
            if not token.get_secret_value().strip():
                raise RingScopeError(
                    "RINGSCOPE_API_METRICS_TOKEN is set but empty: set a token, or unset it to "
                    "leave /metrics open."
                )
            self._metrics_token = token.get_secret_value().strip().encode()
        self._owns_graph = graph is None
        self._verifier: KeyVerifier | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._loops: ExecutionLoops | None = None  # started by the first /graphql request
        self._health = HealthProbe(settings.api_health_timeout)

    @property
    def graph(self) -> Graph:
        if self._graph is None:
            raise RuntimeError("The app has not started (no lifespan startup yet).")
        return self._graph

    # --- lifespan ----------------------------------------------------------------------------

    def startup(self) -> None:
        if self._graph is None:
            self._graph = connect(api_driver_settings(self.settings))
        init_schema(self._graph)
        s = self.settings
        self._verifier = KeyVerifier(
            self._graph, s.api_key_cache_seconds, negative_ttl=s.api_key_negative_cache_seconds,
            max_entries=s.api_key_cache_size,
        )  # fmt: skip
        # Warm up before the first request, not beside it: loading the model imports torch and
        # LightGBM (about 5 s of CPU holding the GIL) and Neo4j plans the screening queries.
        # Run in a thread next to live traffic (as until session 17), that made the first tens
        # of seconds after /healthz turned 200 the slowest of a server's life: two-hop
        # neighbourhoods at 150/s had a p99 of 473 ms in the first 10 s, 164 ms in the next,
        # 31 ms once warm (docs/api.md). Uvicorn accepts no request until startup returns.
        service.warm_screening(self._graph, self.models, s.default_region)
        # What start-up loaded (the model, torch, LightGBM, the schema) lives as long as the
        # process: out of the collector's reach, a full collection no longer walks it. Those
        # walks took 60-170 ms each, a dozen times in 40 s per worker, holding the GIL: the
        # periodic stall in the neighbourhood p99 (docs/api.md).
        gc.collect()
        gc.freeze()

    def shutdown(self) -> None:
        gc.unfreeze()  # what startup froze is the collector's again (an app in a test process)
        if self._loops is not None:
            self._loops.stop()
            self._loops = None
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
                self._health.close()
                if _multiprocess():
                    prom_multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
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
        label = path if path in _PATHS else "/static" if path.startswith("/static/") else "other"
        t0 = time.perf_counter()
        try:
            status, headers, body = await self._route(scope, receive, path)
        except Neo4jUnavailableError as exc:  # e.g. an uncached API key could not be looked up
            log.warning("answering %s with 503: %s (%s)", label, exc, exc.__cause__)
            status, headers, body = _json(503, _error(str(exc)), [("retry-after", "1")])
        except Exception:
            log.exception("unhandled error answering %s", label)
            status, headers, body = _json(500, _error("Internal server error."))
        self.metrics.request_latency.labels(label).observe(time.perf_counter() - t0)
        self.metrics.requests.labels(label, str(status)).inc()
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
            return await self._metrics(scope)
        if method in ("GET", "HEAD"):
            if path in ("/app", "/app/"):
                return self._page(scope, WORKBENCH_PAGE)
            if path.startswith("/static/"):
                return self._page(scope, path.removeprefix("/static/"))
        return _json(404, {"error": "Not found: the API is at /graphql, the workbench at /app."})

    def _page(self, scope: Scope, name: str) -> tuple[int, list[tuple[str, str]], bytes]:
        """A built page or asset (api/web.py); HEAD gets the headers only."""
        asset = self.static.get(name, _headers(scope).get("accept-encoding", ""))
        if asset is None:
            if not self.static.built:
                return _json(
                    404,
                    {"error": "The workbench is not built into this install (api/static is "
                     "missing): reinstall the package, or run `make web` in a checkout."},
                )  # fmt: skip
            return _json(404, {"error": "Not found."})
        body = b"" if scope.get("method") == "HEAD" else asset.body
        return 200, list(asset.headers), body

    async def _metrics(self, scope: Scope) -> tuple[int, list[tuple[str, str]], bytes]:
        if self._metrics_token is not None:
            scheme, _, given = _headers(scope).get("authorization", "").partition(" ")
            ok = scheme.lower() == "bearer" and hmac.compare_digest(
                given.strip().encode(), self._metrics_token
            )
            if not ok:
                return _json(
                    401,
                    {"error": "/metrics needs Authorization: Bearer <metrics token>."},
                    [("www-authenticate", 'Bearer realm="ringscope-metrics"')],
                )
        loop = asyncio.get_running_loop()
        body = await loop.run_in_executor(None, generate_latest, self.metrics.exported)
        return 200, [("content-type", CONTENT_TYPE_LATEST)], body

    async def _healthz(self) -> tuple[int, list[tuple[str, str]], bytes]:
        """Open to anyone, so it says only: status, current build id and age, and a reason.

        503 when Neo4j cannot be read or the build is older than ``api_max_build_age_s``; 200
        ``no_build`` before the first build (see docs/api.md for why that is not a 503).
        """
        down: dict[str, Any] = {"status": "unhealthy", "neo4j": False, "build": None}
        if self._graph is None:
            return _json(503, {**down, "reason": "starting", "build_age_s": None})
        try:  # in the probe's own thread, within api_health_timeout (api/health.py)
            info = await self._health.current_build(self._graph)
        except Exception as exc:
            log.warning("healthz: cannot read Neo4j: %s (%s)", exc or type(exc).__name__,
                        exc.__cause__)  # fmt: skip
            return _json(503, {**down, "reason": "neo4j_unreachable", "build_age_s": None})
        if info is None:
            return _json(
                200, {"status": "no_build", "neo4j": True, "build": None, "build_age_s": None}
            )
        age = build_age_seconds(info)
        body: dict[str, Any] = {
            "status": "ok",
            "neo4j": True,
            "build": info.id,
            "build_age_s": None if age is None else round(age, 3),
        }
        max_age = self.settings.api_max_build_age_s
        if max_age is not None and max_age > 0 and age is not None and age > max_age:
            return _json(503, {**body, "status": "unhealthy", "reason": "build_stale"})
        return _json(200, body)

    def _runs_here(
        self, query: str, operation: str | None, variables: dict[str, Any] | None
    ) -> bool:
        """Whether the operation runs on this loop rather than an execution thread: its cost
        bound is known and at most ``api_inline_max_cost``. Anything this cannot tell (a text
        that does not parse, an invalid document) goes to an execution thread, as before."""
        limit = self.settings.api_inline_max_cost
        if limit <= 0:
            return False
        cost = self.schema.costs.estimate(
            self.schema._schema, query, operation, variables, self.settings.api_max_tokens
        )
        return cost is not None and cost <= limit

    async def _graphql(
        self, scope: Scope, receive: Receive, method: str
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        headers = _headers(scope)
        # Always the server's own id; a client's X-Request-ID is kept beside it (api/audit.py).
        request_id = uuid.uuid4().hex
        rid = headers.get("x-request-id", "")
        client_request_id = rid if _REQUEST_ID.match(rid) else None
        extra = [("x-request-id", request_id)]
        if client_request_id is not None:
            extra.append(("x-client-request-id", client_request_id))
        if method == "GET":
            if scope.get("query_string") or not self.graphiql:
                return _json(
                    405,
                    {"errors": [{"message": "Queries are sent with POST; GET cannot run them."}]},
                    [*extra, ("allow", "POST")],
                )
            # GraphiQL from the package's own files (api/web.py): no CDN.
            status, page_headers, html = self._page(scope, GRAPHIQL_PAGE)
            return status, [*extra, *page_headers], html
        if method != "POST":
            return _json(405, _error("Use POST for GraphQL requests."), [*extra, ("allow", "POST")])
        if not headers.get("content-type", "").startswith("application/json"):
            return _json(415, _error("Send the request as application/json."), extra)
        verifier = self._verifier
        if verifier is None:
            return _json(503, _error("The server is starting."), extra)
        authorization = headers.get("authorization")
        principal = verifier.verify_cached(authorization)
        if principal is UNANSWERED:  # only a read of Neo4j can tell: in a worker thread
            loop = asyncio.get_running_loop()
            principal = await loop.run_in_executor(None, verifier.verify, authorization)
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
            # orjson, not json: it refuses what json let through to fail later as a 500 with
            # a traceback (issue #19): a lone surrogate ("\ud800") that no encoder accepts,
            # nesting deep enough for a RecursionError (it stops at 1,024 levels), NaN.
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return _json(400, _error(_bad_json(exc)), extra)
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

        audit = AuditBuffer(
            request_id, principal.key_id, principal.role.value, self.masker.secret,
            client_request_id,
        )  # fmt: skip
        ctx = RequestContext(
            self.graph, self.settings, principal, audit, self.masker, self.models, self.scores
        )
        t0 = time.perf_counter()
        self.metrics.in_flight.inc()
        try:
            # On an execution thread, not this loop: completing a large answer is CPU work
            # that would hold up every other request, /healthz included (api/execution.py).
            # A small one (by its cost bound) runs here: the hand-over cost more than its
            # completion (api_inline_max_cost).
            execute = partial(
                self.schema.execute, data["query"], variable_values=variables,
                context_value=ctx, operation_name=operation,
            )  # fmt: skip
            try:
                if self._runs_here(data["query"], operation, variables):
                    result = await execute()
                else:
                    if self._loops is None:
                        self._loops = ExecutionLoops(
                            self.settings.api_execution_threads, self._executor
                        )
                    result = await self._loops.run(execute)
            except (MissingQueryError, CannotGetOperationTypeError, InvalidOperationTypeError) as e:
                return _json(400, _error(_no_operation(e)), extra)  # before any resolver ran
            try:
                ta = time.perf_counter()
                await asyncio.wrap_future(self.audit_log.submit(audit.records))
                if audit.records:
                    self.metrics.audit_latency.observe(time.perf_counter() - ta)
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
        status = 200
        if result.errors:
            self.metrics.graphql_errors.inc(len(result.errors))
            payload["errors"] = [_clipped(e.formatted) for e in result.errors]
            limited = next(
                (e.original_error for e in result.errors
                 if isinstance(e.original_error, RateLimitedError)),
                None,
            )  # fmt: skip
            if limited is not None:
                status = 429
                extra.append(("retry-after", limited.retry_after_header))
        return _json(status, payload, extra)


_PATHS = ("/graphql", "/healthz", "/metrics", "/app", "/app/")


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def _error(message: str) -> dict[str, Any]:
    return {"errors": [{"message": message}]}


# An error message longer than this is cut in the middle: GraphQL's own messages quote the
# document (a 100 kB field name came back whole, issue #19); ours clip inputs at the source.
MAX_ERROR_MESSAGE_CHARS = 400


def _clipped(error: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(error)
    message = out.get("message")
    if isinstance(message, str) and len(message) > MAX_ERROR_MESSAGE_CHARS:
        cut = len(message) - 300
        out["message"] = f"{message[:200]}... ({cut:,} characters cut) ...{message[-100:]}"
    return out


def _no_operation(exc: Exception) -> str:
    """Strawberry raises these before execution, when there is nothing it may run."""
    if isinstance(exc, CannotGetOperationTypeError):
        if exc.operation_name is None:
            return "The document has no operation to run."
        return f"The document has no operation named {clip(exc.operation_name)}."
    if isinstance(exc, InvalidOperationTypeError):
        return "Subscriptions are not supported: send a query or a mutation."
    return "The body needs a non-empty `query` string."


def _bad_json(exc: orjson.JSONDecodeError) -> str:
    """Why the body is not JSON we read, in one line (orjson's reason names the position)."""
    reason = str(exc)
    if "depth limit" in reason:
        return "The body nests arrays or objects more than 1,024 levels deep."
    if "surrogate" in reason:
        return (
            f"The body is not valid JSON: {reason} (a lone UTF-16 surrogate such as \\ud800 "
            "is not a character; send valid Unicode)."
        )
    return f"The body is not valid JSON: {reason}."


def _json(
    status: int, payload: Any, headers: list[tuple[str, str]] | None = None
) -> tuple[int, list[tuple[str, str]], bytes]:
    body = orjson.dumps(payload, default=str)
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


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a hostname: cannot tell, so warn


def create_app(settings: Settings | None = None, graph: Graph | None = None) -> RingScopeApp:
    return RingScopeApp(settings or Settings(), graph)


def worker_app() -> RingScopeApp:
    """The app of one of several server processes (``serve`` with workers > 1): each builds its
    own from the environment's ``RINGSCOPE_*`` settings."""
    settings = Settings()
    connection.configure(settings)  # this process's read deadline, before any connection
    return create_app(settings)


def connection_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's options for the connections: the read deadline's protocol (api/connection.py),
    the keep-alive timeout and the concurrency limit. ``serve`` and the tests' server use them."""
    return {
        "http": connection.configure(settings),
        "timeout_keep_alive": settings.api_keep_alive_s,
        "limit_concurrency": settings.api_max_connections,
    }


def serve(
    settings: Settings, host: str | None = None, port: int | None = None, workers: int | None = None
) -> None:
    """Run the server until interrupted: in this process, or in ``workers`` processes.

    With several workers, uvicorn's supervisor starts them (each reads its settings from the
    environment) on one shared socket. Neo4j is reached (the embedded one started) and the
    masking secret made once here first, so the workers never race to do either, and metrics go
    to a private ``PROMETHEUS_MULTIPROC_DIR`` unless one is set.
    """
    n = workers or settings.api_workers
    if n < 1:
        raise RingScopeError(f"The API needs at least one worker process, not {n}.")
    bind = host or settings.api_host
    if settings.api_metrics_token is None and not _is_loopback(bind):
        log.warning(
            "Serving on %s with an open /metrics: set RINGSCOPE_API_METRICS_TOKEN unless only "
            "a private monitoring network can reach it.",
            bind,
        )
    options: dict[str, Any] = {
        "host": bind,
        "port": port or settings.api_port,
        "lifespan": "on",
        "loop": "uvloop",
        "log_level": "info",
        "access_log": False,
        **connection_options(settings),
    }
    if n == 1:
        uvicorn.run(create_app(settings), **options)
        return
    create_app(settings)  # the settings' errors here, once; makes the masking secret once
    connect(settings).close()  # reachable (the embedded Neo4j started) before any worker
    own_dir = None
    if not _multiprocess():
        own_dir = tempfile.mkdtemp(prefix="ringscope-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = own_dir
    try:
        uvicorn.run("ringscope.api.app:worker_app", factory=True, workers=n, **options)
    finally:
        if own_dir is not None:
            shutil.rmtree(own_dir, ignore_errors=True)
            del os.environ["PROMETHEUS_MULTIPROC_DIR"]
