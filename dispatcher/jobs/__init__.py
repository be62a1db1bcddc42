"""Durable jobs: the model, the store contract and its stores, the scheduler, the routes.

    _model      Job, NewJob, Outcome, Status: frozen Structs every part shares
    _store      JobStore: the contract (durability, exactly one result, crash recovery,
                ordering and priority, idempotency, backpressure) and StoreStatistics
    _sqlite     SqliteJobStore: the daemon's store, one SQLite file (WAL)
      _writer     its writer, an actor: bounded inbox, group commit
      _sql        its schema, migrations and SQL
    _memory     MemoryJobStore: the contract in memory, for tests
    _redis      RedisJobStore: the cluster's store, shared by its daemons (leases, takeover)
      _redis_lua  its Lua scripts (each write atomic)
    _scheduler  Jobs: runs stored jobs through the supervisor, a bounded number at a time
      _queue      the in-memory run order (priority, then age), per model group
      _lanes      how jobs leave room for live requests
      _outcomes   a dispatch's result or error as a job's Outcome
    _routes     JobRoutes: POST/GET/DELETE /v1/jobs..., GET /v1/status

Stores know nothing of HTTP or the supervisor; only `_routes` knows HTTP (through
`dispatcher._http` and the error table).
"""

from typing import TYPE_CHECKING, Any

from ._lanes import job_limit, job_room, lanes_of
from ._memory import MemoryJobStore, MemoryTable
from ._model import STATUSES, TERMINAL, UNFINISHED, Existing, Job, NewJob, Outcome, Status
from ._routes import JobRoutes
from ._scheduler import Jobs, JobsStatistics
from ._sqlite import SqliteJobStore
from ._store import JobStore, StoreStatistics

if TYPE_CHECKING:
    from ._redis import RedisJobStore

__all__ = [
    "STATUSES",
    "TERMINAL",
    "UNFINISHED",
    "Existing",
    "Job",
    "JobRoutes",
    "JobStore",
    "Jobs",
    "JobsStatistics",
    "MemoryJobStore",
    "MemoryTable",
    "NewJob",
    "Outcome",
    "RedisJobStore",
    "SqliteJobStore",
    "Status",
    "StoreStatistics",
    "job_limit",
    "job_room",
    "lanes_of",
]


def __getattr__(name: str) -> Any:
    """`RedisJobStore` on first use: it imports redis, which only cluster mode needs."""
    if name == "RedisJobStore":
        from ._redis import RedisJobStore

        return RedisJobStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
