"""A typed Python client for the RingScope API, for the risk engine (built on ``gql``).

    with RingScopeClient("http://127.0.0.1:8000/graphql", api_key, timeout=10) as client:
        for cluster in client.iter_clusters(min_score=0.8):
            ...
        risks = client.account_risk(["A0001", "A0002"])

Reads (queries) are retried on connection failures, timeouts and 429/5xx answers with
exponential backoff; writes (mutations) are never retried, so a verdict is never recorded twice
by the client. Every page of ``iter_clusters`` comes from one build: the cursor pins it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import requests
from gql import Client, gql
from gql.graphql_request import GraphQLRequest
from gql.transport.exceptions import (
    TransportConnectionFailed,
    TransportQueryError,
    TransportServerError,
)
from gql.transport.requests import RequestsHTTPTransport
from graphql import ExecutionResult

from ringscope.errors import RingScopeError

ACCOUNT_RISK_BATCH = 1_000
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


class ClientError(RingScopeError):
    """A request failed; ``status`` is the HTTP status when there was one."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class AuthenticationError(ClientError):
    """The server refused the API key (401)."""


class QueryError(ClientError):
    """The server answered with GraphQL errors (e.g. BuildNotFoundError, forbidden fields)."""

    def __init__(self, message: str, errors: list[Any]) -> None:
        super().__init__(message)
        self.errors = errors


@dataclass(frozen=True)
class MemberRisk:
    id: str
    risk_score: float | None


@dataclass(frozen=True)
class ClusterSummary:
    id: str
    ring_id: str
    build_id: str
    score: float
    size: int
    reasons: tuple[str, ...]
    members: tuple[MemberRisk, ...]


@dataclass(frozen=True)
class ClusterPage:
    build_id: str
    total: int
    items: tuple[ClusterSummary, ...]
    has_next: bool
    end_cursor: str | None


@dataclass(frozen=True)
class BuildSummary:
    id: str
    finished_at: datetime | None
    model_version: str | None


@dataclass(frozen=True)
class VerdictSummary:
    id: str
    target_kind: str
    target_id: str
    verdict: str
    author: str


@dataclass(frozen=True)
class ScreenEventData:
    """An event to screen or record (the API's ``ScreenEvent``). ``at`` must be timezone-aware;
    ``amount`` is a decimal string, never a float (money is exact)."""

    event_id: str
    account_id: str
    at: datetime
    type: str  # SIGNUP, APPLICATION, PAYMENT, LOGIN or BIND_CARD
    devices: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    id_documents: tuple[str, ...] = ()
    bank_cards: tuple[str, ...] = ()
    payee: str | None = None
    amount: str | None = None
    currency: str | None = None
    kyc_level: int | None = None
    # The caller's device fingerprint and phone lookup: (device, os, is emulator) and (phone,
    # carrier, is virtual), each naming one of the event's own; None leaves a value unsaid.
    device_details: tuple[tuple[str, str | None, bool | None], ...] = ()
    phone_details: tuple[tuple[str, str | None, bool | None], ...] = ()

    def variables(self) -> dict[str, Any]:
        if self.at.tzinfo is None:
            raise ValueError(f"event {self.event_id}: `at` must be timezone-aware")
        out: dict[str, Any] = {
            "eventId": self.event_id, "accountId": self.account_id,
            "at": self.at.isoformat(), "type": self.type.upper(),
            "devices": list(self.devices), "phones": list(self.phones), "ips": list(self.ips),
            "emails": list(self.emails), "idDocuments": list(self.id_documents),
            "bankCards": list(self.bank_cards),
            "deviceDetails": [{"deviceId": d, "os": o, "isEmulator": e}
                              for d, o, e in self.device_details],
            "phoneDetails": [{"phone": p, "carrier": c, "isVirtual": v}
                             for p, c, v in self.phone_details],
        }  # fmt: skip
        for name, value in (("payee", self.payee), ("amount", self.amount),
                            ("currency", self.currency), ("kycLevel", self.kyc_level)):  # fmt: skip
            if value is not None:
                out[name] = value
        return out


@dataclass(frozen=True)
class LinkedRingSummary:
    ring_id: str
    score: float
    via: tuple[tuple[str, str], ...]  # (kind, id), ids masked for roles without raw PII
    hops: int = 1  # 2: via's first identifiers are the event's, held by an account near the ring


@dataclass(frozen=True)
class ScreenAnswer:
    event_id: str
    score: float
    build_id: str | None
    model_version: str | None
    reasons: tuple[str, ...]
    linked_rings: tuple[LinkedRingSummary, ...]
    hubs_ignored: tuple[tuple[str, str, int], ...]  # (kind, id, degree)
    invalid_fields: tuple[tuple[str, str], ...]  # (field, reason)


@dataclass(frozen=True)
class RecordAnswer:
    recorded: tuple[str, ...]
    duplicates: tuple[str, ...]
    invalid_fields: tuple[tuple[str, str, str], ...]  # (event id, field, reason)
    rows_written: int


