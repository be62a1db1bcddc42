"""Errors of the dispatcher layer.

    DispatchError              a request could not be served
    ├── InvalidRequest         the request itself is wrong (bad JSON, bad field, ...)
    │   ├── BodyTooLarge       the body is over [server].max_body_bytes
    │   └── UnsupportedMediaType  the body is not declared application/json
    ├── UnknownGroup           `model` names no configured group
    ├── NoCapacity             no candidate could take the request right now
    ├── AllAttemptsFailed      every candidate that was tried failed
    ├── DeadlineExceeded       the whole-request deadline passed
    ├── UnknownJob             no job has that id (or it was swept after retention_s)
    ├── IdempotencyConflict    an idempotency_key was used before for another request
    └── StoreUnavailable       the job store cannot take or read a job right now
    DaemonError                the daemon cannot start (socket in use, bad path, ...)

`dispatcher._errors` maps each to an HTTP status and an OpenAI-shaped body. A message
quotes client input (a model name, a job id, a key) through `clip`, so an answer never
echoes a megabyte back; it never names a file of the daemon's (that goes to the log).
"""

from __future__ import annotations

from typing import Final

from msgspec import Struct

from actors import ErrorClass

MAX_ECHO_CHARS: Final = 100
"""Longest piece of client input (a key, a model name, an id) quoted back in an error."""


def clip(text: str, limit: int = MAX_ECHO_CHARS) -> str:
    """`text`, cut to `limit` characters with an ellipsis when longer."""
    return text if len(text) <= limit else text[:limit] + "…"


class AttemptRecord(Struct, frozen=True, kw_only=True):
    """What one attempt did, as reported to clients and stored with jobs."""

    deployment: str
    outcome: str
    """`success` or an error class."""
    status: int | None
    latency_ms: float
    message: str | None = None


class DispatchError(Exception):
    """A request could not be served."""

    attempts: tuple[AttemptRecord, ...] = ()


class InvalidRequest(DispatchError):
    """The request is malformed or asks for something that cannot be done."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


class BodyTooLarge(InvalidRequest):
    """The request body is larger than the server accepts."""


class UnsupportedMediaType(InvalidRequest):
    """The request body's Content-Type is not application/json."""


class UnknownGroup(DispatchError):
    """No model group of that name is configured."""

    def __init__(self, group: str, known: tuple[str, ...]) -> None:
        super().__init__(f"The model {clip(group)!r} does not exist (groups: {', '.join(known)})")
        self.group = group


class NoCapacity(DispatchError):
    """Every candidate was full, cooling down or out of budget; nothing was sent."""

    def __init__(self, reason: str, retry_after: float, group: str) -> None:
        super().__init__(
            f"no deployment for {group!r} can take the request now ({reason.replace('_', ' ')}); "
            f"retry after {retry_after:.1f}s"
        )
        self.reason = reason
        self.retry_after = retry_after
        self.group = group


class AllAttemptsFailed(DispatchError):
    """Every candidate tried failed; `attempts` says how."""

    def __init__(self, group: str, attempts: tuple[AttemptRecord, ...], last: ErrorClass) -> None:
        super().__init__(f"all {len(attempts)} attempts for {group!r} failed (last: {last})")
        self.group = group
        self.attempts = attempts
        self.last = last


class DeadlineExceeded(DispatchError):
    """The request's deadline passed before any attempt succeeded."""

    def __init__(self, group: str, timeout_s: float, attempts: tuple[AttemptRecord, ...]) -> None:
        super().__init__(f"request for {group!r} did not finish within {timeout_s:g}s")
        self.group = group
        self.attempts = attempts


class DaemonError(Exception):
    """The daemon cannot start or serve (a precise, user-facing reason)."""


class UnknownJob(DispatchError):
    """No job has this id (never submitted, or removed after `[jobs].retention_s`)."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"No job with id {clip(job_id)!r}")
        self.job_id = job_id


class IdempotencyConflict(DispatchError):
    """The `idempotency_key` names an existing job whose request differs."""

    def __init__(self, key: str, job_id: str) -> None:
        super().__init__(
            f"idempotency_key {clip(key)!r} was already used for job {job_id} "
            "with a different request"
        )
        self.key = key
        self.job_id = job_id


class StoreUnavailable(DispatchError):
    """The job store failed (disk full, I/O error); nothing was acknowledged.

    The message names no path (clients see it); `.path` is for the log.
    """

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"the job store is unavailable: {reason}")
        self.path = path
        self.reason = reason
