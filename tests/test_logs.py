"""Logs of the real daemon: JSON lines, the access log, request ids, and clean flag errors."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from anyio.abc import Process
from anyio.streams.text import TextReceiveStream

ROOT = Path(__file__).resolve().parent.parent
CONFIG = """
[server]
socket = "run/d.sock"
metrics = ""
[jobs]
store = "run/jobs.sqlite3"
[router]
num_retries = 0
[router.fallbacks]
flaky = ["mini"]
[[deployment]]
name = "mini-a"
group = "mini"
provider = "mock"
model = "mock-mini"
[[deployment]]
name = "broken"
group = "flaky"
provider = "mock"
model = "mock-broken"
fail_status = 503
"""
SECRET_TEXT = "the-secret-prompt-71"
SECRET_KEY = "sk-client-key-4422"


class Logs:
    """The daemon's stderr, one parsed JSON object per line."""

    def __init__(self, process: Process) -> None:
        assert process.stderr is not None
        self._chunks = TextReceiveStream(process.stderr)
        self._buffer = ""
        self.raw: list[str] = []
        self.records: list[dict[str, Any]] = []

    async def until(self, **match: Any) -> dict[str, Any]:
        """The first record (already read or to come) whose fields include `match`."""
        for record in self.records:
            if match.items() <= record.items():
                return record
        async for chunk in self._chunks:
            self._buffer += chunk
            *lines, self._buffer = self._buffer.split("\n")
            found = None
            for line in lines:
                self.raw.append(line)
                record = json.loads(line)  # every line is one JSON object
                self.records.append(record)
                if found is None and match.items() <= record.items():
                    found = record
            if found is not None:
                return found
        raise AssertionError(f"no log record with {match}: {self.raw}")


@contextlib.asynccontextmanager
async def daemon(tmp_path: Path, *flags: str) -> AsyncIterator[tuple[Process, Logs]]:
    config = tmp_path / "d.toml"
    config.write_text(CONFIG)
    command = [sys.executable, "-m", "dispatcher", "serve", "--config", str(config), *flags]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    async with await anyio.open_process(command, env=env) as process:
        try:
            yield process, Logs(process)
        finally:
            if process.returncode is None:
                process.kill()


def uds(tmp_path: Path) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(uds=os.fspath(tmp_path / "run" / "d.sock"))
    headers = {"authorization": f"Bearer {SECRET_KEY}"}
    return httpx.AsyncClient(transport=transport, base_url="http://d", timeout=10, headers=headers)


