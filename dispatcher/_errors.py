"""The one table from dispatcher errors to HTTP answers (OpenAI's error shape).

Errors arrive as data (`ErrorData`, from `DispatchError.data()` or from a failed job's
record) and leave as a status, headers and an `ErrorObject`: a live request's answer is
``{"error": <object>}``, a failed job shows the same object with its `http_status`.

The daemon is the one retry owner: an answer that a client's own retry cannot fix
(a 502 after our retries, a 504 after the deadline, any 4xx but a capacity 429)
carries ``x-should-retry: false``, which the official OpenAI SDKs obey before their
own status rules (they would otherwise retry 409 and every 5xx). Capacity refusals
carry ``Retry-After``.
"""

from __future__ import annotations

import math
from typing import Final

import msgspec
from msgspec import UNSET, UnsetType

from actors import ErrorClass

from ._exceptions import AttemptRecord, DispatchError, ErrorData

MAX_RETRY_AFTER_HEADER_S: Final = 86_400
"""The largest Retry-After we ever answer (whatever a capacity error carries)."""
_NO_RETRY: Final = ("x-should-retry", "false")

# Each `DispatchError.kind` (a subclass without its own kind answers as its parent).
_TABLE: Final[dict[str, tuple[int, str, str]]] = {
    "request_too_large": (413, "invalid_request_error", "request_too_large"),
    "unsupported_media_type": (415, "invalid_request_error", "unsupported_media_type"),
    "invalid_request": (400, "invalid_request_error", "invalid_request"),
    "model_not_found": (404, "invalid_request_error", "model_not_found"),
    "no_capacity": (429, "rate_limit_error", "overloaded"),
    "all_attempts_failed": (502, "upstream_error", "all_attempts_failed"),
    "deadline_exceeded": (504, "timeout_error", "deadline_exceeded"),
    "job_not_found": (404, "invalid_request_error", "job_not_found"),
    "idempotency_key_reused": (409, "invalid_request_error", "idempotency_key_reused"),
    "store_unavailable": (503, "service_unavailable", "store_unavailable"),
    "internal_error": (500, "server_error", "internal_error"),
}

# When the last failure says the request itself cannot be served, say so as OpenAI would.
_CLIENT_SIDE: Final = {
    ErrorClass.CONTEXT_WINDOW_EXCEEDED: (400, "invalid_request_error", "context_length_exceeded"),
    ErrorClass.CONTENT_POLICY: (400, "invalid_request_error", "content_filter"),
}


class ErrorObject(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The `error` object of an answer, as OpenAI shapes it (`param` always present)."""

    message: str
    type: str
    code: str
    param: str | None
    attempts: tuple[AttemptRecord, ...] | UnsetType = UNSET


class ErrorAnswer(msgspec.Struct, frozen=True):
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


class _Body(msgspec.Struct, frozen=True):
    error: ErrorObject


_encoder: Final = msgspec.json.Encoder()


def error_answer(exc: DispatchError) -> ErrorAnswer:
    """Status, OpenAI-shaped JSON body and extra headers for `exc`."""
    status, error, headers = render(exc.data(), exc.attempts)
    return ErrorAnswer(status, _encoder.encode(_Body(error)), headers)


def render(
    data: ErrorData, attempts: tuple[AttemptRecord, ...] = ()
) -> tuple[int, ErrorObject, tuple[tuple[str, str], ...]]:
    """The status, error object and extra headers of an error given as data."""
    status, kind, code = _TABLE.get(data.kind, _TABLE["internal_error"])
    message, param = data.message, data.param
    headers: list[tuple[str, str]] = []
    if data.code:
        code = data.code
    if data.kind == "no_capacity":
        # A full inbox or a spent rpm/tpm budget is a 429 (as OpenAI's own limiter answers);
        # 503 only when what is left is cooling down or stopping.
        if code not in ("inbox_full", "rate_limited"):
            status, kind = 503, "service_unavailable"
    elif data.kind == "all_attempts_failed" and data.last in _CLIENT_SIDE:
        status, kind, code = _CLIENT_SIDE[ErrorClass(data.last)]
        message = (attempts[-1].message if attempts else None) or message
    elif (
        data.kind == "all_attempts_failed"
        and attempts
        and all(a.outcome == ErrorClass.BAD_REQUEST for a in attempts)
    ):
        # Every provider refused the request's form: the request is what needs fixing.
        status, kind, code = 400, "invalid_request_error", "rejected_by_provider"
        message = "; ".join(f"{a.deployment}: {a.message}" for a in attempts)
    if data.retry_after is not None:
        headers.append(("retry-after", _retry_after_header(data.retry_after)))
    if status in (502, 504) or (400 <= status < 500 and status != 429):
        headers.append(_NO_RETRY)
    error = ErrorObject(
        message=message, type=kind, code=code, param=param, attempts=attempts or UNSET
    )
    return status, error, tuple(headers)


def _retry_after_header(seconds: float) -> str:
    """Whole seconds in 1..MAX_RETRY_AFTER_HEADER_S (inf and NaN too: never a 500)."""
    if math.isnan(seconds):
        return "1"
    return str(max(1, math.ceil(min(seconds, MAX_RETRY_AFTER_HEADER_S))))


def simple_error(status: int, message: str, kind: str, code: str) -> bytes:
    """An OpenAI-shaped error body for answers that are not dispatch errors (404 route, 405)."""
    return _encoder.encode(_Body(ErrorObject(message=message, type=kind, code=code, param=None)))
