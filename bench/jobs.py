"""`python -m bench.jobs`: durable job throughput and the cost of a job over a live request.

The daemon runs as a subprocess pinned to one core (the load generator on another), with
its job store in a fresh folder (`--store-dir`, default: the system temp folder; pass a
tmpfs such as /dev/shm to see the cost without fsync). Three phases, each on a fresh
daemon and store:

1. submissions: C connections POST /v1/jobs as fast as the daemon acknowledges them
   (202 = committed, fsync included). The jobs' group is a mock that never answers and
   takes one job at a time, so the rest stay queued and the phase measures intake only.
2. end to end: N jobs against a mock with latency_ms = 0, from the first POST until the
   daemon counts all N succeeded (read from GET /v1/status every 5 ms).
3. overhead, one connection, one thing at a time: p50 of a live chat request vs p50 of a
   job round trip (POST /v1/jobs, then GET /v1/jobs/{id}?wait=10, which answers as
   soon as the job's result is committed).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar, cast

import httptools
import msgspec
import uvloop

from bench.procs import Child, NotReady, spawn, wait_unix_health

T = TypeVar("T")

CONFIG = """
[server]
socket = "{sock}"
metrics = ""
drain_timeout_s = 0
[jobs]
store = "{store}"
concurrency = 256
[router]
num_retries = 0
[[deployment]]
name = "instant"
group = "bench"
provider = "mock"
model = "mock"
latency_ms = 0
concurrency = 64
inbox = 256
[[deployment]]
name = "held"
group = "hold"
provider = "mock"
model = "mock"
hang = true
concurrency = 1
"""


class Conn(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection over the Unix socket, one request at a time."""

    def __init__(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._body: list[bytes] = []
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        assert self._transport is not None, "connection closed"
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        self._waiter = asyncio.get_running_loop().create_future()
        self._body = []
        self._transport.write(head.encode() + body)
        return await self._waiter

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._parser.feed_data(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ConnectionError("the daemon closed the connection"))

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        assert self._waiter is not None
        self._waiter.set_result((self._parser.get_status_code(), b"".join(self._body)))

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


async def connect(sock: Path) -> Conn:
    _, conn = await asyncio.get_running_loop().create_unix_connection(Conn, os.fspath(sock))
    return conn


def job(model: str, n: int) -> bytes:
    request = {"model": model, "messages": [{"role": "user", "content": f"job {n}"}]}
    return msgspec.json.encode({"request": request})


class Daemon:
    """A daemon subprocess on a fresh config, socket and store."""

    def __init__(self, work: Path, store_dir: Path, cores: set[int] | None) -> None:
        self.sock = work / "d.sock"
        # A private folder of its own: the daemon refuses a store folder others can write
        # (the system temp folder, /dev/shm).
        self.folder = Path(tempfile.mkdtemp(prefix="bench-jobs-", dir=store_dir))
        self.store = self.folder / "jobs.sqlite3"
        config = work / "jobs.toml"
        config.write_text(CONFIG.format(sock=self.sock, store=self.store))
        script = Path(sys.executable).with_name("dispatcher")
        base = [str(script)] if script.exists() else [sys.executable, "-m", "dispatcher"]
        argv = [*base, "serve", "--config", str(config), "--log-level", "WARNING"]
        self.child: Child = spawn("daemon-jobs", argv, cores, work / "daemon-jobs.log")
        wait_unix_health(self.child, self.sock, timeout=30)

    def stop(self) -> None:
        code = self.child.stop()
        if code != 0:
            raise NotReady(f"daemon exited {code}: {self.child.last_log_line()}")
        shutil.rmtree(self.folder, ignore_errors=True)


async def submissions(sock: Path, total: int, clients: int) -> tuple[float, list[float]]:
    """Acknowledged submissions per second, and each submission's latency."""
    conns = [await connect(sock) for _ in range(clients)]
    numbers = iter(range(total))
    latencies: list[float] = []

    async def worker(conn: Conn) -> None:
        for n in numbers:
            started = time.perf_counter()
            status, body = await conn.request("POST", "/v1/jobs", job("hold", n))
            latencies.append(time.perf_counter() - started)
            if status != 202:
                raise RuntimeError(f"POST /v1/jobs: {status} {body[:200]!r}")

    started = time.perf_counter()
    await asyncio.gather(*(worker(conn) for conn in conns))
    elapsed = time.perf_counter() - started
    for conn in conns:
        conn.close()
    return total / elapsed, latencies


async def end_to_end(sock: Path, total: int, clients: int) -> float:
    """Jobs per second from the first submission to the last committed result."""
    conns = [await connect(sock) for _ in range(clients)]
    numbers = iter(range(total))

    async def worker(conn: Conn) -> None:
        for n in numbers:
            status, body = await conn.request("POST", "/v1/jobs", job("bench", n))
            if status != 202:
                raise RuntimeError(f"POST /v1/jobs: {status} {body[:200]!r}")

    started = time.perf_counter()
    await asyncio.gather(*(worker(conn) for conn in conns))
    watcher = conns[0]
    while True:
        _, body = await watcher.request("GET", "/v1/status")
        counts = msgspec.json.decode(body)["jobs"]
        if counts["succeeded"] + counts["failed"] >= total:
            break
        await asyncio.sleep(0.005)
    elapsed = time.perf_counter() - started
    if counts["failed"]:
        raise RuntimeError(f"{counts['failed']} jobs failed")
    for conn in conns:
        conn.close()
    return total / elapsed


async def overhead(sock: Path, rounds: int, warmup: int) -> tuple[float, float]:
    """p50 seconds of a live request and of a job round trip, one at a time."""
    conn = await connect(sock)
    chat = msgspec.json.encode({"model": "bench", "messages": [{"role": "user", "content": "x"}]})
    live: list[float] = []
    jobs: list[float] = []
    for n in range(warmup + rounds):
        started = time.perf_counter()
        status, _ = await conn.request("POST", "/v1/chat/completions", chat)
        if status != 200:
            raise RuntimeError(f"chat: {status}")
        middle = time.perf_counter()
        status, body = await conn.request("POST", "/v1/jobs", job("bench", n))
        job_id = msgspec.json.decode(body)["id"]
        status, body = await conn.request("GET", f"/v1/jobs/{job_id}?wait=10")
        if msgspec.json.decode(body)["status"] != "succeeded":
            raise RuntimeError(f"job {job_id}: {body[:200]!r}")
        ended = time.perf_counter()
        if n >= warmup:
            live.append(middle - started)
            jobs.append(ended - middle)
    conn.close()
    return statistics.median(live), statistics.median(jobs)


def _cores(no_pin: bool) -> tuple[set[int] | None, set[int] | None]:
    available = sorted(os.sched_getaffinity(0))
    if no_pin or len(available) < 2:
        return None, None
    return {available[0]}, set(available[1:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.jobs", description=__doc__)
    parser.add_argument("--jobs", type=int, default=5000, help="jobs per throughput phase")
    parser.add_argument("--clients", type=int, default=64, help="connections submitting")
    parser.add_argument("--rounds", type=int, default=300, help="overhead samples")
    parser.add_argument("--store-dir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--no-pin", action="store_true", help="do not pin to cores")
    args = parser.parse_args(argv)
    daemon_cores, client_cores = _cores(args.no_pin)
    if client_cores:
        os.sched_setaffinity(0, client_cores)
    work = Path(tempfile.mkdtemp(prefix="bench-jobs-"))
    pinned = f"daemon on core {sorted(daemon_cores)}" if daemon_cores else "not pinned"
    print(f"store in {args.store_dir}, {pinned}, {args.clients} connections", file=sys.stderr)

    def phase(name: str, run: Callable[[Path], Coroutine[Any, Any, T]]) -> T:
        daemon = Daemon(work, args.store_dir, daemon_cores)
        try:
            result = uvloop.run(run(daemon.sock))
        finally:
            daemon.stop()
        print(f"  {name}: done", file=sys.stderr)
        return result

    try:
        rate, latencies = phase("submissions", lambda s: submissions(s, args.jobs, args.clients))
        e2e = phase("end to end", lambda s: end_to_end(s, args.jobs, args.clients))
        live, round_trip = phase("overhead", lambda s: overhead(s, args.rounds, 50))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    latencies.sort()
    p50 = latencies[len(latencies) // 2] * 1000
    p99 = latencies[int(len(latencies) * 0.99)] * 1000
    print(f"durable submissions: {rate:8.0f} /s   (202 latency p50 {p50:.2f} ms, p99 {p99:.2f} ms)")
    print(f"end-to-end jobs:     {e2e:8.0f} /s   (mock upstream, latency_ms = 0)")
    print(
        f"one at a time:       live request p50 {live * 1000:.2f} ms, job round trip p50 "
        f"{round_trip * 1000:.2f} ms, job overhead {(round_trip - live) * 1000:.2f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
