"""The dispatcher: router, supervisor, HTTP API, metrics, daemon and CLI."""

from ._api import Api
from ._daemon import Daemon, serve
from ._errors import error_answer
from ._exceptions import (
    AllAttemptsFailed,
    AttemptRecord,
    BodyTooLarge,
    DaemonError,
    DeadlineExceeded,
    DispatchError,
    InvalidRequest,
    NoCapacity,
    UnknownGroup,
)
from ._metrics import Metrics
from ._router import Chain, Router
from ._supervisor import Dispatched, Supervisor, jittered_backoff

__all__ = [
    "AllAttemptsFailed",
    "Api",
    "AttemptRecord",
    "BodyTooLarge",
    "Chain",
    "Daemon",
    "DaemonError",
    "DeadlineExceeded",
    "DispatchError",
    "Dispatched",
    "InvalidRequest",
    "Metrics",
    "NoCapacity",
    "Router",
    "Supervisor",
    "UnknownGroup",
    "error_answer",
    "jittered_backoff",
    "serve",
]
