"""Shared breakers across three real daemons: an open on one is an open on all (well within
100 ms), a provider's Retry-After holds every daemon off, and the half-open probe is one
request for the whole cluster."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import anyio
import pytest

from .cluster_support import (
    ROOT,
    Daemon,
    RedisServer,
    chat,
    cluster_config,
    cluster_name,
    daemons,
)
from .fakes import OpenAIFake, openai_rate_limited, serve_app
from .helpers import openai_deployment

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

PROPAGATION_S = 0.1


async def ask_all(procs: list[Daemon], per_daemon: int) -> list[int]:
    statuses: list[int] = []

    async def ask(proc: Daemon) -> None:
        async with proc.client() as client:
            for _ in range(per_daemon):
                response = await client.post("/v1/chat/completions", json=chat())
                statuses.append(response.status_code)

    async with anyio.create_task_group() as tg:
        for proc in procs:
            tg.start_soon(ask, proc)
    return statuses


async def first_of(procs: list[Daemon], pattern: str, start: list[int]) -> Daemon:
    """The daemon that logs `pattern` first (each one's log read from `start[i]`)."""
    winner: list[Daemon] = []
    async with anyio.create_task_group() as tg:

        async def watch(index: int, proc: Daemon) -> None:
            await proc.wait_for(pattern, start=start[index])
            winner.append(proc)
            tg.cancel_scope.cancel()

        for index, proc in enumerate(procs):
            tg.start_soon(watch, index, proc)
    return winner[0]


async def test_auth_failure_opens_everywhere_and_one_probe_for_the_cluster(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """A 401 on daemon 0 opens the deployment on daemons 1 and 2 within 100 ms (they answer
    503 without calling the provider); when the cooldown ends, 12 requests over the three
    daemons make exactly one probe upstream."""
    fake = OpenAIFake(api_key="sk-the-right-key-0000")
    async with serve_app(fake) as url:
        deployment = openai_deployment("up", "g", url, "sk-a-wrong-key-00000")
        config = cluster_config(redis_server.url, cluster_name(), deployment)
        config = config.replace("cooldown_s = 30", "cooldown_s = 1")
        async with daemons(tmp_path, config, 3) as procs:
            with anyio.fail_after(20):
                for proc in procs:
                    await proc.wait_for("joined")
                async with procs[0].client() as client:
                    response = await client.post("/v1/chat/completions", json=chat())
                assert response.status_code == 502
                for proc in procs[1:]:
                    heard = await proc.wait_for(r"up opened by \S+ for 1\.0s \(heard ([\d.]+) ms")
                    assert float(heard[1]) < PROPAGATION_S * 1000, heard[0]
                async with procs[1].client() as client:
                    response = await client.post("/v1/chat/completions", json=chat())
                assert response.status_code == 503
                assert len(fake.requests) == 1
                # The cooldown ends: one daemon wins the probe lock; only it sends one attempt.
                marks = [len(proc.lines) for proc in procs]
                await first_of(procs, "holds the cluster's probe", marks)
                statuses = await ask_all(procs, 4)
            assert len(fake.requests) == 2
            assert sorted(statuses) == [502] + [503] * 11


async def test_retry_after_from_a_provider_holds_every_daemon_off(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """A 429 with Retry-After: 20 on daemon 0 keeps the deployment open for about 20 s on
    all three, and on a fourth that joins afterwards."""
    fake = OpenAIFake(api_key="sk-the-right-key-0000")
    fake.script(openai_rate_limited(retry_after=20))
    async with serve_app(fake) as url:
        deployment = openai_deployment("up", "g", url, "sk-the-right-key-0000")
        config = cluster_config(redis_server.url, cluster_name(), deployment)
        config = config.replace("allowed_fails = 1", "allowed_fails = 5")
        async with daemons(tmp_path, config, 3) as procs:
            with anyio.fail_after(20):
                for proc in procs:
                    await proc.wait_for("joined")
                async with procs[0].client() as client:
                    response = await client.post("/v1/chat/completions", json=chat())
                assert response.status_code == 502
                for proc in procs[1:]:
                    await proc.wait_for(r"up opened by \S+ for 20\.0s")
                    async with proc.client() as client:
                        response = await client.post("/v1/chat/completions", json=chat())
                        assert response.status_code == 503
                        assert int(response.headers["retry-after"]) >= 19
                        rows = (await client.get("/v1/deployments")).json()["data"]
                    assert rows[0]["state"] == "open"
                    assert rows[0]["cooldown_remaining_s"] > 19
                async with procs[2].client() as client:
                    status = (await client.get("/v1/cluster")).json()
                command = [sys.executable, "-m", "dispatcher", "status", "--socket"]
                env = {**os.environ, "PYTHONPATH": str(ROOT)}
                shown = await anyio.run_process([*command, str(procs[2].socket)], env=env)
                # A daemon that joins now finds it open too.
                async with daemons(tmp_path / "late", config, 1) as [late]:
                    await late.wait_for(r"up is open in the cluster for 1\d\.\ds more")
                    async with late.client() as client:
                        response = await client.post("/v1/chat/completions", json=chat())
                    assert response.status_code == 503
            assert len(fake.requests) == 1
    [row] = status["deployments"]
    assert row["breaker"] == "open" and row["open_for_s"] > 19
    assert len(status["members"]) == 3
    text = shown.stdout.decode()
    assert "connected, 3 member(s)" in text
    assert re.search(r"\n  up +open 1\d\.\ds +- ", text), text
