"""The real daemon as a subprocess: SIGKILL with 200 acknowledged jobs loses none of them."""

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
from .jobsupport import finished, job_body, stored

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
JOBS = 200


class Running:
    """A daemon subprocess whose stderr is read all along (a full pipe would block it)."""

    def __init__(self, process: Process, socket: Path) -> None:
        self.process = process
        self.socket = socket
        self.log: list[str] = []
        self._line = anyio.Event()
        self._ended = False

    async def read_stderr(self) -> None:
        assert self.process.stderr is not None
        buffer = ""
        async for chunk in TextReceiveStream(self.process.stderr):
            buffer += chunk
            *lines, buffer = buffer.split("\n")
            self.log.extend(lines)
            self._line.set()
            self._line = anyio.Event()
        self._ended = True
        self._line.set()

    async def wait_for_line(self, text: str) -> str:
        """Wait until the daemon has written a line containing `text`."""
        seen = 0
        while True:
            for line in self.log[seen:]:
                if text in line:
                    return line
            seen = len(self.log)
            if self._ended:
                raise AssertionError(f"daemon exited without {text!r}: {self.log}")
            await self._line.wait()

    def client(self) -> httpx.AsyncClient:
        transport = httpx.AsyncHTTPTransport(uds=os.fspath(self.socket))
        return httpx.AsyncClient(transport=transport, base_url="http://d", timeout=30)


@contextlib.asynccontextmanager
async def daemon(config: Path) -> AsyncIterator[Running]:
    command = [sys.executable, "-m", "dispatcher", "serve", "--config", str(config)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    async with await anyio.open_process(command, env=env) as process:
        running = Running(process, config.parent / "run" / "d.sock")
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(running.read_stderr)
                try:
                    yield running
                finally:
                    if process.returncode is None:
                        process.kill()
        finally:
            print("\n".join(running.log), file=sys.stderr)


async def test_sigkill_loses_no_acknowledged_job(tmp_path: Path) -> None:
    """Every acknowledged job survives SIGKILL and, after a restart, ends with one result."""
    fake = OpenAIFake(api_key="sk-crash")
    release = anyio.Event()
    fake.script(*(wait(release) for _ in range(JOBS)))
    async with serve_app(fake) as url:
        config = tmp_path / "d.toml"
        config.write_text(
            f"""
[server]
socket = "run/d.sock"
metrics = ""
drain_timeout_s = 10
[jobs]
store = "run/jobs.sqlite3"
concurrency = 64
[router]
num_retries = 0
[[deployment]]
name = "slow"
group = "real"
provider = "openai-compatible"
model = "gpt-4o-mini"
api_base = "{url}/v1"
api_key = "sk-crash"
concurrency = 8
"""
        )
        with anyio.fail_after(45):
            async with daemon(config) as first:
                await first.wait_for_line("serving 1 deployments")
                ids: list[str] = []
                async with first.client() as http, anyio.create_task_group() as tg:

                    async def submit(n: int) -> None:
                        response = await http.post("/v1/jobs", json=job_body("real", f"job {n}"))
                        assert response.status_code == 202, response.text
                        ids.append(response.json()["id"])

                    for n in range(JOBS):
                        tg.start_soon(submit, n)
                await fake.wait_for_requests(6)  # jobs are running upstream, none answered
                first.process.kill()
                assert await first.process.wait() == -signal.SIGKILL
            for request in fake.requests:
                await request.finished.wait()  # the fake saw the dead daemon's calls go away
            assert all(r.disconnected for r in fake.requests)
            release.set()
            before = stored(tmp_path / "run" / "jobs.sqlite3")
            async with daemon(config) as second:
                await second.wait_for_line(f"resuming {JOBS} unfinished jobs")
                await second.wait_for_line("serving 1 deployments")
                async with second.client() as http:
                    jobs = [await finished(http, job_id) for job_id in ids]
                second.process.send_signal(signal.SIGTERM)
                assert await second.process.wait() == 0
    assert len(ids) == len(set(ids)) == JOBS
    assert set(before) == set(ids)
    assert {status for status, _ in before.values()} <= {"queued", "running"}
    assert [job["status"] for job in jobs] == ["succeeded"] * JOBS
    after = stored(tmp_path / "run" / "jobs.sqlite3")
    assert len(after) == JOBS
    assert all(status == "succeeded" and result for status, result in after.values())
    answered = [r.json["messages"][0]["content"] for r in fake.requests if r.status == 200]
    assert sorted(answered) == sorted(f"job {n}" for n in range(JOBS))  # one answer per job


async def test_corrupt_store_stops_the_start_with_one_clear_line(tmp_path: Path) -> None:
    """`dispatcher serve` on a store that is not a database: exit 1, file and reason named."""
    store = tmp_path / "run" / "jobs.sqlite3"
    store.parent.mkdir()
    store.write_bytes(b"not a database at all " * 100)
    config = tmp_path / "d.toml"
    config.write_text(
        '[server]\nsocket = "run/d.sock"\nmetrics = ""\n[jobs]\nstore = "run/jobs.sqlite3"\n'
    )
    with anyio.fail_after(30):
        async with daemon(config) as d:
            line = await d.wait_for_line("file is not a database")
            assert await d.process.wait() == 1
    assert line == f"dispatcher: job store {store}: file is not a database"
    assert not any("Traceback" in entry for entry in d.log)
