"""The cluster phase of `make bench` (`python -m bench --cluster`; `--no-cluster` skips it).

A redis-server on a free loopback port and the fake upstream at 0 ms; the deployment has
rpm and tpm budgets far above what is reached, so every request is admitted through the
shared (leased) budget. Four targets, each started, warmed and loaded in turn:

    single      `dispatcher serve` without [cluster] (the same budgets, kept locally)
    cluster     `dispatcher serve` with [cluster]: one daemon, limits and breakers in Redis
    workers-1   `dispatcher serve --workers 1` (a parent and one worker)
    workers-2   `dispatcher serve --workers 2` (a parent and two workers, one socket)

Reported: the p50 that cluster mode adds to a single daemon at c=1 (goal <= 0.3 ms), the
throughput of 2 workers against 1 at c=64 (goal >= 1.7x), and the Redis round trips per
1000 requests (Redis's own count, heartbeats included). Nothing is
pinned here (every process may run on every core): two workers need both cores, which the
upstream and the load generator share.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from bench.measure import Row, Timing, run_load
from bench.procs import NotReady, spawn, wait_unix_health
from bench.targets import DAEMON_CONFIG, Placement, Running, _daemon_argv, _warm, start_upstream

BUDGET = """rpm = 100000000
tpm = 100000000000
"""
CLUSTER = """
[cluster]
redis = "redis://127.0.0.1:{port}/0"
name = "bench"
"""
LATENCY_C = 1
THROUGHPUT_C = 64


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _start_redis(logs: Path, cores: set[int]) -> tuple[subprocess.Popen[bytes], int]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise NotReady("redis-server is not installed (make bench installs it)")
    port = _free_port()
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / "redis.log", "wb") as log:
        process = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=log,
            stderr=log,
        )
    os.sched_setaffinity(process.pid, cores)
    for _ in range(500):  # bounded: 5 s
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.01) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    return process, port
        except OSError:
            pass
        if process.poll() is not None:
            break
        time.sleep(0.01)
    process.kill()
    raise NotReady(f"redis-server did not start on {port} (see {logs / 'redis.log'})")


def _start(
    name: str, config_text: str, workers: int, workdir: Path, logs: Path, cores: set[int]
) -> Running:
    folder = workdir / name
    folder.mkdir(exist_ok=True)
    config = folder / "bench.toml"
    config.write_text(config_text)
    sock = folder / "dispatcher.sock"
    argv = _daemon_argv(config) + (["--workers", str(workers)] if workers else [])
    child = spawn(name, argv, cores, logs / f"cluster-{name}.log")
    running = Running(name, unix=str(sock), child=child)
    try:
        wait_unix_health(child, sock, timeout=30)
        _warm(running, stream=False)
    except (NotReady, OSError) as exc:
        child.stop()
        raise NotReady(str(exc)) from exc
    return running


def _redis_commands(port: int) -> int:
    """Commands Redis has processed so far (INFO stats)."""
    with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
        conn.sendall(b"INFO stats\r\n")
        data = b""
        while b"total_commands_processed:" not in data or not data.endswith(b"\r\n"):
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
    for line in data.decode(errors="replace").splitlines():
        if line.startswith("total_commands_processed:"):
            return int(line.split(":")[1])
    return 0


def run_cluster_phase(timing: Timing, workdir: Path, logs: Path, loadgen_procs: int) -> list[str]:
    """Measure and return the report lines."""
    lines = ["cluster phase (upstream 0 ms; redis-server on loopback; nothing pinned)"]
    # Every core, explicitly: this process is pinned to the aux core by then, and children
    # started unpinned would inherit that.
    every = set(range(os.cpu_count() or 1))
    free = Placement(target=every, aux=every)
    try:
        redis, port = _start_redis(logs, every)
    except NotReady as exc:
        return [*lines, f"  not available ({exc})"]
    upstream = start_upstream(0.0, free, logs)
    rows: dict[str, Row] = {}
    calls: dict[str, float] = {}
    try:
        base = DAEMON_CONFIG.format(port=upstream.port) + BUDGET
        clustered = base.replace("[router]", CLUSTER.format(port=port) + "\n[router]")
        plan = [
            ("single", base, 0, LATENCY_C),
            ("cluster", clustered, 0, LATENCY_C),
            ("workers-1", clustered, 1, THROUGHPUT_C),
            ("workers-2", clustered, 2, THROUGHPUT_C),
        ]
        for name, text, workers, concurrency in plan:
            try:
                running = _start(name, text, workers, workdir, logs, every)
            except NotReady as exc:
                lines.append(f"  {name}: not available ({exc})")
                continue
            before = _redis_commands(port)
            try:
                row = run_load(
                    running, upstream, concurrency, timing, free, loadgen_procs, False,
                    workdir, logs,
                )  # fmt: skip
                rows[name] = row
                calls[name] = _redis_commands(port) - before
                print(
                    f"cluster {name} c={concurrency}: {row.rps:.0f} req/s, p50 {row.p50_ms} ms,"
                    f" errors {row.errors}",
                    file=sys.stderr,
                    flush=True,
                )
            finally:
                running.stop()
    finally:
        upstream.child.stop()
        redis.kill()
        redis.wait()
    for name, row in rows.items():
        c = THROUGHPUT_C if name.startswith("workers") else LATENCY_C
        extra = ""
        if name != "single" and name in calls and row.rps:
            served = row.rps * (timing.warmup + timing.duration) + 1
            extra = f", ~{1000 * calls[name] / served:.1f} redis commands per 1000 requests"
        cpu = ", ".join(f"{k} {v:.0f}%" for k, v in row.cpu_pct.items() if "." not in k)
        lines.append(
            f"  {name:10} c={c:<3} {row.rps:8.0f} req/s  p50 {_ms(row.p50_ms)}  "
            f"p99 {_ms(row.p99_ms)}  errors {row.errors}{extra}; cpu: {cpu}"
        )
    single, cluster = rows.get("single"), rows.get("cluster")
    if single and cluster and single.p50_ms is not None and cluster.p50_ms is not None:
        added = cluster.p50_ms - single.p50_ms
        verdict = "ok" if added <= 0.3 else "MISSED"
        lines.append(
            f"  added p50 of cluster mode at c=1: {added:+.3f} ms (goal <= 0.3 ms): {verdict}"
        )
    one, two = rows.get("workers-1"), rows.get("workers-2")
    if one and two and one.rps:
        ratio = two.rps / one.rps
        verdict = "ok" if ratio >= 1.7 else "MISSED"
        lines.append(f"  --workers 2 / --workers 1 at c=64: {ratio:.2f}x (goal >= 1.7x): {verdict}")
    return lines


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f} ms"
