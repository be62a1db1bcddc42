"""Jobs waiting to run, in memory: a priority heap per model group, and a timer heap.

The store is the truth; this is the order in which this process starts what the
store holds queued. Heaps are cleaned lazily: an entry whose job is no longer
queued (started, cancelled) is dropped when it reaches the top.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable

import anyio

from ._model import Job, NewJob, Outcome, Status


class LiveJob:
    """A job this process has not settled yet (queued, running or backing off)."""

    __slots__ = (
        "cancelled",
        "created_at",
        "done",
        "final",
        "id",
        "metadata",
        "model",
        "priority",
        "request",
        "request_id",
        "scope",
        "status",
        "timeout_s",
        "tries",
    )

    def __init__(self, job: Job | NewJob, request: bytes | None) -> None:
        self.id = job.id
        self.model = job.model
        self.priority = job.priority
        self.created_at = job.created_at
        self.timeout_s = job.timeout_s
        self.metadata = job.metadata
        self.request_id = job.request_id
        self.request = request
        """The request bytes (None for a resumed job: read from the store when it runs)."""
        self.status: Status = "queued"
        self.done = anyio.Event()
        """Set once the job's terminal state is committed, or the daemon stops: long-polls
        wait on it."""
        self.scope: anyio.CancelScope | None = None
        self.cancelled = False
        self.tries = 0
        self.final: Job | None = None
        """The committed terminal state, for the long-polls `done` wakes."""

    def settle(self, outcome: Outcome) -> None:
        self.final = Job(
            id=self.id,
            status=outcome.status,
            model=self.model,
            priority=self.priority,
            created_at=self.created_at,
            timeout_s=self.timeout_s,
            metadata=self.metadata,
            finished_at=outcome.finished_at,
            attempts=outcome.attempts,
            result=outcome.result,
            error=outcome.error,
            request_id=self.request_id,
        )

    @property
    def waiting(self) -> bool:
        return self.status == "queued" and not self.cancelled

    def __repr__(self) -> str:
        return (
            f"<LiveJob {self.id} {self.status} [model {self.model!r} | priority {self.priority}]>"
        )


class JobQueue:
    """Highest priority first, then oldest; per group, so a full group blocks only itself."""

    def __init__(self) -> None:
        self._ready: dict[str, list[tuple[int, int, LiveJob]]] = {}
        self._delayed: list[tuple[float, int, LiveJob]] = []
        self._order = itertools.count()

    def push(self, job: LiveJob) -> None:
        heap = self._ready.setdefault(job.model, [])
        heapq.heappush(heap, (-job.priority, next(self._order), job))

    def delay(self, job: LiveJob, until: float) -> None:
        """Queue `job` again at `until` (`anyio.current_time()`)."""
        heapq.heappush(self._delayed, (until, next(self._order), job))

    def promote(self, now: float) -> float:
        """Move jobs whose delay is over to their group; return when the next one is due."""
        delayed = self._delayed
        while delayed and delayed[0][0] <= now:
            _, _, job = heapq.heappop(delayed)
            if job.waiting:
                self.push(job)
        return delayed[0][0] if delayed else math.inf

    def pop(self, has_room: Callable[[str], bool]) -> tuple[LiveJob | None, bool]:
        """The best waiting job of a group with room, and whether some job waits for room."""
        best: list[tuple[int, int, LiveJob]] | None = None
        blocked = False
        for group, heap in list(self._ready.items()):
            while heap and not heap[0][2].waiting:
                heapq.heappop(heap)
            if not heap:
                del self._ready[group]
            elif not has_room(group):
                blocked = True
            elif best is None or heap[0] < best[0]:
                best = heap
        if best is None:
            return None, blocked
        return heapq.heappop(best)[2], blocked

    def __repr__(self) -> str:
        ready = sum(len(heap) for heap in self._ready.values())
        return f"<JobQueue [ready {ready} | delayed {len(self._delayed)}]>"
