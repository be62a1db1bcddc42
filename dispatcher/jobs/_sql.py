"""The job table: its schema, its migrations, and the SQL of each read and write.

Pure functions over a `sqlite3.Connection`; `_sqlite` and `_writer` decide on which
thread and in which transaction they run. Terminal states are written with a
conditional UPDATE (`... WHERE status IN ('queued', 'running')`): the first
completion wins and a second one changes nothing. `seq` (the rowid) is submission
order and stays in here: the model has no row numbers.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Final

import msgspec

from .._exceptions import AttemptRecord, ErrorData
from ._model import STATUSES, Existing, Job, NewJob, Outcome, Status

SCHEMA_VERSION: Final = 3
"""1: `error` held the HTTP error body (with `http_status`); 2: `ErrorData`, and attempts
keep their messages; 3: each job keeps its submission's `request_id` (x-request-id)."""

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
_COLUMNS: Final = (
    "id, status, model, priority, created_at, finished_at, timeout_s, metadata, attempts, "
    "result, error, request_id"
)
_UNFINISHED: Final = "('queued', 'running')"

_encoder: Final = msgspec.json.Encoder()
_attempts: Final = msgspec.json.Decoder(tuple[AttemptRecord, ...])
_error: Final = msgspec.json.Decoder(ErrorData)


# -- writes (applied on the writer's thread, inside one transaction) ---------------


class Insert(msgspec.Struct, frozen=True):
    job: NewJob


class Marks(msgspec.Struct, frozen=True):
    """queued/running changes, (status, job id) pairs: never a terminal state."""

    changes: tuple[tuple[Status, str], ...]


class Finish(msgspec.Struct, frozen=True):
    job_id: str
    outcome: Outcome


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
                f"UPDATE jobs SET status = ? WHERE id = ? AND status IN {_UNFINISHED}", changes
            )
            return None
        case Finish(job_id=job_id, outcome=out):
            cursor = conn.execute(
                "UPDATE jobs SET status = ?, finished_at = ?, attempts = ?, result = ?, "
                f"error = ? WHERE id = ? AND status IN {_UNFINISHED}",
                (
                    out.status,
                    out.finished_at,
                    _encoder.encode(out.attempts),
                    out.result,
                    None if out.error is None else _encoder.encode(out.error),
                    job_id,
                ),
            )
            return cursor.rowcount == 1
        case Sweep(cutoff=cutoff):
            removed: dict[Status, int] = {}
            for (status,) in conn.execute(
                "DELETE FROM jobs WHERE finished_at IS NOT NULL AND finished_at < ? "
                "RETURNING status",
                (cutoff,),
            ):
                removed[status] = removed.get(status, 0) + 1
            return removed


# -- reads ----------------------------------------------------------------------------


def get(conn: sqlite3.Connection, job_id: str) -> Job | None:
    rows = _select(conn, f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", (job_id,))
    return rows[0] if rows else None


def recent(conn: sqlite3.Connection, status: Status | None, limit: int) -> list[Job]:
    where, args = ("", (limit,)) if status is None else ("WHERE status = ?", (status, limit))
    return _select(conn, f"SELECT {_COLUMNS} FROM jobs {where} ORDER BY seq DESC LIMIT ?", args)


def unfinished(conn: sqlite3.Connection) -> list[Job]:
    sql = f"SELECT {_COLUMNS} FROM jobs WHERE status IN {_UNFINISHED} ORDER BY seq"
    return _select(conn, sql, ())


def request(conn: sqlite3.Connection, job_id: str) -> bytes | None:
    row = conn.execute("SELECT request FROM jobs WHERE id = ?", (job_id,)).fetchone()
    return None if row is None else bytes(row[0])


def counts(conn: sqlite3.Connection) -> dict[Status, int]:
    found: dict[Status, int] = dict.fromkeys(STATUSES, 0)
    for status, count in conn.execute("SELECT status, count(*) FROM jobs GROUP BY status"):
        found[status] = count
    return found


def _select(conn: sqlite3.Connection, sql: str, args: tuple[Any, ...]) -> list[Job]:
    return [
        Job(
            id=r[0],
            status=r[1],
            model=r[2],
            priority=r[3],
            created_at=r[4],
            finished_at=r[5],
            timeout_s=r[6],
            metadata=r[7],
            attempts=_attempts.decode(r[8]) if r[8] else (),
            result=r[9],
            error=None if r[10] is None else _error.decode(r[10]),
            request_id=r[11],
        )
        for r in conn.execute(sql, args)
    ]


# -- schema ---------------------------------------------------------------------------


def migrate(conn: sqlite3.Connection, version: int) -> None:
    """Bring a store of schema `version` (0: new) to `SCHEMA_VERSION`, in one transaction."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        if 0 < version < 3:  # the table exists without the column that 3 added
            conn.execute("ALTER TABLE jobs ADD COLUMN request_id TEXT")
        for statement in SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        if version == 1:
            _errors_as_data(conn)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


# A version-1 error body: OpenAI's error object plus the status it was answered with.
_V1_KINDS: Final = {
    400: "invalid_request",
    404: "model_not_found",
    429: "no_capacity",
    502: "all_attempts_failed",
    503: "no_capacity",
    504: "deadline_exceeded",
}


class _V1Error(msgspec.Struct):
    message: str = ""
    code: str | None = None
    param: str | None = None
    http_status: int = 500
    attempts: tuple[AttemptRecord, ...] | None = None


def _errors_as_data(conn: sqlite3.Connection) -> None:
    """Version 1 kept a failed job's HTTP error body; keep what it said, as `ErrorData`
    (rendered again it gives the same status, code, message and attempts)."""
    decoder = msgspec.json.Decoder(_V1Error)
    rows = conn.execute("SELECT seq, error, attempts FROM jobs WHERE error IS NOT NULL")
    for seq, blob, attempts in rows.fetchall():
        try:
            old = decoder.decode(blob)
        except msgspec.DecodeError:
            old = _V1Error(message="the job failed (its error could not be read)")
        kind = _V1_KINDS.get(old.http_status, "internal_error")
        keeps_code = kind in ("invalid_request", "no_capacity")
        error = ErrorData(
            kind=kind,
            message=old.message,
            param=old.param if kind == "invalid_request" else None,
            code=old.code if keeps_code else None,
        )
        if old.attempts:  # the error's copy has the messages
            attempts = _encoder.encode(old.attempts)
        conn.execute(
            "UPDATE jobs SET error = ?, attempts = ? WHERE seq = ?",
            (_encoder.encode(error), attempts, seq),
        )


def reason(exc: BaseException) -> str:
    """SQLite's own words ('database or disk is full', 'file is not a database')."""
    return str(exc) or type(exc).__name__
