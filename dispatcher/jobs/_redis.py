"""`RedisJobStore`: the job store contract on the cluster's Redis, shared by its daemons.

- Durable acknowledgement: `insert` is one Lua script (job, idempotency key, queue and
  lease entries together), so the job is in Redis when the 202 goes out; how durable
  Redis makes it is its AOF setting (`appendfsync always`: no loss on power failure).
- Leases: the daemon that inserted (or took over) a job holds its lease (`LEASE_S`),
  renewed every `LEASE_S / 3`. A job whose lease expired (its daemon was killed) is
  taken over by the next daemon's `claim()` and run again; `finish` is conditional
  (only over queued/running), so it still ends with exactly one result.
- Another daemon's finish (a result, a cancel) is published on `P done`: `watch`'s
  callback hears it (for long-polls and to stop a cancelled run here); a renewal that
  finds a job no longer held reports it the same way, should a message be missed.
- Redis unreachable: every call raises `StoreUnavailable` (a submission: 503).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Any, Final

import anyio
import msgspec
import redis
from anyio.abc import TaskStatus
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from .._exceptions import DaemonError, StoreUnavailable
from . import _redis_lua
from ._model import STATUSES, Existing, Job, NewJob, Outcome, Status
from ._store import StoreStatistics

logger = logging.getLogger("dispatcher.jobs")

REDIS_DOWN: Final = (RedisError, OSError, RuntimeError)
"""What a lost Redis connection raises: redis-py's errors, socket errors, and the event
loop's RuntimeError for a transport torn down mid-call (uvloop: "handler is closed")."""

LEASE_S: Final = 10.0
"""How long a job stays with a daemon that stopped renewing it (killed, cut off)."""
RENEW_S: Final = LEASE_S / 3
MARK_FLUSH_S: Final = 0.1
TIMEOUT_S: Final = 2.0
SWEEP_BATCH: Final = 500
CLAIM_BATCH: Final = 100
CONNECTIONS: Final = 32
"""Connections to Redis at most (one per command in flight; more wait for one)."""

_job_decoder: Final = msgspec.json.Decoder(Job)
_outcome_decoder: Final = msgspec.json.Decoder(Outcome)
_encoder: Final = msgspec.json.Encoder()


def _rank(priority: int) -> str:
    """Highest priority first in a lexicographic zset (8 hex digits, 0 = 2**31 - 1)."""
    return format(2**31 - 1 - priority, "08x")


