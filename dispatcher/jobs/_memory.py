"""A job store in memory: the contract in its plainest form, for tests.

Its rows live in a `MemoryTable`; a new store over the same table sees them, which is
how the contract suite restarts a memory store. One store holds a table at a time (as
the SQLite store's lock file allows one daemon per file). Every write is applied at
once, so `mark` is visible immediately and a write is "durable" as soon as it returns,
for as long as the table lives.
"""

from __future__ import annotations

import anyio
import anyio.lowlevel
import msgspec
from anyio.abc import TaskStatus

from .._exceptions import DaemonError, StoreUnavailable
from ._model import STATUSES, UNFINISHED, Existing, Job, NewJob, Outcome, Status
from ._store import SingleOwnerStore, StoreStatistics


class _Row:
    __slots__ = ("digest", "job", "key", "request")

    def __init__(self, job: Job, request: bytes, digest: bytes, key: str | None) -> None:
        self.job = job
        self.request = request
        self.digest = digest
        self.key = key


class MemoryTable:
    """The rows of memory stores, in submission order (a dict keeps insertion order)."""

    def __init__(self) -> None:
        self.rows: dict[str, _Row] = {}
        self.keys: dict[str, str] = {}
        self.held = False

    def __repr__(self) -> str:
        return f"<MemoryTable [jobs {len(self.rows)}]>"


class MemoryJobStore(SingleOwnerStore):
    """`JobStore` over a `MemoryTable` (a new one unless given)."""

    def __init__(self, table: MemoryTable | None = None) -> None:
        self.name = "memory"
        self._table = table if table is not None else MemoryTable()
        self._open = False
        self._running = False
        self._stopped = anyio.Event()
        self._writes = 0

    async def open(self) -> None:
        if self._table.held:
            raise DaemonError("job store memory is in use by another store")
        self._table.held = True
        self._open = True

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        self._running = True
        task_status.started()
        try:
            await self._stopped.wait()
        finally:
            self._running = False

    def stop(self) -> None:
        self._running = False
        self._stopped.set()

    def close(self) -> None:
        if self._open:
            self._table.held = False
            self._open = False

    # -- writes ------------------------------------------------------------------

    async def insert(self, job: NewJob) -> Existing | None:
        await self._writable()
        table = self._table
        if job.idempotency_key is not None and job.idempotency_key in table.keys:
            row = table.rows[table.keys[job.idempotency_key]]
            return Existing(id=row.job.id, status=row.job.status, digest=row.digest)
        table.rows[job.id] = _Row(Job.of(job), job.request, job.digest, job.idempotency_key)
        if job.idempotency_key is not None:
            table.keys[job.idempotency_key] = job.id
        self._writes += 1
        return None

    def mark(self, job_id: str, status: Status) -> None:
        row = self._table.rows.get(job_id)
        if row is not None and row.job.status in UNFINISHED:
            row.job = msgspec.structs.replace(row.job, status=status)

    async def finish(self, job_id: str, outcome: Outcome) -> bool:
        await self._writable()
        row = self._table.rows.get(job_id)
        if row is None or row.job.status not in UNFINISHED:
            return False
        row.job = row.job.settled(outcome)
        self._writes += 1
        return True

    async def sweep(self, cutoff: float) -> dict[Status, int]:
        await self._writable()
        table = self._table
        removed: dict[Status, int] = {}
        for job_id, row in list(table.rows.items()):
            finished_at = row.job.finished_at
            if finished_at is not None and finished_at < cutoff:
                del table.rows[job_id]
                if row.key is not None:
                    del table.keys[row.key]
                removed[row.job.status] = removed.get(row.job.status, 0) + 1
        self._writes += 1
        return removed

    async def _writable(self) -> None:
        await anyio.lowlevel.checkpoint()
        if not self._running:
            raise StoreUnavailable("the store is not running")

    # -- reads -------------------------------------------------------------------

    async def get(self, job_id: str) -> Job | None:
        rows = await self._rows()
        row = rows.get(job_id)
        return None if row is None else row.job

    async def recent(self, status: Status | None, limit: int) -> list[Job]:
        rows = await self._rows()
        found: list[Job] = []
        for row in reversed(rows.values()):
            if len(found) == limit:
                break
            if status is None or row.job.status == status:
                found.append(row.job)
        return found

    async def unfinished(self) -> list[Job]:
        rows = await self._rows()
        return [row.job for row in rows.values() if row.job.status in UNFINISHED]

    async def request(self, job_id: str) -> bytes | None:
        rows = await self._rows()
        row = rows.get(job_id)
        return None if row is None else row.request

    async def counts(self) -> dict[Status, int]:
        rows = await self._rows()
        counts: dict[Status, int] = dict.fromkeys(STATUSES, 0)
        for row in rows.values():
            counts[row.job.status] += 1
        return counts

    async def _rows(self) -> dict[str, _Row]:
        await anyio.lowlevel.checkpoint()
        if not self._open:
            raise StoreUnavailable("the store is not open")
        return self._table.rows

    def statistics(self) -> StoreStatistics:
        return StoreStatistics(
            inbox_used=0,
            inbox_size=0,
            writing=0,
            commits=self._writes,
            writes=self._writes,
            failed_writes=0,
            marks_pending=0,
        )

    def __repr__(self) -> str:
        state = "running" if self._running else "open" if self._open else "closed"
        return f"<MemoryJobStore {state} [jobs {len(self._table.rows)} | writes {self._writes}]>"
