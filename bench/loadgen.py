"""Closed-loop load generator: `python -m bench.loadgen --unix PATH -c 16 --duration 4`.

C workers, each with its own keep-alive HTTP/1.1 connection, send the same small chat request
back to back. Requests that complete inside the measurement window (after the warm-up) are
counted: successes (2xx) give req/s and the latency percentiles; everything else (non-2xx
status, refused connection, connection dropped mid-request, request still unanswered after
`--stall` seconds when the window ends) is counted as an error by kind, never dropped.

With `--stream` the request says `"stream": true` and each answer is read as server-sent
events, incrementally, as its bytes arrive (see StreamProtocol): the `data:` events other than
`data: [DONE]` are counted as chunks (by the time they arrive, for chunks/s), and the time to
the first token (TTFT) is taken when the first event whose `choices[0].delta.content` is a
non-empty string has fully arrived. A 2xx stream without `data: [DONE]` or without any content
is an error, not a success.

Why a raw asyncio Protocol with httptools instead of aiohttp's client: it shares one core with
the fake upstream and must still drive ~10k req/s with room to spare; a request here costs a
write and a parser feed, a fraction of what a full client costs. It prints one JSON object on
stdout: the orchestrator merges several of them when it runs more than one process.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter
from typing import cast

import httptools
import msgspec
import uvloop

CHAT_PATH = "/v1/chat/completions"


def chat_request(path: str, stream: bool) -> bytes:
    """The one request every worker sends, encoded once."""
    payload: dict[str, object] = {
        "model": "bench",
        "messages": [{"role": "user", "content": "hi"}],
    }
    if stream:
        payload["stream"] = True
    body = msgspec.json.encode(payload)
    head = (
        f"POST {path} HTTP/1.1\r\n"
        "Host: localhost\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "\r\n"
    )
    return head.encode() + body


class Result(msgspec.Struct):
    """One load generator's measurement window; several are merged by the orchestrator."""

    concurrency: int
    duration: float  # seconds of the measurement window
    ok: int
    errors: dict[str, int]
    latencies_us: list[int]  # successes only, completion inside the window (whole stream)
    cpu_s: dict[str, float]  # CPU seconds inside the window: by process label, and coreN.*
    unfinished: int  # requests in flight when the window closed (not stalled ones)
    # With --stream only:
    ttft_us: list[int] = []  # time to the first content event, of the successes counted
    chunks: int = 0  # data events but [DONE] that arrived inside the window, any stream
    chunks_per_stream: dict[int, int] = {}  # data events but [DONE] per success: how many had N


@dataclass(slots=True)
class Window:
    """The measurement window in perf_counter() time, and what was recorded inside it."""

    start: float
    end: float
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    closed: bool = False
    ttft: list[float] = field(default_factory=list)  # streams only, from here down
    chunks: int = 0
    chunks_per_stream: Counter[int] = field(default_factory=Counter)

    def record_error(self, kind: str, now: float) -> None:
        if self.start <= now < self.end:
            self.errors[kind] += 1


class ClientProtocol(asyncio.Protocol):
    """One connection driving its own closed loop: the next request is written from the
    callback that completes the previous response. No future, no task switch per request:
    that is what keeps the load generator cheap next to the upstream on the same core."""

    def __init__(self, request: bytes, window: Window) -> None:
        self._request = request
        self._window = window
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.sent_at = 0.0  # 0 when no request is in flight

    def _send(self) -> None:
        assert self._transport is not None
        self.sent_at = perf_counter()
        self._transport.write(self._request)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    # asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        if not self._window.closed:
            self._send()

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self._window.record_error("bad_response", perf_counter())
            self.sent_at = 0.0
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if self.sent_at and not self._window.closed:
            self._window.record_error("disconnect", perf_counter())
        self.sent_at = 0.0
        if not self.done.done():
            self.done.set_result(None)

    # httptools callbacks

    def on_message_complete(self) -> None:
        now = perf_counter()
        window = self._window
        if window.start <= now < window.end:
            status = self._parser.get_status_code()
            if 200 <= status < 300:
                window.latencies.append(now - self.sent_at)
            else:
                window.errors[f"status_{status}"] += 1
        self._next()

    def _next(self) -> None:
        """The response is over: send the next request on this connection, or close it."""
        window = self._window
        self.sent_at = 0.0
        if window.closed or not self._parser.should_keep_alive():
            self.close()  # the worker reconnects unless the window is closed
        else:
            self._send()


class _Delta(msgspec.Struct):
    content: str | None = None


class _Choice(msgspec.Struct):
    delta: _Delta = msgspec.field(default_factory=_Delta)


class _Chunk(msgspec.Struct):
    choices: list[_Choice] = []


