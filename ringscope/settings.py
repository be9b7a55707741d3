"""Configuration, read once from the environment (``RINGSCOPE_*`` plus the standard ``NEO4J_*``).

The Neo4j connection variables keep Neo4j's own names so that an operator can reuse the
environment of any other Neo4j tool; everything RingScope-specific is ``RINGSCOPE_*``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def _xdg(var: str, fallback: str) -> Path:
    return Path(os.environ.get(var) or Path.home() / fallback) / "ringscope"


class Settings(BaseSettings):
    """All RingScope settings. Construct it where a command starts and pass it down."""

    model_config = SettingsConfigDict(env_prefix="RINGSCOPE_", extra="ignore")

    # Where RingScope keeps its state: the embedded Neo4j store, its password, run reports.
    data_dir: Path = Field(default_factory=lambda: _xdg("XDG_DATA_HOME", ".local/share"))
    # Where the built launcher (compiled class + resolved classpath) is cached.
    cache_dir: Path = Field(default_factory=lambda: _xdg("XDG_CACHE_HOME", ".cache"))

    # An external Neo4j. When neo4j_uri is set, RingScope never starts its own.
    neo4j_uri: str | None = Field(
        default=None, validation_alias=AliasChoices("NEO4J_URI", "RINGSCOPE_NEO4J_URI")
    )
    neo4j_user: str = Field(
        default="neo4j", validation_alias=AliasChoices("NEO4J_USER", "RINGSCOPE_NEO4J_USER")
    )
    neo4j_password: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("NEO4J_PASSWORD", "RINGSCOPE_NEO4J_PASSWORD"),
    )
    neo4j_database: str = Field(
        default="neo4j",
        validation_alias=AliasChoices("NEO4J_DATABASE", "RINGSCOPE_NEO4J_DATABASE"),
    )
    # Seconds a single Cypher query may run before the server aborts it.
    neo4j_query_timeout: float = 120.0
    # The driver's limits, in seconds, for every command (the API server uses its own, shorter
    # api_neo4j_* instead; docs/api.md#outages). connection: one TCP connect. acquisition: getting
    # a connection from the pool, opening one (connect, Bolt handshake, login) or checking one
    # included. retry: how long a managed transaction is retried after a transient failure.
    # liveness: a pooled connection idle longer than this is checked (one round trip) before it
    # is used; None: never checked.
    neo4j_connection_timeout: float = Field(default=30.0, gt=0)
    neo4j_acquisition_timeout: float = Field(default=60.0, gt=0)
    neo4j_max_retry_time: float = Field(default=30.0, ge=0)
    neo4j_liveness_check_timeout: float | None = None
    # After Neo4j was found unavailable, every call fails at once for this long (seconds)
    # instead of each waiting out the timeouts above; 0: off (the API's: 1 s).
    neo4j_unavailable_hold_s: float = Field(default=0.0, ge=0)

    # The embedded Neo4j. Sized for a 2-core, 24 GiB machine that also runs the Python side:
    # 2 GiB heap for transactions of 10k-row UNWIND batches, 2 GiB page cache holds the 1M-account
    # graph's hot part. Raise both on a bigger machine.
    neo4j_port: int = 7687
    neo4j_heap: str = "2g"
    neo4j_pagecache: str = "2g"
    neo4j_start_timeout: float = 180.0
    # The embedded Neo4j sends a keep-alive every second while it works on a request and tells
    # drivers to drop a connection silent for this many seconds (Bolt's
    # connection.recv_timeout_seconds; Neo4j's default is 120): a frozen server (SIGSTOP, a
    # stalled VM) fails a read in flight within it. Takes effect when the instance starts.
    neo4j_recv_timeout: int = Field(default=4, ge=1)
    # Whether the embedded Neo4j allocates each transaction log file whole (256 MiB, per
    # database, so 512 MiB for an empty store) before writing it: Neo4j's default, which spares
    # commits the file-size updates of a growing file. The tests turn it off (tests/conftest.py):
    # dozens of throwaway stores filled the CI machine's disk. Takes effect when it starts.
    neo4j_tx_log_preallocate: bool = True
    # Neo4j's HTTP connector, on 127.0.0.1 only, for `ringscope neo4j start --browser` (Neo4j
    # Browser at /browser/); without --browser nothing listens on it.
    neo4j_http_port: int = Field(default=7474, ge=1, le=65535)
    java: str = "java"
    mvn: str = "mvn"

    # Ingest: the region phone numbers without a country code are read in, and the UNWIND batch
    # size (5k-50k rows per transaction is the published sweet spot).
    default_region: str = "CN"
    ingest_batch_size: int = 10_000
    # Concurrent write sessions; their batches never touch the same node (ingest.layout._schedule).
    ingest_writers: int = Field(default=2, ge=1, le=16)

    # --- api --- (the GraphQL server and its client; see docs/api.md)
    # development: GraphiQL and introspection on; production: both off.
    api_env: Literal["development", "production"] = "development"
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # Where `ringscope query` and RingScopeClient reach the server, and the key they send.
    api_url: str = "http://127.0.0.1:8000/graphql"
    api_key: SecretStr | None = None
    # Seconds one Cypher query of the API may run before Neo4j aborts it.
    api_query_timeout: float = 10.0
    # Query limits (Strawberry validation extensions) and the HTTP body cap.
    api_max_depth: int = 10
    api_max_aliases: int = 15
    api_max_tokens: int = 2_000
    api_max_body_bytes: int = 100_000
    # Connections (api/connection.py): a request's headers and body must be in within
    # api_read_timeout_s of its first byte (or of the connection opening), or the connection is
    # closed (slowloris); an idle keep-alive connection is closed after api_keep_alive_s; past
    # api_max_connections connections and requests in flight per process, new ones get a 503.
    api_read_timeout_s: float = Field(default=10.0, gt=0)
    api_keep_alive_s: int = Field(default=5, ge=1)
    api_max_connections: int = Field(default=1_000, ge=1)
    # The most an operation may cost, worked out before it runs (api/cost.py): each field
    # counts 1 (a root read 10, explain 20,000) and each list multiplies the fields under it by
    # its page size. The risk engine's page of 500 clusters with their members costs ~110,000.
    api_max_cost: int = Field(default=200_000, ge=1)
    # explain(accountId) per API key: a token bucket of this many calls, refilled at
    # api_explain_per_minute; an empty bucket answers 429 with Retry-After. In memory, per
    # server process.
    api_explain_burst: int = Field(default=5, ge=1)
    api_explain_per_minute: float = Field(default=6.0, gt=0)
    # Threads that run GraphQL operations (each its own event loop), so that completing a large
    # answer never blocks the server's loop: /healthz and other requests are answered meanwhile.
    api_execution_threads: int = Field(default=4, ge=1, le=64)
    # ... except an operation whose cost bound (api/cost.py) is at most this: it runs on the
    # server's loop, its blocking reads still in the worker threads. Handing every operation to
    # an execution thread and back cost a two-hop neighbourhood (cost 2,266 at limit 100) a
    # sixth of its server CPU; an answer this small completes in about a millisecond. 0 sends
    # every operation to the execution threads.
    api_inline_max_cost: int = Field(default=5_000, ge=0)
    # riskNeighbourhood: identifiers used by more accounts than this are hubs (not expanded);
    # `limit` is capped at api_neighbourhood_max_nodes.
    api_hub_degree: int = 50
    api_neighbourhood_max_nodes: int = 500
    # explain(accountId): beyond the identifiers the tree model always reads (at most its
    # hub_degree, 200, accounts), bigger ones are read smallest first while the accounts read
    # stay within this; one left unread makes the GNN part of the answer approximate.
    api_explain_expand_max: int = 5_000
    # Score chunks (5,000 accounts each) the server keeps in memory; 200 is 1M accounts, ~100 MB;
    # 0: none (every score read in Cypher).
    api_score_cache_chunks: int = 200
    # Seconds a verified API key is cached in the server (revocation takes effect after this);
    # 0 turns every key cache off. At most api_key_cache_size keys are kept, least recently used
    # out first. An unknown key id is refused without a Neo4j read while the list of key ids read
    # for an earlier unknown id is younger than api_key_negative_cache_seconds (capped by
    # api_key_cache_seconds), so a key created since may be refused for that long.
    api_key_cache_seconds: float = 10.0
    api_key_cache_size: int = Field(default=10_000, ge=1)
    api_key_negative_cache_seconds: float = Field(default=1.0, ge=0)
    # Server processes (`ringscope serve --workers`). One process's Python is the API's
    # bottleneck (GIL-bound; docs/api.md has the measurements), so a machine with spare cores
    # serves more with more processes. Each has its own driver, key cache and score cache.
    api_workers: int = 1
    # Worker threads per process for the (synchronous) Neo4j driver calls of the async server.
    # Few: more threads only fight over the GIL (measured at 20 clients, 100k accounts: 2
    # threads 149 neighbourhoods/s, 4: 131, 16: 108).
    api_threads: int = 4
    # Complete leaf-only objects (neighbourhood nodes, edges, paths) without graphql-core's
    # per-field machinery (api/execution.py); off: graphql-core completes every field.
    api_fast_leaves: bool = True
    # The append-only audit log directory; default <data_dir>/audit.
    api_audit_dir: Path | None = None
    # /healthz answers 503 when the current build finished longer ago than this (seconds);
    # 0 (or None) turns the check off. Default: 2 days (rebuilds are expected at least daily).
    api_max_build_age_s: float | None = 172_800.0
    # When set, GET /metrics needs `Authorization: Bearer <token>`; unset, it is open.
    api_metrics_token: SecretStr | None = None
    # The HMAC key of masked PII keys (at least 16 characters). Unset: generated once into
    # <data_dir>/api/mask_secret (mode 0600) and reused, so tokens survive restarts.
    api_mask_secret: SecretStr | None = None
    # The API's driver limits (docs/api.md#outages), used instead of neo4j_connection_timeout,
    # neo4j_acquisition_timeout and neo4j_max_retry_time. No retries: clients retry
    # (RingScopeClient does). So with Neo4j gone or frozen a query fails in about 2 s with "Neo4j
    # is unavailable" instead of 30-60 s.
    api_neo4j_connection_timeout: float = Field(default=2.0, gt=0)
    api_neo4j_acquisition_timeout: float = Field(default=2.0, gt=0)
    api_neo4j_max_retry_time: float = Field(default=0.0, ge=0)
    # A pooled connection idle longer than this (seconds) is checked, one round trip, before the
    # API uses it; 0 checks every use. Checking every use was a fifth of Neo4j's CPU and a tenth
    # of the server's per neighbourhood (issue #21); a connection used within the last second
    # is alive or fails its read within neo4j_recv_timeout (4 s) if the server froze since.
    api_neo4j_liveness_check_s: float = Field(default=1.0, ge=0)
    # Once a call found Neo4j unavailable, the API's calls fail at once for this long instead of
    # each holding a worker thread for the acquisition timeout; the next one after it tries again.
    api_neo4j_unavailable_hold_s: float = Field(default=1.0, ge=0)
    # /healthz's own deadline (seconds): Neo4j not answering within it is a 503.
    api_health_timeout: float = Field(default=2.0, gt=0)
    # --- end api ---

    # --- rebuild and models --- (ringscope rebuild / schedule; see docs/rebuild.md)
    # A running build without a heartbeat for this long is taken for a dead rebuild (a dead
    # process on this machine is noticed at once).
    rebuild_stale_after_s: float = 600.0
    # Complete builds kept for comparison (older ones are pruned after each switch).
    rebuild_keep_builds: int = 3
    # The learned account-risk model: seed, whether the GNN is trained next to the tree model,
    # and OpenMP threads (1 keeps a shared 2-core machine responsive; 2 on a quiet one).
    model_seed: int = 0
    model_use_gnn: bool = True
    model_threads: int = 1
    # Label exposure (models.risk.label_exposure): young unlabelled accounts count as fraud with
    # the chance that the labels' delay leaves, instead of as plain negatives.
    model_label_exposure: bool = True
    # Label frequency (models.risk, RiskConfig.label_frequency): with exposure, an old
    # unlabelled account still counts partly as fraud, since not every fraud is ever labelled
    # (the share that is, estimated from the labels: Elkan and Noto's e1). On since session 25
    # (docs/models.md: AUPRC up on 3 development and 3 held-out worlds).
    model_label_frequency: bool = True
    # The ring features (models.features.ring_features): a model trained from now on reads the
    # current build's label-free cluster scores around each account (a returning ring's new
    # account on its farm device). A model keeps the choice it was trained with. On since
    # session 37, with the soft labels below (alone, in session 25, they did not raise
    # decision-time quality: the model had nothing to learn them from).
    model_ring_prior: bool = True
    # Ring soft labels (models.risk.ring_soft_labels): a model trained from now on counts each
    # unlabelled member of the current build's clusters as fraud with its cluster's label-free
    # probability of being a ring, not as a plain negative. On since session 37: with the ring
    # features, AUPRC of the screen over three events rose on every unseen world
    # (docs/screening.md, "Session 37").
    model_ring_soft_labels: bool = True
    # Screening's feature table (models/screen_table.py): an in-process rebuild keeps every
    # account's feature row, and screens read rows instead of every neighbour's edges.
    screen_table: bool = True
    # The cluster score: "prior" (hand-set weights) or "learned" (fitted on this platform's
    # labels and calibrated; models/cluster_score.py), which falls back to the prior when the
    # labels are too few. The build records which was used (metrics.counts.cluster_scorer).
    cluster_scorer: Literal["prior", "learned"] = "learned"
    # The prior the cluster score starts from: "worlds" (learned from generated worlds,
    # models/cluster_prior.py) or "hand-set" (clusters.SCORE_WEIGHTS).
    cluster_prior: Literal["worlds", "hand-set"] = "worlds"
    # Clusters holding a fraud label, and clusters holding only legit labels, that the learned
    # score needs (each); fewer: the prior.
    cluster_min_positives: int = 8
    # Ring boundaries: flagged clusters keep only their core; attached members (a ring member's
    # family on one tie) leave them and inherit nothing (models/boundaries.py).
    detect_trim_attached: bool = True
    # Co-activation (models/coactivation.py): accounts quiet for weeks that first pay the same
    # new payee within days of each other are linked (sleeper rings). Off: identifiers only.
    detect_coactivation: bool = True
    # Onboarding cohorts (models/coactivation.py): accounts that first paid the same new small
    # payee within days of opening, its payers from its start, are linked (cash-out rings on a
    # colluding merchant, found before their devices and numbers are). Off: not linked.
    detect_onboarding: bool = True
    # Reassembly (models/reassembly.py): flagged clusters of one component that share an
    # identifier used (mostly) by them alone, a ring's drain payee or merchant, are one ring.
    detect_reassemble: bool = True
    # The GNN's training time budget in seconds (training stops there, best epoch kept); 0: none.
    model_gnn_max_seconds: float = 600.0
    # The fewest epochs the GNN must be able to train within that budget, judged by its first
    # epoch; below it the GNN is abandoned after that epoch and the tree serves (1M accounts on
    # 2 CPU cores: its first epoch took 21.6 s, setup included). 0: always train up to the budget.
    model_gnn_min_epochs: int = Field(default=50, ge=0)
    # Where the GNN trains and scores: "cpu" or "cuda" (falls back to the CPU when no GPU is
    # there). Measured at 1M accounts: 0.2 s per epoch on an H200 against 21 s on one CPU core.
    model_device: str = "cpu"
    # Where trained models live (versions plus a `current` pointer); default <data_dir>/models.
    # API replicas and the rebuild job share it (a shared volume) to serve the same model.
    model_dir: Path | None = None

    # --- spark --- (the rebuild on Apache Spark, issue #18; ringscope/spark/)
    # Where the rebuild's detection runs: "in-process" (this Python process, the default: up to
    # about 10M accounts hourly; docs/scaling.md) or "spark" (pip install 'ringscope[spark]').
    rebuild_engine: Literal["in-process", "spark"] = "in-process"
    # The Spark master: local[*] runs Spark inside this machine; spark://, yarn or k8s:// reach a
    # real cluster (whose Python workers then need spark_python and the model directory).
    spark_master: str = "local[*]"
    # The driver JVM's heap. In local mode the executors live in the driver JVM, so this is all
    # of Spark's memory; the Python workers (pandas, igraph) are separate processes. Read once,
    # when the first session of a process starts its JVM.
    spark_driver_memory: str = "2g"
    # Partitions of every shuffle (joins, group-bys). Spark's default of 200 is for clusters: in
    # local mode on a few cores each tiny partition costs a task's fixed ~10 ms. Raise it to about
    # 2-3x the cluster's cores.
    spark_shuffle_partitions: int = Field(default=8, ge=1)
    # The interpreter of Spark's Python workers (PYSPARK_PYTHON); None: this one (sys.executable),
    # which has numpy, igraph and ringscope. On a cluster: the workers' environment's python.
    spark_python: str | None = None
    # Spark's scratch space (shuffle files, spills); None: the system's temporary directory.
    # Each process uses a directory of its own under it, removed when the process exits.
    spark_local_dir: Path | None = None
    # Where GraphX checkpoints its iterations (a URI: hdfs://, s3a://, or a path). None: a
    # directory under the scratch space in local mode, and no checkpointing on a cluster (where
    # it must be storage that every executor reaches).
    spark_checkpoint_dir: str | None = None
    # GraphX's connected components is Pregel: one superstep per hop of a component's diameter,
    # and the lineage grows with each; every this many supersteps the graph is checkpointed,
    # which cuts it (without, a long chain overflows the stack). 0: never.
    spark_checkpoint_interval: int = Field(default=25, ge=0)
    # Further Spark properties, e.g. RINGSCOPE_SPARK_CONF='{"spark.executor.memory": "8g"}';
    # they override RingScope's own.
    spark_conf: dict[str, str] = Field(default_factory=dict)
    # The JDK's compiler, which builds the GraphX helper (ringscope/spark/graphx/) once per
    # Spark version into cache_dir/spark.
    javac: str = "javac"
    # --- end spark ---

    @property
    def models_dir(self) -> Path:
        return self.model_dir or self.data_dir / "models"

    @property
    def neo4j_home(self) -> Path:
        """The embedded instance's directory: store, password file, state file and logs."""
        return self.data_dir / "neo4j"
