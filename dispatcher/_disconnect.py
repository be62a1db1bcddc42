"""Client disconnects as a callback instead of a watcher task per request.

The ASGI way to learn that a client left is a task blocked in `receive()` until it returns
`http.disconnect`: a task, a task group and a cancel scope per request, several percent of
the daemon's CPU at load. The daemon's own protocol (`_protocol.BoundedProtocol`) knows
the moment the connection is lost, so it puts a `Disconnect` in each request's scope
(`scope["extensions"][EXTENSION]`), and a route cancels its work by registering a cancel
scope with it. An app served by any other server gets none, and `watching` falls back to
the watcher task.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from types import TracebackType
from typing import Any, Final

import anyio
import anyio.abc

EXTENSION: Final = "dispatcher.disconnect"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]


class Disconnect:
    """One request's "the client has gone" signal, fired once by the protocol."""

    __slots__ = ("_scopes", "gone")

    def __init__(self) -> None:
        self.gone = False
        self._scopes: set[anyio.CancelScope] = set()

    def fire(self) -> None:
        """The connection is lost: cancel every scope watching it, now and from now on."""
        self.gone = True
        scopes, self._scopes = self._scopes, set()
        for scope in scopes:
            scope.cancel()

    def watch(self, scope: anyio.CancelScope) -> None:
        if self.gone:
            scope.cancel()
        else:
            self._scopes.add(scope)

    def unwatch(self, scope: anyio.CancelScope) -> None:
        self._scopes.discard(scope)


class watching:  # named as the function it replaced: `async with watching(scope, receive)`
    """A cancel scope that is cancelled when the client disconnects. Use it around work
    that waits on no other `receive()`.

    A class rather than an `asynccontextmanager`: it is entered once per request, and a
    generator-based manager costs a generator and its frame each time.
    """

    __slots__ = ("_cancel", "_disconnect", "_receive", "_tg")

    def __init__(self, scope: Scope, receive: Receive) -> None:
        disconnect = scope.get("extensions", {}).get(EXTENSION)
        self._disconnect = disconnect if isinstance(disconnect, Disconnect) else None
        self._receive = receive
        self._cancel: anyio.CancelScope | None = None
        self._tg: anyio.abc.TaskGroup | None = None

    async def __aenter__(self) -> anyio.CancelScope:
        if self._disconnect is not None:
            cancel = self._cancel = anyio.CancelScope().__enter__()
            self._disconnect.watch(cancel)
            return cancel
        tg = self._tg = anyio.create_task_group()
        await tg.__aenter__()
        tg.start_soon(_cancel_on_disconnect, self._receive, tg.cancel_scope)
        return tg.cancel_scope

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        if self._disconnect is not None:
            cancel = self._cancel
            assert cancel is not None
            self._disconnect.unwatch(cancel)
            return cancel.__exit__(exc_type, exc, tb)
        tg = self._tg
        assert tg is not None
        tg.cancel_scope.cancel()
        return await tg.__aexit__(exc_type, exc, tb)


async def _cancel_on_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    scope.cancel()
