"""One measurement: load generator process(es) against a running target, merged into a row."""

from __future__ import annotations

import math
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from bench.loadgen import Result
from bench.procs import spawn
from bench.targets import Placement, Running, Upstream


@dataclass(frozen=True)
class Timing:
    warmup: float  # seconds of load before the window: connections open, pools and caches full
    duration: float  # seconds measured


@dataclass
class Row:
    """One line of a table: a target at one upstream delay and one concurrency.

    For a streamed row (`stream`), rps counts whole streams, p50/p99 are the whole stream's
    (request sent to the end of the response), and the ttft_* and chunk fields are filled in.
    """

    target: str
    delay_ms: float
    concurrency: int
    available: bool = True
    reason: str = ""  # why the target is not available
    rps: float = 0.0  # successful requests (streams) per second
    p50_ms: float | None = None
    p99_ms: float | None = None
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    unfinished: int = 0  # in flight when the window closed (younger than the stall limit)
    # % of one core over the window: target, upstream, loadgen, other, coreN.busy, coreN.steal
    cpu_pct: dict[str, float] = field(default_factory=dict)
    stream: bool = False
    chunks_per_s: float = 0.0  # data events but [DONE] arriving in the window, per second
    # Request sent to the arrival of the first event whose choices[0].delta.content is non-empty.
    ttft_p50_ms: float | None = None
    ttft_p99_ms: float | None = None
    chunks_per_stream: dict[int, int] = field(default_factory=dict)  # N chunks -> streams
    # The target's own CPU time (utime + stime of its process over the window, every thread)
    # per successful request and, in a streamed row, per data event delivered. The cost figure
    # that holds on a shared machine, where the target may not get its whole core.
    cpu_us_per_req: float | None = None
    cpu_us_per_chunk: float | None = None


def percentile(sorted_values: list[int], q: float) -> float | None:
    """Nearest-rank percentile of already sorted values; None when there are none."""
    if not sorted_values:
        return None
    rank = min(len(sorted_values), max(1, math.ceil(q / 100 * len(sorted_values))))
    return float(sorted_values[rank - 1])


def _split(total: int, parts: int) -> list[int]:
    parts = max(1, min(parts, total))
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def run_load(
    running: Running,
    upstream: Upstream,
    concurrency: int,
    timing: Timing,
    place: Placement,
    procs: int,
    stream: bool,
    workdir: Path,
    logs: Path,
) -> Row:
    """Run the load generator(s) and merge what they saw into one row."""
    watch = {"upstream": upstream.child.pid}
    if running.child is not None:
        watch["target"] = running.child.pid
    # Several processes start their clocks together; 0.5 s covers their interpreter start.
    start_at = time.time() + 0.5 if procs > 1 else 0.0
    children = []
    for i, share in enumerate(_split(concurrency, procs)):
        argv = [
            sys.executable, "-m", "bench.loadgen", *running.address_args(),
            "-c", str(share), "--warmup", str(timing.warmup), "--duration", str(timing.duration),
            "--start-at", str(start_at),
            *(f"--watch={label}={pid}" for label, pid in watch.items()),
        ]  # fmt: skip
        if stream:
            argv.append("--stream")
        name = f"loadgen-{running.name}-{upstream.delay_ms:g}ms-c{concurrency}-{i}"
        out = workdir / f"{name}.json"  # a file, not a pipe: nothing to drain meanwhile
        argv.append(f"--out={out}")
        children.append((spawn(name, argv, place.aux, logs / f"{name}.log"), out))

    deadline = time.monotonic() + timing.warmup + timing.duration + 30
    statuses = []
    for child, _ in children:  # all of them, before looking at any result
        try:
            statuses.append(child.popen.wait(timeout=max(0.0, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            statuses.append(child.stop())
    results: list[Result] = []
    for (child, out), status in zip(children, statuses, strict=True):
        if status != 0 or not out.exists():
            raise RuntimeError(f"load generator failed ({status}): {child.last_log_line()}")
        results.append(msgspec.json.decode(out.read_bytes(), type=Result))
        out.unlink()
        if child.log_path.stat().st_size == 0:
            child.log_path.unlink()  # 30 empty files per run say nothing
    row = merge(running.name, upstream.delay_ms, concurrency, timing.duration, results)
    row.stream = stream
    return row


def _ms(us: float | None) -> float | None:
    return None if us is None else us / 1000


def merge(
    target: str, delay_ms: float, concurrency: int, duration: float, results: list[Result]
) -> Row:
    latencies = sorted(x for r in results for x in r.latencies_us)
    ttft = sorted(x for r in results for x in r.ttft_us)
    per_stream: dict[int, int] = {}
    for r in results:
        for n, streams in r.chunks_per_stream.items():
            per_stream[n] = per_stream.get(n, 0) + streams
    kinds: dict[str, int] = {}
    for r in results:
        for kind, n in r.errors.items():
            kinds[kind] = kinds.get(kind, 0) + n
    cpu = dict(results[0].cpu_s)  # target, upstream, cores: every process sampled the same
    cpu["loadgen"] = sum(r.cpu_s.get("loadgen", 0.0) for r in results)
    # What the machine did besides this benchmark (someone else's tests, say): all cores' busy
    # time minus that of our processes. Large values mean the row is disturbed.
    busy = sum(v for k, v in cpu.items() if k.endswith(".busy"))
    ours = sum(cpu.get(k, 0.0) for k in ("target", "upstream", "loadgen"))
    cpu["other"] = max(0.0, busy - ours)
    requests, chunks = len(latencies), sum(r.chunks for r in results)
    own = cpu.get("target")
    return Row(
        target=target,
        delay_ms=delay_ms,
        concurrency=concurrency,
        rps=requests / duration,
        p50_ms=_ms(percentile(latencies, 50)),
        p99_ms=_ms(percentile(latencies, 99)),
        errors=sum(kinds.values()),
        error_kinds=kinds,
        unfinished=sum(r.unfinished for r in results),
        cpu_pct={k: round(100 * v / duration, 1) for k, v in cpu.items()},
        chunks_per_s=chunks / duration,
        ttft_p50_ms=_ms(percentile(ttft, 50)),
        ttft_p99_ms=_ms(percentile(ttft, 99)),
        chunks_per_stream=dict(sorted(per_stream.items())),
        cpu_us_per_req=None if own is None or not requests else round(1e6 * own / requests, 1),
        cpu_us_per_chunk=None if own is None or not chunks else round(1e6 * own / chunks, 2),
    )
