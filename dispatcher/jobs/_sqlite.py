"""The daemon's job store: one SQLite file in WAL mode, written by one actor with group commit.

Every change goes through the writer (`_writer`): callers send a write and await its
reply; the writer applies whatever is waiting in ONE transaction on a worker thread (so
one fsync serves many submissions), then answers each caller. A job is acknowledged only
after its transaction committed (`synchronous = FULL`: durable against SIGKILL and power
loss alike).

Reads run on worker threads too, each on a read connection of a small pool, so the event
loop never touches SQLite. One daemon owns a file (a lock file beside it); the files are
private (0600) in a private folder (`_private`). The table and its SQL are in `_sql`.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, TypeVar

import anyio
from anyio.abc import TaskStatus

from .._exceptions import DaemonError, StoreUnavailable
from .._private import make_private, private_folder
from . import _sql
from ._model import Existing, Job, NewJob, Outcome, Status
from ._sql import Finish, Insert, Sweep, reason
from ._store import SingleOwnerStore, StoreStatistics
from ._writer import INBOX, Writer

logger = logging.getLogger("dispatcher.jobs")

_READERS: Final = 4
_T = TypeVar("_T")


class SqliteJobStore(SingleOwnerStore):
    """`JobStore` in the SQLite file at `path` (`inbox`: writes that may wait)."""

    def __init__(self, path: Path, *, inbox: int = INBOX) -> None:
        self.path = path
        self.name = str(path)
        self._conn: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        self._readers: list[sqlite3.Connection] = []
        self._idle_readers: list[sqlite3.Connection] = []
        self._read_limiter = anyio.CapacityLimiter(_READERS)
        self._writer = Writer(self._writer_connection, where=self.name, inbox=inbox)

    # -- lifecycle ---------------------------------------------------------------

    async def open(self) -> None:
        """Open (or create, or migrate) the store; `DaemonError` naming the file and why
        not: folder not creatable or not private, in use by another daemon, not a
        database, a newer schema, disk full."""
        await anyio.to_thread.run_sync(self._open)

    def _open(self) -> None:
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
            if version > _sql.SCHEMA_VERSION:
                raise DaemonError(
                    f"job store {path}: schema version {version} is newer than this "
                    f"dispatcher's ({_sql.SCHEMA_VERSION})"
                )
            if version < _sql.SCHEMA_VERSION:
                _sql.migrate(conn, version)
        except sqlite3.Error as exc:
            self.close()
            raise DaemonError(f"job store {path}: {reason(exc)}") from None
        except DaemonError:
            self.close()
            raise

    def files(self) -> tuple[Path, ...]:
        """The store's files on disk: the database, its -wal and -shm, and the lock."""
        path = self.path
        return (path, *(path.with_name(path.name + end) for end in ("-wal", "-shm", ".lock")))

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """The writer: commits batch after batch until `stop()`."""
        await self._writer.run(task_status=task_status)

    def stop(self) -> None:
        self._writer.stop()

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

    def _writer_connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise sqlite3.ProgrammingError("the store is closed")
        return self._conn

    # -- writes ------------------------------------------------------------------

    async def insert(self, job: NewJob) -> Existing | None:
        result: Existing | None = await self._writer.write(Insert(job), wait_for_room=False)
        return result

    def mark(self, job_id: str, status: Status) -> None:
        self._writer.mark(job_id, status)

    async def finish(self, job_id: str, outcome: Outcome) -> bool:
        changed: bool = await self._writer.write(Finish(job_id, outcome), wait_for_room=True)
        return changed

    async def sweep(self, cutoff: float) -> dict[Status, int]:
        removed: dict[Status, int] = await self._writer.write(Sweep(cutoff), wait_for_room=True)
        return removed

    # -- reads -------------------------------------------------------------------

    async def get(self, job_id: str) -> Job | None:
        return await self._read(_sql.get, job_id)

    async def recent(self, status: Status | None, limit: int) -> list[Job]:
        return await self._read(_sql.recent, status, limit)

    async def unfinished(self) -> list[Job]:
        return await self._read(_sql.unfinished)

    async def request(self, job_id: str) -> bytes | None:
        return await self._read(_sql.request, job_id)

    async def counts(self) -> dict[Status, int]:
        return await self._read(_sql.counts)

    async def _read(self, fn: Callable[..., _T], *args: Any) -> _T:
        if self._conn is None:
            raise StoreUnavailable("the store is not open")
        try:
            return await anyio.to_thread.run_sync(
                self._with_reader, fn, args, limiter=self._read_limiter
            )
        except sqlite3.Error as exc:
            logger.error("job store %s: read failed: %s", self.path, reason(exc))
            raise StoreUnavailable(reason(exc)) from None

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

    def statistics(self) -> StoreStatistics:
        return self._writer.statistics()

    def __repr__(self) -> str:
        s = self.statistics()
        state = "open" if self._conn is not None else "closed"
        return (
            f"<SqliteJobStore {self.name!r} {state} [inbox {s.inbox_used}/{s.inbox_size} | "
            f"writing {s.writing} | commits {s.commits} | writes {s.writes}]>"
        )
