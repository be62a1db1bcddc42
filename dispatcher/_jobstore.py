"""The durable job store: SQLite in WAL mode, written by one task with group commit.

Every change goes through `JobStore.run`, the writer: callers queue an operation
and await it; the writer takes everything queued, applies it in ONE transaction
on a worker thread (so one fsync serves many submissions), then answers each
caller. A job is acknowledged only after its transaction committed
(`synchronous = FULL`: durable against SIGKILL and power loss alike).

Reads run on worker threads too, each on a read connection of a small pool, so
the event loop never touches SQLite. The table and its SQL are in `_jobsql`.
"""

from __future__ import annotations

import fcntl
import logging
import math
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, TypeVar

import anyio
from anyio.abc import TaskStatus

from ._exceptions import DaemonError, StoreUnavailable
from ._jobsql import (
    COLUMNS,
    OPEN,
    SCHEMA,
    SCHEMA_VERSION,
    STATUSES,
    Existing,
    Finish,
    Insert,
    JobOutcome,
    JobRow,
    Marks,
    NewJob,
    Op,
    Status,
    Sweep,
    apply,
    reason,
    request_of,
    select,
)
from ._private import make_private, private_folder

logger = logging.getLogger("dispatcher.jobs")

_MAX_BATCH: Final = 2048
_MARK_DELAY_S: Final = 0.1
"""queued/running marks ride along with the next commit, or are flushed after this long."""
_T = TypeVar("_T")


class _Pending:
    """One queued operation and the slot its result arrives in."""

    __slots__ = ("done", "error", "op", "result")

    def __init__(self, op: Op) -> None:
        self.op = op
        self.done = anyio.Event()
        self.result: Any = None
        self.error: BaseException | None = None


