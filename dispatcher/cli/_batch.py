"""`dispatcher submit FILE.jsonl`: an OpenAI Batch input file, run as durable jobs.

Input, one request a line:
    {"custom_id": "r1", "method": "POST", "url": "/v1/chat/completions", "body": {...}}
Output (`--output`, default `NAME.output.jsonl` beside the input), one line per input
line in the order they finish, as OpenAI's Batch API writes them:
    {"id", "custom_id", "response": {"status_code", "request_id", "body"} | null,
     "error": {"code", "message"} | null}

A line that is not a batch request (bad JSON, no custom_id, another url...) gets an
`error` line of its own and the rest goes on; a request the daemon refuses (400, 404)
or that fails upstream gets its status code and error body in `response`.

Resumable: the custom_ids already in the output are skipped, and every job is
submitted with an idempotency key derived from the input file and the custom_id,
so a re-run after an interruption finds the jobs already submitted instead of
submitting them twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import os
import signal
import sys
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import IO, Annotated, Any, Final

import anyio
import httpx
import msgspec
from msgspec import Meta
from tqdm import tqdm

from .._exceptions import DaemonError

CHAT_URL: Final = "/v1/chat/completions"
_TERMINAL: Final = frozenset(("succeeded", "failed", "cancelled"))


class BatchLine(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One line of an OpenAI Batch input file."""

    custom_id: Annotated[str, Meta(min_length=1)]
    method: str
    url: str
    body: msgspec.Raw


class Request(msgspec.Struct, frozen=True):
    """A valid input line, ready to submit."""

    custom_id: str
    body: msgspec.Raw


class BatchProgress(msgspec.Struct, kw_only=True):
    """Where a run stands: `done` of `total` lines written (`skipped` were already)."""

    total: int
    skipped: int = 0
    done: int = 0
    failed: int = 0


_line_decoder: Final = msgspec.json.Decoder(BatchLine)
_output_decoder: Final = msgspec.json.Decoder(dict[str, Any])
_encoder: Final = msgspec.json.Encoder()
_JSON_BODY: Final = {"content-type": "application/json"}


def default_output(input_path: Path) -> Path:
    name = input_path.name.removesuffix(".jsonl")
    return input_path.with_name(f"{name}.output.jsonl")


def idempotency_key(input_path: Path, custom_id: str) -> str:
    digest = hashlib.sha256(f"{input_path.resolve()}\n{custom_id}".encode()).hexdigest()
    return f"batch-{digest[:40]}"


async def run_batch(
    input_path: Path,
    output_path: Path,
    http: httpx.AsyncClient,
    *,
    concurrency: int = 16,
    progress: Callable[[BatchProgress], None] | None = None,
) -> BatchProgress:
    """Run every line of `input_path` not yet in `output_path`; raises `DaemonError`
    (the run can be resumed) when the daemon cannot take jobs."""
    written = _resume(output_path)
    requests: list[Request] = []
    invalid: list[dict[str, Any]] = []
    seen: set[str] = set()
    with input_path.open("rb") as lines:
        for number, raw in enumerate(lines, 1):
            if raw.strip():
                _parse(number, raw, requests, invalid, seen)
    todo = [r for r in requests if r.custom_id not in written]
    bad = [line for line in invalid if _key(line) not in written]
    state = BatchProgress(total=len(requests) + len(invalid))
    state.skipped = state.total - len(todo) - len(bad)
    report = progress or (lambda _: None)
    report(state)
    with output_path.open("ab") as out:

        def write(line: dict[str, Any]) -> None:
            out.write(_encoder.encode(line) + b"\n")
            out.flush()
            state.done += 1
            response = line["response"]
            if line["error"] is not None or response["status_code"] != 200:
                state.failed += 1
            report(state)

        for line in bad:
            write(line)
        submitted, waiting = anyio.create_memory_object_stream[tuple[str, str]](len(todo) or 1)
        pending = iter(todo)

        async def submitter() -> None:
            for request in pending:
                line = await _submit(http, input_path, request)
                if isinstance(line, str):
                    await submitted.send((request.custom_id, line))
                else:
                    write(line)

        async def waiter() -> None:
            async for custom_id, job_id in waiting:
                write(_output(custom_id, await _wait(http, job_id)))

        try:
            with submitted, waiting:
                async with anyio.create_task_group() as tg:
                    for _ in range(concurrency):
                        tg.start_soon(waiter)
                    async with anyio.create_task_group() as submitters:
                        for _ in range(min(4, concurrency)):
                            submitters.start_soon(submitter)
                    submitted.close()
        except BaseExceptionGroup as group:
            found = _first(group, DaemonError)
            if found is None:
                raise
            raise found from None
    return state


