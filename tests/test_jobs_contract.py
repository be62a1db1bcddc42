"""The job store contract (`dispatcher.jobs.JobStore`), run against every store.

Each test takes `place`: new store instances over one place (see `tests/jobstores.py`,
whose `STORES` table lists every store; adding a store there runs all of these on it).
"""

from __future__ import annotations

from pathlib import Path

import anyio
import msgspec
import pytest

from dispatcher import AttemptRecord, DaemonError, StoreUnavailable
from dispatcher._exceptions import ErrorData
from dispatcher.jobs import Existing, Job, Outcome

from .jobstores import REQUEST, STORES, Place, crashing_store, new_job, running_store

pytestmark = pytest.mark.anyio

SUCCEEDED = Outcome(
    status="succeeded",
    finished_at=2000.0,
    attempts=(
        AttemptRecord(
            deployment="a", outcome="server_error", status=500, latency_ms=3.5, message="boom"
        ),
        AttemptRecord(deployment="b", outcome="success", status=200, latency_ms=1.25),
    ),
    result=b'{"object":"chat.completion","choices":[]}',
)
FAILED = Outcome(
    status="failed",
    finished_at=2001.0,
    attempts=(AttemptRecord(deployment="a", outcome="timeout", status=None, latency_ms=9.0),),
    error=ErrorData(kind="deadline_exceeded", message="request for 'mini' did not finish"),
)
CANCELLED = Outcome(status="cancelled", finished_at=2002.0)


@pytest.fixture(params=sorted(STORES))
def place(request: pytest.FixtureRequest, tmp_path: Path) -> Place:
    return STORES[request.param](tmp_path, request.getfixturevalue)


async def test_a_job_reads_back_as_submitted(place: Place) -> None:
    """get() gives the job as inserted (queued), request() its very bytes; unknown ids: None."""
    job = new_job(1, metadata=b'{"k":"v"}', timeout_s=30.0, priority=-(2**31))
    top = new_job(2, priority=2**31 - 1)
    async with running_store(place()) as store:
        assert await store.insert(job) is None
        assert await store.insert(top) is None
        assert await store.get("job_1") == Job.of(job)
        assert (await store.get("job_2")) == Job.of(top)
        assert await store.request("job_1") == REQUEST
        assert await store.get("job_x") is None
        assert await store.request("job_x") is None


async def test_an_acknowledged_job_survives_a_restart(place: Place) -> None:
    """What insert acknowledged, a new store over the same place has, unfinished."""
    async with running_store(place()) as store:
        await store.insert(new_job(1))
    async with running_store(place()) as store:
        assert await store.get("job_1") == Job.of(new_job(1))
        assert [job.id for job in await store.unfinished()] == ["job_1"]


async def test_one_store_at_a_time(place: Place) -> None:
    """A second store over a place already open refuses to open (one owner per place)."""
    async with running_store(place()):
        with pytest.raises(DaemonError, match="in use"):
            await place().open()
    async with running_store(place()):  # released on close
        pass


async def test_an_idempotency_key_names_the_first_job(place: Place) -> None:
    """A held key inserts nothing and names the first job; no key never conflicts."""
    async with running_store(place()) as store:
        assert await store.insert(new_job(1, key="k")) is None
        again = await store.insert(new_job(2, key="k"))
        assert again == Existing(id="job_1", status="queued", digest=b"d1")
        assert await store.get("job_2") is None
        assert await store.insert(new_job(3)) is None
        assert await store.insert(new_job(4)) is None
        await store.finish("job_1", SUCCEEDED)
        done = await store.insert(new_job(5, key="k"))
        assert done == Existing(id="job_1", status="succeeded", digest=b"d1")
        assert await store.sweep(SUCCEEDED.finished_at + 1) == {"succeeded": 1}
        assert await store.insert(new_job(6, key="k")) is None  # swept: the key is free


async def test_a_result_is_written_exactly_once(place: Place) -> None:
    """The first finish wins; a second result, a late cancel or a mark change nothing."""
    async with running_store(place()) as store:
        await store.insert(new_job(1))
        assert await store.finish("job_1", SUCCEEDED) is True
        assert await store.finish("job_1", FAILED) is False
        assert await store.finish("job_1", CANCELLED) is False
        store.mark("job_1", "running")
        await store.insert(new_job(2))  # the mark is applied by now (see the next test)
        assert await store.finish("job_x", SUCCEEDED) is False
    async with running_store(place()) as store:
        assert await store.get("job_1") == Job.of(new_job(1)).settled(SUCCEEDED)


async def test_concurrent_results_have_one_winner(place: Place) -> None:
    """Whatever the interleaving, one of many concurrent finishes returns True, and it sticks."""
    outcomes = [msgspec.structs.replace(SUCCEEDED, result=b'"%d"' % n) for n in range(20)]
    won: list[Outcome] = []
    async with running_store(place()) as store:
        await store.insert(new_job(1))

        async def finish(outcome: Outcome) -> None:
            if await store.finish("job_1", outcome):
                won.append(outcome)

        async with anyio.create_task_group() as tg:
            for outcome in outcomes:
                tg.start_soon(finish, outcome)
        job = await store.get("job_1")
    assert len(won) == 1
    assert job is not None and job.result == won[0].result


