"""What a job is, as frozen Structs shared by the scheduler, the API and every store.

    NewJob ──insert──▶ queued ──mark──▶ running ──finish(Outcome)──▶ succeeded | failed
                          ▲                │                        (written once)
                          └──── mark ──────┘                        cancelled (finish too)

A job keeps the chat request as the bytes the client sent (`NewJob.request`, decoded
once, when it runs), its envelope beside them (model group, priority, metadata,
deadline), and once finished its attempts and either the completion (`result`, JSON
bytes spliced into answers as they are) or its error as data (`ErrorData`: what failed
it, never an HTTP body; the API renders it with the error table).
"""

from __future__ import annotations

from typing import Final, Literal

import msgspec

from .._exceptions import AttemptRecord, ErrorData

Status = Literal["queued", "running", "succeeded", "failed", "cancelled"]
STATUSES: Final[tuple[Status, ...]] = ("queued", "running", "succeeded", "failed", "cancelled")
UNFINISHED: Final[frozenset[Status]] = frozenset(("queued", "running"))
TERMINAL: Final[frozenset[Status]] = frozenset(("succeeded", "failed", "cancelled"))


class NewJob(msgspec.Struct, frozen=True, kw_only=True):
    """A job to insert: the request as the client's JSON bytes, routing data beside it."""

    id: str
    model: str
    """The model group the request names (what decides where it may run)."""
    request: bytes
    """The chat request exactly as the client sent it."""
    digest: bytes
    """sha256 of the request's canonical encoding: what idempotency compares (empty
    without an idempotency key: nothing compares it then)."""
    idempotency_key: str | None = None
    metadata: bytes | None = None
    """The client's metadata object as JSON, returned as given, never sent upstream."""
    timeout_s: float | None = None
    priority: int = 0
    created_at: float
    """Wall-clock seconds (time.time())."""
    request_id: str | None = None
    """The submission's x-request-id, to find its log lines."""


class Existing(msgspec.Struct, frozen=True, kw_only=True):
    """The job an idempotency key already names."""

    id: str
    status: Status
    digest: bytes


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    """A job's terminal state, written once: its attempts, then its result or its error."""

    status: Status
    finished_at: float
    attempts: tuple[AttemptRecord, ...] = ()
    result: bytes | None = None
    """succeeded: the chat.completion as JSON."""
    error: ErrorData | None = None
    """failed: the error that failed it, as data."""


class Job(msgspec.Struct, frozen=True, kw_only=True):
    """A job as a store gives it back (without its request bytes: see `JobStore.request`)."""

    id: str
    status: Status
    model: str
    priority: int
    created_at: float
    timeout_s: float | None = None
    metadata: bytes | None = None
    finished_at: float | None = None
    attempts: tuple[AttemptRecord, ...] = ()
    result: bytes | None = None
    error: ErrorData | None = None
    request_id: str | None = None

    @classmethod
    def of(cls, job: NewJob, status: Status = "queued") -> Job:
        """The job `job` becomes once inserted."""
        return cls(
            id=job.id,
            status=status,
            model=job.model,
            priority=job.priority,
            created_at=job.created_at,
            timeout_s=job.timeout_s,
            metadata=job.metadata,
            request_id=job.request_id,
        )

    def settled(self, outcome: Outcome) -> Job:
        """This job with its terminal state."""
        return msgspec.structs.replace(
            self,
            status=outcome.status,
            finished_at=outcome.finished_at,
            attempts=outcome.attempts,
            result=outcome.result,
            error=outcome.error,
        )
