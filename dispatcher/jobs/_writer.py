"""The SQLite store's one writer, built like a deployment actor.

    insert ──send_nowait──▶ ┌──────────────┐        ┌─ one transaction per batch ─┐
    finish ──send (waits)─▶ │ bounded inbox│──run──▶│ marks, op, op, op ... COMMIT│──▶ replies
    sweep  ──send (waits)─▶ └──────────────┘        └─ (worker thread, one fsync) ┘
    mark   ──▶ pending marks (one per job), ridden along with the next batch

- **Bounded inbox.** A write is a message with a one-shot reply. `insert` is refused at
  once when the inbox is full (`StoreUnavailable` with `retry_after`: a 503 with
  Retry-After); `finish` and `sweep` wait for room (refusing a result would run a
  finished job again; they are bounded by the scheduler's concurrency).
- **Group commit.** `run` takes everything waiting (up to `MAX_BATCH`), applies it in
  ONE transaction on a worker thread, then answers each write: one fsync serves many.
- **A bad write never kills it.** When a batch fails, its writes are retried one by one,
  so only the one SQLite refuses (a value it cannot bind, a full disk) fails, with
  `StoreUnavailable`; the writer goes on.
- **Marks** (queued/running) are not messages: the latest mark of each job waits in a
  dict (bounded by the jobs this daemon holds) and rides with the next batch, or is
  flushed after `MARK_DELAY_S`. Nobody waits for them (see the store contract).
- **Startup and shutdown.** `run` opens the inbox, then reports started. `stop()` closes
  the send side: whatever was accepted (queued, or waiting for room) is committed and
  answered, then `run` returns. A batch that started is committed even if `run` is
  cancelled; writes still queued then are answered with `StoreUnavailable`, never
  dropped.
"""

from __future__ import annotations

import logging
import math
import sqlite3
from collections.abc import Callable
from typing import Any, Final

import anyio
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .._exceptions import StoreUnavailable
from ._model import Status
from ._sql import Finish, Marks, Op, apply, reason
from ._store import StoreStatistics

logger = logging.getLogger("dispatcher.jobs")

INBOX: Final = 4096
"""Writes that may wait for the writer; past it, submissions are refused (503)."""
MAX_BATCH: Final = 2048
MARK_DELAY_S: Final = 0.1
"""queued/running marks ride along with the next commit, or are flushed after this long."""
BUSY_RETRY_AFTER_S: Final = 1.0


class _Write:
    """One write and the slot its one reply arrives in."""

    __slots__ = ("_done", "error", "op", "result")

    def __init__(self, op: Op) -> None:
        self.op = op
        self._done = anyio.Event()
        self.result: Any = None
        self.error: StoreUnavailable | None = None

    def answer(self, result: Any = None, error: StoreUnavailable | None = None) -> None:
        if not self._done.is_set():
            self.result, self.error = result, error
            self._done.set()

    async def reply(self) -> Any:
        await self._done.wait()
        if self.error is not None:
            raise self.error
        return self.result


