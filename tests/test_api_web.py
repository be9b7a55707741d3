"""The pages the API serves (api/web.py) over real HTTP, and ``viewer``, which the workbench signs
in with: the workbench and GraphiQL come from the package with a same-origin CSP, no URL reaches
outside the static folder, and GraphiQL stays off in production while the workbench stays on.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ringscope.api.web import STATIC, StaticFiles
from ringscope.graph import Graph
from ringscope.settings import Settings
from tests.api_support import Keys, LiveServer, api_settings, small_world

pytestmark = pytest.mark.neo4j

VIEWER = "{ viewer { keyId role name capabilities } }"


@pytest.fixture(scope="module")
def world(neo4j_settings: Settings) -> Iterator[tuple[Graph, Keys]]:
    yield from small_world(neo4j_settings)


@pytest.fixture(scope="module")
def server(
    world: Any, neo4j_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    with LiveServer(api_settings(neo4j_settings, tmp_path_factory.mktemp("web"))) as srv:
        yield srv


def _base(server: LiveServer) -> str:
    return server.url.removesuffix("/graphql")


def test_viewer_names_the_key_and_its_roles_capabilities(server: LiveServer, world: Any) -> None:
    keys: Keys = world[1]
    got = {
        role: server.gql(VIEWER, key)["data"]["viewer"]
        for role, key in (("investigator", keys.investigator), ("risk_engine", keys.risk_engine))
    }
    assert got["investigator"]["keyId"] == keys.investigator_id
    assert (got["investigator"]["role"], got["investigator"]["name"]) == ("investigator", "alice")
    assert got["investigator"]["capabilities"] == [
        "READ_SCORES", "READ_ENTITIES", "READ_PII", "READ_CASES", "WRITE_LABELS", "SCREEN_EVENTS",
    ]  # fmt: skip
    assert got["risk_engine"]["capabilities"] == [
        "READ_SCORES", "READ_ENTITIES", "SCREEN_EVENTS", "RECORD_EVENTS",
    ]  # fmt: skip
    assert server.post(VIEWER, None).status_code == 401


def _asset_paths(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="(/static/[^"]+)"', html)


def test_the_workbench_is_served_from_the_package_with_a_same_origin_csp(
    server: LiveServer,
) -> None:
    for path in ("/app", "/app/"):
        resp = httpx.get(_base(server) + path)
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
        csp = resp.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "connect-src 'self'" in csp
        assert resp.headers["cache-control"] == "no-cache"
        assert resp.headers["x-content-type-options"] == "nosniff"
    assets = _asset_paths(resp.text)
    assert assets, "the page loads its script from /static/"
    for path in assets:
        plain = httpx.get(_base(server) + path, headers={"accept-encoding": "identity"})
        assert plain.status_code == 200
        assert plain.content == (STATIC / path.removeprefix("/static/")).read_bytes()
        assert "immutable" in plain.headers["cache-control"]
        zipped = httpx.get(_base(server) + path, headers={"accept-encoding": "gzip"})
        assert zipped.headers.get("content-encoding") == "gzip"
        assert zipped.content == plain.content  # httpx decodes it
    head = httpx.head(_base(server) + assets[0])
    assert head.status_code == 200 and head.content == b""


def test_no_url_reaches_outside_the_static_folder(server: LiveServer) -> None:
    for path in (
        "/static/../app.py", "/static/%2e%2e/app.py", "/static/..%2fweb.py", "/static/",
        "/static//etc/passwd", "/static/assets/../../app.py", "/app/../api/app.py",
    ):  # fmt: skip
        resp = httpx.get(_base(server) + path)
        assert resp.status_code == 404, path
        assert b"import" not in resp.content


def test_only_files_under_the_folder_are_indexed(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "index.html").write_text("<p>hi</p>")
    (tmp_path / "secret.py").write_text("x = 1")  # not a web type: never served
    files = StaticFiles(tmp_path)
    assert files.built
    page = files.get("app/index.html", "gzip")
    assert page is not None and gzip.decompress(page.body) == b"<p>hi</p>"
    assert files.get("secret.py") is None
    assert files.get("../secret.py") is None
    assert not StaticFiles(tmp_path / "missing").built


def test_graphiql_is_local_in_development_and_off_in_production(
    server: LiveServer, neo4j_settings: Settings, tmp_path: Path
) -> None:
    resp = httpx.get(server.url)
    assert resp.status_code == 200
    assert "unpkg.com" not in resp.text and "cdn" not in resp.text.lower()
    assert all(p.startswith("/static/") for p in _asset_paths(resp.text))
    assert "default-src 'self'" in resp.headers["content-security-policy"]
    prod = api_settings(neo4j_settings, tmp_path, api_env="production")
    with LiveServer(prod) as srv:
        assert httpx.get(srv.url).status_code == 405  # GraphiQL off
        assert httpx.get(_base(srv) + "/app").status_code == 200  # the workbench on