async def _submit(
    http: httpx.AsyncClient, input_path: Path, request: Request
) -> str | dict[str, Any]:
    """The job id, or the output line of a request the daemon refused."""
    body = {
        "request": request.body,
        "idempotency_key": idempotency_key(input_path, request.custom_id),
        "metadata": {"custom_id": request.custom_id, "batch": input_path.name},
    }
    response = await _call(
        http, "POST", "/v1/jobs", content=_encoder.encode(body), headers=_JSON_BODY
    )
    if response.status_code in (200, 202):
        job_id: str = response.json()["id"]
        return job_id
    if response.status_code >= 500:
        raise DaemonError(f"the daemon cannot take jobs now: {_message(response)}")
    return {
        "id": f"batch_req_{hashlib.sha256(request.custom_id.encode()).hexdigest()[:24]}",
        "custom_id": request.custom_id,
        "response": {
            "status_code": response.status_code,
            "request_id": None,
            "body": response.json(),
        },
        "error": None,
    }


async def _wait(http: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    while True:
        response = await _call(http, "GET", f"/v1/jobs/{job_id}", params={"wait": 60})
        if response.status_code != 200:
            raise DaemonError(f"job {job_id}: {_message(response)}")
        job: dict[str, Any] = response.json()
        if job["status"] in _TERMINAL:
            return job


async def _call(http: httpx.AsyncClient, method: str, url: str, **kw: Any) -> httpx.Response:
    try:
        return await http.request(method, url, **kw)
    except httpx.TransportError as exc:
        raise DaemonError(f"lost the daemon ({type(exc).__name__}: {exc})") from None


def _output(custom_id: str, job: dict[str, Any]) -> dict[str, Any]:
    job_id: str = job["id"]
    line: dict[str, Any] = {
        "id": f"batch_req_{job_id.removeprefix('job_')}",
        "custom_id": custom_id,
        "response": None,
        "error": None,
    }
    if job["status"] == "succeeded":
        line["response"] = {"status_code": 200, "request_id": job_id, "body": job["result"]}
    elif job["status"] == "failed":
        error = dict(job["error"])
        status = error.pop("http_status", 500)
        line["response"] = {"status_code": status, "request_id": job_id, "body": {"error": error}}
    else:
        line["error"] = {"code": "cancelled", "message": f"job {job_id} was cancelled"}
    return line


def _parse(
    number: int,
    raw: bytes,
    requests: list[Request],
    invalid: list[dict[str, Any]],
    seen: set[str],
) -> None:
    custom_id: str | None = None
    try:
        line = _line_decoder.decode(raw)
        custom_id = line.custom_id
        if line.method != "POST":
            raise ValueError(f"method: expected 'POST', got {line.method!r}")
        if line.url != CHAT_URL:
            raise ValueError(f"url: expected {CHAT_URL!r}, got {line.url!r}")
        if custom_id in seen:
            raise ValueError(f"custom_id {custom_id!r} is used by an earlier line")
    except (msgspec.MsgspecError, ValueError) as exc:
        # A custom_id is taken even by an invalid line: a later line reusing it is a
        # duplicate (OpenAI requires them unique), and the resume key stays unambiguous.
        repeated = custom_id in seen
        if custom_id is not None:
            seen.add(custom_id)
        invalid.append(
            {
                "id": f"batch_req_line_{number}",
                "custom_id": None if repeated else custom_id,
                "response": None,
                "error": {"code": "invalid_batch_line", "message": f"line {number}: {exc}"},
            }
        )
        return
    seen.add(custom_id)
    requests.append(Request(custom_id, line.body))


def _key(line: dict[str, Any]) -> str:
    """What marks an output line as done: its custom_id, else its own id."""
    custom_id = line.get("custom_id")
    return custom_id if isinstance(custom_id, str) else str(line.get("id"))


def _resume(output_path: Path) -> set[str]:
    """Keys already in the output; a line cut short by an interruption is removed."""
    if not output_path.exists():
        return set()
    data = output_path.read_bytes()
    if data and not data.endswith(b"\n"):
        keep = data.rfind(b"\n") + 1
        with output_path.open("r+b") as out:
            out.truncate(keep)
        data = data[:keep]
    written: set[str] = set()
    for raw in data.splitlines():
        try:
            written.add(_key(_output_decoder.decode(raw)))
        except msgspec.DecodeError:
            continue
    return written


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}"