async def test_a_mark_is_applied_with_the_next_durable_write(place: Place) -> None:
    """mark() shows once a later insert, finish or sweep returned; never on a terminal job."""
    async with running_store(place()) as store:
        for n in (1, 2):
            await store.insert(new_job(n))
        await store.finish("job_2", FAILED)
        store.mark("job_1", "running")
        store.mark("job_2", "running")
        store.mark("job_x", "running")
        await store.insert(new_job(3))
        assert [job.status for job in await store.recent(None, 10)] == [
            "queued",
            "failed",
            "running",
        ]
        store.mark("job_1", "queued")
        await store.sweep(0.0)
        running = await store.get("job_1")
    assert running is not None and running.status == "queued"


async def test_unfinished_jobs_are_found_again_in_submission_order(place: Place) -> None:
    """After a crash every queued or running job comes back, in the order it was inserted."""
    async with crashing_store(place()) as store:
        for n in (5, 2, 7, 1):  # submission order is not creation time
            await store.insert(new_job(n))
        store.mark("job_2", "running")  # its run was cut by the crash
        await store.finish("job_7", SUCCEEDED)
    async with running_store(place()) as store:
        unfinished = await store.unfinished()
        assert [job.id for job in unfinished] == ["job_5", "job_2", "job_1"]
        assert {job.status for job in unfinished} <= {"queued", "running"}
        assert await store.request("job_2") == REQUEST  # what the next run decodes
        assert await store.finish("job_2", SUCCEEDED) is True  # its one result


async def test_recent_lists_newest_first(place: Place) -> None:
    """recent(): newest first, filtered by status, at most `limit`."""
    async with running_store(place()) as store:
        for n in range(1, 6):
            await store.insert(new_job(n))
        await store.finish("job_2", SUCCEEDED)
        await store.finish("job_4", SUCCEEDED)
        newest = [job.id for job in await store.recent(None, 3)]
        succeeded = [job.id for job in await store.recent("succeeded", 10)]
        queued = [job.id for job in await store.recent("queued", 2)]
        assert await store.recent("running", 10) == []
    assert newest == ["job_5", "job_4", "job_3"]
    assert succeeded == ["job_4", "job_2"]
    assert queued == ["job_5", "job_3"]


async def test_sweep_removes_what_finished_before_the_cutoff(place: Place) -> None:
    """Only jobs finished before the cutoff go, counted by status; unfinished ones stay."""
    late = msgspec.structs.replace(SUCCEEDED, finished_at=5000.0)
    async with running_store(place()) as store:
        for n in range(1, 6):
            await store.insert(new_job(n))
        await store.finish("job_1", SUCCEEDED)
        await store.finish("job_2", FAILED)
        await store.finish("job_3", CANCELLED)
        await store.finish("job_4", late)
        removed = await store.sweep(3000.0)
        left = sorted(job.id for job in await store.recent(None, 10))
        counts = await store.counts()
    assert removed == {"succeeded": 1, "failed": 1, "cancelled": 1}
    assert left == ["job_4", "job_5"]
    assert counts == {"queued": 1, "running": 0, "succeeded": 1, "failed": 0, "cancelled": 0}


async def test_outcomes_round_trip(place: Place) -> None:
    """Attempts (with their messages), the result bytes and the error data read back equal."""
    async with running_store(place()) as store:
        for n in (1, 2, 3):
            await store.insert(new_job(n))
        for n, outcome in ((1, SUCCEEDED), (2, FAILED), (3, CANCELLED)):
            await store.finish(f"job_{n}", outcome)
    async with running_store(place()) as store:
        jobs = [await store.get(f"job_{n}") for n in (1, 2, 3)]
        counts = await store.counts()
    assert jobs == [
        Job.of(new_job(n)).settled(outcome)
        for n, outcome in ((1, SUCCEEDED), (2, FAILED), (3, CANCELLED))
    ]
    assert counts == {"queued": 0, "running": 0, "succeeded": 1, "failed": 1, "cancelled": 1}


async def test_stop_answers_every_accepted_write_and_refuses_later_ones(place: Place) -> None:
    """Writes sent before stop() are all made durable and answered; later ones are refused."""
    answers: list[Existing | None] = []
    store = place()
    await store.open()
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(store.run)

            async def insert(n: int) -> None:
                answers.append(await store.insert(new_job(n)))

            for n in range(50):
                tg.start_soon(insert, n)
            await anyio.wait_all_tasks_blocked()
            store.stop()
        with pytest.raises(StoreUnavailable):
            await store.insert(new_job(99))
        with pytest.raises(StoreUnavailable):
            await store.finish("job_1", SUCCEEDED)
    finally:
        store.close()
    assert answers == [None] * 50
    async with running_store(place()) as again:
        assert len(await again.unfinished()) == 50
