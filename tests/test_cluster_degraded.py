"""Redis goes away and comes back: the daemons serve on their share of each budget meanwhile
(a gauge and one log line say so), then rejoin without a restart."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from .cluster_support import Daemon, RedisServer, chat, cluster_config, cluster_name, daemons

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

MOCK = """
[[deployment]]
name = "m"
group = "g"
provider = "mock"
model = "m"
"""


async def connected_gauge(proc: Daemon) -> str:
    async with proc.client() as client:
        text = (await client.get("/metrics")).text
    [line] = [x for x in text.splitlines() if x.startswith("dispatcher_cluster_connected ")]
    return line.split()[1]


async def statuses(proc: Daemon, count: int) -> list[int]:
    async with proc.client() as client:
        return [
            (await client.post("/v1/chat/completions", json=chat())).status_code
            for _ in range(count)
        ]


async def test_redis_down_serves_on_local_share_then_rejoins(tmp_path: Path) -> None:
    """Redis killed: requests are still answered, each daemon within rpm / members (2 of 4);
    `dispatcher_cluster_connected` is 0 and the log says so once. Redis back on the same
    port: both daemons rejoin by themselves and share the budget again."""
    redis = RedisServer(tmp_path)
    deployment = """
[[deployment]]
name = "m"
group = "g"
provider = "mock"
model = "m"
rpm = 4
"""
    with redis.running():
        config = cluster_config(redis.url, cluster_name(), deployment)
        async with daemons(tmp_path, config, 2) as procs:
            with anyio.fail_after(30):
                for proc in procs:  # each one knows of both (its share when Redis is gone)
                    await proc.wait_for(r"joined .* \(2 members\)|: 2 members \(was 1\)")
                assert await connected_gauge(procs[0]) == "1.0"
                redis.stop()
                for proc in procs:
                    await proc.wait_for("unreachable .* serving on local limits and breakers")
                assert await connected_gauge(procs[0]) == "0.0"
                assert await statuses(procs[0], 4) == [200, 200, 429, 429]
                async with procs[0].client() as client:
                    status = (await client.get("/v1/cluster")).json()
                assert status["enabled"] and not status["connected"]
                redis.start()
                for proc in procs:
                    await proc.wait_for("rejoined .* shared limits and breakers again")
                assert await connected_gauge(procs[0]) == "1.0"
                assert await statuses(procs[1], 1) == [200]
                for proc in procs:
                    assert sum("unreachable" in line for line in proc.lines) == 1


async def test_a_daemon_starts_without_redis_and_takes_jobs_once_it_is_back(
    tmp_path: Path,
) -> None:
    """Redis down at start: the daemon serves live requests, job submissions answer 503
    store_unavailable (nothing acknowledged); Redis up: jobs are taken and run."""
    redis = RedisServer(tmp_path)
    config = cluster_config(redis.url, cluster_name(), MOCK)
    async with daemons(tmp_path, config, 1) as [proc]:
        with anyio.fail_after(30):
            await proc.wait_for("jobs wait for the cluster's job store")
            async with proc.client() as client:
                assert (await client.post("/v1/chat/completions", json=chat())).status_code == 200
                refused = await client.post("/v1/jobs", json={"request": chat()})
                assert refused.status_code == 503
                assert refused.json()["error"]["code"] == "store_unavailable"
            with redis.running():
                await proc.wait_for("job store is reachable; jobs are served")
                async with proc.client() as client:
                    taken = await client.post("/v1/jobs", json={"request": chat()})
                    assert taken.status_code == 202
                    job = (await client.get(f"/v1/jobs/{taken.json()['id']}?wait=20")).json()
                assert job["status"] == "succeeded"
