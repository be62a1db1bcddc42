"""Three real daemons on one real Redis share one rpm budget: under 3x the demand the
cluster admits what the budget allows (within 1 %), and every daemon gets its share."""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import httpx
import pytest

from .cluster_support import RedisServer, chat, cluster_config, cluster_name, daemons

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

RPM = 1200
"""A token bucket of 1200 requests, refilled at 20 per second, full at first use."""
CLIENTS = 8


async def test_three_daemons_stay_within_one_shared_rpm(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """3x the budget's demand spread over 3 daemons: 200s total the budget (+-1 %), and no
    daemon gets less than half of a fair third."""
    deployment = f"""
[[deployment]]
name = "shared"
group = "g"
provider = "mock"
model = "m"
rpm = {RPM}
inbox = 256
concurrency = 64
"""
    config = cluster_config(redis_server.url, cluster_name(), deployment)
    per_daemon = RPM + 100  # with the refill during the run: about 3x what the budget allows
    admitted = [0, 0, 0]
    refused = [0, 0, 0]
    async with daemons(tmp_path, config, 3) as procs:
        for proc in procs:
            await proc.wait_for("joined")
        started = time.monotonic()
        with anyio.fail_after(40):
            async with anyio.create_task_group() as tg:
                for index, proc in enumerate(procs):
                    tg.start_soon(_load, proc.client(), per_daemon, index, admitted, refused)
        elapsed = time.monotonic() - started
    allowance = RPM + RPM / 60 * elapsed
    total = sum(admitted)
    assert sum(refused) + total == 3 * per_daemon
    assert total <= allowance * 1.01, (admitted, allowance)
    assert total >= allowance * 0.99, (admitted, allowance)
    assert min(admitted) >= total / 6, admitted


async def _load(
    client_: httpx.AsyncClient, count: int, index: int, admitted: list[int], refused: list[int]
) -> None:
    """Send `count` requests with CLIENTS connections; count 200s and 429s."""
    left = [count]

    async def one_client() -> None:
        while left[0] > 0:
            left[0] -= 1
            response = await client.post("/v1/chat/completions", json=chat())
            if response.status_code == 200:
                admitted[index] += 1
            else:
                assert response.status_code == 429, response.text
                refused[index] += 1

    async with client_ as client, anyio.create_task_group() as tg:
        for _ in range(CLIENTS):
            tg.start_soon(one_client)
