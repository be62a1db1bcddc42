"""The few raw-ASGI pieces the fakes need: type aliases, reading a body, sending a reply."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

ABORT_EXTENSION: Final = "llm_dispatcher.fakes.abort"
"""Key in `scope["extensions"]` of a zero-argument callable that drops the TCP connection.

`serve_app` provides it; ASGI itself has no way to close a connection without answering.
"""

_ENCODER: Final = msgspec.json.Encoder()


@dataclass(frozen=True, kw_only=True)
class Reply:
    """A complete HTTP answer: a status, headers and either one body or a list of chunks."""

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    chunks: tuple[bytes, ...] | None = None  # streamed one ASGI message each (SSE)
    content_type: str = "application/json"


def json_reply(status: int, payload: object, headers: Iterable[tuple[str, str]] = ()) -> Reply:
    """A JSON reply, the shape every provider error and completion takes."""
    return Reply(status=status, headers=tuple(headers), body=_ENCODER.encode(payload))


@dataclass
class BodyReader:
    """Reads the request body and remembers whether `http.disconnect` arrived."""

    receive: Receive
    disconnected: bool = field(default=False)

    async def read_body(self) -> bytes:
        """Concatenate `http.request` messages until `more_body` is false."""
        parts: list[bytes] = []
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                self.disconnected = True
                break
            parts.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        return b"".join(parts)

    async def wait_disconnect(self) -> None:
        """Return once the client (or the server stopping) has closed the connection."""
        while not self.disconnected:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                self.disconnected = True


async def send_reply(send: Send, reply: Reply) -> None:
    """Send `reply` as `http.response.start` plus one or more `http.response.body`."""
    headers = [(b"content-type", reply.content_type.encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in reply.headers]
    if reply.chunks is None:
        headers.append((b"content-length", str(len(reply.body)).encode()))
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    if reply.chunks is None:
        await send({"type": "http.response.body", "body": reply.body, "more_body": False})
        return
    for chunk in reply.chunks:
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})
