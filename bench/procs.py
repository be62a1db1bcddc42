"""Child processes of the benchmark: spawn pinned to cores, wait until ready, read memory, stop.

Pinning goes through `taskset` when it is installed, so that the affinity is set before the
child's interpreter starts and every thread it ever makes inherits it; otherwise through
os.sched_setaffinity right after the spawn (the interpreter is still single-threaded then).
"""

from __future__ import annotations

import http.client
import os
import selectors
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO


class NotReady(Exception):
    """A child did not come up; the message says why (its last log line when it died)."""


@dataclass
class Child:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def memory_kb(self, field: str) -> int | None:
        """A field of /proc/<pid>/status in kB: VmRSS (now) or VmHWM (peak so far)."""
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    if line.startswith(field + ":"):
                        return int(line.split()[1])
        except OSError:
            return None
        return None

    def last_log_line(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return lines[-1].strip() if lines else ""

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, wait, and SIGKILL only if it would not exit. Returns the exit status."""
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                return self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
        return self.popen.wait()


def spawn(
    name: str, argv: Sequence[str], cores: set[int] | None, log_path: Path, capture: bool = False
) -> Child:
    """Start `argv` pinned to `cores` (None: not pinned). Its stderr, and its stdout unless
    `capture`, go to `log_path`; with `capture` the caller reads the stdout pipe."""
    command = list(argv)
    taskset = shutil.which("taskset")
    if cores and taskset:
        command = [taskset, "-c", ",".join(map(str, sorted(cores))), *command]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        popen = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if capture else log,
            stderr=log,
        )
    if cores and not taskset:
        os.sched_setaffinity(popen.pid, cores)
    return Child(name, popen, log_path)


def wait_ready_line(child: Child, timeout: float) -> str:
    """Read the child's first stdout line (`READY ...`), then keep draining its stdout into its
    log from a thread, so that the child can never block on a full pipe."""
    assert child.popen.stdout is not None
    stdout = child.popen.stdout
    line = b""
    with selectors.DefaultSelector() as sel:
        sel.register(stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                raise NotReady(f"{child.name}: no READY line within {timeout:.0f} s")
            chunk = os.read(stdout.fileno(), 4096)
            if not chunk:
                child.popen.wait()
                raise NotReady(
                    f"{child.name} exited ({child.popen.returncode}): {child.last_log_line()}"
                )
            line += chunk
    first, _, rest = line.partition(b"\n")
    if not first.startswith(b"READY"):
        raise NotReady(f"{child.name}: unexpected first line {first!r}")
    _drain(stdout, child.log_path, rest)
    return first.decode()


def _drain(stdout: IO[bytes], log_path: Path, pending: bytes) -> None:
    def copy() -> None:
        with open(log_path, "ab") as log:
            log.write(pending)
            shutil.copyfileobj(stdout, log, 4096)

    threading.Thread(target=copy, name=f"drain {log_path.name}", daemon=True).start()


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


def unix_request(
    path: str, method: str, url: str, body: bytes | None = None, timeout: float = 10.0
) -> tuple[int, bytes]:
    """One blocking HTTP/1.1 request over a Unix socket: (status, body)."""
    conn = _UnixHTTPConnection(path, timeout)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, url, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def wait_unix_health(child: Child, sock_path: Path, timeout: float) -> None:
    """Wait for a server that gives no READY line: its socket file, then `GET /health` 200.
    A short bounded retry loop (10 ms steps): acceptable in a benchmark, and it gives up at
    once when the child exits."""
    deadline = time.monotonic() + timeout
    last_error = "socket never appeared"
    while time.monotonic() < deadline:
        if not child.alive():
            raise NotReady(f"exited ({child.popen.returncode}): {child.last_log_line()}")
        if sock_path.exists():
            try:
                status, _ = unix_request(str(sock_path), "GET", "/health", timeout=2.0)
            except OSError as exc:
                last_error = f"GET /health: {exc!r}"
            else:
                if status == 200:
                    return
                last_error = f"GET /health: status {status}"
        time.sleep(0.01)
    raise NotReady(f"not ready within {timeout:.0f} s ({last_error})")