CLUSTERS = gql(
    """
    query Clusters($minScore: Float!, $first: Int!, $after: String) {
      clusters(minScore: $minScore, first: $first, after: $after) {
        buildId
        totalCount
        edges { node { id ringId buildId score size reasons members { id riskScore } } }
        pageInfo { hasNextPage endCursor }
      }
    }
    """
)
ACCOUNT_RISK = gql(
    """
    query AccountRisk($ids: [ID!]!) {
      accountRisk(ids: $ids) { id riskScore buildId }
    }
    """
)
SCREEN = gql(
    """
    query Screen($event: ScreenEvent!) {
      screen(event: $event) {
        eventId score buildId modelVersion reasons
        linkedRings { ringId score via { kind id } hops }
        hubsIgnored { kind id degree }
        invalidFields { field reason }
      }
    }
    """
)
RECORD_EVENTS = gql(
    """
    mutation RecordEvents($events: [ScreenEvent!]!) {
      recordEvents(events: $events) {
        recorded duplicates rowsWritten invalidFields { eventId field reason }
      }
    }
    """
)
CURRENT_BUILD = gql("query CurrentBuild { currentBuild { id finishedAt modelVersion } }")
LABEL_ACCOUNT = gql(
    """
    mutation LabelAccount($id: ID!, $verdict: VerdictValue!, $note: String!) {
      labelAccount(accountId: $id, verdict: $verdict, note: $note) {
        id targetKind targetId verdict author
      }
    }
    """
)
LABEL_CLUSTER = gql(
    """
    mutation LabelCluster($id: ID!, $verdict: VerdictValue!, $note: String!) {
      labelCluster(clusterId: $id, verdict: $verdict, note: $note) {
        id targetKind targetId verdict author
      }
    }
    """
)


class _Transport(RequestsHTTPTransport):
    """Raise on every HTTP error status, even when the body carries GraphQL errors (401, 413)."""

    def _prepare_result(self, response: requests.Response) -> ExecutionResult:
        if response.status_code >= 400:
            try:
                message = str(response.json()["errors"][0]["message"])
            except (ValueError, KeyError, IndexError, TypeError):
                message = response.text[:200]
            raise TransportServerError(message, response.status_code)
        return super()._prepare_result(response)


