"""What the detector hands over and what readers get back, and how stored nodes become them."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from ringscope.graph.values import native

# The cluster score at which a cluster is flagged: the detector's default (DetectConfig reads it
# from here), and the threshold of every build written before the writer recorded one. Kept here
# so that readers of builds (the API) need not import the detector.
DEFAULT_FLAG_THRESHOLD = 0.6

# --- what the detector hands over (models.detect.Cluster / Detection satisfy these) -------------


class DetectedCluster(Protocol):
    @property
    def members(self) -> Sequence[str]: ...
    @property
    def score(self) -> float: ...
    @property
    def reasons(self) -> Sequence[str]: ...
    @property
    def features(self) -> Mapping[str, float]: ...
    @property
    def key_identifiers(self) -> Sequence[tuple[str, str, int]]: ...
    @property
    def density(self) -> float: ...


class DetectionResult(Protocol):
    @property
    def clusters(self) -> Sequence[DetectedCluster]: ...
    @property
    def account_scores(self) -> Mapping[str, float]: ...
    @property
    def stage_seconds(self) -> Mapping[str, float]: ...


# --- what readers get -------------------------------------------------------------------------


def flag_threshold(recorded: Any) -> float:
    """A build's flag threshold: the one its writer recorded, else the detector's default (the
    threshold of every build written before the writer recorded it)."""
    return DEFAULT_FLAG_THRESHOLD if recorded is None else float(recorded)


@dataclass(frozen=True)
class BuildInfo:
    id: str
    status: str  # running | complete | failed | deleting
    started_at: datetime | None
    finished_at: datetime | None
    model_version: str | None
    previous_build: str | None
    current: bool
    clusters: int = 0
    memberships: int = 0
    members_missing: int = 0  # cluster members with no Account node (not linked)
    accounts_scored: int = 0
    rings_new: int = 0
    rings_kept: int = 0
    write_seconds: float = 0.0
    metrics: dict[str, Any] = field(default_factory=dict)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    # Accounts at or above this risk are "flagged" (the API's neighbourhood paths): the
    # detector's threshold when the build was written, so readers never keep a copy of it.
    flag_threshold: float = DEFAULT_FLAG_THRESHOLD

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        for k in ("started_at", "finished_at"):
            d[k] = d[k].isoformat() if d[k] is not None else None
        return d


@dataclass(frozen=True)
class ClusterInfo:
    id: str  # <build id>/<ring id>
    ring_id: str
    build_id: str
    score: float
    size: int
    density: float
    reasons: tuple[str, ...]
    features: dict[str, float]
    key_identifiers: tuple[tuple[str, str, int], ...]
    members: tuple[str, ...]
    first_seen_build: str
    first_seen_at: datetime | None


@dataclass(frozen=True)
class ClusterPage:
    build_id: str
    items: tuple[ClusterInfo, ...]
    total: int  # clusters in the build with score >= min_score
    end_cursor: str | None  # pass as ``after`` for the next page
    has_next: bool


@dataclass(frozen=True)
class RingSnapshot:
    build_id: str
    finished_at: datetime | None
    size: int
    score: float


# --- from stored properties -------------------------------------------------------------------


def build_info(props: Mapping[str, Any], current: bool) -> BuildInfo:
    """A ``(:Build)`` node's properties as a :class:`BuildInfo`."""

    def _json(key: str) -> dict[str, Any]:
        raw = props.get(key)
        return dict(json.loads(raw)) if raw else {}

    return BuildInfo(
        id=props["id"],
        status=props.get("status", "unknown"),
        started_at=native(props.get("started_at")),
        finished_at=native(props.get("finished_at")),
        model_version=props.get("model_version"),
        previous_build=props.get("previous_build"),
        current=current,
        clusters=int(props.get("clusters", 0)),
        memberships=int(props.get("memberships", 0)),
        members_missing=int(props.get("members_missing", 0)),
        accounts_scored=int(props.get("accounts_scored", 0)),
        rings_new=int(props.get("rings_new", 0)),
        rings_kept=int(props.get("rings_kept", 0)),
        write_seconds=float(props.get("write_seconds", 0.0)),
        metrics=_json("metrics"),
        stage_seconds=_json("stage_seconds"),
        error=props.get("error"),
        flag_threshold=flag_threshold(props.get("flag_threshold")),
    )


def cluster_info(props: Mapping[str, Any]) -> ClusterInfo:
    """A ``(:Cluster)`` node's properties as a :class:`ClusterInfo`."""
    keys = json.loads(props.get("key_identifiers") or "[]")
    return ClusterInfo(
        id=props["id"],
        ring_id=props["ring_id"],
        build_id=props["build_id"],
        score=float(props["score"]),
        size=int(props["size"]),
        density=float(props.get("density") or 0.0),
        reasons=tuple(props.get("reasons") or ()),
        features={k: float(v) for k, v in json.loads(props.get("features") or "{}").items()},
        key_identifiers=tuple((str(k), str(i), int(n)) for k, i, n in keys),
        members=tuple(props.get("members") or ()),
        first_seen_build=props.get("first_seen_build") or props["build_id"],
        first_seen_at=native(props.get("first_seen_at")),
    )
