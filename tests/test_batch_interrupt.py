"""`dispatcher submit` and Ctrl-C: exit 130, no traceback, and the run resumes where it stopped."""

from __future__ import annotations

import io
import os
import re
import signal
import sys
from pathlib import Path

import anyio
import pytest
from anyio.streams.text import TextReceiveStream

from dispatcher.cli._batch import BatchBar, BatchProgress, default_output

from .jobsupport import config_text, running, stored
from .test_jobs_batch import MALFORMED, UNKNOWN_MODEL, batch_file, read_output

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parent.parent
DONE = re.compile(r"^(\d+)/500 lines done", re.M)


def submit_command(source: Path, socket: Path) -> list[str]:
    return [
        *(sys.executable, "-m", "dispatcher", "submit", str(source)),
        *("--socket", str(socket), "--concurrency", "8"),
    ]


@pytest.mark.parametrize(
    ("after", "signals"),
    [
        pytest.param(50, 1, id="early"),
        pytest.param(250, 1, id="midway"),
        pytest.param(100, 3, id="ctrl-c-pressed-three-times"),
    ],
)
async def test_ctrl_c_stops_cleanly_and_the_run_resumes(
    tmp_path: Path, after: int, signals: int
) -> None:
    """SIGINT once `after` lines are written: exit 130, no traceback, a resume hint; the
    re-run writes the rest, every line once, every job submitted once."""
    source = batch_file(tmp_path / "requests.jsonl")
    output = default_output(source)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    async with running(tmp_path, config_text(jobs_concurrency=64)) as daemon:
        command = submit_command(source, daemon.socket_path)
        with anyio.fail_after(30):
            async with await anyio.open_process(command, env=env) as cli:
                assert cli.stderr is not None
                err = ""
                sent = 0
                # The CLI writes a progress line after each tenth of the file is in the
                # output: the test interrupts at a point it chose, without sleeping.
                async for chunk in TextReceiveStream(cli.stderr):
                    err += chunk
                    done = [int(n) for n in DONE.findall(err)]
                    if not sent and done and done[-1] >= after:
                        for _ in range(signals):
                            cli.send_signal(signal.SIGINT)
                        sent = signals
                code = await cli.wait()
        assert sent, err
        assert code == 130, err
        assert "Traceback" not in err and "Error" not in err, err
        assert f"interrupted: run the same command again to resume ({output})" in err
        written = read_output(output)  # every line whole: json.loads would fail on a cut one
        assert after <= len(written) < 500

        with anyio.fail_after(30):
            resumed = await anyio.run_process(command, env=env, check=False)
        assert resumed.returncode == 0, resumed.stderr
        assert b"Traceback" not in resumed.stderr
        assert f"{len(written)} already there".encode() in resumed.stdout
    final = read_output(output)
    assert len(final) == 500
    assert len({line["custom_id"] or line["id"] for line in final}) == 500
    # 500 lines - malformed - one refused: each submitted once, interruption or not.
    assert len(stored(daemon.jobs.store.path)) == 500 - len(MALFORMED) - 1
    assert UNKNOWN_MODEL  # that line is answered 404 by the daemon, never stored as a job


def test_progress_shows_rate_and_eta_in_logs() -> None:
    """Not a terminal: one whole line per tenth of the file, with the rate and the ETA."""
    stream = io.StringIO()
    bar = BatchBar(stream)
    state = BatchProgress(total=20, skipped=4)
    bar(state)
    for _ in range(16):
        state.done += 1
        state.failed = 1
        bar(state)
    bar.close()
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert lines[-1].startswith("20/20 lines done, 1 failed, 4 already done [")
    assert re.search(r"<\d\d:\d\d, [\d.]+(line/s|s/line)\]$", lines[-1]), lines[-1]
    assert 8 <= len(lines) <= 10  # a line per tenth (2 lines), not one per update
