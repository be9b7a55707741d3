"""Values read from Neo4j, as Python values."""

from __future__ import annotations

from typing import Any


def native(value: Any) -> Any:
    """A driver temporal (``neo4j.time.DateTime``, ``Date``, ...) as its Python equivalent
    (``datetime``, ``date``, ...); any other value as it is."""
    to_native = getattr(value, "to_native", None)
    return to_native() if callable(to_native) else value