_decode_chunk = msgspec.json.Decoder(_Chunk).decode
_DATA = b"\ndata:"  # an event's data line; the body is read as if it began with a newline
_DONE = b"[DONE]"
_TAIL = len(_DATA) - 1  # bytes kept across reads: a marker split in two is still seen once
_END = 64  # [DONE] ends a stream: it is looked for in the last bytes of a read only


class StreamProtocol(ClientProtocol):
    """A ClientProtocol that reads each answer as server-sent events, as the bytes arrive.

    httptools calls on_body once per HTTP chunk, and every target frames each event as its own
    chunk: on_body only collects, and the pieces of one read are looked at together once the
    parser is done with it (or when the response completes), with one timestamp. Counting
    costs one bytes.count: the `data:` lines are found with the bytes kept from the previous
    read in front, so a marker split across reads counts once. Only the events up to the first
    one with content are parsed (msgspec, into a three-field struct): usually two per stream.
    Events are taken to end with a blank line written as "\n\n", which is what the upstream,
    the relays and the daemon write.
    """

    def __init__(self, request: bytes, window: Window) -> None:
        self._pieces: list[bytes] = []
        # Before the parser is made (in super().__init__): httptools looks its callbacks up then.
        self.on_body = self._pieces.append
        super().__init__(request, window)
        self._reset()

    def _reset(self) -> None:
        self._tail = b"\n"
        self._events = 0  # data events but [DONE]
        self._done = False
        self._pending: bytes | None = b""  # unparsed bytes until the first content, then None
        self._first_content = 0.0
        self._bad = ""

    def _send(self) -> None:
        self._reset()
        super()._send()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._pieces:
            self._consume(perf_counter())

    def _consume(self, now: float) -> None:
        pieces = self._pieces
        body = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        pieces.clear()
        # No copy of the body: a marker that spans the two reads lies in the short `edge`.
        edge = self._tail + body[:_TAIL]
        n = body.count(_DATA) + edge.count(_DATA)
        if not self._done and (_DONE in edge or _DONE in body[-_END:]):
            self._done = True
            n -= 1  # its `data:` was counted here or in the read before
        self._tail = edge[-_TAIL:] if len(body) < _TAIL else body[-_TAIL:]
        self._events += n
        window = self._window
        if window.start <= now < window.end:
            window.chunks += n
        if self._pending is not None:
            self._find_content(self._pending + body if self._pending else body, now)

    def _find_content(self, buffer: bytes, now: float) -> None:
        start = 0
        while (end := buffer.find(b"\n\n", start)) >= 0:
            for line in buffer[start:end].split(b"\n"):
                if not line.startswith(b"data:") or line[5:].strip() == _DONE:
                    continue
                try:
                    choices = _decode_chunk(line[5:]).choices
                except msgspec.DecodeError:
                    self._bad = "bad_chunk"
                    self._pending = None
                    return
                if choices and choices[0].delta.content:
                    self._first_content = now
                    self._pending = None
                    return
            start = end + 2
        self._pending = buffer[start:]

    def on_message_complete(self) -> None:
        now = perf_counter()
        if self._pieces:
            self._consume(now)
        window = self._window
        if window.start <= now < window.end:
            status = self._parser.get_status_code()
            if not 200 <= status < 300:
                window.errors[f"status_{status}"] += 1
            elif self._bad or not self._done or not self._first_content:
                window.errors[self._bad or ("no_done" if not self._done else "no_content")] += 1
            else:
                window.latencies.append(now - self.sent_at)
                window.ttft.append(self._first_content - self.sent_at)
                window.chunks_per_stream[self._events] += 1
        self._next()


@dataclass(frozen=True, slots=True)
class Target:
    unix: str | None
    host: str
    port: int

    async def connect(self, request: bytes, window: Window, stream: bool) -> ClientProtocol:
        loop = asyncio.get_running_loop()
        kind = StreamProtocol if stream else ClientProtocol

        def factory() -> ClientProtocol:
            return kind(request, window)

        if self.unix is not None:
            _, proto = await loop.create_unix_connection(factory, self.unix)
        else:
            _, proto = await loop.create_connection(factory, self.host, self.port)
        return proto


