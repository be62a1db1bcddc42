"""Serve any ASGI app on a real loopback socket inside a test, with no sleeps.

    async with serve_app(fake) as base_url:
        async with httpx.AsyncClient(base_url=base_url) as client:
            ...

The socket is bound and listening before `base_url` is yielded, so a request sent at once
waits in the kernel backlog until uvicorn accepts it: there is no startup to poll for.
Exiting aborts in-flight requests (their connection is closed and their handler
cancelled), then stops uvicorn; nothing waits on a timer.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anyio
import uvicorn

from ._asgi import ABORT_EXTENSION, ASGIApp, Receive, Scope, Send


@contextlib.asynccontextmanager
async def serve_app(
    app: ASGIApp, *, exit_timeout: float = 5.0, tls: tuple[str, str] | None = None
) -> AsyncIterator[str]:
    """Serve `app` with uvicorn on 127.0.0.1 and a free port; yield `"http://127.0.0.1:PORT"`
    (`"https://..."` with `tls`: the paths of a certificate chain and its key, in PEM).

    Each request's scope carries `scope["extensions"][ABORT_EXTENSION]`, a callable that
    closes the connection without an answer (the fakes' `close()` directive uses it).
    On exit, requests still running are aborted; `TimeoutError` if uvicorn has not
    stopped within `exit_timeout` seconds.
    """
    tracker = _InFlight(app)
    certfile, keyfile = tls if tls is not None else (None, None)
    config = uvicorn.Config(
        tracker,
        log_config=None,
        lifespan="off",
        access_log=False,
        ws="none",
        ssl_certfile=certfile,
        ssl_keyfile=keyfile,
    )
    server = _Server(config, tracker)
    finished = anyio.Event()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        port = sock.getsockname()[1]

        async def run() -> None:
            try:
                await server.serve(sockets=[sock])
            finally:
                finished.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            try:
                yield f"{'https' if tls else 'http'}://127.0.0.1:{port}"
            finally:
                server.request_exit()
                # Shielded so that a cancelled test still closes uvicorn's listeners.
                with anyio.CancelScope(shield=True), anyio.move_on_after(exit_timeout):
                    await finished.wait()
                if not finished.is_set():
                    tg.cancel_scope.cancel()
                    raise TimeoutError(f"uvicorn did not stop within {exit_timeout}s")


class _Server(uvicorn.Server):
    """uvicorn's server, minus signal handling and minus its 100 ms polling loops."""

    def __init__(self, config: uvicorn.Config, tracker: _InFlight) -> None:
        super().__init__(config)
        self._tracker = tracker
        self._exit_requested = anyio.Event()

    def request_exit(self) -> None:
        self.should_exit = True
        self._exit_requested.set()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # A test process keeps its own SIGINT/SIGTERM handlers.
        yield

    async def main_loop(self) -> None:
        await self.on_tick(0)  # sets the default `date`/`server` headers once
        await self._exit_requested.wait()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # uvicorn's own shutdown sleeps 100 ms, then polls until `timeout_graceful_shutdown`.
        # A test has nothing to drain: abort what still runs and wait on events instead.
        for server in self.servers:
            server.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()  # closes idle keep-alive connections at once
        self._tracker.abort_all()
        await self._tracker.wait_idle()
        for server in self.servers:
            await server.wait_closed()


class _InFlight:
    """ASGI wrapper that knows the running requests, to abort them when the server stops."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self._running: dict[object, tuple[anyio.CancelScope, Callable[[], None] | None]] = {}
        self._idle = anyio.Event()
        self._stopping = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        abort = _connection_closer(send)
        if abort is not None:
            extensions = {**(scope.get("extensions") or {}), ABORT_EXTENSION: abort}
            scope = {**scope, "extensions": extensions}
        key = object()
        cancel_scope = anyio.CancelScope()
        self._running[key] = (cancel_scope, abort)
        try:
            with cancel_scope:
                if self._stopping:
                    cancel_scope.cancel()
                await self._app(scope, receive, send)
            if cancel_scope.cancelled_caught:
                # Let uvicorn see the disconnect, so it neither logs nor answers a 500.
                with anyio.move_on_after(1):
                    while (await receive())["type"] != "http.disconnect":
                        pass
        finally:
            del self._running[key]
            if self._stopping and not self._running:
                self._idle.set()

    def abort_all(self) -> None:
        self._stopping = True
        if not self._running:
            self._idle.set()
        for cancel_scope, abort in list(self._running.values()):
            if abort is not None:
                abort()
            cancel_scope.cancel()

    async def wait_idle(self) -> None:
        await self._idle.wait()


def _connection_closer(send: Send) -> Callable[[], None] | None:
    """`transport.close` of the connection behind uvicorn's `send`, if it can be found.

    uvicorn passes the bound `RequestResponseCycle.send`; its cycle holds the transport.
    """
    cycle: Any = getattr(send, "__self__", None)
    transport: Any = getattr(cycle, "transport", None)
    close = getattr(transport, "close", None)
    return close if callable(close) else None
