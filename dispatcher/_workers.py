"""`dispatcher serve --workers N`: N daemon processes behind one socket (every core).

The parent binds the Unix socket (and the TCP listener) once, accepts every
connection and hands it to the workers in turn (round robin) over a datagram
channel per worker and listener (SCM_RIGHTS); a worker whose channel is full
(too busy to read it) is passed over. A shared listening socket would balance
nothing: the first worker to wake accepts every pending connection at once,
and a client's keep-alive pool lands on it whole. Workers share rate limits and
breakers through `[cluster]`, so it is required.

    parent ──SIGTERM/SIGINT/SIGHUP──▶ every worker (forwarded)
           ──accepted connections──▶ worker i, i+1, ... (round robin)
           ◀── a worker exits ────── restarted (policy: `RESTARTS` in `RESTART_WINDOW_S`,
                                     then the parent stops the others and exits 1)

Workers run in their own session (a terminal's Ctrl-C reaches the parent only,
which forwards it once) and hold one end of a lifeline: when the parent dies,
even by SIGKILL, it reads EOF and each worker drains and stops. Each worker
serves metrics on `[server].metrics` port + its index (Prometheus scrapes each
one; metrics stay per daemon and are summed there).
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
_FDS_PER_MESSAGE: Final = 1


@dataclass(frozen=True)
class Inherited:
    """What a worker gets from its parent: a channel per listener that brings it accepted
    connections, the lifeline, and its place among the others."""

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
    listeners = {"unix": bind_unix(socket_path)}
    try:
        if config.server.listen:
            address = parse_host_port(config.server.listen)
            assert address is not None  # validated by the schema
            listeners["tcp"] = bind_tcp(*address, "the API")
        command = [
            sys.executable,
            "-m",
            "dispatcher",
            "serve",
            "--config",
            str(config_path),
            "--log-level",
            log_level,
        ]
        pool = _Pool(command, listeners, workers)
        return anyio.run(pool.run, socket_path, backend="asyncio")
    finally:
        for sock in listeners.values():
            sock.close()
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
    def __init__(
        self, command: list[str], listeners: dict[str, socket.socket], workers: int
    ) -> None:
        self._command = command
        self._listeners = listeners
        self._workers = workers
        self._live: dict[int, Process] = {}
        # listener -> worker index -> the parent's end of that worker's channel
        self._channels: dict[str, dict[int, socket.socket]] = {key: {} for key in listeners}
        self._turn = 0
        self._stopping = False
        self._failed = False
        self._restarts: deque[float] = deque()
        self._changed = anyio.Event()
        self._lifeline, self._lifeline_end = socket.socketpair()

    async def run(self, socket_path: Path) -> int:
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._signals)
                for index in range(self._workers):
                    await self._start(tg, index)
                for key, listener in self._listeners.items():
                    tg.start_soon(self._hand_out, key, listener)
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
        finally:
            for channels in self._channels.values():
                for channel in channels.values():
                    channel.close()
            self._lifeline.close()
            self._lifeline_end.close()
        return 1 if self._failed else 0

    async def _hand_out(self, key: str, listener: socket.socket) -> None:
        """Accept on `listener` and pass each connection to the next worker that has room."""
        channels = self._channels[key]
        while not self._stopping:
            await anyio.wait_readable(listener)
            while not self._stopping:
                try:
                    conn, _ = listener.accept()
                except BlockingIOError:
                    break
                except OSError as exc:  # EMFILE and the like: it waits in the backlog
                    logger.warning("accept failed: %s", exc)
                    await anyio.sleep(0.1)
                    break
                with conn:
                    await self._pass(channels, conn)

    async def _pass(self, channels: dict[int, socket.socket], conn: socket.socket) -> None:
        while not self._stopping:
            order = sorted(channels)
            for step in range(len(order)):
                index = order[(self._turn + step) % len(order)]
                try:
                    socket.send_fds(channels[index], [b"c"], [conn.fileno()])
                except BlockingIOError:
                    continue  # too busy to read its channel: the next one
                except OSError:
                    continue  # exiting: its watcher restarts it
                self._turn = (self._turn + step + 1) % len(order)
                return
            # Every worker is full (or none is running yet): wait for one to read.
            with anyio.move_on_after(0.05):
                await self._changed.wait()

    async def _start(self, tg: TaskGroup, index: int) -> None:
        ends: dict[str, socket.socket] = {}
        for key in self._listeners:
            parent_end, worker_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
            parent_end.setblocking(False)
            old = self._channels[key].pop(index, None)
            if old is not None:
                old.close()
            self._channels[key][index] = parent_end
            ends[key] = worker_end
        ends["lifeline"] = self._lifeline_end
        inherit = ",".join(f"{key}={sock.fileno()}" for key, sock in ends.items())
        command = [*self._command, "--inherit", inherit, "--worker", f"{index}/{self._workers}"]
        try:
            process = await anyio.open_process(
                command,
                stdin=None,
                stdout=None,
                stderr=None,
                pass_fds=[sock.fileno() for sock in ends.values()],
                start_new_session=True,
            )
        finally:
            for key, sock in ends.items():
                if key != "lifeline":
                    sock.close()  # the worker has its own copy
        self._live[index] = process
        tg.start_soon(self._watch, tg, index, process)

    async def _watch(self, tg: TaskGroup, index: int, process: Process) -> None:
        code = await process.wait()
        del self._live[index]
        for channels in self._channels.values():
            channel = channels.pop(index, None)
            if channel is not None:
                channel.close()
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
    """uvicorn serving the connections a worker's parent hands it over `channel`."""

    def __init__(self, config: Any, channel: socket.socket) -> None:
        super().__init__(config)
        self._channel = channel

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=[])
        # uvicorn closes and awaits what `servers` holds (so does Daemon.stop)
        self.servers = [_Receiver(self, self._channel)]  # type: ignore[list-item]


class _Receiver:
    """Stands in uvicorn's `servers` list for a worker's channel: `close` stops taking."""

    def __init__(self, server: SharedListenerServer, channel: socket.socket) -> None:
        self._server = server
        self._channel = channel
        self._task = asyncio.get_running_loop().create_task(self._receive())

    async def _receive(self) -> None:
        loop = asyncio.get_running_loop()
        server, config = self._server, self._server.config

        def protocol() -> asyncio.Protocol:
            # What uvicorn's own startup builds for each connection (its create_protocol).
            made: asyncio.Protocol = config.http_protocol_class(  # type: ignore[call-arg]
                config=config, server_state=server.server_state, app_state=server.lifespan.state
            )
            return made

        while not server.should_exit:
            await anyio.wait_readable(self._channel)
            try:
                message, fds, _, _ = socket.recv_fds(self._channel, 16, _FDS_PER_MESSAGE)
            except BlockingIOError:
                continue
            if not message:
                return  # the parent is gone (the lifeline says so too)
            for fd in fds:
                conn = socket.socket(fileno=fd)
                conn.setblocking(False)
                try:
                    await loop.connect_accepted_socket(protocol, conn)
                except OSError:
                    conn.close()

    def close(self) -> None:
        self._task.cancel()

    async def wait_closed(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
