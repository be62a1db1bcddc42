"""Jobs on the cluster's Redis, across real daemons: submitted on one, seen, long-polled,
deduplicated and cancelled on another; and taken over, each with exactly one result, when
the daemon running them is killed -9."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import anyio
import httpx
import pytest

from dispatcher import StoreUnavailable
from dispatcher.jobs import RedisJobStore
from dispatcher.jobs._redis import LEASE_S, RENEW_S

from .cluster_support import RedisServer, cluster_config, cluster_name, daemons
from .fakes import OpenAIFake, serve_app, wait
from .helpers import openai_deployment
from .jobstores import new_job, running_store
from .jobsupport import job_body

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


def texts(fake: OpenAIFake) -> list[str]:
    """The user message of each request the fake received, in arrival order."""
    return [r.json["messages"][0]["content"] for r in fake.requests]


async def test_a_job_is_one_job_on_every_daemon(tmp_path: Path, redis_server: RedisServer) -> None:
    """Submitted on daemon 0: daemon 1 finds its idempotency key (same job, or 409 for
    another request), long-polls it to its result, and cancels a job daemon 0 runs."""
    fake = OpenAIFake(api_key="sk-test-key-000000000")
    hold, release = anyio.Event(), anyio.Event()
    fake.script(wait(hold), wait(release))
    async with serve_app(fake) as url:
        deployment = openai_deployment("up", "g", url, "sk-test-key-000000000")
        config = cluster_config(redis_server.url, cluster_name(), deployment)
        async with daemons(tmp_path, config, 2) as procs:
            with anyio.fail_after(20):
                async with procs[0].client() as d0, procs[1].client() as d1:
                    body = job_body("g", "held", idempotency_key="k1")
                    first = await d0.post("/v1/jobs", json=body)
                    assert first.status_code == 202
                    held = first.json()["id"]
                    await fake.wait_for_requests(1)  # running on daemon 0

                    again = await d1.post("/v1/jobs", json=body)
                    assert (again.status_code, again.json()["id"]) == (200, held)
                    other = job_body("g", "other", idempotency_key="k1")
                    assert (await d1.post("/v1/jobs", json=other)).status_code == 409

                    cancelled = await d1.delete(f"/v1/jobs/{held}")
                    assert cancelled.json()["status"] == "cancelled"
                    seen = await d0.get(f"/v1/jobs/{held}", params={"wait": 10})
                    assert seen.json()["status"] == "cancelled"

                    polled = await d0.post("/v1/jobs", json=job_body("g", "polled"))
                    polled_id = polled.json()["id"]
                    answer: list[httpx.Response] = []
                    async with anyio.create_task_group() as tg:

                        async def long_poll() -> None:
                            params = {"wait": 15}
                            answer.append(await d1.get(f"/v1/jobs/{polled_id}", params=params))

                        tg.start_soon(long_poll)
                        await fake.wait_for_requests(2)
                        release.set()
                    assert answer[0].json()["status"] == "succeeded"
                    assert answer[0].json()["result"]["object"] == "chat.completion"
                    # The cancelled run never came back with a result to record.
                    final = (await d1.get(f"/v1/jobs/{held}")).json()
                    assert final["status"] == "cancelled"
                    hold.set()
    assert texts(fake) == ["held", "polled"]
    # Daemon 0 heard of the cancel and cut its attempt (it was not answered, then recorded).
    assert fake.requests[0].disconnected and fake.requests[0].status is None


async def test_jobs_of_a_killed_daemon_are_run_by_another_with_one_result(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """Daemon 0 runs 4 jobs (held upstream) and is killed -9: within the lease, daemons 1
    and 2 take each over once, run it again, and each job ends succeeded, one result."""
    fake = OpenAIFake(api_key="sk-test-key-000000000")
    never = anyio.Event()
    fake.script(*(wait(never) for _ in range(4)))
    async with serve_app(fake) as url:
        deployment = openai_deployment("up", "g", url, "sk-test-key-000000000")
        config = cluster_config(redis_server.url, cluster_name(), deployment)
        async with daemons(tmp_path, config, 3) as procs:
            with anyio.fail_after(40):
                async with procs[0].client() as d0:
                    ids = []
                    for n in range(4):
                        response = await d0.post("/v1/jobs", json=job_body("g", f"job {n}"))
                        assert response.status_code == 202
                        ids.append(response.json()["id"])
                await fake.wait_for_requests(4)  # all four running on daemon 0
                os.kill(procs[0].process.pid, signal.SIGKILL)
                killed = time.monotonic()
                await procs[0].process.wait()
                jobs = []
                async with procs[1].client() as d1:
                    for job_id in ids:
                        params = {"wait": 25}
                        response = await d1.get(f"/v1/jobs/{job_id}", params=params, timeout=30)
                        jobs.append(response.json())
                took = time.monotonic() - killed
                never.set()
    print(f"takeover: 4 jobs finished {took:.1f}s after kill -9 (lease {LEASE_S:g}s)")
    assert [job["status"] for job in jobs] == ["succeeded"] * 4
    assert [len(job["attempts"]) for job in jobs] == [1] * 4  # one result: the rerun's
    assert took < LEASE_S + RENEW_S + 5
    # Each job ran twice upstream (the killed run, then the takeover's), no more.
    assert sorted(texts(fake)) == sorted([f"job {n}" for n in range(4)] * 2)
    taken = sum("taken over" in line for proc in procs[1:] for line in proc.lines)
    assert taken == 4


async def test_redis_down_refuses_submissions_then_takes_them_again(tmp_path: Path) -> None:
    """Redis gone: insert raises StoreUnavailable (a 503: nothing acknowledged); Redis back
    on its port: the same store takes jobs again, no restart."""
    redis = RedisServer(tmp_path)
    with redis.running():
        store = RedisJobStore(redis.url, f"llm-dispatcher:{cluster_name()}:", "m1")
        async with running_store(store):
            assert await store.insert(new_job(1)) is None
            redis.stop()
            with pytest.raises(StoreUnavailable):
                await store.insert(new_job(2))
            with pytest.raises(StoreUnavailable):
                await store.get("job_1")
            redis.start()
            assert await store.insert(new_job(3)) is None
            assert [job.id for job in await store.unfinished()] == ["job_3"]
