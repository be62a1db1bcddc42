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

Each `DispatchError` class has a `kind` (`all_attempts_failed`, `model_not_found`...) and
turns into `ErrorData` (`exc.data()`): the error as plain data, which a failed job stores
and from which `dispatcher._errors`, the one table that knows HTTP, renders the status and
the OpenAI-shaped body. A message quotes client input (a model name, a job id, a key)
through `clip`, so an answer never echoes a megabyte back; it never names a file of the
daemon's (that goes to the log).
"""

from __future__ import annotations

from typing import ClassVar, Final

from msgspec import Struct

from actors import ErrorClass

MAX_ECHO_CHARS: Final = 100
"""Longest piece of client input (a key, a model name, an id) quoted back in an error."""


def clip(text: str, limit: int = MAX_ECHO_CHARS) -> str:
    """`text`, cut to `limit` characters with an ellipsis when longer."""
    return text if len(text) <= limit else text[:limit] + "…"


class AttemptRecord(Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What one attempt did, as reported to clients and stored with jobs."""

    deployment: str
    outcome: str
    """`success` or an error class."""
    status: int | None
    latency_ms: float
    message: str | None = None
    cost_usd: float | None = None
    """The answering attempt's cost, when its model has a price (jobs show it)."""


class ErrorData(Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A `DispatchError` as data: what a failed job keeps, what the error table renders.

    `kind` names the error's class (`DispatchError.kind`); `code` and `param` are the
    request's own (`InvalidRequest`) or a capacity reason (`NoCapacity`); `last` is the
    error class of the last attempt (`AllAttemptsFailed`). The attempts travel beside it.
    """

    kind: str
    message: str
    param: str | None = None
    code: str | None = None
    last: str | None = None
    retry_after: float | None = None


class DispatchError(Exception):
    """A request could not be served."""

    kind: ClassVar[str] = "internal_error"
    attempts: tuple[AttemptRecord, ...] = ()

    def data(self) -> ErrorData:
        """This error as data (see `ErrorData`)."""
        return ErrorData(kind=self.kind, message=str(self))


class InvalidRequest(DispatchError):
    """The request is malformed or asks for something that cannot be done."""

    kind = "invalid_request"

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code

    def data(self) -> ErrorData:
        return ErrorData(kind=self.kind, message=self.message, param=self.param, code=self.code)


class BodyTooLarge(InvalidRequest):
    """The request body is larger than the server accepts."""

    kind = "request_too_large"


class UnsupportedMediaType(InvalidRequest):
    """The request body's Content-Type is not application/json."""

    kind = "unsupported_media_type"


class UnknownGroup(DispatchError):
    """No model group of that name is configured."""

    kind = "model_not_found"

    def __init__(self, group: str, known: tuple[str, ...]) -> None:
        super().__init__(f"The model {clip(group)!r} does not exist (groups: {', '.join(known)})")
        self.group = group


class NoCapacity(DispatchError):
    """Every candidate was full, cooling down or out of budget; nothing was sent."""

    kind = "no_capacity"

    def __init__(self, reason: str, retry_after: float, group: str) -> None:
        super().__init__(
            f"no deployment for {group!r} can take the request now ({reason.replace('_', ' ')}); "
            f"retry after {retry_after:.1f}s"
        )
        self.reason = reason
        self.retry_after = retry_after
        self.group = group

    def data(self) -> ErrorData:
        return ErrorData(
            kind=self.kind, message=str(self), code=self.reason, retry_after=self.retry_after
        )


class AllAttemptsFailed(DispatchError):
    """Every candidate tried failed; `attempts` says how."""

    kind = "all_attempts_failed"

    def __init__(self, group: str, attempts: tuple[AttemptRecord, ...], last: ErrorClass) -> None:
        super().__init__(f"all {len(attempts)} attempts for {group!r} failed (last: {last})")
        self.group = group
        self.attempts = attempts
        self.last = last

    def data(self) -> ErrorData:
        return ErrorData(kind=self.kind, message=str(self), last=str(self.last))


class DeadlineExceeded(DispatchError):
    """The request's deadline passed before any attempt succeeded."""

    kind = "deadline_exceeded"

    def __init__(self, group: str, timeout_s: float, attempts: tuple[AttemptRecord, ...]) -> None:
        super().__init__(f"request for {group!r} did not finish within {timeout_s:g}s")
        self.group = group
        self.attempts = attempts


class DaemonError(Exception):
    """The daemon cannot start or serve (a precise, user-facing reason)."""


class UnknownJob(DispatchError):
    """No job has this id (never submitted, or removed after `[jobs].retention_s`)."""

    kind = "job_not_found"

    def __init__(self, job_id: str) -> None:
        super().__init__(f"No job with id {clip(job_id)!r}")
        self.job_id = job_id


class IdempotencyConflict(DispatchError):
    """The `idempotency_key` names an existing job whose request differs."""

    kind = "idempotency_key_reused"

    def __init__(self, key: str, job_id: str) -> None:
        super().__init__(
            f"idempotency_key {clip(key)!r} was already used for job {job_id} "
            "with a different request"
        )
        self.key = key
        self.job_id = job_id


class StoreUnavailable(DispatchError):
    """The job store cannot take or read a job now (disk full, I/O error, busy, stopping);
    nothing was acknowledged.

    The message names no file (clients see it: the store logs where it failed).
    `retry_after` is set when waiting helps (a full write inbox).
    """

    kind = "store_unavailable"

    def __init__(self, reason: str, *, retry_after: float | None = None) -> None:
        super().__init__(f"the job store is unavailable: {reason}")
        self.reason = reason
        self.retry_after = retry_after

    def data(self) -> ErrorData:
        return ErrorData(kind=self.kind, message=str(self), retry_after=self.retry_after)