def _datetime(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


class RingScopeClient:
    def __init__(
        self,
        url: str,
        api_key: str,
        timeout: float = 10.0,
        *,
        retries: int = 3,
        backoff: float = 0.2,
    ) -> None:
        self.url = url
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.attempts = 0  # HTTP requests sent, retries included
        transport = _Transport(
            url=url,
            headers={"Authorization": f"Bearer {api_key}"},
            # requests takes a float; gql's annotation says int, and rounding made a 100 ms
            # decision-time budget a one-second wait.
            timeout=cast(int, timeout),
            retries=0,
        )
        self._client = Client(transport=transport, fetch_schema_from_transport=False)
        self._session = cast(Any, self._client).connect_sync()

    def close(self) -> None:
        cast(Any, self._client).close_sync()

    def __enter__(self) -> RingScopeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- transport ---------------------------------------------------------------------------

    def _once(self, request: GraphQLRequest, variables: dict[str, Any]) -> dict[str, Any]:
        self.attempts += 1
        try:
            req = GraphQLRequest(request, variable_values=variables)
            result = self._session.execute(req)
        except TransportQueryError as exc:
            raise QueryError(str(exc), list(exc.errors or [])) from None
        except TransportServerError as exc:
            cls = AuthenticationError if exc.code == 401 else ClientError
            raise cls(f"{self.url} answered {exc.code}: {exc}", exc.code) from None
        except TransportConnectionFailed as exc:
            raise ClientError(f"Cannot reach {self.url}: {exc}") from None
        assert isinstance(result, dict)
        return result

    def read(self, request: GraphQLRequest, variables: dict[str, Any] | None = None) -> Any:
        """Run a query, retrying connection failures and 429/5xx with exponential backoff."""
        delay = self.backoff
        for attempt in range(self.retries + 1):
            try:
                return self._once(request, variables or {})
            except (QueryError, AuthenticationError):
                raise
            except ClientError as exc:
                retryable = exc.status is None or exc.status in RETRY_STATUS
                if not retryable or attempt == self.retries:
                    raise
            time.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")

    def write(self, request: GraphQLRequest, variables: dict[str, Any] | None = None) -> Any:
        """Run a mutation exactly once: never retried (it might have been applied)."""
        return self._once(request, variables or {})

    # --- reads -------------------------------------------------------------------------------

    def current_build(self) -> BuildSummary | None:
        b = self.read(CURRENT_BUILD)["currentBuild"]
        if b is None:
            return None
        return BuildSummary(b["id"], _datetime(b["finishedAt"]), b["modelVersion"])

    def clusters_page(
        self, min_score: float, first: int = 200, after: str | None = None
    ) -> ClusterPage:
        variables = {"minScore": min_score, "first": first, "after": after}
        c = self.read(CLUSTERS, variables)["clusters"]
        items = tuple(
            ClusterSummary(
                id=n["id"],
                ring_id=n["ringId"],
                build_id=n["buildId"],
                score=float(n["score"]),
                size=int(n["size"]),
                reasons=tuple(n["reasons"]),
                members=tuple(MemberRisk(m["id"], m["riskScore"]) for m in n["members"]),
            )
            for n in (e["node"] for e in c["edges"])
        )
        info = c["pageInfo"]
        return ClusterPage(
            c["buildId"], int(c["totalCount"]), items, info["hasNextPage"], info["endCursor"]
        )

    def iter_clusters(self, min_score: float, page_size: int = 200) -> Iterator[ClusterSummary]:
        """Every cluster at or above ``min_score``, across pages, all from one build.

        If the build is pruned while paging, the server answers BuildNotFoundError (raised as
        QueryError): start again.
        """
        after: str | None = None
        build: str | None = None
        while True:
            page = self.clusters_page(min_score, page_size, after)
            if build is not None and page.build_id != build:
                raise ClientError(f"Pages mixed builds {build} and {page.build_id}.")
            build = page.build_id
            yield from page.items
            if not page.has_next or page.end_cursor is None:
                return
            after = page.end_cursor

    def account_risk(
        self, ids: Sequence[str], batch: int = ACCOUNT_RISK_BATCH
    ) -> dict[str, float | None]:
        """Risk of many accounts, ``batch`` ids per request, all from one build.

        If the current build switches between batches, the whole list is read again (up to
        three times) so that no answer mixes builds.
        """
        wanted = list(dict.fromkeys(ids))
        for _ in range(3):
            out: dict[str, float | None] = {}
            builds: set[str] = set()
            for i in range(0, len(wanted), batch):
                rows = self.read(ACCOUNT_RISK, {"ids": wanted[i : i + batch]})["accountRisk"]
                for r in rows:
                    out[r["id"]] = r["riskScore"]
                    builds.add(r["buildId"])
            if len(builds) <= 1:
                return out
        raise ClientError("The current build kept switching while reading account risks.")

    def screen(self, event: ScreenEventData) -> ScreenAnswer:
        """Screen an event at decision time (a read: retried like any query; nothing is
        written). What to do when RingScope is down, fail open or closed, is the caller's
        choice: docs/screening.md."""
        r = self.read(SCREEN, {"event": event.variables()})["screen"]
        return ScreenAnswer(
            event_id=r["eventId"],
            score=float(r["score"]),
            build_id=r["buildId"],
            model_version=r["modelVersion"],
            reasons=tuple(r["reasons"]),
            linked_rings=tuple(
                LinkedRingSummary(
                    x["ringId"],
                    float(x["score"]),
                    tuple((v["kind"].lower(), v["id"]) for v in x["via"]),
                    int(x["hops"]),
                )
                for x in r["linkedRings"]
            ),
            hubs_ignored=tuple(
                (h["kind"].lower(), h["id"], int(h["degree"])) for h in r["hubsIgnored"]
            ),
            invalid_fields=tuple((f["field"], f["reason"]) for f in r["invalidFields"]),
        )

    # --- writes ------------------------------------------------------------------------------

    def record_events(self, events: Sequence[ScreenEventData]) -> RecordAnswer:
        """Record events into the graph. Sent once, never retried by the client; the server
        is idempotent by event id, so the caller may send the same events again after a
        failure and already recorded ones come back as duplicates."""
        r = self.write(RECORD_EVENTS, {"events": [e.variables() for e in events]})
        out = r["recordEvents"]
        return RecordAnswer(
            recorded=tuple(out["recorded"]),
            duplicates=tuple(out["duplicates"]),
            invalid_fields=tuple(
                (f["eventId"], f["field"], f["reason"]) for f in out["invalidFields"]
            ),
            rows_written=int(out["rowsWritten"]),
        )

    def _verdict(self, raw: dict[str, Any]) -> VerdictSummary:
        return VerdictSummary(
            raw["id"], raw["targetKind"], raw["targetId"], raw["verdict"], raw["author"]
        )

    def label_account(self, account_id: str, verdict: str, note: str) -> VerdictSummary:
        variables = {"id": account_id, "verdict": verdict.upper(), "note": note}
        return self._verdict(self.write(LABEL_ACCOUNT, variables)["labelAccount"])

    def label_cluster(self, cluster_id: str, verdict: str, note: str) -> VerdictSummary:
        variables = {"id": cluster_id, "verdict": verdict.upper(), "note": note}
        return self._verdict(self.write(LABEL_CLUSTER, variables)["labelCluster"])