class BatchBar:
    """Progress with rate and ETA through tqdm: a bar on a terminal, a line every 10%
    (with the same numbers) in a log. Call it with each `BatchProgress`; `close()` at the end.

    tqdm rather than rich: it is one small pure-Python package with no dependencies of
    its own, made for exactly this (a counter with rate and ETA that degrades to a log
    file), where rich would bring a whole terminal-rendering stack for one bar.
    """

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream or sys.stderr
        self._bar: tqdm[Any] | None = None
        self._failed = -1

    def __call__(self, state: BatchProgress) -> None:
        bar = self._bar
        if bar is None:
            bar = self._bar = self._open(state)
        if state.failed != self._failed:
            self._failed = state.failed
            bar.set_postfix_str(f"{state.failed} failed, {state.skipped} already done", False)
        bar.update(state.done + state.skipped - bar.n)

    def _open(self, state: BatchProgress) -> tqdm[Any]:
        common: dict[str, Any] = {
            "total": state.total,
            "initial": state.skipped,
            "unit": "line",
            "smoothing": 0.1,
        }
        if self._stream.isatty():
            return tqdm(file=self._stream, desc="batch", dynamic_ncols=True, **common)
        # Not a terminal: a plain line every tenth of the file, never a carriage return.
        return tqdm(
            file=_Lines(self._stream),
            bar_format="{n}/{total} lines done{postfix} [{elapsed}<{remaining}, {rate_fmt}]",
            miniters=max(state.total // 10, 1),
            mininterval=0.0,
            maxinterval=math.inf,
            **common,
        )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


class _Lines:
    """A file for tqdm that turns its in-place redraws into whole lines (for logs)."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._last = ""

    def write(self, text: str) -> None:
        line = text.replace("\r", "").rstrip()
        if line and line != self._last:
            self._last = line
            self._stream.write(line + "\n")

    def flush(self) -> None:
        self._stream.flush()


def submit_file(
    socket_path: Path, input_path: Path, output_path: Path | None, *, concurrency: int
) -> int:
    """The `dispatcher submit` command: run the file, print where the output is.

    Ctrl-C (SIGINT) cancels the run: the lines written so far stay, the command says how
    to resume and exits 130, without a traceback (later Ctrl-Cs while it stops are
    ignored)."""
    output_path = output_path or default_output(input_path)
    if not input_path.is_file():
        raise DaemonError(f"{input_path}: no such file")
    bar = BatchBar()

    async def main() -> BatchProgress | None:
        transport = httpx.AsyncHTTPTransport(
            uds=os.fspath(socket_path),
            limits=httpx.Limits(max_connections=concurrency + 4),
        )
        async with (
            _interruptible() as interrupted,
            httpx.AsyncClient(
                transport=transport, base_url="http://dispatcher", timeout=None
            ) as http,
        ):
            with interrupted.scope:
                return await run_batch(
                    input_path, output_path, http, concurrency=concurrency, progress=bar
                )
        return None

    try:
        state = anyio.run(main)
    except KeyboardInterrupt:  # a SIGINT before the loop watched for it, or in a thread
        state = None
    finally:
        bar.close()
    if state is None:
        print(f"interrupted: run the same command again to resume ({output_path})", file=sys.stderr)
        return 130
    print(
        f"{output_path}: {state.done} lines written ({state.failed} failed), "
        f"{state.skipped} already there, {state.total} in {input_path}"
    )
    return 0


class _Interrupt:
    """The cancel scope a SIGINT cancels."""

    def __init__(self) -> None:
        self.scope = anyio.CancelScope()


@contextlib.asynccontextmanager
async def _interruptible() -> AsyncIterator[_Interrupt]:
    """SIGINT cancels the run's scope; further SIGINTs while it stops are ignored.

    The signal is taken from the event loop (so it never lands as a KeyboardInterrupt in
    the middle of a write or of the loop's own machinery). Signals can only be watched
    from the main thread; elsewhere (the CLI called from a thread) Ctrl-C is the caller's.
    """
    interrupt = _Interrupt()
    if threading.current_thread() is not threading.main_thread():
        yield interrupt
        return
    asyncio.get_running_loop().set_exception_handler(_drop_cancelled_wakeups)
    with anyio.open_signal_receiver(signal.SIGINT) as signals:
        async with anyio.create_task_group() as tg:

            async def watch() -> None:
                async for _ in signals:
                    interrupt.scope.cancel()

            tg.start_soon(watch)
            try:
                yield interrupt
            finally:
                tg.cancel_scope.cancel()
    if interrupt.scope.cancel_called:
        # SIGINT has its default handler again: the command is about to exit 130, so a
        # further Ctrl-C must not land as a KeyboardInterrupt in the event loop's teardown.
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _drop_cancelled_wakeups(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """The loop's exception handler during `submit`: drops one harmless race, logs the rest.

    anyio's Unix socket streams (4.16, asyncio) wait for data with
    `loop.add_reader(sock, future.set_result, None)` and remove that reader from the
    future's done-callback, which runs a loop iteration later. A read cancelled by Ctrl-C
    in the iteration its data arrives gets `set_result` on a cancelled future, and asyncio
    prints "Exception in callback Future.set_result(None)" with a traceback (the
    traceback users saw on Ctrl-C). A result for a future nobody waits for any more is
    dropped here; any other error goes to asyncio's default handler.
    """
    handle = context.get("handle")
    target = getattr(getattr(handle, "_callback", None), "__self__", None)
    if (
        isinstance(context.get("exception"), asyncio.InvalidStateError)
        and isinstance(target, asyncio.Future)
        and target.cancelled()
    ):
        return
    loop.default_exception_handler(context)


def _first(group: BaseExceptionGroup[BaseException], kind: type[DaemonError]) -> DaemonError | None:
    for exc in group.exceptions:
        if isinstance(exc, kind):
            return exc
        if isinstance(exc, BaseExceptionGroup):
            found = _first(exc, kind)
            if found is not None:
                return found
    return None
