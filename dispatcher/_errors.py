"""The one table from dispatcher errors to HTTP answers (OpenAI's error shape).

The daemon is the one retry owner: an answer that a client's own retry cannot fix
(a 502 after our retries, a 504 after the deadline, any 4xx but a capacity 429)
carries ``x-should-retry: false``, which the official OpenAI SDKs obey before their
own status rules (they would otherwise retry 409 and every 5xx). Capacity refusals
carry ``Retry-After``.
"""

from __future__ import annotations

import math
from typing import Any, Final

import msgspec

from actors import ErrorClass

from ._exceptions import (
    AllAttemptsFailed,
    BodyTooLarge,
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

MAX_RETRY_AFTER_HEADER_S: Final = 86_400
"""The largest Retry-After we ever answer (whatever a capacity error carries)."""
_NO_RETRY: Final = ("x-should-retry", "false")

# Most specific first: the first entry the error is an instance of wins.
_TABLE: Final[tuple[tuple[type[DispatchError], int, str, str], ...]] = (
    (BodyTooLarge, 413, "invalid_request_error", "request_too_large"),
    (UnsupportedMediaType, 415, "invalid_request_error", "unsupported_media_type"),
    (InvalidRequest, 400, "invalid_request_error", "invalid_request"),
    (UnknownGroup, 404, "invalid_request_error", "model_not_found"),
    (NoCapacity, 429, "rate_limit_error", "overloaded"),
    (AllAttemptsFailed, 502, "upstream_error", "all_attempts_failed"),
    (DeadlineExceeded, 504, "timeout_error", "deadline_exceeded"),
    (UnknownJob, 404, "invalid_request_error", "job_not_found"),
    (IdempotencyConflict, 409, "invalid_request_error", "idempotency_key_reused"),
    (StoreUnavailable, 503, "service_unavailable", "store_unavailable"),
    (DispatchError, 500, "server_error", "internal_error"),
)

# When the last failure says the request itself cannot be served, say so as OpenAI would.
_CLIENT_SIDE: Final = {
    ErrorClass.CONTEXT_WINDOW_EXCEEDED: (400, "invalid_request_error", "context_length_exceeded"),
    ErrorClass.CONTENT_POLICY: (400, "invalid_request_error", "content_filter"),
}


class ErrorAnswer(msgspec.Struct, frozen=True):
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


def error_answer(exc: DispatchError) -> ErrorAnswer:
    """Status, OpenAI-shaped JSON body and extra headers for `exc`."""
    status, kind, code = next((s, t, c) for cls, s, t, c in _TABLE if isinstance(exc, cls))
    error: dict[str, Any] = {"message": str(exc), "type": kind, "code": code, "param": None}
    headers: list[tuple[str, str]] = []
    if isinstance(exc, InvalidRequest):
        error["message"], error["param"] = exc.message, exc.param
        if exc.code:
            error["code"] = exc.code
    elif isinstance(exc, NoCapacity):
        # A full inbox or a spent rpm/tpm budget is a 429 (as OpenAI's own limiter answers);
        # 503 only when what is left is cooling down or stopping.
        if exc.reason not in ("inbox_full", "rate_limited"):
            status, kind = 503, "service_unavailable"
        error["type"], error["code"] = kind, exc.reason
        headers.append(("retry-after", _retry_after_header(exc.retry_after)))
    elif isinstance(exc, AllAttemptsFailed) and exc.last in _CLIENT_SIDE:
        status, error["type"], error["code"] = _CLIENT_SIDE[exc.last]
        error["message"] = exc.attempts[-1].message or str(exc)
    elif isinstance(exc, AllAttemptsFailed) and all(
        a.outcome == ErrorClass.BAD_REQUEST for a in exc.attempts
    ):
        # Every provider refused the request's form: the request is what needs fixing.
        status, error["type"], error["code"] = 400, "invalid_request_error", "rejected_by_provider"
        error["message"] = "; ".join(f"{a.deployment}: {a.message}" for a in exc.attempts)
    if exc.attempts:
        error["attempts"] = exc.attempts
    if status in (502, 504) or (400 <= status < 500 and status != 429):
        headers.append(_NO_RETRY)
    return ErrorAnswer(status, msgspec.json.encode({"error": error}), tuple(headers))


def _retry_after_header(seconds: float) -> str:
    """Whole seconds in 1..MAX_RETRY_AFTER_HEADER_S (inf and NaN too: never a 500)."""
    if math.isnan(seconds):
        return "1"
    return str(max(1, math.ceil(min(seconds, MAX_RETRY_AFTER_HEADER_S))))


def simple_error(status: int, message: str, kind: str, code: str) -> bytes:
    """An OpenAI-shaped error body for answers that are not dispatch errors (404 route, 405)."""
    return msgspec.json.encode(
        {"error": {"message": message, "type": kind, "code": code, "param": None}}
    )