def chat(model: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": SECRET_TEXT}], **extra}


@pytest.mark.anyio
@pytest.mark.slow
async def test_json_logs_and_access_log(tmp_path: Path) -> None:
    """--log-format json --access-log: every line one JSON object; one access line per
    request with its fields and id; the id on the answer, in the request's other lines and
    in its job; never the prompt or a key."""
    async with daemon(tmp_path, "--log-format", "json", "--access-log") as (process, logs):
        with anyio.fail_after(30):
            started = await logs.until(logger="dispatcher")
            assert started["level"] == "INFO" and "serving 2 deployments" in started["message"]
            assert started["time"].endswith("+00:00")
            async with uds(tmp_path) as client:
                served = await client.post(
                    "/v1/chat/completions", json=chat("mini"), headers={"x-request-id": "abc-1"}
                )
                assert served.headers["x-request-id"] == "abc-1"
                line = await logs.until(logger="dispatcher.access", request_id="abc-1")
                assert line["message"] == "POST /v1/chat/completions 200"
                assert line["level"] == "INFO"
                assert (line["group"], line["deployment"], line["attempts"]) == (
                    "mini",
                    "mini-a",
                    1,
                )
                assert line["status"] == 200 and line["duration_ms"] >= 0
                usage = served.json()["usage"]
                assert line["prompt_tokens"] == usage["prompt_tokens"] > 0
                assert line["completion_tokens"] == usage["completion_tokens"] > 0

                # A fallback: the failed attempt's line carries the request's id and fields.
                fell = await client.post("/v1/chat/completions", json=chat("flaky"))
                rid = fell.headers["x-request-id"]
                assert rid.startswith("req_") and len(rid) == 28
                failed = await logs.until(logger="dispatcher.supervisor", request_id=rid)
                assert failed["message"] == "attempt failed"
                assert (failed["deployment"], failed["error"]) == ("broken", "overloaded")
                assert failed["upstream_status"] == 503
                line = await logs.until(logger="dispatcher.access", request_id=rid)
                assert (line["group"], line["deployment"], line["attempts"]) == (
                    "flaky",
                    "mini-a",
                    2,
                )

                # A stream: its line is written when it ends, with its outcome and usage.
                options = {"stream": True, "stream_options": {"include_usage": True}}
                async with client.stream(
                    "POST", "/v1/chat/completions", json=chat("mini", **options)
                ) as stream:
                    rid = stream.headers["x-request-id"]
                    await stream.aread()
                line = await logs.until(logger="dispatcher.access", request_id=rid)
                assert (line["outcome"], line["deployment"]) == ("success", "mini-a")
                assert line["completion_tokens"] > 0

                # An error answer carries the id too, and its line the status.
                missing = await client.post("/v1/chat/completions", json=chat("nope"))
                rid = missing.headers["x-request-id"]
                line = await logs.until(logger="dispatcher.access", request_id=rid)
                assert (line["status"], line["group"]) == (404, "nope")

                # A job keeps the id of its submission.
                submitted = await client.post(
                    "/v1/jobs", json={"request": chat("mini")}, headers={"x-request-id": "job-7"}
                )
                job_id = submitted.json()["id"]
                line = await logs.until(logger="dispatcher.access", request_id="job-7")
                assert (line["status"], line["job_id"]) == (202, job_id)
                job = (await client.get(f"/v1/jobs/{job_id}?wait=10")).json()
                assert (job["status"], job["request_id"]) == ("succeeded", "job-7")
            process.send_signal(signal.SIGTERM)
            await logs.until(message="stopped")
            assert await process.wait() == 0
    text = "\n".join(logs.raw)
    assert SECRET_TEXT not in text
    assert SECRET_KEY not in text
    assert "mock: " not in text  # nor the answer


@pytest.mark.anyio
@pytest.mark.slow
async def test_no_access_log_unless_asked(tmp_path: Path) -> None:
    """Without --access-log, a served request writes no line (the rest still logs)."""
    async with daemon(tmp_path, "--log-format", "json") as (process, logs):
        with anyio.fail_after(30):
            await logs.until(logger="dispatcher")
            async with uds(tmp_path) as client:
                assert (await client.post("/v1/chat/completions", json=chat("mini"))).is_success
            process.send_signal(signal.SIGTERM)
            await logs.until(message="stopped")
            assert await process.wait() == 0
    assert not [r for r in logs.records if r["logger"] == "dispatcher.access"]


@pytest.mark.parametrize(
    ("flags", "env", "expected"),
    [
        pytest.param(
            ["--log-level", "LOUD"],
            {},
            "argument --log-level: expected one of debug, info, warning, error, critical, "
            "got 'LOUD'",
            id="flag",
        ),
        pytest.param(
            [],
            {"DISPATCHER_LOG_LEVEL": "verbose"},
            "argument --log-level: expected one of debug, info, warning, error, critical, "
            "got 'verbose'",
            id="environment",
        ),
        pytest.param(
            ["--log-format", "xml"],
            {},
            "argument --log-format: expected one of text, json, got 'xml'",
            id="format",
        ),
    ],
)
def test_bad_log_flags_are_usage_errors(
    tmp_path: Path, flags: list[str], env: dict[str, str], expected: str
) -> None:
    """A bad --log-level or --log-format (or its variable) is a usage error, exit 2, no
    traceback, and nothing starts."""
    config = tmp_path / "d.toml"
    config.write_text(CONFIG)
    command = [sys.executable, "-m", "dispatcher", "serve", "--config", str(config), *flags]
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    done = subprocess.run(
        command, env=full_env, capture_output=True, text=True, timeout=30, check=False
    )
    assert "Traceback" not in done.stderr
    assert done.stderr.splitlines()[-1] == f"dispatcher serve: error: {expected}"
    assert done.returncode == 2
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("level", ["debug", "INFO", "Warning", "error", "critical"])
def test_log_levels_in_any_case_are_accepted(level: str) -> None:
    """The five levels parse whatever their case."""
    from dispatcher.cli._main import _parser

    args = _parser().parse_args(["serve", "--log-level", level])
    assert args.log_level == level.lower()
