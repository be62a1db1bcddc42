"""`dispatcher serve --workers N`: N processes behind one socket, sharing state through
Redis; connections are spread evenly; signals reach every worker; a dead worker is
restarted; no parent, no workers."""

from __future__ import annotations

import os
import re
import signal
import sys
from collections import Counter
from pathlib import Path

import anyio
import httpx
import pytest

from .cluster_support import ROOT, Daemon, RedisServer, chat, cluster_config, cluster_name

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

MOCK = """
[[deployment]]
name = "m"
group = "g"
provider = "mock"
model = "m"
"""


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "d.toml"
    path.write_text(text)
    return path


def command(config: Path, workers: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "dispatcher",
        "serve",
        "--config",
        str(config),
        "--workers",
        str(workers),
    ]


ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


async def members_of_connections(parent: Daemon, count: int) -> Counter[str]:
    """Which worker answers on each of `count` connections opened at once."""
    seen: Counter[str] = Counter()

    async def one() -> None:
        async with parent.client() as client:
            seen[(await client.get("/v1/cluster")).json()["member"]] += 1

    async with anyio.create_task_group() as tg:
        for _ in range(count):
            tg.start_soon(one)
    return seen


async def test_workers_need_a_cluster(tmp_path: Path) -> None:
    """Without [cluster], --workers is refused with a message that says what to add."""
    config = write_config(tmp_path, '[server]\nsocket = "run/d.sock"\nmetrics = ""\n' + MOCK)
    result = await anyio.run_process(command(config, 2), env=ENV, check=False)
    assert result.returncode == 1
    assert b"--workers needs [cluster] in the config" in result.stderr
    assert not (tmp_path / "run" / "d.sock").exists()


async def test_two_workers_serve_one_socket_and_follow_signals(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """Two workers join the cluster and answer on one socket; SIGHUP reloads both; a worker
    killed with SIGKILL is restarted; SIGTERM drains both and the parent exits 0."""
    config = write_config(tmp_path, cluster_config(redis_server.url, cluster_name(), MOCK))
    async with await anyio.open_process(command(config, 2), env=ENV) as process:
        parent = Daemon(process, tmp_path / "run" / "d.sock", "parent")
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(parent.read_stderr)
                with anyio.fail_after(30):
                    line = await parent.wait_for(
                        r"serving with 2 workers on .* \(pids (\d+), (\d+)\)"
                    )
                    pids = [int(line[1]), int(line[2])]
                    await parent.wait_for(r"\(2 members\)|: 2 members \(was 1\)")
                    # A fresh connection per request: any worker may take it.
                    no_reuse = httpx.Limits(max_keepalive_connections=0)
                    async with parent.client(limits=no_reuse) as client:
                        for _ in range(4):
                            response = await client.post("/v1/chat/completions", json=chat())
                            assert response.status_code == 200
                        status = (await client.get("/v1/cluster")).json()
                        job = await client.post("/v1/jobs", json={"request": chat()})
                    assert len(status["members"]) == 2
                    # Jobs on the cluster's job store (Redis): any worker takes them.
                    assert job.status_code == 202
                    assert {int(m["member"].split(":")[1]) for m in status["members"]} == set(pids)

                    # A client's pool of 32 connections is spread evenly (round robin).
                    assert sorted((await members_of_connections(parent, 32)).values()) == [
                        16,
                        16,
                    ]

                    mark = len(parent.lines)
                    process.send_signal(signal.SIGHUP)
                    for pid in pids:
                        await parent.wait_for(rf"\[{pid}\]: reloaded", start=mark)

                    os.kill(pids[0], signal.SIGKILL)
                    await parent.wait_for(
                        rf"worker \d \(pid {pids[0]}\) exited with -9; restarting"
                    )
                    mark = len(parent.lines)
                    await parent.wait_for(r"serving \d+ deployments", start=mark)

                    process.send_signal(signal.SIGTERM)
                    assert await process.wait() == 0
                tg.cancel_scope.cancel()
        finally:
            if process.returncode is None:
                process.kill()
    assert not (tmp_path / "run" / "d.sock").exists()
    stops = [x for x in parent.lines if re.search(r"\[\d+\]: stopped$", x)]
    assert len(stops) == 2


async def test_workers_stop_when_the_parent_is_killed(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """SIGKILL to the parent: its lifeline closes and every worker drains and exits."""
    config = write_config(tmp_path, cluster_config(redis_server.url, cluster_name(), MOCK))
    async with await anyio.open_process(command(config, 2), env=ENV) as process:
        parent = Daemon(process, tmp_path / "run" / "d.sock", "parent")
        async with anyio.create_task_group() as tg:
            tg.start_soon(parent.read_stderr)
            with anyio.fail_after(30):
                line = await parent.wait_for(r"serving with 2 workers on .* \(pids (\d+), (\d+)\)")
                await parent.wait_for(r"\(2 members\)|: 2 members \(was 1\)")
                process.kill()
                # The workers hold the parent's stderr pipe too: it ends when both are gone.
                await parent.wait_ended()
            tg.cancel_scope.cancel()
    for pid in (line[1], line[2]):
        assert any(f"[{pid}]: the parent process is gone" in x for x in parent.lines)
        assert any(x.endswith(f"[{pid}]: stopped") for x in parent.lines)
