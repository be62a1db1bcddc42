"""What a settled job records: its attempts, then its result or its error (as data)."""

from __future__ import annotations

import time

import msgspec

from actors import encoder

from .._exceptions import (
    AllAttemptsFailed,
    DeadlineExceeded,
    DispatchError,
    InvalidRequest,
    UnknownGroup,
)
from .._supervisor import Dispatched
from ._model import Outcome


def succeeded(done: Dispatched) -> Outcome:
    attempts = done.attempts
    if attempts and done.cost_usd is not None:  # the answering attempt carries the cost
        attempts = (*attempts[:-1], msgspec.structs.replace(attempts[-1], cost_usd=done.cost_usd))
    return Outcome(
        status="succeeded",
        finished_at=time.time(),
        attempts=attempts,
        result=encoder.encode(done.response),
    )


def failed(exc: DispatchError) -> Outcome:
    """The error a live request would have got, kept as data (the API renders it)."""
    return Outcome(
        status="failed", finished_at=time.time(), attempts=exc.attempts, error=exc.data()
    )


def cancelled() -> Outcome:
    return Outcome(status="cancelled", finished_at=time.time())


def outcome_label(exc: DispatchError) -> str:
    """The `outcome` label of a failed job: an error class, like `requests_total`'s."""
    if isinstance(exc, AllAttemptsFailed):
        return str(exc.last)
    if isinstance(exc, DeadlineExceeded):
        return "timeout"
    if isinstance(exc, UnknownGroup):
        return "unknown_model"
    if isinstance(exc, InvalidRequest):
        return "invalid_request"
    return "error"
