"""`FakeProvider`: the ASGI app shared by the strict fakes (recording, script, directives)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import anyio

from ._asgi import ABORT_EXTENSION, BodyReader, Receive, Reply, Scope, Send, json_reply, send_reply
from ._compress import ENCODINGS, compressing, negotiate
from ._recording import RecordedRequest, Recorder
from ._script import (
    Close,
    ConnectionDropped,
    Directive,
    Error,
    Flood,
    Garbage,
    Hang,
    Stream,
    Success,
    Wait,
)


@dataclass(frozen=True, kw_only=True)
class FakeStatistics:
    """A snapshot of a fake: requests received, directives still queued, requests in flight."""

    requests: int
    scripted: int
    in_flight: int


class FakeProvider:
    """Base of the strict fakes; subclasses define `_check` and `_answer`.

    A fake is a raw ASGI app.  For each HTTP request it reads the body, appends a
    `RecordedRequest` to `requests`, then either rejects the request (auth, route,
    validation: `_check`) or consumes the next scripted directive and acts on it.

    Like a real provider behind a CDN, it compresses every answer (JSON, errors and
    streams alike) with the first of `encodings` that the request's `accept-encoding`
    allows (br, then gzip; set `fake.encodings = ()` for plain answers) and records it
    in `RecordedRequest.content_encoding`.
    """

    def __init__(self, *, name: str) -> None:
        self.name = name
        self.encodings: tuple[str, ...] = ENCODINGS
        self._recorder = Recorder()
        self._script: deque[Directive] = deque()
        self._in_flight = 0

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, in arrival order."""
        return self._recorder.requests

    def script(self, *directives: Directive) -> None:
        """Queue directives; each valid request consumes one (default: `success()`)."""
        self._script.extend(directives)

    async def wait_for_requests(self, count: int = 1) -> list[RecordedRequest]:
        """Wait until `count` requests have arrived and return the first `count`.

        A request counts as soon as its body is read, before it is answered.  Bound the
        wait with `anyio.fail_after(...)` in the test.
        """
        return await self._recorder.wait_for(count)

    def statistics(self) -> FakeStatistics:
        return FakeStatistics(
            requests=len(self.requests), scripted=len(self._script), in_flight=self._in_flight
        )

    def __repr__(self) -> str:
        stats = self.statistics()
        return (
            f"<{type(self).__name__} {self.name!r} [requests {stats.requests} | "
            f"scripted {stats.scripted} | in flight {stats.in_flight}]>"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            raise RuntimeError(f"{type(self).__name__} serves HTTP only, not {scope['type']!r}")
        reader = BodyReader(receive)
        record = RecordedRequest.from_scope(scope, await reader.read_body())
        record.content_encoding = negotiate(
            record.headers.get("accept-encoding", ""), self.encodings
        )
        if record.content_encoding is not None:
            send = compressing(send, record.content_encoding)
        self._recorder.add(record)
        self._in_flight += 1
        try:
            rejection = self._check(record)
            if rejection is not None:
                await _answer(send, record, rejection)
                return
            directive = self._script.popleft() if self._script else Success()
            await self._act(directive, record, reader, scope, send)
        except anyio.get_cancelled_exc_class():
            record.disconnected = True  # the server stopped under this request
            raise
        finally:
            self._in_flight -= 1
            record.finished.set()

    def _check(self, record: RecordedRequest) -> Reply | None:
        """The provider's rejection of `record` (401, 404, 400...), or `None` to accept it."""
        raise NotImplementedError

    def _answer(self, record: RecordedRequest, directive: Success) -> Reply:
        """The provider's successful reply to an accepted request."""
        raise NotImplementedError

    async def _act(
        self,
        directive: Directive,
        record: RecordedRequest,
        reader: BodyReader,
        scope: Scope,
        send: Send,
    ) -> None:
        match directive:
            case Success():
                await _answer(send, record, self._answer(record, directive))
            case Error(status=status, body=body, headers=headers):
                await _answer(send, record, json_reply(status, body, headers))
            case Garbage(status=status, body=body, content_type=content_type):
                reply = Reply(status=status, body=body, content_type=content_type)
                await _answer(send, record, reply)
            case Hang():
                await reader.wait_disconnect()
                record.disconnected = True
            case Wait(event=event, then=then):
                if await _event_or_disconnect(event, reader):
                    await self._act(then, record, reader, scope, send)
                else:
                    record.disconnected = True
            case Stream(pieces=pieces, content_type=content_type):
                record.status = 200
                start = [(b"content-type", content_type.encode())]
                await send({"type": "http.response.start", "status": 200, "headers": start})
                for piece in pieces:
                    if isinstance(piece, bytes):
                        await send({"type": "http.response.body", "body": piece, "more_body": True})
                    elif not await _event_or_disconnect(piece, reader):
                        record.disconnected = True
                        return
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            case Flood():
                await _flood(directive, record, reader, send)
            case Close():
                record.dropped = True
                abort: Any = (scope.get("extensions") or {}).get(ABORT_EXTENSION)
                if abort is None:
                    raise ConnectionDropped(f"{self.name}: close() directive")
                abort()
                await reader.wait_disconnect()


async def _flood(flood: Flood, record: RecordedRequest, reader: BodyReader, send: Send) -> None:
    """Send `flood.head`, `flood.filler` (`times`, or until the client leaves), `flood.tail`.

    uvicorn's flow control holds `send` while the client reads slower than this
    writes, so nothing piles up here however fast the filler goes out.
    """
    record.status = flood.status
    start = [(b"content-type", flood.content_type.encode())]
    await send({"type": "http.response.start", "status": flood.status, "headers": start})
    async with anyio.create_task_group() as tg:
        tg.start_soon(reader.wait_disconnect)
        await send({"type": "http.response.body", "body": flood.head, "more_body": True})
        sent = 0
        while not reader.disconnected and (flood.times is None or sent < flood.times):
            await anyio.sleep(flood.interval_s)  # also lets the disconnect be seen
            await send({"type": "http.response.body", "body": flood.filler, "more_body": True})
            sent += 1
        if reader.disconnected:
            record.disconnected = True
        else:
            await send({"type": "http.response.body", "body": flood.tail, "more_body": False})
        tg.cancel_scope.cancel()


async def _answer(send: Send, record: RecordedRequest, reply: Reply) -> None:
    record.status = reply.status  # before sending: the client may look as soon as it has it
    await send_reply(send, reply)


async def _event_or_disconnect(event: anyio.Event, reader: BodyReader) -> bool:
    """Wait for `event` or the client leaving, whichever comes first; True for the event."""
    fired = False
    async with anyio.create_task_group() as tg:

        async def on_event() -> None:
            nonlocal fired
            await event.wait()
            fired = True
            tg.cancel_scope.cancel()

        async def on_disconnect() -> None:
            await reader.wait_disconnect()
            tg.cancel_scope.cancel()

        tg.start_soon(on_event)
        tg.start_soon(on_disconnect)
    return fired


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
