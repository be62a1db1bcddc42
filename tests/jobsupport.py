"""Building blocks for the job tests: an in-process daemon with a fake upstream."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx

from config import parse_config
from dispatcher import Daemon, JobStore

from .helpers import running_daemon, uds_client


def config_text(
    url: str = "http://up.invalid",
    *,
    jobs_concurrency: int = 16,
    concurrency: int = 8,
    extra: str = "",
    router: str = "",
) -> str:
    """A daemon with group `real` (deployment `up` at `url`) and group `mini` (mock)."""
    return f"""
[server]
socket = "run/d.sock"
metrics = ""
drain_timeout_s = 5
[jobs]
store = "run/jobs.sqlite3"
concurrency = {jobs_concurrency}
retention_s = 3600
[router]
num_retries = 0
{router}
[[deployment]]
name = "up"
group = "real"
provider = "openai-compatible"
model = "gpt-4o-mini"
api_base = "{url}/v1"
api_key = "sk-jobs"
concurrency = {concurrency}
[[deployment]]
name = "mock"
group = "mini"
provider = "mock"
model = "mock-mini"
{extra}
"""


def running(tmp_path: Path, text: str) -> contextlib.AbstractAsyncContextManager[Daemon]:
    """Run a daemon in this event loop; `stop()` it on exit and wait until it returns."""
    return running_daemon(text, tmp_path)


@contextlib.asynccontextmanager
async def running_on(tmp_path: Path, text: str, store: JobStore) -> AsyncIterator[Daemon]:
    """`running`, with `store` as the daemon's job store."""
    daemon = Daemon(parse_config(text), tmp_path, store=store)
    async with anyio.create_task_group() as tg:
        await tg.start(daemon.run)
        try:
            yield daemon
        finally:
            daemon.stop()


def client(daemon: Daemon) -> httpx.AsyncClient:
    return uds_client(daemon, timeout=30)


def job_body(model: str = "mini", text: str = "hi", **envelope: Any) -> dict[str, Any]:
    request = {"model": model, "messages": [{"role": "user", "content": text}]}
    return {"request": request, **envelope}


async def submit(http: httpx.AsyncClient, model: str = "mini", text: str = "hi", **kw: Any) -> str:
    response = await http.post("/v1/jobs", json=job_body(model, text, **kw))
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


async def finished(http: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    """Long-poll until the job is terminal."""
    while True:
        response = await http.get(f"/v1/jobs/{job_id}", params={"wait": 30})
        assert response.status_code == 200, response.text
        job: dict[str, Any] = response.json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job


def stored(path: Path) -> dict[str, tuple[str, bytes | None]]:
    """What the store file holds: id -> (status, result), read with a plain connection."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return {
            row[0]: (row[1], row[2]) for row in conn.execute("SELECT id, status, result FROM jobs")
        }
