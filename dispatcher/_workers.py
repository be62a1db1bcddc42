"""`dispatcher serve --workers N`: N daemon processes on one socket (every core).

The parent binds the Unix socket (and the TCP listener) once and starts N
workers (`dispatcher serve --worker I/N --inherit unix=FD,...`) that inherit
the listening sockets: the kernel hands each connection to one worker's accept.
Workers share rate limits and breakers through `[cluster]`, so it is required.
Workers run in their own session (a terminal's Ctrl-C reaches the parent
only, which forwards it once) and hold one end of a lifeline: when the parent
dies, even by SIGKILL, the lifeline reads EOF and each worker drains and stops.

    parent ──SIGTERM/SIGINT/SIGHUP──▶ every worker (forwarded)
           ◀── a worker exits ────── restarted (policy: `RESTARTS` in `RESTART_WINDOW_S`,
                                     then the parent stops the others and exits 1)

Each worker serves metrics on `[server].metrics` port + its index (Prometheus
scrapes each one; metrics stay per daemon and are summed there).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import sys
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import anyio
from anyio.abc import Process, TaskGroup

from config import Config, parse_host_port

from ._exceptions import DaemonError
from ._server import QuietServer, bind_tcp, bind_unix

logger = logging.getLogger("dispatcher.workers")

RESTARTS: Final = 5
RESTART_WINDOW_S: Final = 60.0
MAX_WORKERS: Final = 256


@dataclass(frozen=True)
class Inherited:
    """What a worker gets from its parent: listening sockets and its place among the others."""

    unix: socket.socket
    tcp: socket.socket | None
    lifeline: socket.socket | None
    index: int
    workers: int

    @classmethod
    def parse(cls, worker: str, inherit: str) -> Inherited:
        """From `--worker I/N` and `--inherit unix=FD[,tcp=FD][,lifeline=FD]`."""
        try:
            index, workers = (int(part) for part in worker.split("/"))
            fds = {
                key: int(fd) for key, _, fd in (item.partition("=") for item in inherit.split(","))
            }
            unix = socket.socket(fileno=fds.pop("unix"))
            tcp = socket.socket(fileno=fds.pop("tcp")) if "tcp" in fds else None
            lifeline = socket.socket(fileno=fds.pop("lifeline")) if "lifeline" in fds else None
        except (ValueError, KeyError, OSError):
            raise DaemonError(f"bad --worker {worker!r} or --inherit {inherit!r}") from None
        if fds or not 0 <= index < workers:
            raise DaemonError(f"bad --worker {worker!r} or --inherit {inherit!r}")
        for sock in (unix, tcp, lifeline):
            if sock is not None:
                sock.setblocking(False)
        return cls(unix, tcp, lifeline, index, workers)

    @property
    def jobs(self) -> bool:
        """Jobs live in one daemon's SQLite store: only a lone worker may serve them."""
        return self.workers == 1


def check_workers(config: Config, workers: int) -> None:
    """`DaemonError` unless `workers` processes can share `config`'s state."""
    if not 1 <= workers <= MAX_WORKERS:
        raise DaemonError(f"--workers: expected 1 to {MAX_WORKERS}, got {workers}")
    if not config.cluster.enabled:
        raise DaemonError(
            "--workers needs [cluster] in the config: workers share rate limits and breakers "
            'through Redis (e.g. [cluster] redis = "redis://127.0.0.1:6379/0")'
        )


def supervise(config: Config, config_path: Path, workers: int, *, log_level: str) -> int:
    """Run `workers` worker processes until a signal stops them; the exit code."""
    check_workers(config, workers)
    socket_path = (config_path.resolve().parent / config.server.socket).resolve()
    unix = bind_unix(socket_path)
    tcp: socket.socket | None = None
    lifeline, worker_end = socket.socketpair()
    try:
        if config.server.listen:
            address = parse_host_port(config.server.listen)
            assert address is not None  # validated by the schema
            tcp = bind_tcp(*address, "the API")
        inherit = {"unix": unix, "tcp": tcp, "lifeline": worker_end}
        fds = {key: sock.fileno() for key, sock in inherit.items() if sock is not None}
        command = [
            sys.executable,
            "-m",
            "dispatcher",
            "serve",
            "--config",
            str(config_path),
            "--log-level",
            log_level,
            "--inherit",
            ",".join(f"{key}={fd}" for key, fd in fds.items()),
        ]
        pool = _Pool(command, list(fds.values()), workers)
        return anyio.run(pool.run, socket_path, backend="asyncio")
    finally:
        lifeline.close()
        worker_end.close()
        unix.close()
        if tcp is not None:
            tcp.close()
        socket_path.unlink(missing_ok=True)


async def watch_lifeline(lifeline: socket.socket, stop: Callable[[], None]) -> None:
    """Call `stop` when the parent is gone (its end of the lifeline closed)."""
    while True:
        await anyio.wait_readable(lifeline)
        try:
            if not lifeline.recv(64):
                break
        except BlockingIOError:
            continue
        except OSError:
            break
    logger.warning("the parent process is gone: draining and stopping")
    stop()


