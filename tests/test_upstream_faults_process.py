"""The real daemon (a subprocess) against a broken upstream: its memory stays bounded
under a body that never ends, a never-ending SSE line fails over well within the
attempt's deadline, and SIGTERM still stops it at once afterwards. Memory is read from
/proc (the daemon's peak resident set, VmHWM), not guessed from timings."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import httpx
import pytest
from anyio.abc import Process
from anyio.streams.text import TextReceiveStream

from .fakes import OpenAIFake, serve_app
from .helpers import chat_json, openai_deployment
from .provider_streams import events
from .test_upstream_faults import KEY, endless_json, endless_sse_line

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc"),
]

ROOT = Path(__file__).resolve().parent.parent
ATTEMPT_S = 5.0  # the primary's per-attempt deadline (timeout_s)


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of process `pid`, in KiB."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields


@contextlib.asynccontextmanager
async def daemon(tmp_path: Path, primary: str, spare: str) -> AsyncIterator[Process]:
    """The daemon serving group "primary" (falling back to "spare"), once it is ready."""
    config = tmp_path / "d.toml"
    config.write_text(
        '[server]\nsocket = "run/d.sock"\nmetrics = ""\ndrain_timeout_s = 30\n'
        '[router]\nnum_retries = 0\n[router.fallbacks]\n"primary" = ["spare"]\n'
        + openai_deployment("primary-a", "primary", primary, KEY, f"timeout_s = {ATTEMPT_S}")
        + openai_deployment("spare-a", "spare", spare, KEY)
    )
    command = [sys.executable, "-m", "dispatcher", "serve", "--config", str(config)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    async with await anyio.open_process(command, env=env) as process:
        try:
            assert process.stderr is not None
            lines = TextReceiveStream(process.stderr)
            with anyio.fail_after(30):
                seen = ""
                async for text in lines:
                    seen += text
                    if "serving 2 deployments" in seen:
                        break
                else:
                    raise AssertionError(f"the daemon did not start: {seen}")
            async with anyio.create_task_group() as tg:

                async def drain_log() -> None:  # a full stderr pipe would block the daemon
                    async for _ in lines:
                        pass

                tg.start_soon(drain_log)
                yield process
                tg.cancel_scope.cancel()
        finally:
            if process.returncode is None:
                process.kill()


def client(tmp_path: Path) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(uds=os.fspath(tmp_path / "run" / "d.sock"))
    return httpx.AsyncClient(transport=transport, base_url="http://d", timeout=30)


async def test_broken_upstreams_cost_bounded_memory_and_fail_over_in_time(
    tmp_path: Path,
) -> None:
    """Peak RSS under a never-ending body stays below twice the idle RSS (the default
    32 MiB max_response_bytes), and a never-ending SSE line fails over before the
    attempt's deadline; then SIGTERM stops the daemon with 0."""
    primary, spare = OpenAIFake(api_key=KEY), OpenAIFake(api_key=KEY, name="spare")
    async with serve_app(primary) as p_url, serve_app(spare) as s_url:
        async with daemon(tmp_path, p_url, s_url) as process, client(tmp_path) as http:
            for group in ("primary", "spare"):  # warm both paths of both deployments
                for stream in (False, True):
                    body = chat_json(group, "warm", stream=stream)
                    async with http.stream("POST", "/v1/chat/completions", json=body) as r:
                        assert r.status_code == 200
                        await r.aread()
            idle = memory_kib(process.pid)["VmRSS"]
            assert memory_kib(process.pid)["VmHWM"] < 2 * idle  # no peak before the fault

            primary.script(endless_json())
            with anyio.fail_after(ATTEMPT_S + 5):
                response = await http.post("/v1/chat/completions", json=chat_json("primary"))
            assert response.headers["x-dispatcher-deployment"] == "spare-a"
            peak = memory_kib(process.pid)["VmHWM"]

            primary.script(endless_sse_line())
            body = chat_json("primary", stream=True)
            started = time.perf_counter()
            with anyio.fail_after(ATTEMPT_S):
                async with http.stream("POST", "/v1/chat/completions", json=body) as response:
                    got = await events(response)
            failover_s = time.perf_counter() - started
            assert response.headers["x-dispatcher-deployment"] == "spare-a"
            assert got[-1] == "[DONE]"

            process.send_signal(signal.SIGTERM)
            with anyio.fail_after(10):
                assert await process.wait() == 0
    print(
        f"\nfault figures: idle RSS {idle / 1024:.0f} MiB, peak RSS (VmHWM) under a "
        f"never-ending body {peak / 1024:.0f} MiB ({peak / idle:.2f}x idle); never-ending "
        f"SSE line failed over in {failover_s * 1000:.0f} ms (attempt deadline {ATTEMPT_S} s)"
    )
    assert peak < 2 * idle
