"""What can go wrong with builds, as errors the CLI and the API show as they are."""

from __future__ import annotations

from ringscope.errors import RingScopeError


class BuildError(RingScopeError):
    """A build could not be written or switched to."""


class BuildInProgressError(BuildError):
    """Another build is being written right now."""


class BuildNotFoundError(RingScopeError):
    """The build asked for does not exist (any more) or is not complete."""


class InvalidCursorError(RingScopeError):
    """A pagination cursor is malformed or belongs to another build."""
