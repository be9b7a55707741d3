"""Errors that reach a user. Each message says what went wrong and what to do about it."""

from __future__ import annotations


class RingScopeError(Exception):
    """Base for errors the CLI prints without a traceback (exit code 2)."""


class Neo4jError(RingScopeError):
    """Neo4j could not be started, reached or authenticated against."""


class JavaNotFoundError(Neo4jError):
    pass


class PortInUseError(Neo4jError):
    pass


class StoreError(Neo4jError):
    pass


class LaunchTimeoutError(Neo4jError):
    pass


class Neo4jAuthError(Neo4jError):
    pass


class Neo4jUnavailableError(Neo4jError):
    pass
