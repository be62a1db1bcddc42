"""The dispatcher: router, supervisor, HTTP API, jobs, metrics, daemon and CLI."""

from ._api import Api
from ._connections import Connections, ConnectionStatistics
from ._daemon import Daemon, serve
from ._errors import error_answer
from ._exceptions import (
    AllAttemptsFailed,
    AttemptRecord,
    BodyTooLarge,
    DaemonError,
    DeadlineExceeded,
    DispatchError,
    IdempotencyConflict,
    InvalidRequest,
    NoCapacity,
    StoreUnavailable,
    UnknownGroup,
    UnknownJob,
    UnsupportedMediaType,
)
from ._guard import ListenerGuard
from ._http import MAX_JSON_DEPTH, App
from ._metrics import Metrics
from ._router import Chain, Router
from ._supervisor import Dispatched, Supervisor, jittered_backoff
from .jobs import Jobs, JobsStatistics, JobStore, MemoryJobStore, SqliteJobStore

__all__ = [
    "MAX_JSON_DEPTH",
    "AllAttemptsFailed",
    "Api",
    "App",
    "AttemptRecord",
    "BodyTooLarge",
    "Chain",
    "ConnectionStatistics",
    "Connections",
    "Daemon",
    "DaemonError",
    "DeadlineExceeded",
    "DispatchError",
    "Dispatched",
    "IdempotencyConflict",
    "InvalidRequest",
    "JobStore",
    "Jobs",
    "JobsStatistics",
    "ListenerGuard",
    "MemoryJobStore",
    "Metrics",
    "NoCapacity",
    "Router",
    "SqliteJobStore",
    "StoreUnavailable",
    "Supervisor",
    "UnknownGroup",
    "UnknownJob",
    "UnsupportedMediaType",
    "error_answer",
    "jittered_backoff",
    "serve",
]
