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

from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any, Final

import anyio

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


@asynccontextmanager
async def watching(scope: Scope, receive: Receive) -> AsyncIterator[anyio.CancelScope]:
    """A cancel scope that is cancelled when the client disconnects. Use it around work
    that waits on no other `receive()`."""
    disconnect = scope.get("extensions", {}).get(EXTENSION)
    if isinstance(disconnect, Disconnect):
        with anyio.CancelScope() as cancel:
            disconnect.watch(cancel)
            try:
                yield cancel
            finally:
                disconnect.unwatch(cancel)
        return
    async with anyio.create_task_group() as tg:
        tg.start_soon(_cancel_on_disconnect, receive, tg.cancel_scope)
        yield tg.cancel_scope
        tg.cancel_scope.cancel()


async def _cancel_on_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    scope.cancel()
