"""The pages the API serves itself: the investigator workbench (``/app``) and GraphiQL.

Both are static files built from ``web/`` (TypeScript, Vite) into ``api/static/`` and shipped in
the wheel, so a workstation with no internet gets the whole page from this server: no CDN, no
web fonts, no telemetry. A Content-Security-Policy of ``'self'`` makes the browser refuse any
other origin too, so a dependency that tried to reach out would fail loudly in the browser tests
instead of leaking quietly.

Only files found under ``api/static/`` when the app starts can be served (a lookup in that
index, never a path joined from the URL), so no URL reaches outside the folder. Hashed assets
(``/static/assets/*``) are cached for a year; the HTML pages are revalidated every time, so a new
build's page picks up its new assets at once. Bodies are gzipped once, on first request, when
the client accepts it.
"""

from __future__ import annotations

import gzip
import threading
from dataclasses import dataclass
from pathlib import Path

STATIC = Path(__file__).resolve().parent / "static"
WORKBENCH_PAGE = "app/index.html"
GRAPHIQL_PAGE = "graphiql/index.html"

# 'unsafe-inline' styles: cytoscape and GraphiQL set element styles from script. No inline or
# eval'd script. blob: workers: GraphiQL's editor may start one from its own bundle.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
    ".woff": "font/woff",
    ".ttf": "font/ttf",
    ".txt": "text/plain; charset=utf-8",
}
_COMPRESSIBLE = (".html", ".js", ".mjs", ".css", ".json", ".svg", ".txt")
_SECURITY_HEADERS = [
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
]

Headers = list[tuple[str, str]]


@dataclass(frozen=True)
class Asset:
    body: bytes
    headers: Headers


class StaticFiles:
    """The built pages and assets, indexed once; bodies read (and gzipped) on first use."""

    def __init__(self, root: Path = STATIC) -> None:
        self.root = root
        self._files: dict[str, Path] = {}
        if root.is_dir():
            for path in root.rglob("*"):
                if path.is_file() and path.suffix in _TYPES:
                    self._files[path.relative_to(root).as_posix()] = path
        self._cache: dict[tuple[str, bool], Asset] = {}
        self._lock = threading.Lock()

    @property
    def built(self) -> bool:
        return WORKBENCH_PAGE in self._files

    def get(self, name: str, accept_encoding: str = "") -> Asset | None:
        """The file ``name`` (relative to the static folder), or None if it is not one."""
        path = self._files.get(name)
        if path is None:
            return None
        gz = "gzip" in accept_encoding and path.suffix in _COMPRESSIBLE
        key = (name, gz)
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None:
            return cached
        body = path.read_bytes()
        headers: Headers = [("content-type", _TYPES[path.suffix]), *_SECURITY_HEADERS]
        if path.suffix == ".html":
            headers += [
                ("cache-control", "no-cache"),
                ("content-security-policy", CONTENT_SECURITY_POLICY),
            ]
        elif name.startswith("assets/"):
            headers.append(("cache-control", "public, max-age=31536000, immutable"))
        else:
            headers.append(("cache-control", "no-cache"))
        if path.suffix in _COMPRESSIBLE:
            headers.append(("vary", "accept-encoding"))
        if gz:
            body = gzip.compress(body, compresslevel=6, mtime=0)
            headers.append(("content-encoding", "gzip"))
        asset = Asset(body, headers)
        with self._lock:
            self._cache[key] = asset
        return asset