class RedisJobStore:
    """`JobStore` on Redis under `prefix`, for the daemon (cluster member) `member`."""

    claim_every_s: float | None = RENEW_S

    def __init__(self, url: str, prefix: str, member: str, *, name: str = "redis") -> None:
        self.name = name
        self._url = url
        self._prefix = prefix + "jobs:"
        self._member = member
        self._lock = f"{self._prefix}store:{member}"
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=CONNECTIONS,
            timeout=TIMEOUT_S,
            socket_timeout=TIMEOUT_S,
            socket_connect_timeout=TIMEOUT_S,
        )
        self._client: Redis = Redis(connection_pool=pool, retry=Retry(NoBackoff(), 0))
        self._writing = 0
        self._written = anyio.Event()
        self._scripts = {
            name: self._client.register_script(getattr(_redis_lua, name))
            for name in ("INSERT", "MARK", "FINISH", "SWEEP", "RENEW", "CLAIM")
        }
        self._held: set[str] = set()
        self._mine: set[str] = set()
        self._marks: dict[str, Status] = {}
        self._watchers: list[Callable[[str], None]] = []
        self._open = False
        self._running = False
        self._stopped = anyio.Event()
        self._writes = 0
        self._failed = 0

    # -- lifecycle ----------------------------------------------------------------

    async def open(self) -> None:
        try:
            took = await self._client.set(self._lock, b"1", nx=True, px=int(LEASE_S * 1000))
        except REDIS_DOWN as exc:
            await self._client.aclose(close_connection_pool=True)
            raise DaemonError(f"job store {self.name}: redis unreachable ({exc})") from None
        if not took:
            await self._client.aclose(close_connection_pool=True)
            raise DaemonError(f"job store {self.name} is in use by another store")
        self._open = True

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        self._running = True
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._listen)
                tg.start_soon(self._upkeep)
                task_status.started()
                await self._stopped.wait()
                while self._writing:  # writes accepted before stop() are all answered
                    await self._written.wait()
                    self._written = anyio.Event()
                tg.cancel_scope.cancel()
            with anyio.CancelScope(shield=True), anyio.move_on_after(TIMEOUT_S):
                try:
                    await self._flush_marks()
                except StoreUnavailable:
                    pass  # marks are not durable promises
        finally:
            self._running = False
            with anyio.CancelScope(shield=True), anyio.move_on_after(TIMEOUT_S):
                # Its connections; a read after this (until close()) connects again.
                await self._client.aclose(close_connection_pool=True)

    def stop(self) -> None:
        self._running = False
        self._stopped.set()

    def close(self) -> None:
        if not self._open:
            return
        self._open = False
        try:  # close() is synchronous: one short blocking call releases the lock
            with redis.Redis.from_url(self._url, socket_timeout=1.0) as sync:
                sync.delete(self._lock)
        except REDIS_DOWN:
            pass  # it expires within LEASE_S

    def watch(self, finished: Callable[[str], None]) -> None:
        """Call `finished(job_id)` when a job this store may run was finished elsewhere."""
        self._watchers.append(finished)

    # -- writes ---------------------------------------------------------------------

    async def insert(self, job: NewJob) -> Existing | None:
        self._writable()
        await self._flush_marks()
        found = await self._call(
            "INSERT",
            self._prefix,
            job.id,
            job.idempotency_key or "",
            _encoder.encode(Job.of(job)),
            job.request,
            job.digest,
            _rank(job.priority),
            self._member,
            int(LEASE_S * 1000),
        )
        if found:
            held, status, digest = found
            return Existing(id=held.decode(), status=status.decode(), digest=digest)
        self._held.add(job.id)
        self._writes += 1
        return None

    def mark(self, job_id: str, status: Status) -> None:
        self._marks[job_id] = status

    async def finish(self, job_id: str, outcome: Outcome) -> bool:
        self._writable()
        await self._flush_marks()
        changed = await self._call(
            "FINISH",
            self._prefix,
            job_id,
            outcome.status,
            _encoder.encode(outcome),
            repr(outcome.finished_at),
        )
        self._held.discard(job_id)
        self._writes += 1
        if changed:
            if len(self._mine) >= 10_000:  # their messages were lost (an outage): forget them
                self._mine.clear()
            self._mine.add(job_id)  # its message on `P done` is this daemon's own
        return bool(changed)

    async def sweep(self, cutoff: float) -> dict[Status, int]:
        self._writable()
        await self._flush_marks()
        removed: dict[Status, int] = {}
        while True:
            gone = await self._call("SWEEP", self._prefix, repr(cutoff), SWEEP_BATCH)
            for raw in gone:
                status: Status = raw.decode()
                removed[status] = removed.get(status, 0) + 1
            if len(gone) < SWEEP_BATCH:
                break
        self._writes += 1
        return removed

    async def claim(self) -> list[Job]:
        """Unfinished jobs whose lease expired, taken over by this daemon, oldest first."""
        ids = await self._call(
            "CLAIM", self._prefix, self._member, int(LEASE_S * 1000), CLAIM_BATCH
        )
        jobs = [job for job in [await self.get(raw.decode()) for raw in ids] if job is not None]
        self._held.update(job.id for job in jobs)
        return sorted(jobs, key=lambda job: job.created_at)

    def _writable(self) -> None:
        if not self._running:
            raise StoreUnavailable("the store is not running")

    async def _flush_marks(self) -> None:
        if not self._marks:
            return
        marks, self._marks = self._marks, {}
        args: list[str] = [self._prefix]
        for job_id, status in marks.items():
            args += [job_id, status]
        await self._call("MARK", *args)

    # -- reads ----------------------------------------------------------------------

    async def get(self, job_id: str) -> Job | None:
        fields = await self._read(
            lambda c: c.hmget(self._prefix + "job:" + job_id, "job", "status", "outcome")
        )
        return _job(fields)

    async def recent(self, status: Status | None, limit: int) -> list[Job]:
        found: list[Job] = []
        start, page = 0, max(limit, 100)
        while len(found) < limit:
            ids: list[bytes] = await self._read(partial(_page, self._prefix + "order", start, page))
            if not ids:
                break
            for job in await self._jobs(ids):
                if status is None or job.status == status:
                    found.append(job)
            start += page
        return found[:limit]

    async def unfinished(self) -> list[Job]:
        ids = await self._read(lambda c: c.zrange(self._prefix + "unfinished", 0, -1))
        return await self._jobs(ids)

    async def request(self, job_id: str) -> bytes | None:
        raw = await self._read(lambda c: c.hget(self._prefix + "job:" + job_id, "request"))
        return None if raw is None else bytes(raw)

    async def counts(self) -> dict[Status, int]:
        raw = await self._read(lambda c: c.hgetall(self._prefix + "counts"))
        counts: dict[Status, int] = dict.fromkeys(STATUSES, 0)
        for status, count in raw.items():
            if status.decode() in counts:
                counts[status.decode()] = int(count)
        return counts

    async def _jobs(self, ids: list[bytes]) -> list[Job]:
        async def fetch(c: Redis) -> list[Any]:
            pipe = c.pipeline(transaction=False)
            for raw in ids:
                pipe.hmget(self._prefix + "job:" + raw.decode(), "job", "status", "outcome")
            return await pipe.execute()

        rows = await self._read(fetch) if ids else []
        return [job for job in map(_job, rows) if job is not None]

    def statistics(self) -> StoreStatistics:
        return StoreStatistics(
            inbox_used=0,
            inbox_size=0,
            writing=0,
            commits=self._writes,
            writes=self._writes,
            failed_writes=self._failed,
            marks_pending=len(self._marks),
        )

    # -- internals ------------------------------------------------------------------

    async def _call(self, script: str, *args: Any) -> Any:
        self._writing += 1
        try:
            return await self._scripts[script](keys=[], args=list(args))
        except REDIS_DOWN as exc:
            self._failed += 1
            logger.error("job store %s: %s failed: %s", self.name, script.lower(), exc)
            raise StoreUnavailable("redis unreachable") from None
        finally:
            self._writing -= 1
            self._written.set()

    async def _read(self, fn: Callable[[Redis], Any]) -> Any:
        if not self._open:
            raise StoreUnavailable("the store is not open")
        try:
            return await fn(self._client)
        except REDIS_DOWN as exc:
            logger.error("job store %s: read failed: %s", self.name, exc)
            raise StoreUnavailable("redis unreachable") from None

    def _heard(self, job_id: str) -> None:
        if job_id in self._mine:
            self._mine.discard(job_id)
            return
        self._held.discard(job_id)
        for finished in self._watchers:
            finished(job_id)

    async def _listen(self) -> None:
        """Hear `P done` (re-subscribing after a Redis outage)."""
        channel = self._prefix + "done"
        while True:
            pubsub = self._client.pubsub()
            try:
                await pubsub.subscribe(channel)
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        data = message.get("data")
                        if isinstance(data, bytes) and len(data) <= 256:
                            self._heard(data.decode(errors="replace"))
            except REDIS_DOWN:
                pass
            finally:
                with anyio.CancelScope(shield=True), anyio.move_on_after(TIMEOUT_S):
                    try:
                        await pubsub.aclose()  # type: ignore[no-untyped-call]
                    except REDIS_DOWN:
                        pass
            await anyio.sleep(0.5)

    async def _upkeep(self) -> None:
        """Flush marks often; renew this daemon's leases (and the store lock) every RENEW_S."""
        renewed = anyio.current_time()
        while True:
            await anyio.sleep(MARK_FLUSH_S)
            try:
                await self._flush_marks()
                if anyio.current_time() - renewed >= RENEW_S:
                    renewed = anyio.current_time()
                    await self._renew()
            except StoreUnavailable:
                pass  # logged; retried at the next turn

    async def _renew(self) -> None:
        try:
            await self._client.set(self._lock, b"1", px=int(LEASE_S * 1000))
        except REDIS_DOWN:
            raise StoreUnavailable("redis unreachable") from None
        if self._held:
            held = sorted(self._held)
            lost = await self._call("RENEW", self._prefix, self._member, int(LEASE_S * 1000), *held)
            for raw in lost:
                self._heard(raw.decode())

    def __repr__(self) -> str:
        state = "running" if self._running else "open" if self._open else "closed"
        return f"<RedisJobStore {state} [held {len(self._held)} | writes {self._writes}]>"


def _page(key: str, start: int, size: int, client: Redis) -> Any:
    return client.zrevrange(key, start, start + size - 1)


def _job(fields: list[Any]) -> Job | None:
    raw, status, outcome = fields
    if raw is None:
        return None
    job = _job_decoder.decode(raw)
    if outcome is not None:
        return job.settled(_outcome_decoder.decode(outcome))
    return msgspec.structs.replace(job, status=status.decode())
