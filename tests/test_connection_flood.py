"""The real daemon under a low open-file limit, flooded with idle and slowloris connections.

The daemon runs as a subprocess whose RLIMIT_NOFILE (soft and hard) is 256: more idle
connections than it may keep are opened; a well-behaved client is still served, and every
idle or slow connection is closed by the server (EOF) within its deadline.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import httpx
import pytest
from anyio.abc import ByteStream, Process
from anyio.streams.text import TextReceiveStream

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
FD_LIMIT = 256
IDLE = 300
SLOW = 20

# Lower the limit in the child itself, before the daemon starts (no preexec_fn with threads).
BOOT = (
    "import resource, sys\n"
    f"resource.setrlimit(resource.RLIMIT_NOFILE, ({FD_LIMIT}, {FD_LIMIT}))\n"
    "from dispatcher.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)

CONFIG = """
[server]
socket = "run/d.sock"
metrics = ""
header_timeout_s = 1
keepalive_timeout_s = 1
drain_timeout_s = 2
[[deployment]]
name = "mock"
group = "mini"
provider = "mock"
model = "mock-mini"
"""


class Log:
    """The daemon's stderr, read all along (a full pipe would stall it)."""

    def __init__(self, process: Process) -> None:
        self.process = process
        self.lines: list[str] = []
        self._changed = anyio.Event()

    async def pump(self) -> None:
        assert self.process.stderr is not None
        buffer = ""
        async for chunk in TextReceiveStream(self.process.stderr):
            buffer += chunk
            *lines, buffer = buffer.split("\n")
            self.lines.extend(lines)
            self._changed.set()
            self._changed = anyio.Event()
        self._changed.set()

    async def wait_for(self, pattern: str) -> re.Match[str]:
        while True:
            for line in self.lines:
                match = re.search(pattern, line)
                if match:
                    return match
            if self.process.returncode is not None:
                raise AssertionError(f"daemon exited without {pattern!r}: {self.lines}")
            await self._changed.wait()


@contextlib.asynccontextmanager
async def daemon(tmp_path: Path) -> AsyncIterator[Log]:
    config = tmp_path / "d.toml"
    config.write_text(CONFIG)
    command = [sys.executable, "-c", BOOT, "serve", "--config", str(config)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    async with await anyio.open_process(command, env=env) as process:
        log = Log(process)
        async with anyio.create_task_group() as tg:
            tg.start_soon(log.pump)
            try:
                yield log
            finally:
                if process.returncode is None:
                    process.kill()


def client_of(socket_path: Path) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(uds=os.fspath(socket_path))
    return httpx.AsyncClient(transport=transport, base_url="http://d", timeout=10)


async def until_closed(stream: ByteStream) -> bytes:
    """What the server sends until it closes the connection."""
    out = b""
    with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
        while True:
            out += await stream.receive()
    return out


async def test_idle_and_slow_connections_cannot_lock_clients_out(tmp_path: Path) -> None:
    """300 idle and 20 slowloris connections under a 256-fd limit: a client is served, and
    the server closes every idle or slow connection within its deadline."""
    socket_path = tmp_path / "run" / "d.sock"
    async with daemon(tmp_path) as log, contextlib.AsyncExitStack() as stack:
        with anyio.fail_after(30):
            serving = await log.wait_for(r"serving 1 deployments.*at most (\d+) connections")
        limit = int(serving[1])
        assert 16 <= limit < FD_LIMIT - 64  # room kept for upstreams and the daemon
        assert IDLE > limit
        with anyio.fail_after(20):
            idle = [await stack.enter_async_context(await anyio.connect_unix(socket_path))]
            for _ in range(IDLE - 1):
                idle.append(await stack.enter_async_context(await anyio.connect_unix(socket_path)))
            slow = [
                await stack.enter_async_context(await anyio.connect_unix(socket_path))
                for _ in range(SLOW)
            ]
            async with client_of(socket_path) as client:
                body = {"model": "mini", "messages": [{"role": "user", "content": "still here"}]}
                answer = await client.post("/v1/chat/completions", json=body)
            assert answer.json()["choices"][0]["message"]["content"] == "mock: still here"

            closed: list[bytes] = []
            all_closed = anyio.Event()
            head = b"GET /health HTTP/1.1\r\nhost: localhost\r\nx-pad: " + b"a" * 64

            async def trickle(stream: ByteStream) -> None:
                with contextlib.suppress(anyio.BrokenResourceError):
                    for byte in head:
                        await stream.send(bytes([byte]))
                        await anyio.sleep(0.1)  # sleep-ok: the attack's pace (8 s for the head)

            async def watch(stream: ByteStream) -> None:
                closed.append(await until_closed(stream))
                if len(closed) == IDLE + SLOW:
                    all_closed.set()

            async with anyio.create_task_group() as tg:
                for stream in slow:
                    tg.start_soon(trickle, stream)
                for stream in [*idle, *slow]:
                    tg.start_soon(watch, stream)
                with anyio.fail_after(6):  # header_timeout_s is 1: every one closes well before
                    await all_closed.wait()
                tg.cancel_scope.cancel()
        assert len(closed) == IDLE + SLOW
        timed_out = [answer for answer in closed if answer]
        assert all(answer.startswith(b"HTTP/1.1 408 ") for answer in timed_out)
        assert log.process.returncode is None  # alive, and still serving
        with anyio.fail_after(10):
            async with client_of(socket_path) as client:
                assert (await client.get("/health")).status_code == 200
            await log.wait_for("closing the longest idle ones")
