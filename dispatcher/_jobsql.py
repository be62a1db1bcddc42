"""The job table: its schema, its rows as Structs, and the SQL of each write.

Pure functions over a `sqlite3.Connection`; `_jobstore` decides on which thread
and in which transaction they run. Terminal states are written with a
conditional UPDATE (`... WHERE status IN ('queued', 'running')`): the first
completion wins and a second one changes nothing.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Final, Literal

import msgspec

Status = Literal["queued", "running", "succeeded", "failed", "cancelled"]
STATUSES: Final[tuple[Status, ...]] = ("queued", "running", "succeeded", "failed", "cancelled")
TERMINAL: Final = frozenset(("succeeded", "failed", "cancelled"))
SCHEMA_VERSION: Final = 2

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    model TEXT NOT NULL,
    priority INTEGER NOT NULL,
    idempotency_key TEXT UNIQUE,
    digest BLOB NOT NULL,
    request BLOB NOT NULL,
    metadata BLOB,
    timeout_s REAL,
    created_at REAL NOT NULL,
    finished_at REAL,
    attempts BLOB,
    result BLOB,
    error BLOB,
    request_id TEXT
);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, seq);
CREATE INDEX IF NOT EXISTS jobs_by_finish ON jobs (finished_at) WHERE finished_at IS NOT NULL;
"""
COLUMNS: Final = (
    "id, status, model, priority, seq, created_at, finished_at, timeout_s, "
    "metadata, attempts, result, error, request_id"
)
OPEN: Final = "('queued', 'running')"


class NewJob(msgspec.Struct, frozen=True, kw_only=True):
    """A job to insert: the request as the client's JSON bytes, routing data beside it."""

    id: str
    model: str
    request: bytes
    digest: bytes
    """sha256 of the canonical request encoding: what idempotency compares."""
    idempotency_key: str | None
    metadata: bytes | None
    timeout_s: float | None
    priority: int
    created_at: float
    request_id: str | None = None
    """The submission's x-request-id, to find its log lines."""


class Existing(msgspec.Struct, frozen=True, kw_only=True):
    """The job an idempotency key already names."""

    id: str
    status: Status
    digest: bytes


class JobRow(msgspec.Struct, frozen=True, kw_only=True):
    """A job as stored; JSON columns stay bytes until the API splices them in."""

    id: str
    status: Status
    model: str
    priority: int
    seq: int
    created_at: float
    finished_at: float | None
    timeout_s: float | None
    metadata: bytes | None
    attempts: bytes | None
    result: bytes | None
    error: bytes | None
    request_id: str | None = None


class JobOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """A job's terminal state, to write once."""

    status: Status
    finished_at: float
    attempts: bytes
    result: bytes | None = None
    error: bytes | None = None


# -- writer operations (applied on the writer thread, inside one transaction) -----


class Insert(msgspec.Struct, frozen=True):
    job: NewJob


class Marks(msgspec.Struct, frozen=True):
    """queued/running changes, (status, job id) pairs: never a terminal state."""

    changes: tuple[tuple[Status, str], ...]


class Finish(msgspec.Struct, frozen=True):
    job_id: str
    outcome: JobOutcome


class Sweep(msgspec.Struct, frozen=True):
    cutoff: float


Op = Insert | Marks | Finish | Sweep


def apply(conn: sqlite3.Connection, op: Op) -> Any:
    match op:
        case Insert(job=job):
            cursor = conn.execute(
                "INSERT INTO jobs (id, status, model, priority, idempotency_key, digest, "
                "request, metadata, timeout_s, created_at, request_id) "
                "VALUES (?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (idempotency_key) DO NOTHING",
                (
                    job.id,
                    job.model,
                    job.priority,
                    job.idempotency_key,
                    job.digest,
                    job.request,
                    job.metadata,
                    job.timeout_s,
                    job.created_at,
                    job.request_id,
                ),
            )
            if cursor.rowcount == 1:
                return None
            row = conn.execute(
                "SELECT id, status, digest FROM jobs WHERE idempotency_key = ?",
                (job.idempotency_key,),
            ).fetchone()
            return Existing(id=row[0], status=row[1], digest=row[2])
        case Marks(changes=changes):
            conn.executemany(
                f"UPDATE jobs SET status = ? WHERE id = ? AND status IN {OPEN}", changes
            )
            return None
        case Finish(job_id=job_id, outcome=out):
            cursor = conn.execute(
                "UPDATE jobs SET status = ?, finished_at = ?, attempts = ?, result = ?, "
                f"error = ? WHERE id = ? AND status IN {OPEN}",
                (out.status, out.finished_at, out.attempts, out.result, out.error, job_id),
            )
            return cursor.rowcount == 1
        case Sweep(cutoff=cutoff):
            removed: dict[str, int] = {}
            for (status,) in conn.execute(
                "DELETE FROM jobs WHERE finished_at IS NOT NULL AND finished_at < ? "
                "RETURNING status",
                (cutoff,),
            ):
                removed[status] = removed.get(status, 0) + 1
            return removed


def select(conn: sqlite3.Connection, sql: str, args: tuple[Any, ...]) -> list[JobRow]:
    return [
        JobRow(
            id=r[0],
            status=r[1],
            model=r[2],
            priority=r[3],
            seq=r[4],
            created_at=r[5],
            finished_at=r[6],
            timeout_s=r[7],
            metadata=r[8],
            attempts=r[9],
            result=r[10],
            error=r[11],
            request_id=r[12],
        )
        for r in conn.execute(sql, args)
    ]


def request_of(conn: sqlite3.Connection, job_id: str) -> bytes | None:
    row = conn.execute("SELECT request FROM jobs WHERE id = ?", (job_id,)).fetchone()
    return None if row is None else bytes(row[0])


def reason(exc: BaseException) -> str:
    """SQLite's own words ('database or disk is full', 'file is not a database')."""
    return str(exc) or type(exc).__name__
