"""The real daemon as a subprocess: startup, SIGTERM drain, exit code, precise start errors."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import httpx
import pytest
from anyio.abc import Process
from anyio.streams.text import TextReceiveStream

from .fakes import OpenAIFake, serve_app, wait

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent


class Daemon:
    def __init__(self, process: Process, socket: Path) -> None:
        self.process = process
        self.socket = socket
        self.log: list[str] = []

    async def wait_for_line(self, text: str) -> str:
        """Read the daemon's stderr until a line containing `text` appears."""
        assert self.process.stderr is not None
        buffer = ""
        async for chunk in TextReceiveStream(self.process.stderr):
            buffer += chunk
            *lines, buffer = buffer.split("\n")
            self.log.extend(lines)
            for line in lines:
                if text in line:
                    return line
        raise AssertionError(f"daemon exited without {text!r}: {self.log}")

    def client(self) -> httpx.AsyncClient:
        transport = httpx.AsyncHTTPTransport(uds=os.fspath(self.socket))
        return httpx.AsyncClient(transport=transport, base_url="http://d", timeout=10)


@contextlib.asynccontextmanager
async def daemon(tmp_path: Path, extra: str = "") -> AsyncIterator[Daemon]:
    config = tmp_path / "d.toml"
    config.write_text(
        f"""
[server]
socket = "run/d.sock"
metrics = ""
drain_timeout_s = 10
[[deployment]]
name = "mock"
group = "mini"
provider = "mock"
model = "mock-mini"
{extra}
"""
    )
    command = [sys.executable, "-m", "dispatcher", "serve", "--config", str(config)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    async with await anyio.open_process(command, env=env) as process:
        try:
            yield Daemon(process, tmp_path / "run" / "d.sock")
        finally:
            if process.returncode is None:
                process.kill()


async def test_sigterm_drains_in_flight_request_and_exits_zero(tmp_path: Path) -> None:
    """SIGTERM: the listener closes, the request in flight is answered, the exit code is 0."""
    fake = OpenAIFake(api_key="sk-proc")
    release = anyio.Event()
    fake.script(wait(release))
    async with serve_app(fake) as url:
        extra = f"""
[[deployment]]
name = "upstream"
group = "real"
provider = "openai-compatible"
model = "gpt-4o-mini"
api_base = "{url}/v1"
api_key = "sk-proc"
"""
        async with daemon(tmp_path, extra) as d:
            with anyio.fail_after(30):
                await d.wait_for_line("serving 2 deployments")
                responses: list[httpx.Response] = []
                async with d.client() as client, anyio.create_task_group() as tg:

                    async def ask() -> None:
                        body = {"model": "real", "messages": [{"role": "user", "content": "x"}]}
                        responses.append(await client.post("/v1/chat/completions", json=body))

                    tg.start_soon(ask)
                    await fake.wait_for_requests(1)
                    d.process.send_signal(signal.SIGTERM)
                    await d.wait_for_line("SIGTERM: draining")
                    release.set()
                assert await d.process.wait() == 0
    [response] = responses
    assert response.status_code == 200
    assert not d.socket.exists()


async def test_served_requests_then_sigint(tmp_path: Path) -> None:
    """The daemon serves the mock group over its socket and SIGINT stops it with 0."""
    async with daemon(tmp_path) as d:
        with anyio.fail_after(30):
            await d.wait_for_line("serving 1 deployments")
            async with d.client() as client:
                body = {"model": "mini", "messages": [{"role": "user", "content": "hi"}]}
                response = await client.post("/v1/chat/completions", json=body)
                assert response.json()["choices"][0]["message"]["content"] == "mock: hi"
            d.process.send_signal(signal.SIGINT)
            assert await d.process.wait() == 0


async def test_bad_config_exits_one_with_file_key_reason(tmp_path: Path) -> None:
    """A typo in the config stops the start with exit 1 and names file, key, reason."""
    async with daemon(tmp_path, extra="rmp = 10") as d:
        with anyio.fail_after(30):
            line = await d.wait_for_line("config error")
            assert await d.process.wait() == 1
    assert f"{tmp_path / 'd.toml'}: deployment[0].rmp: unknown key" in line


async def test_sighup_reloads_and_a_bad_file_keeps_the_old_config(tmp_path: Path) -> None:
    """SIGHUP serves the edited file; a broken edit is refused and the daemon keeps serving."""
    async with daemon(tmp_path) as d:
        config = tmp_path / "d.toml"
        with anyio.fail_after(30):
            await d.wait_for_line("serving 1 deployments")
            config.write_text(config.read_text().replace('group = "mini"', 'group = "renamed"'))
            d.process.send_signal(signal.SIGHUP)
            await d.wait_for_line("reloaded: 1 deployments (1 started, 1 retired)")
            config.write_text(config.read_text() + "\nbogus = 1\n")
            d.process.send_signal(signal.SIGHUP)
            line = await d.wait_for_line("reload refused")
            assert "deployment[0].bogus: unknown key" in line
            async with d.client() as client:
                models = (await client.get("/v1/models")).json()
            assert [m["id"] for m in models["data"]] == ["renamed"]
            d.process.send_signal(signal.SIGTERM)
            assert await d.process.wait() == 0
