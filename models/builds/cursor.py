"""Pagination cursors of a build's clusters: the build, and the last cluster's score and id.

A cursor names its build, so a page after a switch still reads the build the first page came
from (:func:`models.builds.readers.clusters`).
"""

from __future__ import annotations

import base64
import binascii
import json

from ringscope.models.builds.errors import InvalidCursorError


def encode_cursor(build_id: str, score: float, cluster_id: str) -> str:
    raw = json.dumps([build_id, score, cluster_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, float, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        build_id, score, cluster_id = json.loads(raw)
        if not (isinstance(build_id, str) and isinstance(cluster_id, str)):
            raise ValueError("bad cursor fields")
        return build_id, float(score), cluster_id
    except (ValueError, TypeError, binascii.Error) as exc:
        raise InvalidCursorError(
            f"Invalid cursor {cursor!r}: pass back an end_cursor from a previous page."
        ) from exc
