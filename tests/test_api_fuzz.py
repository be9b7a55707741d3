"""Property-based fuzzing of the GraphQL API (issue #19): schemathesis against a real server.

Two kinds of request, for each role, against the live server of tests/api_support.py on the
small test graph in real Neo4j:

* **valid-shaped**: schemathesis (hypothesis-graphql underneath) writes queries and mutations
  from the schema's SDL, every root field with generated arguments and selections;
* **invalid**: hypothesis writes arbitrary query text and arbitrary JSON variables, raw bodies
  that are not JSON or not objects, lone surrogates and deep nesting among them.

Every answer must be below 500, and no request may leave an unhandled exception in the server's
log (the server runs in this process, so its log records are caught here). The stated bound on
time: no answer may take longer than the server's own query deadline (``api_query_timeout``)
plus ``GRACE_S``. That is the server's promise, not a speed target: a request past it means a
deadline failed to fire, which is what the fan-out attacks of #19 exploited.

The number of examples per root field and role is ``RINGSCOPE_FUZZ_EXAMPLES`` (default 20),
and five times that of invalid bodies per role, so the run is bounded: 660 valid-shaped and 300
invalid requests by default.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from ringscope.graph import Graph
from ringscope.settings import Settings
from tests.api_support import (
    Keys,
    LiveServer,
    api_settings,
    small_world,
)

SDL = Path(__file__).resolve().parents[1] / "ringscope" / "api" / "schema.graphql"
EXAMPLES = int(os.environ.get("RINGSCOPE_FUZZ_EXAMPLES", "20"))
GRACE_S = 5.0
ROLES = ("investigator", "risk_engine", "admin")
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure is reported as found
    suppress_health_check=list(HealthCheck),
    derandomize=True,  # the same examples on every run: a red CI run reproduces
)
SCHEMA = schemathesis.graphql.from_path(SDL)
COUNTS: Counter[tuple[str, str, int]] = Counter()  # (kind of request, role, status): requests


class _Unhandled(logging.Handler):
    """Keeps every server log record that carries an exception (a traceback in the log)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.records.append(record)


@pytest.fixture(scope="module")
def world(neo4j_settings: Settings) -> Iterator[tuple[Graph, Keys]]:
    yield from small_world(neo4j_settings)


@pytest.fixture(scope="module")
def server(
    neo4j_settings: Settings, world: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    settings_ = api_settings(neo4j_settings, tmp_path_factory.mktemp("fuzz"))
    with LiveServer(settings_) as srv:
        yield srv


@pytest.fixture(scope="module")
def unhandled() -> Iterator[_Unhandled]:
    handler = _Unhandled()
    root = logging.getLogger()
    root.addHandler(handler)
    yield handler
    root.removeHandler(handler)
    # The run's counts, for the record (shown with pytest -s): requests by kind, role, status.
    for (kind, role, status), n in sorted(COUNTS.items()):
        print(f"fuzz: {kind:7} {role:12} HTTP {status}: {n}", file=sys.__stderr__)


def _key(keys: Keys, role: str) -> str:
    return str(getattr(keys, role))


def _bound(server: LiveServer) -> float:
    return server.settings.api_query_timeout + GRACE_S


def _check(resp: httpx.Response | Any, unhandled: _Unhandled, what: str) -> None:
    assert resp.status_code < 500, f"{what}: {resp.status_code} {resp.text[:500]}"
    assert not unhandled.records, (
        f"{what}: unhandled exception in the server log: {unhandled.records[0].getMessage()[:300]}"
    )


@pytest.mark.parametrize("role", ROLES)
@SCHEMA.parametrize()
@FUZZ
def test_valid_shaped_requests_never_fail_the_server(
    case: Any, role: str, server: LiveServer, world: tuple[Graph, Keys], unhandled: _Unhandled
) -> None:
    resp = case.call(
        base_url=server.url,
        headers={"Authorization": f"Bearer {_key(world[1], role)}"},
        timeout=_bound(server),
    )
    COUNTS["valid", role, resp.status_code] += 1
    _check(resp, unhandled, f"{role} {case.body!r:.300}")
    assert resp.headers["content-type"][0].startswith("application/json")  # values are lists
    body = resp.json()
    assert "data" in body or "errors" in body or "error" in body


_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40)
_json = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=30,
)
_query_text = st.one_of(
    st.text(max_size=300),
    st.sampled_from(
        ["{", "}", "query {", "{ cluster(id: ", "mutation {", "{ __schema { types { name } } }"]
    ).flatmap(lambda head: st.text(max_size=60).map(lambda tail: head + tail)),
    st.integers(min_value=1, max_value=4000).map(lambda n: "{ a " * n + "}" * n),
)


@pytest.mark.parametrize("role", ROLES)
@settings(FUZZ, max_examples=EXAMPLES * 5)  # cheap requests: five times as many
@given(query=_query_text, variables=_json, raw=st.sampled_from(["json", "bytes", "surrogate"]))
def test_invalid_requests_get_a_clear_refusal(
    query: str,
    variables: Any,
    raw: str,
    role: str,
    server: LiveServer,
    world: tuple[Graph, Keys],
    unhandled: _Unhandled,
) -> None:
    if raw == "json":
        content = json.dumps({"query": query, "variables": variables}).encode()
    elif raw == "surrogate":  # a lone surrogate inside the query and a variable
        content = json.dumps({"query": query + "\ud800", "variables": {"x": "\udfff"}}).encode()
    else:  # not JSON at all, or a JSON value that is not an object
        content = (query.encode("utf-8", "surrogatepass") + b"\xff\xfe") if query else b"[1]"
    resp = httpx.post(
        server.url,
        content=content,
        headers={
            "Authorization": f"Bearer {_key(world[1], role)}",
            "content-type": "application/json",
        },
        timeout=_bound(server),
    )
    COUNTS["invalid", role, resp.status_code] += 1
    _check(resp, unhandled, f"{role} {content[:300]!r}")
    if resp.status_code == 200:
        assert resp.json().get("errors") or resp.json().get("data") is not None
