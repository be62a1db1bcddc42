"""The store contract: what the scheduler and the API may rely on, whatever holds the jobs.

Implementations: `SqliteJobStore` (the daemon's, one file), `MemoryJobStore` (tests, and
the reference that says what the contract means in a few lines). Each is checked by the
same contract suite, `tests/test_jobs_contract.py`; a new store joins it with one line in
the `STORES` table of `tests/jobstores.py` (its name, and a function giving new
instances of it over one place).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import msgspec
from anyio.abc import TaskStatus

from ._model import Existing, Job, NewJob, Outcome, Status


class StoreStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """A store's state: writes waiting in its inbox out of how many may, and work done."""

    inbox_used: int
    inbox_size: int
    writing: int
    """Writes in the batch being committed now."""
    commits: int
    """Transactions (or their equivalent) that made writes durable."""
    writes: int
    """Writes acknowledged (inserted, finished, swept)."""
    failed_writes: int
    marks_pending: int


class JobStore(Protocol):
    """Where jobs live: durable, exactly one result each, found again after a crash.

    **Lifecycle.** `open()` makes the store ready or raises `DaemonError` naming where it
    is and why it cannot be used (not a store, a newer schema, in use by another
    daemon, no permission). `run()` is the store's own task (SQLite: the writer), started
    with a handshake (`await tg.start(store.run)`); writes work while it runs. `stop()`
    closes its inbox: writes already accepted are all committed and answered, later ones
    raise `StoreUnavailable`, and `run()` returns. `close()` releases what `open()` took
    (safe twice). Reads work from `open()` to `close()`.

    **Durable when a call returns.** `insert`, `finish` and `sweep` return once their
    change is durable: for SQLite committed with `synchronous = FULL`, so neither a
    SIGKILL of the daemon nor a power loss after the return loses it (the memory store
    keeps it for the life of its `MemoryTable`). A call that raises `StoreUnavailable`
    was not acknowledged: the caller must not report it as done (a 503 for a submission,
    the job run again for a result). `mark` is not durable when it returns: it is
    applied at the latest with the first `insert`, `finish` or `sweep` called after it
    (SQLite: within 100 ms otherwise). Nothing depends on it but listings by
    status: a restart treats queued and running alike.

    **Backpressure.** A store's write inbox is bounded. `insert` is refused at once when
    it is full (`StoreUnavailable` with `retry_after`: a 503 with Retry-After, never
    unbounded memory); `finish` and `sweep` wait for room instead, because refusing a
    result would make finished work run again (they are bounded by `[jobs].concurrency`).

    **Idempotency.** `insert` of a job whose `idempotency_key` an existing job holds
    inserts nothing and returns that job (`Existing`: id, status, digest); the caller
    compares digests (same request: the same job; another: a conflict). A key is held
    until its job is swept. Jobs without a key never conflict.

    **Exactly one result.** `finish` writes a terminal state only over `queued` or
    `running`: the first call for a job returns True, every later one (a second run's
    result, a late cancel) and one for an unknown job returns False and changes nothing,
    whatever the interleaving of concurrent calls. `mark` never changes a terminal job.

    **A crashed run is found again.** A job is unfinished while `queued` or `running`.
    `unfinished()` returns every unfinished job: after a crash (or a stop with jobs still
    running) the next daemon to open the store runs each of them again, so a job runs at
    least once and its result is recorded exactly once. A store that one daemon owns
    (SQLite: a lock file; memory: one store per table) needs nothing more; a store shared
    by several daemons must hand the jobs of a daemon that died to another one
    (`claim()`), and say when another daemon finished a job (`watch()`).

    **Ordering and priority.** Jobs are kept in submission order (the order in which
    their `insert` returned). `unfinished()` gives them oldest first, `recent()` newest
    first. `priority` is stored as given (a signed 32-bit integer) and never changed:
    the scheduler starts the highest priority first, then the oldest.

    **Errors.** Every call but `open`, `stop`, `close` and `statistics` may raise
    `StoreUnavailable` (disk full, I/O error, busy, stopping); its message names no file
    (clients see it), the store logs where it failed. `name` says where the store lives
    (a file, a URL without credentials) for logs and start errors.
    """

    name: str
    claim_every_s: float | None
    """How often the scheduler calls `claim()` again (None: only at the start)."""

    async def open(self) -> None: ...

    async def run(self, *, task_status: TaskStatus[None] = ...) -> None: ...

    def stop(self) -> None: ...

    def close(self) -> None: ...

    async def insert(self, job: NewJob) -> Existing | None:
        """Store `job` as queued; None once durable, or the job its key already names."""
        ...

    def mark(self, job_id: str, status: Status) -> None:
        """Record that an unfinished job is now `queued` or `running` (not durable yet)."""
        ...

    async def finish(self, job_id: str, outcome: Outcome) -> bool:
        """Write `outcome` if the job is unfinished: True for the one call that did."""
        ...

    async def sweep(self, cutoff: float) -> dict[Status, int]:
        """Delete jobs that finished before `cutoff` (wall clock); counts by status."""
        ...

    async def get(self, job_id: str) -> Job | None: ...

    async def recent(self, status: Status | None, limit: int) -> list[Job]:
        """The newest `limit` jobs (of one status, when given), newest first."""
        ...

    async def unfinished(self) -> list[Job]:
        """Every queued and running job, oldest first: what a start runs (again)."""
        ...

    async def request(self, job_id: str) -> bytes | None:
        """A job's request, the very bytes given to `insert` (None: no such job)."""
        ...

    async def counts(self) -> dict[Status, int]:
        """How many jobs the store holds, by status (every status present)."""
        ...

    async def claim(self) -> list[Job]:
        """Unfinished jobs this daemon is to run (again) now, oldest first. A store one
        daemon owns gives every unfinished job at the first call, none later; a shared
        store gives those whose daemon is gone (its lease expired), now this one's."""
        ...

    def watch(self, finished: Callable[[str], None]) -> None:
        """Have `finished(job_id)` called when another daemon finishes a job (a result, a
        cancel): for long-polls here, and to stop running it here. A store one daemon
        owns never calls it."""
        ...

    def statistics(self) -> StoreStatistics: ...


class SingleOwnerStore:
    """What a store one daemon owns alone answers to `claim`, `watch` and `claim_every_s`:
    every unfinished job once, at start (they were this daemon's when it stopped or
    crashed), and nothing is ever finished elsewhere. A subclass gives `unfinished()`."""

    claim_every_s: float | None = None
    _claimed: bool = False

    async def unfinished(self) -> list[Job]:
        raise NotImplementedError

    async def claim(self) -> list[Job]:
        if self._claimed:
            return []
        self._claimed = True
        return await self.unfinished()

    def watch(self, finished: Callable[[str], None]) -> None:
        pass  # one daemon owns this store: no job is finished elsewhere
