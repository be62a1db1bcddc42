"""The job scheduler: durable jobs fed, a bounded number at a time, into the supervisor.

    submit ──durable──▶ queued ──room?──▶ running ──Supervisor.complete──▶ succeeded | failed
                          ▲                  │                              (written once)
                          └── NoCapacity ────┘ (back off, retry later)      cancelled (DELETE)

- At most `[jobs].concurrency` jobs run at once; among queued jobs the highest
  `priority` goes first, then the oldest. A job is only started when its group's
  job lanes have room (see `_lanes`), so a backlog never takes the capacity
  live requests need; live requests are never queued behind jobs.
- `NoCapacity` (every lane full, cooling down, out of budget) puts the job back
  in the queue with a backoff (a cooldown's own retry time when it has one); it
  never fails the job. Every other `DispatchError` fails it, its error kept as data.
- Long-polls wait on the job's `done` event, set right after its terminal state
  is durable; stopping sets them all.
- A reload reaches the scheduler one way: `use(supervisor)`.
- Stopping: no job starts; running ones get `drain_timeout_s` to finish, then are
  cancelled and stay queued/running in the store, to be run again at the next start.

The store is the truth (see `JobStore`); this holds the order in which this process
starts what the store holds unfinished, and the jobs it has not settled yet.
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from typing import Final

import anyio
import msgspec
from anyio.abc import TaskGroup, TaskStatus

from actors import call_decoder
from config import JobsConfig

from .._exceptions import (
    DaemonError,
    DispatchError,
    IdempotencyConflict,
    InvalidRequest,
    NoCapacity,
    StoreUnavailable,
    UnknownJob,
)
from .._metrics import Metrics
from .._supervisor import Supervisor
from ._lanes import lanes_of, room
from ._model import STATUSES, TERMINAL, Job, NewJob, Outcome, Status
from ._outcomes import cancelled, failed, outcome_label, succeeded
from ._queue import JobQueue, LiveJob
from ._store import JobStore

logger = logging.getLogger("dispatcher.jobs")

_BACKOFF_S: Final = (0.005, 1.0)


class JobsStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """Jobs by status, and how many run now out of how many may."""

    queued: int
    running: int
    succeeded: int
    failed: int
    cancelled: int
    in_flight: int
    concurrency: int


class Jobs:
    """Durable jobs of one daemon: the scheduler over a store, and what the API asks of it.

    `await open()`, then `await tg.start(jobs.run)`; `stop()` starts no more jobs,
    `aclose()` waits until running jobs drained and the store committed what it holds.
    """

    def __init__(
        self,
        store: JobStore,
        supervisor: Supervisor,
        metrics: Metrics,
        config: JobsConfig,
        *,
        drain_timeout_s: float,
    ) -> None:
        self.store = store
        self._metrics = metrics
        self._concurrency = config.concurrency
        self._retention_s = config.retention_s
        self._drain_timeout_s = drain_timeout_s
        self._supervisor = supervisor
        self._lanes = lanes_of(supervisor)
        self._live: dict[str, LiveJob] = {}
        self._queue = JobQueue()
        self._counts: Counter[Status] = Counter(dict.fromkeys(STATUSES, 0))
        self._launching: Counter[str] = Counter()
        """Jobs started per group whose first attempt was not admitted yet."""
        self._in_flight = 0
        self._wake = anyio.Event()
        self._remote: dict[str, anyio.Event] = {}
        """Long-polls here on jobs another daemon runs: set when it finished them."""
        self._stopping = False
        self._closing = anyio.Event()
        self._closed = anyio.Event()
        metrics.watch_jobs(self.counts)

    # -- lifecycle ---------------------------------------------------------------

    async def open(self) -> None:
        """Open the store and queue its unfinished jobs (`DaemonError` when it cannot)."""
        await self.store.open()
        try:
            counts = await self.store.counts()
            unfinished = await self.store.claim()
        except StoreUnavailable as exc:
            self.store.close()
            raise DaemonError(f"job store {self.store.name}: {exc.reason}") from None
        for status in TERMINAL:
            self._counts[status] = counts[status]
        for job in unfinished:
            self._enqueue(LiveJob(job, None))
        self.store.watch(self._finished_elsewhere)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Schedule until `stop()`, drain, and return after `aclose()`."""
        async with anyio.create_task_group() as tg:
            await tg.start(self.store.run)
            sweeper = anyio.CancelScope()
            tg.start_soon(self._sweep_periodically, sweeper)
            claimer = anyio.CancelScope()
            if self.store.claim_every_s is not None:
                tg.start_soon(self._claim_periodically, claimer, self.store.claim_every_s)
            if self._live:
                logger.info("resuming %d unfinished jobs", len(self._live))
            task_status.started()
            async with anyio.create_task_group() as running:
                await self._dispatch(running)
                # Running jobs get drain_timeout_s; those cut then stay in the store.
                running.cancel_scope.deadline = anyio.current_time() + self._drain_timeout_s
            if running.cancel_scope.cancel_called:
                logger.info("drain_timeout_s passed: jobs still running stay for the next start")
            await self._closing.wait()
            sweeper.cancel()
            claimer.cancel()
            self.store.stop()
        self._closed.set()

    def use(self, supervisor: Supervisor) -> None:
        """Run jobs on `supervisor` from now on (a reload's new deployments and groups)."""
        self._supervisor = supervisor
        self._lanes = lanes_of(supervisor)
        self._wake.set()

    def groups(self) -> tuple[str, ...]:
        """The model groups a job may name now."""
        return self._supervisor.groups()

    def stop(self) -> None:
        """Start no more jobs; running ones drain (bounded); long-polls answer now."""
        self._stopping = True
        self._wake.set()
        for live in self._live.values():
            live.done.set()

    async def aclose(self) -> None:
        """Stop, let running jobs drain, commit what is queued for the store, and return."""
        self.stop()
        self._closing.set()
        await self._closed.wait()

    # -- what the API asks -------------------------------------------------------

    async def submit(self, job: NewJob) -> tuple[str, Status, bool]:
        """Store `job`: (id, status, created). An idempotent repeat returns the first job."""
        # Shielded: once durable, the job is registered here even if the caller is gone.
        with anyio.CancelScope(shield=True):
            existing = await self.store.insert(job)
            if existing is None:
                self._metrics.job_submitted()
                self._enqueue(LiveJob(job, job.request))
        if existing is None:
            return job.id, "queued", True
        if existing.digest != job.digest:
            raise IdempotencyConflict(job.idempotency_key or "", existing.id)
        live = self._live.get(existing.id)
        status = live.status if live and existing.status not in TERMINAL else existing.status
        return existing.id, status, False

    async def get(self, job_id: str, *, wait_s: float = 0.0) -> Job:
        """The job; with `wait_s`, once it is terminal or after that long, whichever first."""
        live = self._live.get(job_id)
        if live is not None and wait_s > 0 and not self._stopping:
            with anyio.move_on_after(wait_s):
                await live.done.wait()
        if live is not None and live.final is not None:
            return live.final  # durable just now: no need to read it back
        if live is None and wait_s > 0 and not self._stopping:
            return await self._wait_elsewhere(job_id, wait_s)
        job = await self.store.get(job_id)
        if job is None:
            raise UnknownJob(job_id)
        return self._overlay(job)

    async def _wait_elsewhere(self, job_id: str, wait_s: float) -> Job:
        """Long-poll a job this daemon does not run (a shared store: another daemon does)."""
        done = self._remote.setdefault(job_id, anyio.Event())  # before reading: none missed
        try:
            job = await self.store.get(job_id)
            if job is None:
                raise UnknownJob(job_id)
            if job.status in TERMINAL:
                return job
            with anyio.move_on_after(wait_s):
                await done.wait()
            found = await self.store.get(job_id)
            return job if found is None else self._overlay(found)
        finally:
            if not done.is_set() and self._remote.get(job_id) is done:
                del self._remote[job_id]

    def _finished_elsewhere(self, job_id: str) -> None:
        """Another daemon finished (or took over) `job_id`: wake long-polls, stop running it."""
        remote = self._remote.pop(job_id, None)
        if remote is not None:
            remote.set()
        live = self._live.pop(job_id, None)
        if live is None:
            return
        live.cancelled = True
        if live.scope is not None:
            live.scope.cancel()
        self._counts[live.status] -= 1
        live.done.set()  # its long-polls read the stored state

    async def _claim_periodically(self, scope: anyio.CancelScope, every_s: float) -> None:
        """Take over the jobs of daemons that died (a store shared by several)."""
        with scope:
            while True:
                await anyio.sleep(every_s)
                if self._stopping:
                    return
                try:
                    jobs = await self.store.claim()
                except StoreUnavailable:
                    continue  # logged by the store; next turn
                for job in jobs:
                    if job.id not in self._live:
                        logger.info("job %s: taken over (its daemon's lease expired)", job.id)
                        self._enqueue(LiveJob(job, None))

    async def recent(self, status: Status | None, limit: int) -> list[Job]:
        return [self._overlay(job) for job in await self.store.recent(status, limit)]

    async def cancel(self, job_id: str) -> Job:
        """Cancel: a queued job never starts, a running one's attempt is cancelled."""
        live = self._live.get(job_id)
        if live is None:  # finished, unknown, or (a shared store) run by another daemon
            await self.store.finish(job_id, cancelled())
        elif not live.cancelled:
            live.cancelled = True
            if live.scope is not None:
                live.scope.cancel()
            outcome = cancelled()
            try:
                changed = await self.store.finish(job_id, outcome)
            except StoreUnavailable:
                live.cancelled = False  # not cancelled after all: it stays queued
                if live.status == "queued":
                    self._push(live)  # a second heap entry is harmless: status gates launch
                raise
            if changed:
                self._settled(live, outcome, "cancelled")
        return await self.get(job_id)

    async def sweep(self, now: float | None = None) -> int:
        """Remove jobs finished more than `retention_s` before `now` (default: the clock)."""
        now = time.time() if now is None else now
        removed = await self.store.sweep(now - self._retention_s)
        self._counts.subtract(removed)
        return sum(removed.values())

    def counts(self) -> dict[str, int]:
        """Jobs by status (queued and running from memory, the rest as stored)."""
        return {status: self._counts[status] for status in STATUSES}

    def statistics(self) -> JobsStatistics:
        c = self._counts
        return JobsStatistics(
            queued=c["queued"],
            running=c["running"],
            succeeded=c["succeeded"],
            failed=c["failed"],
            cancelled=c["cancelled"],
            in_flight=self._in_flight,
            concurrency=self._concurrency,
        )

    def __repr__(self) -> str:
        s = self.statistics()
        return (
            f"<Jobs [queued {s.queued} | running {s.in_flight}/{s.concurrency} | "
            f"succeeded {s.succeeded} | failed {s.failed} | cancelled {s.cancelled}]>"
        )

    # -- scheduling --------------------------------------------------------------

    def _set_status(self, live: LiveJob, status: Status) -> None:
        """The one place a live job's status (and so the counts) change."""
        self._counts[live.status] -= 1
        self._counts[status] += 1
        live.status = status

    def _overlay(self, job: Job) -> Job:
        live = self._live.get(job.id)
        if live is None or job.status in TERMINAL or live.status == job.status:
            return job
        return msgspec.structs.replace(job, status=live.status)

    def _enqueue(self, live: LiveJob) -> None:
        self._live[live.id] = live
        self._counts["queued"] += 1
        self._push(live)

    def _push(self, live: LiveJob) -> None:
        self._queue.push(live)
        self._wake.set()

    def _wake_up(self) -> None:
        self._wake.set()

    async def _dispatch(self, tg: TaskGroup) -> None:
        while not self._stopping:
            now = anyio.current_time()
            due = self._queue.promote(now)
            if self._launch(tg):
                # Jobs wait for room that live requests hold: wake when a slot frees up.
                for members in self._lanes.router.groups.values():
                    for actor in members:
                        actor.notify_when_idle(self._wake_up)
            with anyio.move_on_after(due - now):
                await self._wake.wait()
            self._wake = anyio.Event()

    def _launch(self, tg: TaskGroup) -> bool:
        """Start the best queued jobs that have room; True when some wait for room."""
        lanes = self._lanes

        def has_room(group: str) -> bool:
            free = room(lanes, group)  # None: unknown group, the supervisor will say so
            return free is None or free > self._launching[group]

        blocked = False
        while self._in_flight < self._concurrency:
            live, waiting = self._queue.pop(has_room)
            blocked = blocked or waiting
            if live is None:
                break
            self._launching[live.model] += 1
            self._in_flight += 1
            self._set_status(live, "running")
            tg.start_soon(self._run, live, lanes)
        return blocked

    async def _run(self, live: LiveJob, lanes: Supervisor) -> None:
        try:
            outcome = await self._attempt(live, lanes)
        finally:
            self._in_flight -= 1
            live.scope = None
            self._wake.set()
        if outcome is not None:
            await self._settle(live, *outcome)

    async def _attempt(self, live: LiveJob, lanes: Supervisor) -> tuple[Outcome, str] | None:
        """Run the job once: its terminal outcome, or None (requeued or cancelled)."""
        launched = True
        try:
            request = live.request
            if request is None:  # resumed after a restart: read it when it runs
                request = await self.store.request(live.id)
                if request is None:  # cannot happen while it is unfinished; never run it twice
                    self._live.pop(live.id, None)
                    self._counts[live.status] -= 1
                    return None
            # From here to the first attempt's admission nothing awaits: the room just
            # counted is still there.
            self._launching[live.model] -= 1
            launched = False
            self.store.mark(live.id, "running")
            started = time.time()
            try:
                call = call_decoder.decode(request)  # the one decode of the client's bytes
            except msgspec.MsgspecError as exc:
                invalid = InvalidRequest(f"stored request no longer valid: {exc}")
                return failed(invalid), "invalid_request"
            with anyio.CancelScope() as scope:
                live.scope = scope
                if live.cancelled:
                    scope.cancel()
                try:
                    done = await lanes.complete(call, timeout_s=live.timeout_s)
                except NoCapacity as exc:
                    self._requeue(live, exc.reason, exc.retry_after)
                    return None
                except DispatchError as exc:
                    self._metrics.job_queue_wait(started - live.created_at)
                    return failed(exc), outcome_label(exc)
            if scope.cancelled_caught:
                return None  # cancelled by DELETE, which wrote the state
            self._metrics.job_queue_wait(started - live.created_at)
            return succeeded(done), "success"
        except StoreUnavailable as exc:
            logger.error("job %s: %s; retrying later", live.id, exc)
            self._requeue(live, "store", 1.0)
            return None
        finally:
            if launched:
                self._launching[live.model] -= 1

    def _requeue(self, live: LiveJob, reason: str, retry_after: float) -> None:
        if self._live.get(live.id) is not live:
            return  # finished (or taken over) by another daemon meanwhile: not ours to run
        live.tries += 1
        if reason in ("cooling_down", "rate_limited", "store"):
            delay = max(retry_after, _BACKOFF_S[0])
        else:
            base, cap = _BACKOFF_S
            delay = random.uniform(base, min(cap, base * 2 ** min(live.tries, 16)))
        self._set_status(live, "queued")
        self.store.mark(live.id, "queued")
        self._queue.delay(live, anyio.current_time() + delay)
        self._wake.set()

    async def _settle(self, live: LiveJob, outcome: Outcome, label: str) -> None:
        try:
            changed = await self.store.finish(live.id, outcome)
        except StoreUnavailable as exc:
            logger.error("job %s: result not recorded (%s); it will run again", live.id, exc)
            self._requeue(live, "store", 1.0)
            return
        if changed:
            self._settled(live, outcome, label)

    def _settled(self, live: LiveJob, outcome: Outcome, label: str) -> None:
        """The job's terminal state is durable: count it and wake its long-polls."""
        # A long-poll that began while another daemon ran the job waits for word from the
        # store, and the store says nothing to the daemon that finished it (this one, after
        # taking it over): it is woken here, not at the end of its wait.
        remote = self._remote.pop(live.id, None)
        if remote is not None:
            remote.set()
        if self._live.pop(live.id, None) is None:
            return
        self._set_status(live, outcome.status)
        live.settle(outcome)
        self._metrics.job_completed(label)
        live.done.set()

    async def _sweep_periodically(self, scope: anyio.CancelScope) -> None:
        interval = min(max(self._retention_s / 10.0, 1.0), 300.0)
        with scope:
            while True:
                await anyio.sleep(interval)
                try:
                    removed = await self.sweep()
                except StoreUnavailable as exc:
                    logger.error("retention sweep failed: %s", exc)
                    continue
                if removed:
                    logger.info("retention: removed %d finished jobs", removed)