class _Pool:
    def __init__(self, command: list[str], fds: list[int], workers: int) -> None:
        self._command = command
        self._fds = fds
        self._workers = workers
        self._live: dict[int, Process] = {}
        self._stopping = False
        self._failed = False
        self._restarts: deque[float] = deque()
        self._changed = anyio.Event()

    async def run(self, socket_path: Path) -> int:
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._signals)
            for index in range(self._workers):
                await self._start(tg, index)
            logger.info(
                "serving with %d workers on %s (pids %s)",
                self._workers,
                socket_path,
                ", ".join(str(p.pid) for p in self._live.values()),
            )
            while self._live:
                await self._changed.wait()
                self._changed = anyio.Event()
            tg.cancel_scope.cancel()
        return 1 if self._failed else 0

    async def _start(self, tg: TaskGroup, index: int) -> None:
        command = [*self._command, "--worker", f"{index}/{self._workers}"]
        process = await anyio.open_process(
            command,
            stdin=None,
            stdout=None,
            stderr=None,
            pass_fds=self._fds,
            start_new_session=True,
        )
        self._live[index] = process
        tg.start_soon(self._watch, tg, index, process)

    async def _watch(self, tg: TaskGroup, index: int, process: Process) -> None:
        code = await process.wait()
        del self._live[index]
        self._changed.set()
        if self._stopping:
            logger.info("worker %d (pid %d) exited with %s", index, process.pid, code)
            if code != 0:
                self._failed = True
            return
        now = anyio.current_time()
        self._restarts.append(now)
        while self._restarts and self._restarts[0] < now - RESTART_WINDOW_S:
            self._restarts.popleft()
        if len(self._restarts) > RESTARTS:
            logger.error(
                "worker %d (pid %d) exited with %s: more than %d restarts in %.0fs; stopping",
                index,
                process.pid,
                code,
                RESTARTS,
                RESTART_WINDOW_S,
            )
            self._failed = True
            self._stop(signal.SIGTERM)
            return
        logger.warning(
            "worker %d (pid %d) exited with %s; restarting it (%d of %d in %.0fs)",
            index,
            process.pid,
            code,
            len(self._restarts),
            RESTARTS,
            RESTART_WINDOW_S,
        )
        await self._start(tg, index)

    async def _signals(self) -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            async for signum in signals:
                if signum == signal.SIGHUP:
                    logger.info("SIGHUP: every worker reloads")
                    self._send(signal.SIGHUP)
                    continue
                logger.info("%s: stopping %d workers", signum.name, len(self._live))
                self._stop(signum)

    def _stop(self, signum: signal.Signals) -> None:
        self._stopping = True
        self._send(signum)

    def _send(self, signum: signal.Signals) -> None:
        for process in self._live.values():
            if process.returncode is None:
                process.send_signal(signum)


class SharedListenerServer(QuietServer):
    """uvicorn on a listening socket shared with the other workers, taking one connection
    per turn of its event loop.

    uvicorn's (libuv's) own accept takes every pending connection at once, so the first
    worker to wake would hold most of a client pool's connections; here a worker accepts
    one, serves what is ready, then competes for the next, so a busy worker takes fewer.
    """

    def __init__(self, config: Any, listener: socket.socket) -> None:
        super().__init__(config)
        self._listener = listener

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=[])
        # uvicorn closes and awaits what `servers` holds (so does Daemon.stop)
        self.servers = [_AcceptLoop(self, self._listener)]  # type: ignore[list-item]


class _AcceptLoop:
    """Stands in uvicorn's `servers` list for the shared listener: `close` stops accepting."""

    def __init__(self, server: SharedListenerServer, listener: socket.socket) -> None:
        self._server = server
        self._listener = listener
        self._task = asyncio.get_running_loop().create_task(self._accept())

    async def _accept(self) -> None:
        loop = asyncio.get_running_loop()
        server, config = self._server, self._server.config

        def protocol() -> asyncio.Protocol:
            # What uvicorn's own startup builds for each connection (its create_protocol).
            made: asyncio.Protocol = config.http_protocol_class(  # type: ignore[call-arg]
                config=config, server_state=server.server_state, app_state=server.lifespan.state
            )
            return made

        while not server.should_exit:
            try:
                conn, _ = await loop.sock_accept(self._listener)
            except OSError as exc:  # EMFILE and the like: the connection waits in the backlog
                logger.warning("accept failed: %s", exc)
                await asyncio.sleep(0.1)
                continue
            conn.setblocking(False)
            try:
                await loop.connect_accepted_socket(protocol, conn)
            except OSError:
                conn.close()
            await asyncio.sleep(0)  # let the others take the next one if they are idler

    def close(self) -> None:
        self._task.cancel()

    async def wait_closed(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
