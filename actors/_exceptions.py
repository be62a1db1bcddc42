"""Errors of the actor layer, and the closed set of error classes.

    ProviderError              a provider call failed; `.error` is its ErrorClass
    Unavailable                a deployment cannot take an attempt right now
    ├── InboxFull              its bounded inbox is full
    ├── CoolingDown            its breaker is open (or a Retry-After is running)
    ├── RateLimited            its rpm/tpm budget has no room for this request
    └── Stopped                it is shutting down
    Unsupported                a deployment cannot take this request's form at all
    └── TooLong                the request is longer than its max_input_tokens

Only the server layer knows HTTP statuses for these.
"""

from __future__ import annotations

import enum

import anyio


class ErrorClass(enum.StrEnum):
    """Why an attempt failed. The supervisor decides retries and fallbacks from this alone."""

    RATE_LIMITED = "rate_limited"
    TIMEOUT = "timeout"
    OVERLOADED = "overloaded"
    SERVER_ERROR = "server_error"
    CONNECTION = "connection"
    AUTH = "auth"
    BAD_REQUEST = "bad_request"
    NOT_FOUND = "not_found"
    CONTEXT_WINDOW_EXCEEDED = "context_window_exceeded"
    CONTENT_POLICY = "content_policy"

    @property
    def retryable(self) -> bool:
        """Worth another try on the same deployment."""
        return self in _RETRYABLE

    @property
    def counts_toward_breaker(self) -> bool:
        """A sign the deployment (not the request) is unhealthy."""
        return self in _RETRYABLE

    @property
    def opens_breaker(self) -> bool:
        """So wrong that the deployment should rest at once."""
        return self in (ErrorClass.AUTH, ErrorClass.NOT_FOUND)


_RETRYABLE = frozenset(
    {
        ErrorClass.RATE_LIMITED,
        ErrorClass.OVERLOADED,
        ErrorClass.TIMEOUT,
        ErrorClass.SERVER_ERROR,
        ErrorClass.CONNECTION,
    }
)


class ProviderError(Exception):
    """A provider call failed; classified once, at the adapter boundary."""

    def __init__(
        self,
        error: ErrorClass,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        retryable: bool | None = None,
        partial: tuple[object, ...] = (),
    ) -> None:
        super().__init__(message)
        self.partial = partial
        """Stream chunks completed before the error (a stream parser's), to deliver first."""
        self.error = error
        self.message = message
        self.status = status
        self.retry_after = retry_after
        self.retryable = error.retryable if retryable is None else retryable


class Unavailable(Exception):
    """A deployment cannot take an attempt right now; try another candidate."""

    reason = "unavailable"

    def __init__(self, deployment: str, retry_at: float | None = None) -> None:
        super().__init__(f"deployment {deployment!r} is {self.reason.replace('_', ' ')}")
        self.deployment = deployment
        self.retry_at = retry_at


class InboxFull(Unavailable):
    """The deployment's bounded inbox has no room."""

    reason = "inbox_full"


class CoolingDown(Unavailable):
    """The deployment's breaker is open until `retry_at`."""

    reason = "cooling_down"


class RateLimited(Unavailable):
    """The deployment's rpm/tpm budget has no room until `retry_at`.

    `refill` (cluster mode): budget is on its way from the cluster (a lease round
    trip); set when it arrived, or when it will not. Submitting again then may fit.
    """

    reason = "rate_limited"

    def __init__(
        self, deployment: str, retry_at: float | None = None, refill: anyio.Event | None = None
    ) -> None:
        super().__init__(deployment, retry_at)
        self.refill = refill


class Stopped(Unavailable):
    """The deployment is shutting down."""

    reason = "stopped"


class Unsupported(Exception):
    """The deployment cannot express this request (e.g. tools to a model without them)."""

    def __init__(self, deployment: str, message: str) -> None:
        super().__init__(message)
        self.deployment = deployment
        self.message = message


class TooLong(Unsupported):
    """The request is longer than the deployment's `max_input_tokens` (no call is made)."""
