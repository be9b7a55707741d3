"""Errors that reach a user. Each message says what went wrong and what to do about it.

Every such error is a :class:`RingScopeError`: the CLI prints its message as one line (exit
code 2, never a traceback), and the API answers it as a GraphQL error with a code. The classes
live next to the code that raises them; this is the whole tree, in one place::

    RingScopeError                          ringscope.errors
    ├── Neo4jError                          ringscope.errors: start, reach, authenticate
    │   ├── JavaNotFoundError
    │   ├── PortInUseError
    │   ├── StoreError                      an incomplete or foreign store
    │   ├── LaunchTimeoutError
    │   ├── Neo4jAuthError
    │   └── Neo4jUnavailableError
    ├── IngestError                         ingest.contract: a load cannot run at all
    │   ├── IngestFormatError               a whole file is unreadable (names file and column)
    │   └── MappingError                    a mapping file is invalid
    ├── BuildError                          models.builds
    │   └── BuildInProgressError            another rebuild holds the lock
    ├── BuildNotFoundError                  models.builds
    ├── InvalidCursorError                  models.builds: a page cursor that was not ours
    ├── ModelArtefactError                  models.artefacts
    │   └── ModelSchemaError                a stored model for other features
    ├── NoModelError                        models.store: explain with no trained model
    ├── TruthError                          models.evaluate: ground truth missing or malformed
    ├── UnknownEngineError                  models.communities
    ├── BenchmarkError                      models.gad
    │   └── DatasetMissingError
    ├── RebuildError                        jobs.rebuild (a failed Spark job too)
    ├── SparkUnavailableError               spark.session: pyspark, pandas or a JDK missing
    ├── ScheduleError                       jobs.schedule: a bad --every / --cron
    ├── ApiError                            api.service: answered as GraphQL errors
    │   ├── NotFoundError
    │   ├── LimitExceededError              a page size or list over its bound
    │   │   └── QueryCostError              api.cost: an operation over its cost budget
    │   └── InvalidArgumentError
    ├── RateLimitedError                    api.ratelimit: a key's explain budget (HTTP 429)
    ├── ApiKeyError                         api.auth
    ├── MaskSecretError                     api.context: the PII masking secret file
    └── ClientError                         api.client: the risk engine's typed client
        ├── AuthenticationError
        └── QueryError

Internal signals that never reach a user as such: ``ingest.read.RaggedCsvError`` (becomes a
quarantined row), ``api.audit.AuditWriteError`` (the request is refused with a 500) and the
app's body-size guard.
"""

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
