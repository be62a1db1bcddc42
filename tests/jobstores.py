"""Every job store the contract suite runs against, and how to run one in a test.

To check a new store against the contract, add one line to `STORES`: its name and a
function that, given a fresh folder of its own (and a way to get fixtures), returns a
factory of store instances over ONE place (each call: a new instance over the same data,
as a restarted daemon would open it). `tests/test_jobs_contract.py` then runs every
contract test against it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import msgspec

from dispatcher.jobs import (
    JobStore,
    MemoryJobStore,
    MemoryTable,
    NewJob,
    RedisJobStore,
    SqliteJobStore,
)

from .cluster_support import cluster_name

Place = Callable[[], JobStore]
"""New store instances over one place (one file, one memory table, one key prefix...)."""
Fixture = Callable[[str], Any]
"""A pytest fixture's value by name (`request.getfixturevalue`): the redis-server."""


def sqlite_place(folder: Path, fixture: Fixture) -> Place:
    return lambda: SqliteJobStore(folder / "jobs.sqlite3")


def memory_place(folder: Path, fixture: Fixture) -> Place:
    table = MemoryTable()
    return lambda: MemoryJobStore(table)


def redis_place(folder: Path, fixture: Fixture) -> Place:
    """A fresh key prefix on the session's redis-server; every instance is one member."""
    url = fixture("redis_server").url
    prefix = f"llm-dispatcher:{cluster_name()}:"
    return lambda: RedisJobStore(url, prefix, "member-1")


STORES: dict[str, Callable[[Path, Fixture], Place]] = {
    "sqlite": sqlite_place,
    "memory": memory_place,
    "redis": redis_place,
}


@contextlib.asynccontextmanager
async def running_store(store: JobStore) -> AsyncIterator[JobStore]:
    """`store` opened and running; stopped (every write answered) and closed on exit."""
    await store.open()
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(store.run)
            try:
                yield store
            finally:
                store.stop()
    finally:
        store.close()


@contextlib.asynccontextmanager
async def crashing_store(store: JobStore) -> AsyncIterator[JobStore]:
    """`store` opened and running; on exit its task is cancelled and it is closed without
    `stop()`, the nearest a test process gets to a daemon killed mid-run."""
    await store.open()
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(store.run)
            yield store
            tg.cancel_scope.cancel()
    finally:
        store.close()


REQUEST = b'{"model":"mini","messages":[{"role":"user","content":"x"}]}'


def new_job(n: int, key: str | None = None, **changes: object) -> NewJob:
    """Job `job_{n}`, created at 1000 + n, with `changes` applied."""
    job = NewJob(
        id=f"job_{n}",
        model="mini",
        request=REQUEST,
        digest=b"d%d" % n,
        idempotency_key=key,
        created_at=1000.0 + n,
    )
    return msgspec.structs.replace(job, **changes)