class JobStore:
    """The SQLite file behind `[jobs].store`. `open()`, then run `run()` in a task group."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        self._readers: list[sqlite3.Connection] = []
        self._idle_readers: list[sqlite3.Connection] = []
        self._pending: list[_Pending] = []
        self._marks: dict[str, Status] = {}
        self._wakeup = anyio.Event()
        self._closing = False
        self._stopped = False
        self._write_limiter = anyio.CapacityLimiter(1)
        self._read_limiter = anyio.CapacityLimiter(4)
        self.commits = 0
        self.committed_ops = 0

    # -- lifecycle ---------------------------------------------------------------

    def open(self) -> dict[str, int]:
        """Open (or create) the store and return its job counts by status.

        Raises `DaemonError` naming the file and the reason: folder not creatable,
        store in use by another daemon, not a database, newer schema, disk full.
        """
        path = self.path
        private_folder(path.parent, "job store")
        try:
            # Prompts and answers live here: the files are private from their first byte,
            # and made private again when an older daemon or another tool left them open
            # (before SQLite opens them: it gives a new -wal and -shm the database's mode).
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
            make_private(*self.files())
            fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise DaemonError(f"job store {path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise DaemonError(
                f"job store {path} is in use by another daemon (lock on {path}.lock held)"
            ) from None
        self._lock_fd = fd
        try:
            conn = self._connect()
            self._conn = conn
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal":
                raise DaemonError(f"job store {path}: cannot use WAL mode (got {mode!r})")
            conn.execute("PRAGMA synchronous = FULL")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise DaemonError(
                    f"job store {path}: schema version {version} is newer than this "
                    f"dispatcher's ({SCHEMA_VERSION})"
                )
            if version == 1:  # version 2 keeps each job's x-request-id
                conn.execute("ALTER TABLE jobs ADD COLUMN request_id TEXT")
            conn.executescript(SCHEMA)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            counts: dict[str, int] = dict.fromkeys(STATUSES, 0)
            for status, count in conn.execute("SELECT status, count(*) FROM jobs GROUP BY status"):
                counts[status] = count
        except sqlite3.Error as exc:
            self.close()
            raise DaemonError(f"job store {path}: {reason(exc)}") from None
        except DaemonError:
            self.close()
            raise
        return counts

    def files(self) -> tuple[Path, ...]:
        """The store's files on disk: the database, its -wal and -shm, and the lock."""
        path = self.path
        return (path, *(path.with_name(path.name + end) for end in ("-wal", "-shm", ".lock")))

    def close(self) -> None:
        """Close every connection and release the lock (safe to call twice)."""
        for conn in (*self._readers, *([self._conn] if self._conn else [])):
            conn.close()
        self._readers.clear()
        self._idle_readers.clear()
        self._conn = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """The writer: commit whatever is queued, batch after batch, until `close_writes()`."""
        task_status.started()
        try:
            await self._write_batches()
        finally:
            self._stopped = True
            for pending in self._pending:  # only left when cancelled: never acknowledged
                pending.error = sqlite3.OperationalError("the daemon stopped")
                pending.done.set()
            self._pending.clear()

    async def _write_batches(self) -> None:
        while True:
            if not self._pending and not self._closing:
                with anyio.move_on_after(_MARK_DELAY_S if self._marks else math.inf):
                    await self._wakeup.wait()
                self._wakeup = anyio.Event()
            if not self._pending and not self._marks:
                if self._closing:
                    return
                continue
            batch = self._next_batch()
            # Not abandoned on cancellation: a batch that started commits or rolls back.
            await anyio.to_thread.run_sync(self._commit, batch, limiter=self._write_limiter)
            for pending in batch:
                pending.done.set()

    def _next_batch(self) -> list[_Pending]:
        batch = self._pending[:_MAX_BATCH]
        del self._pending[:_MAX_BATCH]
        if self._marks:
            # A job that finishes in this very batch needs no mark.
            finishing = {p.op.job_id for p in batch if isinstance(p.op, Finish)}
            changes = tuple((s, i) for i, s in self._marks.items() if i not in finishing)
            self._marks = {}
            if changes:
                batch.insert(0, _Pending(Marks(changes)))
        return batch

    def close_writes(self) -> None:
        """Let the writer commit what is queued, then return."""
        self._closing = True
        self._wakeup.set()

    # -- writes ------------------------------------------------------------------

    async def insert(self, job: NewJob) -> Existing | None:
        """Insert `job`; None once committed, or the job its idempotency key already names."""
        result: Existing | None = await self._write(Insert(job))
        return result

    def mark(self, job_id: str, status: Status) -> None:
        """Record queued/running, lazily: with the next commit, at most 100 ms later.

        Nobody waits for it (a restart re-runs queued and running jobs alike), so it
        never costs a job an fsync of its own.
        """
        self._marks[job_id] = status

    async def finish(self, job_id: str, outcome: JobOutcome) -> bool:
        """Write a terminal state once: False when the job was already terminal (or gone)."""
        changed: bool = await self._write(Finish(job_id, outcome))
        return changed

    async def sweep(self, cutoff: float) -> dict[str, int]:
        """Delete jobs that finished before `cutoff` (wall clock); counts by status."""
        removed: dict[str, int] = await self._write(Sweep(cutoff))
        return removed

    def _queue(self, op: Op) -> _Pending:
        pending = _Pending(op)
        self._pending.append(pending)
        self._wakeup.set()
        return pending

    async def _write(self, op: Op) -> Any:
        if self._conn is None or self._stopped:
            raise StoreUnavailable(str(self.path), "the store is closed (daemon stopping)")
        pending = self._queue(op)
        await pending.done.wait()
        if pending.error is not None:
            raise StoreUnavailable(str(self.path), reason(pending.error))
        return pending.result

    def _commit(self, batch: list[_Pending]) -> None:
        """On the writer thread: the whole batch in one transaction, else one by one.

        Any error of one operation (SQLite's, or a value sqlite3 cannot bind, such as an
        int over 64 bits) fails that operation's caller only: the writer goes on.
        """
        try:
            results = self._transaction([p.op for p in batch])
        except Exception as exc:
            if len(batch) == 1:
                batch[0].error = exc
                logger.error("job store %s: write failed: %s", self.path, reason(exc))
                return
            for pending in batch:  # isolate the failing operation(s)
                self._commit([pending])
            return
        for pending, result in zip(batch, results, strict=True):
            pending.result = result
        self.commits += 1
        self.committed_ops += len(batch)

    def _transaction(self, ops: list[Op]) -> list[Any]:
        conn = self._conn
        if conn is None:
            raise sqlite3.ProgrammingError("the store is closed")
        conn.execute("BEGIN IMMEDIATE")
        try:
            results = [apply(conn, op) for op in ops]
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return results

    # -- reads -------------------------------------------------------------------

    async def get(self, job_id: str) -> JobRow | None:
        rows = await self._read(select, f"SELECT {COLUMNS} FROM jobs WHERE id = ?", (job_id,))
        return rows[0] if rows else None

    async def recent(self, status: Status | None, limit: int) -> list[JobRow]:
        """The newest `limit` jobs (of one status, when given), newest first."""
        where, args = ("", (limit,)) if status is None else ("WHERE status = ?", (status, limit))
        sql = f"SELECT {COLUMNS} FROM jobs {where} ORDER BY seq DESC LIMIT ?"
        return await self._read(select, sql, args)

    async def unfinished(self) -> list[JobRow]:
        """Queued and running jobs, oldest first (what a start resumes)."""
        sql = f"SELECT {COLUMNS} FROM jobs WHERE status IN {OPEN} ORDER BY seq"
        return await self._read(select, sql, ())

    async def request(self, job_id: str) -> bytes | None:
        """The request bytes of a job, as the client sent them."""
        return await self._read(request_of, job_id)

    async def _read(self, fn: Callable[..., _T], *args: Any) -> _T:
        if self._conn is None:
            raise StoreUnavailable(str(self.path), "the store is not open")
        try:
            return await anyio.to_thread.run_sync(
                self._with_reader, fn, args, limiter=self._read_limiter
            )
        except sqlite3.Error as exc:
            raise StoreUnavailable(str(self.path), reason(exc)) from None

    def _with_reader(self, fn: Callable[..., _T], args: tuple[Any, ...]) -> _T:
        try:
            conn = self._idle_readers.pop()
        except IndexError:
            conn = self._connect()
            conn.execute("PRAGMA query_only = ON")
            self._readers.append(conn)
        try:
            return fn(conn, *args)
        finally:
            self._idle_readers.append(conn)

    def _connect(self) -> sqlite3.Connection:
        # One thread at a time uses a connection (the writer's limiter, the reader pool),
        # but not always the same thread: anyio's workers come and go.
        return sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=10.0
        )

    def __repr__(self) -> str:
        state = "open" if self._conn is not None else "closed"
        return (
            f"<JobStore {str(self.path)!r} {state} [pending {len(self._pending)} | "
            f"commits {self.commits} | ops {self.committed_ops}]>"
        )
