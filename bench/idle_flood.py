"""`python -m bench.idle_flood`: a well-behaved client's latency while idle connections are held.

The daemon (one mock deployment, `listen` on 127.0.0.1) runs pinned to core 0; a flood
process holds `--idle` TCP connections that never send a byte (each one closed by the server
is opened again at once, so the flood is held for the whole run), and this process measures
a client that behaves: sequential chat requests, over one kept-alive connection and over a
new connection each. Both run on the other core(s). The same client is measured first without the
flood. Printed: requests, failures, p50/p99/max per phase, and how many idle connections the
server closed (evicted at max_connections or timed out at header_timeout_s).

    python -m bench.idle_flood --idle 2000 --seconds 10
    python -m bench.idle_flood --fd-limit 1024   # the daemon under `ulimit -n 1024`
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import resource
import socket
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.procs import spawn, wait_unix_health

BODY = b'{"model": "mini", "messages": [{"role": "user", "content": "hello"}]}'
REQUEST = (
    b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\n"
    b"content-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(BODY) + BODY
)

CONFIG = """
[server]
socket = "run/d.sock"
metrics = ""
listen = "127.0.0.1:{port}"
{extra}
[[deployment]]
name = "mock"
group = "mini"
provider = "mock"
model = "mock-mini"
"""


@dataclass
class Phase:
    name: str
    latencies: list[float] = field(default_factory=list)
    failures: int = 0

    def line(self) -> str:
        lat = sorted(self.latencies)
        if not lat:
            return f"{self.name:34} requests 0  failures {self.failures}"
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        return (
            f"{self.name:34} requests {len(lat):6}  failures {self.failures:4}  "
            f"p50 {statistics.median(lat) * 1e3:7.2f} ms  p99 {p99 * 1e3:7.2f} ms  "
            f"max {lat[-1] * 1e3:7.2f} ms"
        )


@dataclass
class Flood:
    target: int
    held: int = 0
    closed_by_server: int = 0
    connect_errors: int = 0
    ramped: asyncio.Event = field(default_factory=asyncio.Event)


async def read_answer(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await reader.readexactly(length)
    return status


async def client(port: int, phase: Phase, seconds: float, *, reuse: bool) -> None:
    deadline = time.monotonic() + seconds
    conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    while time.monotonic() < deadline:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(5):
                if conn is None:
                    conn = await asyncio.open_connection("127.0.0.1", port)
                reader, writer = conn
                writer.write(REQUEST)
                status = await read_answer(reader)
            if status != 200:
                raise OSError(f"status {status}")
            phase.latencies.append(time.perf_counter() - started)
        except (OSError, TimeoutError, asyncio.IncompleteReadError):
            phase.failures += 1
            if conn is not None:
                conn[1].close()
            conn = None
            continue
        if not reuse:
            conn[1].close()
            conn = None
    if conn is not None:
        conn[1].close()


async def hold(port: int, flood: Flood, stop: asyncio.Event) -> None:
    """One idle connection, opened again whenever the server closes it."""
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            flood.connect_errors += 1
            await asyncio.sleep(0.05)  # a refused connect: back off before the next one
            continue
        flood.held += 1
        if flood.held >= flood.target:
            flood.ramped.set()
        try:
            stopped = asyncio.ensure_future(stop.wait())
            eof = asyncio.ensure_future(reader.read())
            await asyncio.wait({stopped, eof}, return_when=asyncio.FIRST_COMPLETED)
            if eof.done():
                flood.closed_by_server += 1
                flood.ramped.set()
            for task in (stopped, eof):
                task.cancel()
        finally:
            flood.held -= 1
            writer.close()


def run_flood(port: int, idle: int, ready: Any, stop: Any, out: Any) -> None:
    """The flood process: hold `idle` connections until `stop` (a multiprocessing Event)."""

    async def flood_main() -> None:
        flood = Flood(target=idle)
        stopping = asyncio.Event()
        holders = [asyncio.ensure_future(hold(port, flood, stopping)) for _ in range(idle)]
        await flood.ramped.wait()  # all held, or the server closed one (it keeps fewer)
        out.put(("held", flood.held))
        ready.set()
        await asyncio.to_thread(stop.wait)
        out.put(("end", flood.held, flood.closed_by_server, flood.connect_errors))
        stopping.set()
        await asyncio.gather(*holders, return_exceptions=True)

    asyncio.run(flood_main())


async def measure_client(port: int, label: str, seconds: float) -> None:
    for reuse in (True, False):
        phase = Phase(f"{label}, {'kept-alive' if reuse else 'new connection each'}")
        await client(port, phase, seconds, reuse=reuse)
        print(phase.line(), flush=True)


def measure(port: int, idle: int, seconds: float) -> None:
    asyncio.run(measure_client(port, "no flood", seconds))
    spawn_ctx = multiprocessing.get_context("spawn")
    ready, stop, out = spawn_ctx.Event(), spawn_ctx.Event(), spawn_ctx.Queue()
    flood = spawn_ctx.Process(target=run_flood, args=(port, idle, ready, stop, out))
    flood.start()
    try:
        ready.wait(30)
        print(f"flood: {out.get(timeout=5)[1]} idle connections held at start", flush=True)
        asyncio.run(measure_client(port, f"{idle} idle", seconds))
    finally:
        stop.set()
    _, held, closed, errors = out.get(timeout=30)
    flood.join(30)
    print(
        f"flood: {held} held at the end; the server closed {closed} idle connections "
        f"(connect errors {errors})",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.idle_flood", description=__doc__)
    parser.add_argument("--idle", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--fd-limit", type=int, help="the daemon's RLIMIT_NOFILE (soft and hard)")
    parser.add_argument(
        "--server", default="", help='extra [server] lines, e.g. "max_connections = 1024"'
    )
    args = parser.parse_args()
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the flood process inherits it
    if hard < args.idle + 100:
        print(f"open-file limit {hard} is too low for {args.idle} connections", file=sys.stderr)
        return 1
    cores = sorted(os.sched_getaffinity(0))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "d.toml"
        config.write_text(CONFIG.format(port=port, extra=args.server.replace("\\n", "\n")))
        argv = [sys.executable, "-m", "dispatcher", "serve", "--config", str(config)]
        if args.fd_limit:
            argv = ["prlimit", f"--nofile={args.fd_limit}:{args.fd_limit}", *argv]
        daemon = spawn("daemon", argv, {cores[0]} if len(cores) > 1 else None, Path(tmp) / "log")
        if len(cores) > 1:
            os.sched_setaffinity(0, set(cores[1:]))
        try:
            wait_unix_health(daemon, Path(tmp) / "run" / "d.sock", 30)
            measure(port, args.idle, args.seconds)
            print("daemon log (last lines):")
            for line in (Path(tmp) / "log").read_text().splitlines()[-5:]:
                print("  " + line)
        finally:
            daemon.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
