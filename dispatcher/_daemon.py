"""The daemon: builds actors, router and supervisor from a config and serves them.

Lifecycle (structured; every task has a parent):
  start  actors (startup handshake each) -> listeners -> ready (sd_notify READY=1)
  SIGHUP          reload: unchanged deployments keep their actor (state, queue and
                  in-flight work); new ones start; removed ones stop taking attempts and
                  finish what they hold; new requests see the new config at once
                  (RELOADING=1 before, READY=1 after, also when the file is refused)
  SIGTERM/SIGINT  listeners stop accepting (STOPPING=1); in-flight requests finish within
                  drain_timeout_s; actors close their inboxes and drain; exit 0
"""

from __future__ import annotations

import logging
import signal
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import msgspec
from anyio.abc import TaskGroup, TaskStatus
from prometheus_client import CollectorRegistry

from actors import DeploymentActor
from actors.providers import supported_providers
from config import Config, ConfigError, Deployment, load_config, parse_host_port

from ._api import Api
from ._connections import Connections, Limits, connection_limit, raise_fd_limit
from ._exceptions import DaemonError
from ._guard import ListenerGuard
from ._http import App, Handler
from ._metrics import Metrics
from ._notify import Notifier
from ._requestlog import RequestIds, RequestLog
from ._router import Router
from ._server import QuietServer, bind_tcp, bind_unix, make_server
from ._supervisor import Supervisor
from .jobs import JobRoutes, Jobs, JobStore, SqliteJobStore

if TYPE_CHECKING:
    from ._workers import Inherited
    from .cluster import Cluster

logger = logging.getLogger("dispatcher")