async def worker(plan: Plan, window: Window, live: set[ClientProtocol]) -> None:
    """(Re)connects one of the C connections until the window closes."""
    while not window.closed:
        try:
            proto = await plan.target.connect(plan.request, window, plan.stream)
        except OSError:
            window.record_error("connect", perf_counter())
            await asyncio.sleep(0.01)  # do not spin on a refused socket
            continue
        live.add(proto)
        try:
            await proto.done
        finally:
            live.discard(proto)
            proto.close()


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads) from /proc, in seconds."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read()
    # The command name may contain spaces: fields are counted after its closing parenthesis.
    fields = stat[stat.rindex(b")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def core_seconds() -> dict[str, float]:
    """Per core, from /proc/stat: time busy (not idle, not iowait) and time stolen by the
    hypervisor, in seconds. Steal says when a shared host slowed a measurement down."""
    sample: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    with open("/proc/stat") as f:
        for line in f:
            name, *values = line.split()
            if not name.startswith("cpu") or name == "cpu":
                continue
            ticks = [int(v) for v in values[:8]]  # user nice system idle iowait irq softirq steal
            core = f"core{name[3:]}"
            sample[f"{core}.busy"] = (sum(ticks) - ticks[3] - ticks[4] - ticks[7]) / tick
            sample[f"{core}.steal"] = ticks[7] / tick
    return sample


def sample_cpu(pids: dict[str, int]) -> dict[str, float]:
    try:
        sample = core_seconds()
    except (OSError, ValueError, IndexError):
        sample = {}
    for label, pid in pids.items():
        try:
            sample[label] = cpu_seconds(pid)
        except (OSError, ValueError, IndexError):
            continue  # the process is gone: no figure rather than a wrong one
    return sample


@dataclass(frozen=True, slots=True)
class Plan:
    target: Target
    request: bytes
    stream: bool
    concurrency: int
    start_at: float  # wall-clock (time.time()) start, shared by sibling load generators
    warmup: float
    duration: float
    stall: float
    watch: dict[str, int]  # label -> pid whose CPU use is sampled over the window


async def run(plan: Plan) -> Result:
    # perf_counter, not loop.time(): uvloop's clock only has millisecond resolution.
    loop = asyncio.get_running_loop()
    begin = perf_counter() + max(0.0, plan.start_at - time.time())
    window = Window(start=begin + plan.warmup, end=begin + plan.warmup + plan.duration)
    watch = {**plan.watch, "loadgen": os.getpid()}
    cpu_at_start: dict[str, float] = {}
    loop.call_later(window.start - perf_counter(), lambda: cpu_at_start.update(sample_cpu(watch)))

    await asyncio.sleep(begin - perf_counter())
    live: set[ClientProtocol] = set()
    tasks = [asyncio.create_task(worker(plan, window, live)) for _ in range(plan.concurrency)]
    await asyncio.sleep(window.end - perf_counter())
    cpu_at_end = sample_cpu(watch)
    window.closed = True
    now = perf_counter()
    in_flight = [p.sent_at for p in live if p.sent_at]
    stalled = sum(1 for t0 in in_flight if now - t0 >= plan.stall)
    if stalled:
        window.errors["stalled"] += stalled
    unfinished = len(in_flight) - stalled
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)

    return Result(
        concurrency=plan.concurrency,
        duration=plan.duration,
        ok=len(window.latencies),
        errors=dict(window.errors),
        latencies_us=[round(x * 1e6) for x in window.latencies],
        cpu_s={k: cpu_at_end[k] - v for k, v in cpu_at_start.items() if k in cpu_at_end},
        unfinished=unfinished,
        ttft_us=[round(x * 1e6) for x in window.ttft],
        chunks=window.chunks,
        chunks_per_stream=dict(window.chunks_per_stream),
    )


def parse_watch(values: list[str]) -> dict[str, int]:
    watch: dict[str, int] = {}
    for value in values:
        label, _, pid = value.partition("=")
        watch[label] = int(pid)
    return watch


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen", description=__doc__)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--unix", help="path of the target's Unix socket")
    where.add_argument("--tcp", help="host:port of the target")
    parser.add_argument("-c", "--concurrency", type=int, default=1)
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds, not measured")
    parser.add_argument("--duration", type=float, default=4.0, help="seconds measured")
    parser.add_argument("--start-at", type=float, default=0.0, help="time.time() to start at")
    parser.add_argument("--stall", type=float, default=1.0, help="seconds: unanswered = error")
    parser.add_argument("--path", default=CHAT_PATH)
    parser.add_argument(
        "--stream", action="store_true", help='send "stream": true, read the answers as SSE'
    )
    parser.add_argument("--out", type=Path, help="write the JSON result here, not to stdout")
    parser.add_argument("--watch", action="append", default=[], metavar="LABEL=PID")
    args = parser.parse_args(argv)

    host, _, port = (args.tcp or "").rpartition(":")
    plan = Plan(
        target=Target(unix=args.unix, host=host, port=int(port or 0)),
        request=chat_request(args.path, args.stream),
        stream=args.stream,
        concurrency=args.concurrency,
        start_at=args.start_at or time.time(),
        warmup=args.warmup,
        duration=args.duration,
        stall=args.stall,
        watch=parse_watch(args.watch),
    )
    result = uvloop.run(run(plan))
    data = msgspec.json.encode(result) + b"\n"
    if args.out:
        args.out.write_bytes(data)
    else:
        write_all(sys.stdout.fileno(), data)


def write_all(fd: int, data: bytes) -> None:
    """Under `python -u` (PYTHONUNBUFFERED) sys.stdout.buffer is unbuffered: one write() call
    that a pipe may take only in part. Loop until everything is written."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


if __name__ == "__main__":
    main()
