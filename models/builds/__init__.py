"""Versioned write-back of ring-detection results into Neo4j, with stable ring ids.

Every detection run is written as a **build**: a ``(:Build)`` node, its ``(:Cluster)`` nodes with
``MEMBER_OF`` memberships, and the accounts' risk scores as ``(:ScoreChunk)`` runs. A build is
written while it is ``running`` and invisible to readers; one transaction then marks it
``complete`` and moves the single ``(:CurrentBuild)`` pointer to it. Readers resolve the pointer
first and read that one build only, so nobody ever sees a half-written build. ``docs/builds.md``
explains the model, the ring-id matching and the costs.

The parts: :mod:`.writer` (begin, write, finish), :mod:`.readers` (builds, clusters, ring
histories, scores), :mod:`.matching` (stable ring ids), :mod:`.cleanup` (delete, prune),
:mod:`.cursor` (page cursors), :mod:`.cache` (the API's score cache), :mod:`.records` (what goes
in and comes out), :mod:`.tx` (the store's transaction shapes). Import from here.
"""

from ringscope.models.builds.cache import ScoreCache
from ringscope.models.builds.cleanup import DELETE_BATCH, delete_build, prune_builds
from ringscope.models.builds.cursor import decode_cursor, encode_cursor
from ringscope.models.builds.errors import (
    BuildError,
    BuildInProgressError,
    BuildNotFoundError,
    InvalidCursorError,
)
from ringscope.models.builds.matching import (
    MATCH_JACCARD,
    MATCH_KEPT,
    PreviousRing,
    match_rings,
    mint_ring_id,
    overlaps,
)
from ringscope.models.builds.readers import (
    account_score,
    account_scores,
    all_clusters,
    cluster,
    clusters,
    current_account_score,
    current_build,
    current_build_id,
    get_build,
    list_builds,
    model_scores,
    read_scores,
    ring_histories,
    ring_history,
    ring_priors,
)
from ringscope.models.builds.records import (
    BuildInfo,
    ClusterInfo,
    ClusterPage,
    DetectedCluster,
    DetectionResult,
    RingSnapshot,
    build_info,
    cluster_info,
    flag_threshold,
)
from ringscope.models.builds.writer import (
    DEFAULT_BATCH_ROWS,
    HEARTBEAT_EVERY_S,
    SCORE_BATCH,
    SCORE_CHUNK,
    BuildWriter,
    new_build_id,
    write_build,
)

__all__ = [
    "DEFAULT_BATCH_ROWS",
    "DELETE_BATCH",
    "HEARTBEAT_EVERY_S",
    "MATCH_JACCARD",
    "MATCH_KEPT",
    "SCORE_BATCH",
    "SCORE_CHUNK",
    "BuildError",
    "BuildInProgressError",
    "BuildInfo",
    "BuildNotFoundError",
    "BuildWriter",
    "ClusterInfo",
    "ClusterPage",
    "DetectedCluster",
    "DetectionResult",
    "InvalidCursorError",
    "PreviousRing",
    "RingSnapshot",
    "ScoreCache",
    "account_score",
    "account_scores",
    "all_clusters",
    "build_info",
    "cluster",
    "cluster_info",
    "clusters",
    "current_account_score",
    "current_build",
    "current_build_id",
    "decode_cursor",
    "delete_build",
    "encode_cursor",
    "flag_threshold",
    "get_build",
    "list_builds",
    "match_rings",
    "mint_ring_id",
    "model_scores",
    "new_build_id",
    "overlaps",
    "prune_builds",
    "read_scores",
    "ring_histories",
    "ring_history",
    "ring_priors",
    "write_build",
]