class Daemon:
    """One running dispatcher: what a config describes, alive."""

    def __init__(
        self,
        config: Config,
        base_dir: Path,
        *,
        config_path: Path | None = None,
        registry: CollectorRegistry | None = None,
        inherited: Inherited | None = None,
        store: JobStore | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        """`inherited`: a `--workers` worker's listening sockets (bound by its parent);
        `store`: the job store (default: the SQLite file `[jobs].store` names)."""
        _check_providers(config)
        self.config = config
        self.inherited = inherited
        self.cluster = _cluster_for(config)
        self.config_path = config_path
        self.base_dir = base_dir
        self.socket_path = (base_dir / config.server.socket).resolve()
        self.actors = tuple(self._actor(d, config) for d in config.deployment)
        self.registry = registry or CollectorRegistry()
        self.metrics = Metrics(self.registry, lambda: self.actors)
        if self.cluster is not None:
            self.metrics.watch_cluster(self.cluster.statistics)
        self.router = Router(config.router, self.actors)
        self.supervisor = Supervisor(config.router, self.router, self.metrics)
        self.store_path = (base_dir / config.jobs.store).resolve()
        if store is None:
            store = _store_for(config, self.store_path, self.cluster)
        self.jobs = Jobs(
            store,
            self.supervisor,
            self.metrics,
            config.jobs,
            drain_timeout_s=config.server.drain_timeout_s,
        )
        self._servers: list[QuietServer] = []
        self._apis: list[Api] = []
        self.connections: Connections | None = None
        self._fd_limit = 0
        self._actors_tg: TaskGroup | None = None
        self._stopping = False
        self.tcp_address: tuple[str, int] | None = None
        self.metrics_address: tuple[str, int] | None = None
        self.notifier = notifier or Notifier()
        self._jobs_running = False

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Serve until `stop()` (or a signal, when `handle_signals` runs beside it)."""
        server = self.config.server
        self._fd_limit = raise_fd_limit()
        limit = connection_limit(server.max_connections, self._fd_limit, self.config.deployment)
        if limit < server.max_connections:
            logger.warning(
                "max_connections lowered from %d to %d: the open-file limit is %d "
                "(the rest is kept for upstream connections and the daemon)",
                server.max_connections,
                limit,
                self._fd_limit,
            )
        connections = Connections(Limits.of(server), limit, on_reject=self.metrics.rejected)
        self.connections = connections
        inherited = self.inherited
        sockets = [bind_unix(self.socket_path) if inherited is None else inherited.unix]
        try:
            jobs_open = await self._open_jobs(first=True)
            job_routes = JobRoutes(self.jobs, max_body_bytes=server.max_body_bytes)
            api = Api(
                self.supervisor,
                self.metrics,
                max_body_bytes=server.max_body_bytes,
                cluster=self._cluster_status,
            )
            self._apis = [api]
            # The daemon composes the route tables: no route module knows another.
            routes = App(api.routes(), job_routes.routes())
            # Every answer carries x-request-id; the access log skips Prometheus scrapes.
            listeners: list[tuple[Handler, socket.socket]] = [(RequestLog(routes), sockets[0])]
            if server.listen:
                host, port = _address(server.listen)
                sock = (
                    inherited.tcp
                    if inherited is not None and inherited.tcp is not None
                    else bind_tcp(host, port, "the API")
                )
                sockets.append(sock)
                self.tcp_address = sock.getsockname()[:2]
                guard = ListenerGuard(
                    routes,
                    api_keys=server.api_keys,
                    allowed_hosts=server.allowed_hosts,
                    listen_host=host,
                    on_reject=self.metrics.rejected,
                )
                listeners.append((RequestLog(guard), sock))
            if server.metrics:
                host, port = _address(server.metrics)
                if inherited is not None and port:
                    port += inherited.index  # one scrape target per worker
                sock = bind_tcp(host, port, "metrics")
                sockets.append(sock)
                self.metrics_address = sock.getsockname()[:2]
                scrape = Api(self.supervisor, self.metrics, max_body_bytes=4096, metrics_only=True)
                listeners.append((RequestLog(scrape, access=False), sock))
                self._apis.append(scrape)
            async with anyio.create_task_group() as actors_tg:
                self._actors_tg = actors_tg
                if self.cluster is not None:  # first: actors join with their peers
                    await actors_tg.start(self.cluster.run)
                for actor in self.actors:
                    await actors_tg.start(actor.run)
                if jobs_open:
                    await actors_tg.start(self.jobs.run)
                else:  # the cluster's store is unreachable: jobs join when it is back
                    actors_tg.start_soon(self._jobs_when_the_store_opens, actors_tg)
                request_ids = RequestIds()  # one sequence for every listener
                async with anyio.create_task_group() as servers_tg:
                    for app, sock in listeners:
                        # The API ends its streams at drain_timeout_s (an error chunk and
                        # [DONE]); uvicorn's own cut comes after, for what is left.
                        uv = make_server(
                            app,
                            connections=connections,
                            request_ids=request_ids,
                            drain_timeout_s=server.drain_timeout_s + 1.0,
                            keepalive_timeout_s=server.keepalive_timeout_s,
                        )
                        uv.should_exit = self._stopping
                        if inherited is not None and sock in (inherited.unix, inherited.tcp):
                            uv = _shared_listener(uv, sock)  # a socket the workers share
                        self._servers.append(uv)
                        servers_tg.start_soon(uv.serve, [sock])
                    logger.info(
                        "serving %d deployments in %d groups on %s (at most %d connections)",
                        len(self.actors),
                        len(self.router.groups),
                        self.socket_path,
                        limit,
                    )
                    # The sockets listen: a client that connects now is answered.
                    self.notifier.ready(self._status_line())
                    task_status.started()
                # Listeners are closed and in-flight requests answered: jobs drain (running
                # ones within drain_timeout_s, the rest stay queued), then the actors.
                if self._jobs_running:
                    await self.jobs.aclose()
                for actor in self.actors:
                    actor.close()
                if self.cluster is not None:  # after its peers gave their leases back
                    self.cluster.close()
        finally:
            for sock in sockets:
                sock.close()
            self.jobs.store.close()
            if inherited is None:  # the parent owns a worker's socket file
                self.socket_path.unlink(missing_ok=True)
            logger.info("stopped")

    async def reload(self, config: Config) -> None:
        """Serve `config` from now on, without dropping in-flight requests.

        `[server]` settings (socket, listeners, body limit) need a restart and are kept.
        """
        _check_providers(config)
        if self._actors_tg is None:
            raise DaemonError("the daemon is not running")
        if config.server != self.config.server:
            logger.warning("SIGHUP: [server] changes need a restart; keeping the running ones")
            config = msgspec.structs.replace(config, server=self.config.server)
        if config.jobs != self.config.jobs:
            logger.warning("SIGHUP: [jobs] changes need a restart; keeping the running ones")
            config = msgspec.structs.replace(config, jobs=self.config.jobs)
        if config.cluster != self.config.cluster:
            logger.warning("SIGHUP: [cluster] changes need a restart; keeping the running one")
            config = msgspec.structs.replace(config, cluster=self.config.cluster)
        if self.connections is not None:  # upstream connections may need more room now
            self.connections.limit = connection_limit(
                config.server.max_connections, self._fd_limit, config.deployment
            )
        current = {actor.name: actor for actor in self.actors}
        same_cooldown = config.router.cooldown == self.config.router.cooldown
        actors: list[DeploymentActor] = []
        for spec in config.deployment:
            actor = current.get(spec.name)
            if actor is None or actor.spec != spec or not same_cooldown:
                actor = self._actor(spec, config)
                await self._actors_tg.start(actor.run)
            actors.append(actor)
        retired = [actor for actor in self.actors if actor not in actors]
        router = Router(config.router, actors)
        supervisor = Supervisor(config.router, router, self.metrics)
        # One synchronous swap: a request sees either the old world or the new one.
        self.config, self.actors, self.router, self.supervisor = (
            config,
            tuple(actors),
            router,
            supervisor,
        )
        for api in self._apis:
            api.supervisor = supervisor
        self.jobs.use(supervisor)
        for actor in retired:
            actor.close()
        started = sum(1 for actor in actors if current.get(actor.name) is not actor)
        logger.info(
            "reloaded: %d deployments (%d started, %d retired)", len(actors), started, len(retired)
        )

    def _actor(self, spec: Deployment, config: Config) -> DeploymentActor:
        share = self.cluster.share if self.cluster is not None else None
        return DeploymentActor(spec, config.router.cooldown, share=share)

    async def _cluster_status(self) -> Any:
        """`GET /v1/cluster`: the cluster's members, breakers and budgets."""
        if self.cluster is None:
            return {"enabled": False}
        return await self.cluster.status(self.config.deployment)

    async def _open_jobs(self, *, first: bool = False) -> bool:
        """Open the job store. In cluster mode an unreachable Redis is no start error: live
        requests are served and job routes answer 503 `store_unavailable` meanwhile."""
        try:
            await self.jobs.open()
        except DaemonError as exc:
            if self.cluster is None:
                raise
            if first:
                logger.warning("jobs wait for the cluster's job store: %s", exc)
            return False
        self._jobs_running = True
        return True

    async def _jobs_when_the_store_opens(self, tg: TaskGroup) -> None:
        delay = 0.5
        while not self._stopping:
            await anyio.sleep(delay)
            delay = min(delay * 2, 5.0)
            if not self._stopping and await self._open_jobs():
                await tg.start(self.jobs.run)
                logger.info("jobs: the cluster's job store is reachable; jobs are served")
                return

    def _status_line(self) -> str:
        return f"serving {len(self.actors)} deployments in {len(self.router.groups)} groups"

    def stop(self) -> None:
        """Stop accepting; in-flight requests finish (bounded by drain_timeout_s)."""
        if not self._stopping:
            self.notifier.stopping(self.config.server.drain_timeout_s)
        self._stopping = True
        self.jobs.stop()
        for api in self._apis:
            api.drain(self.config.server.drain_timeout_s)
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
                    await self._reload_from_file()
                    continue
                if any(s.should_exit for s in self._servers) and signum == signal.SIGINT:
                    for server in self._servers:
                        server.force_exit = True
                logger.info("%s: draining and stopping", signal.Signals(signum).name)
                self.stop()

    async def _reload_from_file(self) -> None:
        if self.config_path is None:
            logger.warning("SIGHUP: no config file to reload")
            return
        self.notifier.reloading()
        try:
            config = load_config(self.config_path)
            await self.reload(config)
        except (ConfigError, DaemonError) as exc:
            logger.error("SIGHUP: reload refused, still serving the previous config: %s", exc)
            self.notifier.ready("reload refused (see the log); " + self._status_line())
            return
        self.notifier.ready(self._status_line())


def _shared_listener(server: QuietServer, sock: socket.socket) -> QuietServer:
    from ._workers import SharedListenerServer

    shared = SharedListenerServer(server.config, sock)
    shared.should_exit = server.should_exit
    return shared


def _store_for(config: Config, path: Path, cluster: Cluster | None) -> JobStore:
    """The cluster's Redis job store in cluster mode, else the SQLite file."""
    if cluster is None:
        return SqliteJobStore(path)
    from .jobs import RedisJobStore  # imports redis: only in cluster mode

    assert config.cluster.redis is not None
    link = cluster.link
    return RedisJobStore(
        config.cluster.redis.reveal(), link.prefix, link.member, name=config.cluster.describe()
    )


def _cluster_for(config: Config) -> Cluster | None:
    if not config.cluster.enabled:
        return None
    from .cluster import Cluster  # imports redis: only in cluster mode

    return Cluster(config.cluster)


def _check_providers(config: Config) -> None:
    unsupported = sorted({d.provider for d in config.deployment} - supported_providers())
    if unsupported:
        raise DaemonError(f"providers not supported by this build yet: {', '.join(unsupported)}")


def _address(value: str) -> tuple[str, int]:
    parsed = parse_host_port(value)
    if parsed is None:  # the schema validated it; this is a guard for direct callers
        raise DaemonError(f"not a host:port address: {value!r}")
    return parsed


async def serve(
    config: Config,
    base_dir: Path,
    config_path: Path | None = None,
    inherited: Inherited | None = None,
) -> None:
    """Run a daemon for `config` until a signal stops it (SIGHUP reloads `config_path`).

    `inherited`: a `--workers` worker's sockets; it also stops when its parent is gone.
    Under systemd (`$NOTIFY_SOCKET`), it reports readiness, reloads, the drain and
    watchdog pings (see `_notify`); with `--workers` only the parent does.
    """
    notifier = Notifier.from_environ() if inherited is None else Notifier()
    daemon = Daemon(
        config, base_dir, config_path=config_path, inherited=inherited, notifier=notifier
    )
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(daemon.handle_signals)
            tg.start_soon(notifier.keep_alive)
            if inherited is not None and inherited.lifeline is not None:
                from ._workers import watch_lifeline

                tg.start_soon(watch_lifeline, inherited.lifeline, daemon.stop)
            await daemon.run()
            tg.cancel_scope.cancel()
    except* DaemonError as group:  # a start error (socket in use, bad store): no traceback
        raise group.exceptions[0] from None
    finally:
        notifier.close()
