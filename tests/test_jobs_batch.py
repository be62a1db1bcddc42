"""`dispatcher submit`: a 500-line batch file, interrupted, resumed, nothing submitted twice."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from anyio.streams.text import TextReceiveStream

from dispatcher import DaemonError
from dispatcher.cli import default_output, main, run_batch

from .jobsupport import client, config_text, running, stored

pytestmark = pytest.mark.anyio

MALFORMED = {
    17: b"{not json",
    99: b'{"method": "POST", "url": "/v1/chat/completions", "body": {}}',
    150: b'{"custom_id": "x150", "method": "POST", "url": "/v1/embeddings", "body": {}}',
    260: b'{"custom_id": "x260", "method": "GET", "url": "/v1/chat/completions", "body": {}}',
    333: b'{"custom_id": "r1", "method": "POST", "url": "/v1/chat/completions", "body": {}}',
}
UNKNOWN_MODEL = 400
ROOT = Path(__file__).resolve().parent.parent


def batch_file(path: Path, lines: int = 500) -> Path:
    out = []
    for n in range(1, lines + 1):
        if n in MALFORMED:
            out.append(MALFORMED[n])
            continue
        model = "nope" if n == UNKNOWN_MODEL else "mini"
        body = {"model": model, "messages": [{"role": "user", "content": f"line {n}"}]}
        line = {"custom_id": f"r{n}", "method": "POST", "url": "/v1/chat/completions"}
        out.append(json.dumps({**line, "body": body}).encode())
    path.write_bytes(b"\n".join(out) + b"\n")
    return path


def read_output(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_batch_interrupted_and_resumed(tmp_path: Path) -> None:
    """A run killed midway resumes where it stopped: every line once, every job submitted once."""
    source = batch_file(tmp_path / "requests.jsonl")
    output = default_output(source)
    assert output == tmp_path / "requests.output.jsonl"
    async with running(tmp_path, config_text(jobs_concurrency=64)) as daemon:
        command = [
            *(sys.executable, "-m", "dispatcher", "submit", str(source)),
            *("--socket", str(daemon.socket_path), "--concurrency", "8"),
        ]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with anyio.fail_after(30):
            async with await anyio.open_process(command, env=env) as cli:
                assert cli.stderr is not None
                seen = ""
                async for chunk in TextReceiveStream(cli.stderr):
                    seen += chunk
                    if "200/500 lines done" in seen:
                        cli.kill()  # interrupted as hard as it gets
                        break
                assert await cli.wait() == -signal.SIGKILL, seen
        first = output.read_bytes().count(b"\n")  # complete lines
        with output.open("ab") as out:
            out.write(b'{"id": "batch_req_cut", "custom_id": "r')  # a line cut short
        async with client(daemon) as http:
            with anyio.fail_after(30):
                state = await run_batch(source, output, http, concurrency=8)
            final = read_output(output)
            with anyio.fail_after(30):
                again = await run_batch(source, output, http)
    assert 200 <= first < 500
    assert state.total == 500 and state.skipped == first and state.done == 500 - first
    assert again.done == 0 and again.skipped == 500
    assert len(final) == 500
    keys = [line["custom_id"] or line["id"] for line in final]
    assert len(set(keys)) == 500
    by_id = {line["custom_id"]: line for line in final if line["custom_id"]}
    for n in range(1, 501):
        if n in MALFORMED or n == UNKNOWN_MODEL:
            continue
        line = by_id[f"r{n}"]
        assert line["error"] is None
        response = line["response"]
        assert response["status_code"] == 200
        assert response["request_id"].startswith("job_")
        assert response["body"]["choices"][0]["message"]["content"] == f"mock: line {n}"
    refused = by_id[f"r{UNKNOWN_MODEL}"]["response"]
    assert refused["status_code"] == 404
    assert refused["body"]["error"]["code"] == "model_not_found"
    errors = {
        int(line["error"]["message"].split(":")[0].removeprefix("line ")): line
        for line in final
        if line["error"]
    }
    assert set(errors) == set(MALFORMED)
    assert all(line["error"]["code"] == "invalid_batch_line" for line in errors.values())
    assert "custom_id 'r1' is used by an earlier line" in errors[333]["error"]["message"]
    assert errors[150]["custom_id"] == "x150" and "url" in errors[150]["error"]["message"]
    assert errors[99]["custom_id"] is None
    # 500 lines - 5 malformed - 1 refused: each submitted once, interruption or not.
    assert len(stored(daemon.store_path)) == 494


async def test_cli_submit_jobs_and_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The commands themselves: submit writes the output beside the input; jobs and status read."""
    source = batch_file(tmp_path / "small.jsonl", lines=20)
    async with running(tmp_path, config_text()) as daemon:
        sock = os.fspath(daemon.socket_path)
        with anyio.fail_after(30):
            code = await anyio.to_thread.run_sync(main, ["submit", str(source), "--socket", sock])
            submitted = capsys.readouterr()
            lines = read_output(tmp_path / "small.output.jsonl")
            job_id = next(line for line in lines if line["response"])["response"]["request_id"]
            assert await anyio.to_thread.run_sync(main, ["jobs", "--socket", sock]) == 0
            listing = capsys.readouterr().out
            assert await anyio.to_thread.run_sync(main, ["jobs", job_id, "--socket", sock]) == 0
            shown = json.loads(capsys.readouterr().out)
            assert await anyio.to_thread.run_sync(main, ["status", "--socket", sock]) == 0
            status = capsys.readouterr().out
            missing = await anyio.to_thread.run_sync(main, ["jobs", "job_x", "--socket", sock])
            refused = capsys.readouterr().err
    assert code == 0
    assert "20 lines written (1 failed)" in submitted.out  # line 17 is malformed
    assert "20/20 lines done" in submitted.err
    assert len(lines) == 20
    assert "succeeded" in listing and "custom_id=r" in listing
    assert shown["id"] == job_id and shown["status"] == "succeeded"
    assert "jobs: 0 queued, 0 running" in status and "19 succeeded" in status
    assert missing == 1 and "No job with id 'job_x'" in refused


async def test_batch_stops_with_a_clear_error_when_the_daemon_is_gone(tmp_path: Path) -> None:
    """No daemon behind the socket: a DaemonError, and an output that a re-run can resume."""
    source = batch_file(tmp_path / "b.jsonl", lines=3)
    transport = httpx.AsyncHTTPTransport(uds=os.fspath(tmp_path / "nobody.sock"))
    async with httpx.AsyncClient(transport=transport, base_url="http://d") as http:
        with pytest.raises(DaemonError, match=r"lost the daemon .*ConnectError"):
            await run_batch(source, tmp_path / "out.jsonl", http)
