"""What a settled job records: its attempts, then its result or its error."""

from __future__ import annotations

import time
from typing import Final

import msgspec

from actors import encoder

from ._errors import error_answer
from ._exceptions import (
    AllAttemptsFailed,
    AttemptRecord,
    DeadlineExceeded,
    DispatchError,
    InvalidRequest,
    UnknownGroup,
)
from ._jobsql import JobOutcome
from ._supervisor import Dispatched

_encoder: Final = msgspec.json.Encoder()


class JobAttempt(msgspec.Struct, frozen=True, omit_defaults=True):
    """One attempt as a job reports it (the one that answered: with its cost, when known)."""

    deployment: str
    outcome: str
    status: int | None
    latency_ms: float
    cost_usd: float | None = None


def succeeded(done: Dispatched) -> JobOutcome:
    attempts = [_attempt(r) for r in done.attempts]
    if attempts and done.cost_usd is not None:
        attempts[-1] = msgspec.structs.replace(attempts[-1], cost_usd=done.cost_usd)
    return JobOutcome(
        status="succeeded",
        finished_at=time.time(),
        attempts=_encoder.encode(attempts),
        result=encoder.encode(done.response),
    )


def failed(exc: DispatchError) -> JobOutcome:
    """The error object a live request would have got, plus its `http_status`."""
    answer = error_answer(exc)
    error = msgspec.json.decode(answer.body)["error"]
    error["http_status"] = answer.status
    return JobOutcome(
        status="failed",
        finished_at=time.time(),
        attempts=_attempts(exc.attempts),
        error=_encoder.encode(error),
    )


def cancelled() -> JobOutcome:
    return JobOutcome(status="cancelled", finished_at=time.time(), attempts=b"[]")


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


def _attempts(records: tuple[AttemptRecord, ...]) -> bytes:
    return _encoder.encode([_attempt(r) for r in records])


def _attempt(record: AttemptRecord) -> JobAttempt:
    return JobAttempt(record.deployment, record.outcome, record.status, record.latency_ms)
