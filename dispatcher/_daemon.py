"""The daemon: builds actors, router and supervisor from a config and serves them.

Lifecycle (structured; every task has a parent):
  start  actors (startup handshake each) -> listeners -> ready
  SIGTERM/SIGINT  listeners stop accepting; in-flight requests finish within
                  drain_timeout_s; actors close their inboxes and drain; exit 0
"""

from __future__ import annotations

import logging
import signal
from pathlib import Path

import anyio
from anyio.abc import TaskStatus
from prometheus_client import CollectorRegistry

from actors import DeploymentActor
from actors.providers import supported_providers
from config import Config, parse_host_port

from ._api import Api
from ._exceptions import DaemonError
from ._metrics import Metrics
from ._router import Router
from ._server import QuietServer, bind_tcp, bind_unix, make_server
from ._supervisor import Supervisor

logger = logging.getLogger("dispatcher")


class Daemon:
    """One running dispatcher: what a config describes, alive."""

    def __init__(
        self, config: Config, base_dir: Path, *, registry: CollectorRegistry | None = None
    ) -> None:
        unsupported = sorted({d.provider for d in config.deployment} - supported_providers())
        if unsupported:
            raise DaemonError(
                f"providers not supported by this build yet: {', '.join(unsupported)}"
            )
        self.config = config
        self.base_dir = base_dir
        self.socket_path = (base_dir / config.server.socket).resolve()
        self.actors = tuple(DeploymentActor(d, config.router.cooldown) for d in config.deployment)
        self.registry = registry or CollectorRegistry()
        self.metrics = Metrics(self.registry, lambda: self.actors)
        self.router = Router(config.router, self.actors)
        self.supervisor = Supervisor(config.router, self.router, self.metrics)
        self._servers: list[QuietServer] = []
        self._stopping = False
        self.tcp_address: tuple[str, int] | None = None
        self.metrics_address: tuple[str, int] | None = None

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Serve until `stop()` (or a signal, when `handle_signals` runs beside it)."""
        server = self.config.server
        sockets = [bind_unix(self.socket_path)]
        try:
            api = Api(self.supervisor, self.metrics, max_body_bytes=server.max_body_bytes)
            listeners = [(api, sockets[0])]
            if server.listen:
                host, port = _address(server.listen)
                sock = bind_tcp(host, port, "the API")
                sockets.append(sock)
                self.tcp_address = sock.getsockname()[:2]
                listeners.append((api, sock))
            if server.metrics:
                host, port = _address(server.metrics)
                sock = bind_tcp(host, port, "metrics")
                sockets.append(sock)
                self.metrics_address = sock.getsockname()[:2]
                scrape = Api(self.supervisor, self.metrics, max_body_bytes=4096, metrics_only=True)
                listeners.append((scrape, sock))
            async with anyio.create_task_group() as actors_tg:
                for actor in self.actors:
                    await actors_tg.start(actor.run)
                async with anyio.create_task_group() as servers_tg:
                    for app, sock in listeners:
                        uv = make_server(app, drain_timeout_s=server.drain_timeout_s)
                        uv.should_exit = self._stopping
                        self._servers.append(uv)
                        servers_tg.start_soon(uv.serve, [sock])
                    logger.info(
                        "serving %d deployments in %d groups on %s",
                        len(self.actors),
                        len(self.router.groups),
                        self.socket_path,
                    )
                    task_status.started()
                # Listeners are closed and in-flight requests answered: let the actors drain.
                for actor in self.actors:
                    actor.close()
        finally:
            for sock in sockets:
                sock.close()
            self.socket_path.unlink(missing_ok=True)
            logger.info("stopped")

    def stop(self) -> None:
        """Stop accepting; in-flight requests finish (bounded by drain_timeout_s)."""
        self._stopping = True
        for server in self._servers:
            server.should_exit = True
            # Stop accepting now, not at uvicorn's next tick; its shutdown closes them again.
            for listener in getattr(server, "servers", ()):
                listener.close()

    async def handle_signals(self) -> None:
        """SIGTERM/SIGINT stop the daemon gracefully; a second SIGINT forces it."""
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            async for signum in signals:
                if signum == signal.SIGHUP:
                    logger.warning("SIGHUP: config reload is not supported yet; ignoring")
                    continue
                if any(s.should_exit for s in self._servers) and signum == signal.SIGINT:
                    for server in self._servers:
                        server.force_exit = True
                logger.info("%s: draining and stopping", signal.Signals(signum).name)
                self.stop()


def _address(value: str) -> tuple[str, int]:
    parsed = parse_host_port(value)
    if parsed is None:  # the schema validated it; this is a guard for direct callers
        raise DaemonError(f"not a host:port address: {value!r}")
    return parsed


async def serve(config: Config, base_dir: Path) -> None:
    """Run a daemon for `config` until a signal stops it."""
    daemon = Daemon(config, base_dir)
    async with anyio.create_task_group() as tg:
        tg.start_soon(daemon.handle_signals)
        await daemon.run()
        tg.cancel_scope.cancel()
