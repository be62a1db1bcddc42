"""The fake upstream and the targets under test, each started for one upstream.

A target is what the load generator talks to: the upstream itself ("direct", over TCP), a
minimal relay, or the daemon (both over a Unix socket). Each is started pinned to the target
core, warmed with one request, and stopped with SIGTERM when its rows are done.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.loadgen import CHAT_PATH, chat_request
from bench.procs import Child, NotReady, spawn, unix_request, wait_ready_line, wait_unix_health

RELAYS = ("relay-httpx", "relay-httpx-aiohttp", "relay-aiohttp")
ALL_TARGETS = ("direct", *RELAYS, "daemon")
WARM_BODY = chat_request(CHAT_PATH, stream=False).partition(b"\r\n\r\n")[2]
WARM_STREAM_BODY = chat_request(CHAT_PATH, stream=True).partition(b"\r\n\r\n")[2]

DAEMON_CONFIG = """\
[server]
socket = "dispatcher.sock"       # relative to the config file's folder
metrics = ""                      # no TCP metrics listener

[router]
num_retries = 0

[[deployment]]
name = "upstream"
group = "bench"
provider = "openai-compatible"
model = "bench-model"
api_base = "http://127.0.0.1:{port}/v1"
api_key = "sk-bench"
inbox = 4096
concurrency = 512
"""


@dataclass(frozen=True)
class Placement:
    """Which cores run what; None when pinning is off or there is a single core."""

    target: set[int] | None
    aux: set[int] | None  # the upstream and the load generator


@dataclass
class Upstream:
    child: Child
    port: int
    delay_ms: float

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


def start_upstream(delay_ms: float, place: Placement, logs: Path) -> Upstream:
    argv = [sys.executable, "-m", "bench.upstream", "--delay-ms", str(delay_ms)]
    child = spawn("upstream", argv, place.aux, logs / f"upstream-{delay_ms:g}ms.log", True)
    try:
        line = wait_ready_line(child, timeout=15)
    except NotReady:
        child.stop()
        raise
    return Upstream(child, int(line.split()[1]), delay_ms)


@dataclass
class Running:
    """A target ready for load: where to send it, and its process when it has one."""

    name: str
    unix: str | None = None  # Unix socket path, or
    tcp: str | None = None  # host:port
    child: Child | None = None
    idle_rss_kb: int | None = None
    notes: list[str] = field(default_factory=list)

    def address_args(self) -> list[str]:
        return ["--unix", self.unix] if self.unix else ["--tcp", self.tcp or ""]

    def stop(self) -> int | None:
        return self.child.stop() if self.child is not None else None


def _relay_argv(name: str, sock: Path, upstream: Upstream) -> list[str]:
    module, extra = {
        "relay-httpx": ("bench.relay_httpx", ["--transport", "default"]),
        "relay-httpx-aiohttp": ("bench.relay_httpx", ["--transport", "aiohttp"]),
        "relay-aiohttp": ("bench.relay_aiohttp", []),
    }[name]
    return [
        sys.executable,
        "-m",
        module,
        f"--uds={sock}",
        f"--upstream={upstream.base_url}",
        *extra,
    ]


def _daemon_argv(config: Path) -> list[str]:
    # The console script installed next to this interpreter, as `make run` uses it.
    script = Path(sys.executable).with_name("dispatcher")
    base = [str(script)] if script.exists() else [sys.executable, "-m", "dispatcher"]
    return [*base, "serve", "--config", str(config)]


def _warm(running: Running, stream: bool) -> None:
    """One request before measuring: it opens the upstream connection and fills caches, and it
    is the 'one warm request' after which the idle RSS is read. Streamed for the stream phase:
    a target that cannot stream says so here, in a note, before it is loaded."""
    assert running.unix is not None and running.child is not None
    body = WARM_STREAM_BODY if stream else WARM_BODY
    status, answer = unix_request(running.unix, "POST", CHAT_PATH, body)
    if status != 200:
        running.notes.append(f"warm-up request: status {status}: {answer[:200]!r}")
    elif stream and not answer.rstrip().endswith(b"data: [DONE]"):
        running.notes.append(f"warm-up stream did not end with data: [DONE]: {answer[-200:]!r}")
    running.idle_rss_kb = running.child.memory_kb("VmRSS")


def start_target(
    name: str,
    upstream: Upstream,
    place: Placement,
    workdir: Path,
    logs: Path,
    stream: bool = False,
) -> Running:
    """Start `name` against `upstream`; raises NotReady with the reason when it cannot.
    `stream`: it is about to be loaded with streamed requests (the warm-up request is one)."""
    if name == "direct":
        return Running(name, tcp=f"127.0.0.1:{upstream.port}")
    log = logs / f"{name}-{upstream.delay_ms:g}ms{'-stream' if stream else ''}.log"
    ready: Callable[[], object]
    if name in RELAYS:
        sock = workdir / f"{name}.sock"
        child = spawn(name, _relay_argv(name, sock, upstream), place.target, log, capture=True)

        def ready() -> object:
            return wait_ready_line(child, timeout=15)

    elif name == "daemon":
        config = workdir / "bench.toml"
        config.write_text(DAEMON_CONFIG.format(port=upstream.port))
        sock = workdir / "dispatcher.sock"
        sock.unlink(missing_ok=True)
        child = spawn(name, _daemon_argv(config), place.target, log)

        def ready() -> object:
            wait_unix_health(child, sock, timeout=30)
            return None

    else:
        raise ValueError(f"unknown target {name!r}")

    running = Running(name, unix=str(sock), child=child)
    try:
        ready()
        _warm(running, stream)
    except (NotReady, OSError) as exc:
        child.stop()
        raise NotReady(str(exc) if isinstance(exc, NotReady) else f"warm-up: {exc!r}") from exc
    return running