class Writer:
    """Commits the writes of one SQLite connection. Start it with `await tg.start(w.run)`."""

    def __init__(
        self, connection: Callable[[], sqlite3.Connection], *, where: str, inbox: int = INBOX
    ) -> None:
        self._connection = connection
        self._where = where
        self._size = inbox
        self._send: MemoryObjectSendStream[_Write] | None = None
        self._marks: dict[str, Status] = {}
        self._wake = anyio.Event()
        self._idle: anyio.CancelScope | None = None
        """The writer's wait while it has nothing to write (its deadline: the marks')."""
        self._limiter = anyio.CapacityLimiter(1)
        self._writing = 0
        self.commits = 0
        self.writes = 0
        self.failed_writes = 0

    # -- what callers send -------------------------------------------------------

    async def write(self, op: Op, *, wait_for_room: bool) -> Any:
        """`op`'s result once committed; `StoreUnavailable` when it was not."""
        send = self._send
        if send is None:
            raise StoreUnavailable("the store is not running (daemon starting or stopping)")
        write = _Write(op)
        try:
            try:
                send.send_nowait(write)
            except anyio.WouldBlock:
                if not wait_for_room:
                    raise StoreUnavailable(
                        f"the store is busy ({self._size} writes waiting); retry shortly",
                        retry_after=BUSY_RETRY_AFTER_S,
                    ) from None
                await send.send(write)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            raise StoreUnavailable("the store is closed (daemon stopping)") from None
        self._wake.set()
        return await write.reply()

    def mark(self, job_id: str, status: Status) -> None:
        idle = self._idle
        if idle is not None and idle.deadline == math.inf:
            # An idle writer flushes this within MARK_DELAY_S (moving its deadline is
            # cheaper than waking it: the job's own write usually comes first).
            idle.deadline = anyio.current_time() + MARK_DELAY_S
        self._marks[job_id] = status

    # -- lifecycle ---------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Commit batches until `stop()`; every accepted write is answered."""
        send, receive = anyio.create_memory_object_stream[_Write](self._size)
        with receive:
            self._send = send
            task_status.started()
            try:
                await self._serve(receive)
            finally:
                self._send = None
                send.close()
                _answer_leftovers(receive)

    def stop(self) -> None:
        """Close the inbox: what it holds is committed and answered, then `run` returns."""
        if self._send is not None:
            self._send.close()
        self._wake.set()

    async def _serve(self, receive: MemoryObjectReceiveStream[_Write]) -> None:
        # Items are only ever taken with receive_nowait: a receive() cancelled by a timeout
        # can lose the item it was just handed, and a write must never go unanswered.
        flush_marks = False
        while True:
            batch: list[_Write] = []
            closed = False
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(receive.receive_nowait())
                except anyio.WouldBlock:
                    break
                except anyio.EndOfStream:
                    closed = True
                    break
            if batch or flush_marks or closed:
                await self._commit(batch)  # pending marks ride along
            if closed:
                return
            if batch:
                continue
            with anyio.move_on_after(MARK_DELAY_S if self._marks else math.inf) as idle:
                self._idle = idle
                try:
                    await self._wake.wait()
                finally:
                    self._idle = None
            self._wake = anyio.Event()
            flush_marks = idle.cancelled_caught

    async def _commit(self, batch: list[_Write]) -> None:
        ops = [write.op for write in batch]
        if self._marks:
            # A job that finishes in this very batch needs no mark.
            finishing = {op.job_id for op in ops if isinstance(op, Finish)}
            changes = tuple((s, i) for i, s in self._marks.items() if i not in finishing)
            self._marks = {}
            if changes:
                ops.insert(0, Marks(changes))
        if not ops:
            return
        # A batch that started is committed (or rolled back) and answered even if `run` is
        # cancelled: to_thread.run_sync ignores cancellation until the thread is done and
        # returns its result (the cancellation comes at the next await, below in `_serve`).
        self._writing = len(batch)
        results = await anyio.to_thread.run_sync(self._apply, ops, limiter=self._limiter)
        self._writing = 0
        results = results[len(ops) - len(batch) :]  # the marks' result is nobody's
        for write, result in zip(batch, results, strict=True):
            if isinstance(result, _Failed):
                self.failed_writes += 1
                write.answer(error=StoreUnavailable(result.reason))
            else:
                self.writes += 1
                write.answer(result)

    def _apply(self, ops: list[Op]) -> list[Any]:
        """On the writer thread: the whole batch in one transaction, else one by one.

        Any error of one operation (SQLite's, or a value sqlite3 cannot bind, such as an
        int over 64 bits) fails that operation only: the writer goes on.
        """
        try:
            results = self._transaction(ops)
        except Exception as exc:
            if len(ops) == 1:
                logger.error("job store %s: write failed: %s", self._where, reason(exc))
                return [_Failed(reason(exc))]
            return [result for op in ops for result in self._apply([op])]
        self.commits += 1
        return results

    def _transaction(self, ops: list[Op]) -> list[Any]:
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            results = [apply(conn, op) for op in ops]
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return results

    def statistics(self) -> StoreStatistics:
        send = self._send
        used = send.statistics().current_buffer_used if send is not None else 0
        return StoreStatistics(
            inbox_used=used,
            inbox_size=self._size,
            writing=self._writing,
            commits=self.commits,
            writes=self.writes,
            failed_writes=self.failed_writes,
            marks_pending=len(self._marks),
        )

    def __repr__(self) -> str:
        s = self.statistics()
        return (
            f"<Writer {self._where!r} [inbox {s.inbox_used}/{s.inbox_size} | "
            f"writing {s.writing} | commits {s.commits} | writes {s.writes}]>"
        )


class _Failed:
    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _answer_leftovers(receive: MemoryObjectReceiveStream[_Write]) -> None:
    # Only when `run` was cancelled: what is still queued gets a reply, never silence.
    while True:
        try:
            write = receive.receive_nowait()
        except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
            return
        write.answer(error=StoreUnavailable("the daemon stopped before this write"))
