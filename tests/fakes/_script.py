"""Directives a test queues with `fake.script(...)`: what the fake does with the next request.

Each directive is a frozen value; build them with the lower-case functions::

    fake.script(error(503, {"error": {"message": "busy"}}), success(content="hi"))

A directive is consumed by the first request that passes the fake's auth and validation
checks; rejected requests never consume one.  When the queue is empty the fake answers
with `success()`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import anyio
import msgspec


@dataclass(frozen=True, kw_only=True)
class Success:
    """Answer 200 with a well-formed completion; `None` fields take the fake's defaults."""

    content: str | None = None
    tool_calls: tuple[tuple[str, str], ...] | None = None  # (name, arguments JSON string)
    finish_reason: str | None = None
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, kw_only=True)
class Error:
    """Answer `status` with the JSON `body` and extra `headers`, exactly as given."""

    status: int
    body: object
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, kw_only=True)
class Garbage:
    """Answer `status` with raw bytes (invalid JSON, a wrong shape, an HTML error page)."""

    status: int
    body: bytes
    content_type: str = "application/json"


@dataclass(frozen=True)
class Hang:
    """Never answer: return only when the client goes away or the server stops."""


@dataclass(frozen=True)
class Close:
    """Drop the TCP connection without sending a status line (needs `serve_app`)."""


@dataclass(frozen=True, kw_only=True)
class Wait:
    """Hold the request until the test sets `event`, then act on `then`."""

    event: anyio.Event = field(compare=False)
    then: Directive


@dataclass(frozen=True, kw_only=True)
class Stream:
    """Answer 200 and stream `pieces`: bytes are sent as they are; an `anyio.Event` holds
    the stream until the test sets it (or the client goes away, which is recorded).
    The body ends after the last piece (so a stream without its end marker is "cut")."""

    pieces: tuple[bytes | anyio.Event, ...] = field(compare=False)
    content_type: str = "text/event-stream"


@dataclass(frozen=True, kw_only=True)
class Flood:
    """Answer `status` with `head`, then `filler` `times` times (None: until the client
    leaves), `interval_s` apart, then `tail`: a never-ending or huge body, keep-alives
    without content, a slow drip. The fake holds one filler at a time, never the body."""

    head: bytes = b""
    filler: bytes
    tail: bytes = b""
    times: int | None = None
    interval_s: float = 0.0
    status: int = 200
    content_type: str = "application/json"


Directive = Success | Error | Garbage | Hang | Close | Wait | Stream | Flood


def success(
    *,
    content: str | None = None,
    tool_calls: Sequence[tuple[str, str]] | None = None,
    finish_reason: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Success:
    """A 200 completion.  `tool_calls` is a list of `(name, arguments_json_string)`."""
    return Success(
        content=content,
        tool_calls=None if tool_calls is None else tuple(tool_calls),
        finish_reason=finish_reason,
        headers=tuple((headers or {}).items()),
    )


def error(status: int, body: object, headers: Mapping[str, str] | None = None) -> Error:
    """Any provider error (or any JSON answer at all): status, JSON body, headers."""
    return Error(status=status, body=body, headers=tuple((headers or {}).items()))


def garbage(
    status: int = 200, body: bytes = b"{not json", *, content_type: str = "application/json"
) -> Garbage:
    """A response whose body the client cannot parse as the provider's JSON."""
    return Garbage(status=status, body=body, content_type=content_type)


def hang() -> Hang:
    """A request that never completes (the fake records `disconnected` when it ends)."""
    return Hang()


def close() -> Close:
    """Drop the connection with no answer; the client sees a protocol error.

    Served by `serve_app` this closes the socket.  Under any other ASGI server (or
    `httpx.ASGITransport`) the fake raises `ConnectionDropped` instead, which uvicorn
    turns into a 500 and `ASGITransport` re-raises in the client.
    """
    return Close()


def stream(*pieces: bytes | anyio.Event, content_type: str = "text/event-stream") -> Stream:
    """Stream `pieces` (bytes, or events that hold the stream until set)."""
    return Stream(pieces=pieces, content_type=content_type)


def sse(*payloads: object) -> bytes:
    """`data:` events for `payloads` (JSON-encoded unless bytes/str, sent as they are)."""
    out = []
    for payload in payloads:
        if isinstance(payload, bytes):
            data = payload
        elif isinstance(payload, str):
            data = payload.encode()
        else:
            data = msgspec.json.encode(payload)
        out.append(b"data: " + data + b"\n\n")
    return b"".join(out)


def flood(
    filler: bytes,
    *,
    head: bytes = b"",
    tail: bytes = b"",
    times: int | None = None,
    interval_s: float = 0.0,
    status: int = 200,
    content_type: str = "application/json",
) -> Flood:
    """A body of `head`, `filler` repeated (`times`, or until the client leaves), `tail`."""
    return Flood(
        head=head,
        filler=filler,
        tail=tail,
        times=times,
        interval_s=interval_s,
        status=status,
        content_type=content_type,
    )


def wait(event: anyio.Event, then: Directive | None = None) -> Wait:
    """Hold the request until `event` is set, then answer with `then` (default: success)."""
    return Wait(event=event, then=Success() if then is None else then)


class ConnectionDropped(Exception):
    """Raised by a fake told to `close()` when no server can drop the connection for it."""
