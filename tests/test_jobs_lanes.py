"""Job admission: a quarter of every deployment's workers stays with live requests."""

from __future__ import annotations

import anyio
import httpx
import msgspec
import pytest

from actors import ChatCall
from dispatcher import NoCapacity
from dispatcher.jobs import job_limit, job_room, lanes_of

from .helpers import chat_json, completion, deployments, stack

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(("concurrency", "limit"), [(1, 1), (3, 3), (4, 3), (8, 6), (64, 48)])
async def test_jobs_leave_a_quarter_of_the_workers(concurrency: int, limit: int) -> None:
    """Jobs may use up to concurrency - concurrency // 4 workers of a deployment."""
    config = deployments(f"d g concurrency={concurrency}")
    async with stack(config) as s:
        actor = s.actors["d"]
        assert (job_limit(actor), job_room(actor)) == (limit, limit)


async def test_a_full_job_share_refuses_jobs_but_not_live_requests() -> None:
    """With the job share in use, a job gets NoCapacity while a live request is served."""
    release = anyio.Event()

    async def held(request: httpx.Request) -> httpx.Response:
        await release.wait()
        return completion()

    call = msgspec.convert(chat_json("g"), ChatCall)
    async with stack(deployments("d g concurrency=4"), {"d": held}) as s:
        jobs = lanes_of(s.supervisor)
        async with anyio.create_task_group() as tg:
            for _ in range(3):  # the job share of concurrency 4
                tg.start_soon(jobs.complete, call)
            await anyio.wait_all_tasks_blocked()
            assert job_room(s.actors["d"]) == 0
            with pytest.raises(NoCapacity):
                await jobs.complete(call)
            tg.start_soon(s.supervisor.complete, call)  # the live request takes the 4th worker
            await anyio.wait_all_tasks_blocked()
            assert s.actors["d"].statistics().inflight == 4
            release.set()
