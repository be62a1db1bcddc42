"""Real parts for cluster tests: a `redis-server` on a free loopback port, daemons as
subprocesses whose log lines can be awaited (never polled)."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
from anyio.abc import Process
from anyio.streams.text import TextReceiveStream

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """A `redis-server` (no persistence) on 127.0.0.1; stop and start it again on its port."""

    def __init__(self, folder: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(
                "redis-server is not installed: `make test` installs it "
                "(apt-get install redis-server)"
            )
        self.binary = binary
        self.folder = folder
        self.port = free_port()
        self.process: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.folder),
        ]
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.process = process
        assert process.stdout is not None
        seen: list[str] = []
        for line in process.stdout:  # ends at EOF if it cannot start
            seen.append(line)
            if "Ready to accept connections" in line:
                return
        raise RuntimeError(f"redis-server did not start: {''.join(seen)[-2000:]}")

    def stop(self) -> None:
        process = self.process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(10)
            assert process.stdout is not None
            process.stdout.close()
        self.process = None

    @contextlib.contextmanager
    def running(self) -> Iterator[RedisServer]:
        self.start()
        try:
            yield self
        finally:
            self.stop()


def cluster_name() -> str:
    """A fresh key prefix: tests sharing one Redis never see each other's state."""
    return "t" + secrets.token_hex(4)


class Daemon:
    """A `dispatcher serve` subprocess; its stderr is read all along into `lines`."""

    def __init__(self, process: Process, socket_path: Path, name: str) -> None:
        self.process = process
        self.socket = socket_path
        self.name = name
        self.lines: list[str] = []
        self._changed = anyio.Event()
        self._ended = False

    async def read_stderr(self) -> None:
        assert self.process.stderr is not None
        buffer = ""
        try:
            async for chunk in TextReceiveStream(self.process.stderr):
                buffer += chunk
                *lines, buffer = buffer.split("\n")
                if lines:
                    self.lines.extend(lines)
                    self._changed.set()
                    self._changed = anyio.Event()
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass  # closed by `daemons` on exit
        finally:
            self._ended = True
            self._changed.set()

    async def wait_for(self, pattern: str, *, start: int = 0) -> re.Match[str]:
        """The first log line from `start` on that matches `pattern` (awaited, not polled)."""
        regex = re.compile(pattern)
        index = start
        while True:
            while index < len(self.lines):
                match = regex.search(self.lines[index])
                index += 1
                if match is not None:
                    return match
            if self._ended:
                tail = "\n".join(self.lines[-30:])
                raise AssertionError(f"{self.name} ended without {pattern!r}:\n{tail}")
            changed = self._changed
            await changed.wait()

    async def wait_ended(self) -> None:
        """Until its stderr ends (every process holding it exited)."""
        while not self._ended:
            changed = self._changed
            await changed.wait()

    def client(self, **kwargs: Any) -> httpx.AsyncClient:
        transport = httpx.AsyncHTTPTransport(uds=os.fspath(self.socket))
        return httpx.AsyncClient(
            transport=transport, base_url="http://dispatcher", timeout=10, **kwargs
        )


def cluster_config(redis_url: str, name: str, deployments: str, *, server: str = "") -> str:
    return f"""
[server]
socket = "run/d.sock"
metrics = ""
drain_timeout_s = 5
{server}
[cluster]
redis = "{redis_url}"
name = "{name}"
[router]
num_retries = 0
[router.cooldown]
allowed_fails = 1
cooldown_s = 30
{deployments}
"""


@contextlib.asynccontextmanager
async def daemons(
    tmp_path: Path, config_text: str, count: int, *extra_args: str
) -> AsyncIterator[list[Daemon]]:
    """`count` daemons serving `config_text`, each in its own folder (under `tmp_path`,
    created), all started. On exit they are killed; an error in the body propagates."""
    started: list[Daemon] = []
    async with anyio.create_task_group() as tg:
        try:
            for index in range(count):
                folder = tmp_path / f"d{index}"
                folder.mkdir(parents=True)
                config = folder / "d.toml"
                config.write_text(config_text)
                command = [sys.executable, "-m", "dispatcher", "serve", "--config", str(config)]
                env = {**os.environ, "PYTHONPATH": str(ROOT)}
                process = await anyio.open_process([*command, *extra_args], env=env)
                daemon = Daemon(process, folder / "run" / "d.sock", f"daemon {index}")
                started.append(daemon)
                tg.start_soon(daemon.read_stderr)
            with anyio.fail_after(30):
                for daemon in started:
                    await daemon.wait_for("serving ")
            yield started
        finally:
            # Killed and reaped before anything is cancelled: a cancellation raised while
            # closing them would replace (and hide) the body's own error.
            for daemon in started:
                _kill(daemon.process)
            with anyio.CancelScope(shield=True):
                for daemon in started:
                    await daemon.process.aclose()
            tg.cancel_scope.cancel()


def _kill(process: Process) -> None:
    if process.returncode is None:
        process.kill()


def chat(model: str = "g", text: str = "hi") -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}]}
