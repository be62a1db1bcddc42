"""uvicorn's httptools protocol, bounded: what a connection may cost before and after a request.

uvicorn bounds the keep-alive gap (`timeout_keep_alive`) and, after the head, the number
of requests in flight (`limit_concurrency`); it bounds nothing a client sends before its
head is complete, nor the body of a request it has already answered. This subclass adds,
per connection:

- a deadline for the request head (`header_timeout_s`, from its first byte; for a fresh
  connection from its accept), and caps on its size and header count (431);
- a deadline for the body after the head (`body_timeout_s`);
- a deadline for a client that reads nothing of its answer (`send_timeout_s`);
- `connection: close` on any answer given before its request body arrived whole (413,
  401, ...), so uvicorn stops reading instead of swallowing the rest, forever if it never
  ends;
- upgrade requests (WebSocket, h2c) answered as plain HTTP, then the connection closed:
  uvicorn runs with `ws="none"`, and the parser cannot read past an upgrade head;
- malformed requests answered 400 in OpenAI's error shape, logged a few times a minute
  at most (`LogBudget`), not once each;
- its place in the daemon's `Connections` (max_connections).

It also gives each request its id (`_requestlog.request_id_of`) in the scope's extensions,
and answers it in `x-request-id` among uvicorn's own default headers: no ASGI `send`
wrapper per request.

Closing after an error answer lingers (RFC 9112 §9.6): the write side is shut, and what
the client still sends is read and dropped, up to `linger_bytes` or `_LINGER_S`. Closing a
socket with unread input resets it, and a reset makes the client's kernel drop the answer
before the client has read it.
"""

from __future__ import annotations

import asyncio
import http
import logging
from typing import Any, Final

import httptools
import msgspec
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ._connections import Connections
from ._disconnect import EXTENSION, Disconnect
from ._requestlog import REQUEST_ID_EXTENSION, REQUEST_ID_HEADER, RequestIds, request_id_of

logger = logging.getLogger("dispatcher.connections")

_LINGER_S: Final = 2.0
_HEAD_TOO_LARGE: Final = "request_header_fields_too_large"


class _HeadTooLarge(Exception):
    """The request head crossed max_header_bytes or max_headers."""


def raw_answer(status: int, message: str, code: str, *headers: bytes) -> bytes:
    """A whole HTTP/1.1 answer in OpenAI's error shape that closes the connection."""
    error = {
        "message": message,
        "type": "invalid_request_error" if status < 500 else "service_unavailable",
        "code": code,
        "param": None,
    }
    body = msgspec.json.encode({"error": error})
    lines = [
        b"HTTP/1.1 %d %s" % (status, http.HTTPStatus(status).phrase.encode()),
        b"content-type: application/json",
        b"content-length: %d" % len(body),
        b"connection: close",
        *headers,
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


_BUSY: Final = raw_answer(
    503, "The server has too many connections; retry shortly.", "overloaded", b"retry-after: 1"
)


class _CycleTransport:
    """The transport as uvicorn's request cycle sees it: an answer's head goes out with
    the first piece of its body, and its close (after a `connection: close` answer)
    lingers.

    uvicorn writes an answer's head on `http.response.start` and its body on the next
    message: two writes, two system calls, and two reads for the client. The head is held
    instead, and sent with the next write; a body that does not follow in the same turn
    of the event loop (a stream's first chunk still on its way) does not hold it longer.
    """

    __slots__ = ("_held", "_loop", "_protocol", "_transport")

    def __init__(self, protocol: BoundedProtocol, transport: asyncio.Transport) -> None:
        self._protocol = protocol
        self._transport = transport
        self._loop = protocol.loop
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.writelines((held, data))
        elif data.startswith(b"HTTP/1.1 "):  # an answer's head
            self._held = data
            self._loop.call_soon(self.flush)
        else:
            self._transport.write(data)

    def flush(self) -> None:
        """Write the held head, if any."""
        held = self._held
        if held is not None:
            self._held = None
            if not self._transport.is_closing():
                self._transport.write(held)

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def close(self) -> None:
        self.flush()
        self._protocol.linger()


class BoundedProtocol(HttpToolsProtocol):
    """One client connection under the daemon's `Connections` limits (see the module)."""

    def __init__(
        self, *args: Any, connections: Connections, request_ids: RequestIds, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self._connections = connections
        self._request_ids = request_ids
        self._limits = connections.limits
        self._reading_head = True
        self._head_begun = False  # the parser has begun a request head (its first byte)
        self._in_body = False  # ... and completed the head, but not yet the body
        self._head_room = self._limits.max_header_bytes
        self._header_count = 0
        self._keep_alive_after_body = False
        self._closing = False
        self._draining = False
        self._linger_room = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._send_timer: asyncio.TimerHandle | None = None
        self._linger_timer: asyncio.TimerHandle | None = None
        # The signals of this connection's requests not yet answered (pipelining: several).
        self._disconnects: list[tuple[Any, Disconnect]] = []

    # -- connection ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._cycle_transport = _CycleTransport(self, transport)
        if not self._connections.admit(self):
            self._closing = True  # no lingering here: that would hold the fd it lacks
            transport.write(_BUSY)
            transport.close()
            return
        self._head_timer = self.loop.call_later(self._limits.header_timeout_s, self._head_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._connections.release(self)
        for timer in (self._head_timer, self._body_timer, self._send_timer, self._linger_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._body_timer = self._send_timer = self._linger_timer = None
        super().connection_lost(exc)
        disconnects, self._disconnects = self._disconnects, []
        for cycle, disconnect in disconnects:
            if not cycle.response_complete:
                disconnect.fire()

    def evict(self) -> None:
        """Close now: the daemon is at max_connections and a new client needs the place."""
        self._closing = True
        self.transport.close()

    def shutdown(self) -> None:
        self._draining = True
        super().shutdown()

    def linger(self) -> None:
        """Close without losing the answer just written (see the module)."""
        transport = self.transport
        if transport.is_closing() or self._linger_timer is not None:
            return
        self._closing = True
        self.pipeline.clear()  # requests read after this answer are not answered
        for timer in (self._head_timer, self._body_timer):  # nothing more is read or answered
            if timer is not None:
                timer.cancel()
        self._head_timer = self._body_timer = None
        self._linger_room = self._limits.linger_bytes
        self._connections.closing(self)
        if not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()
        transport.resume_reading()
        self._linger_timer = self.loop.call_later(_LINGER_S, transport.close)

    # -- reading --------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._closing:  # dropped: an answer is being finished, or lingering
            if self._linger_timer is not None:
                self._linger_room -= len(data)
                if self._linger_room < 0:
                    self.transport.close()
            return
        self._unset_keepalive_if_required()
        self._feed(data)
        # The deadlines start only for a head or a body left unfinished by this read: a
        # request that arrives whole in one read (nearly all of them) costs no timer.
        if self._closing:
            return
        if self._reading_head:
            if self._head_begun and self._head_timer is None:
                self._head_timer = self.loop.call_later(
                    self._limits.header_timeout_s, self._head_timed_out
                )
        elif self._in_body and self._body_timer is None:
            self._body_timer = self.loop.call_later(
                self._limits.body_timeout_s, self._body_timed_out
            )

    def _feed(self, data: bytes) -> None:
        while data:
            if self._reading_head:
                # Feed no more than the head may still take: a 50 MB header is refused
                # after max_header_bytes, never accumulated by the parser.
                part, data = data[: self._head_room], data[self._head_room :]
                self._head_room -= len(part)
            else:
                part, data = data, b""
            try:
                self.parser.feed_data(part)
            except httptools.HttpParserUpgrade:
                self._close_after_answer()
                return
            except httptools.HttpParserError as exc:
                if isinstance(exc.__context__, _HeadTooLarge):
                    self._refuse_head(str(exc.__context__))
                else:
                    self._refuse_malformed(exc)
                return
            if self._reading_head and self._head_room <= 0:
                self._refuse_head(
                    f"Request headers are over the {self._limits.max_header_bytes}-byte limit."
                )
                return

    def on_message_begin(self) -> None:
        self._header_count = 0
        self._head_begun = True
        super().on_message_begin()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self._limits.max_headers:
            raise _HeadTooLarge(f"More than {self._limits.max_headers} request headers.")
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._reading_head = False
        self._head_begun = False
        self._in_body = True
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        self._connections.busy(self)
        # Before uvicorn starts the app on this scope: the route finds the signal in it.
        disconnect = Disconnect()
        extensions: dict[str, Any] = self.scope.setdefault("extensions", {})
        extensions[EXTENSION] = disconnect
        request_id = request_id_of(self.headers, self._request_ids)
        extensions[REQUEST_ID_EXTENSION] = request_id
        super().on_headers_complete()
        cycle = self.cycle
        cycle.default_headers = [
            *cycle.default_headers,
            (REQUEST_ID_HEADER, request_id.encode("ascii")),
        ]
        self._disconnects = [(c, d) for c, d in self._disconnects if not c.response_complete]
        self._disconnects.append((cycle, disconnect))
        cycle.transport = self._cycle_transport  # type: ignore[assignment]  # what it uses
        # Until the body has arrived whole, an answer closes the connection: uvicorn would
        # otherwise keep reading (and dropping) a body nobody wants, forever if it never ends.
        self._keep_alive_after_body = cycle.keep_alive
        cycle.keep_alive = False

    def on_message_complete(self) -> None:
        self._in_body = False
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        cycle = self.cycle
        super().on_message_complete()
        if not cycle.response_started:
            cycle.keep_alive = self._keep_alive_after_body and not self._draining
        self._reading_head = True
        self._head_room = self._limits.max_header_bytes

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self._closing and not self.transport.is_closing() and not self._in_flight():
            self._connections.idle(self)

    # -- writing --------------------------------------------------------------------

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._send_timer is None:
            self._send_timer = self.loop.call_later(
                self._limits.send_timeout_s, self._send_timed_out
            )

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._send_timer is not None:
            self._send_timer.cancel()
            self._send_timer = None

    # -- ending ---------------------------------------------------------------------

    def _in_flight(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete

    def _close_after_answer(self) -> None:
        """Read no more requests; close once the request in flight (if any) is answered."""
        if self._in_flight():
            self._keep_alive_after_body = False
            self.cycle.keep_alive = False
            self._closing = True
            self.transport.pause_reading()
        else:
            self.linger()

    def _refuse(self, answer: bytes) -> None:
        if self._closing:  # an answer is already the last one
            return
        if self._in_flight():  # never interleave with an answer being written
            self._close_after_answer()
            return
        self.transport.write(answer)
        self.linger()

    def _refuse_head(self, message: str) -> None:
        self._connections.on_reject("header_too_large")
        self._refuse(raw_answer(431, message, _HEAD_TOO_LARGE))

    def _refuse_malformed(self, exc: Exception) -> None:
        self._connections.invalid_log.log(
            "invalid HTTP request from %s: %s", _peer(self.client), exc
        )
        self._refuse(raw_answer(400, f"Invalid HTTP request: {exc}", "invalid_http_request"))

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._head_room < self._limits.max_header_bytes:  # a head had begun
            logger.debug("%s: request head incomplete at header_timeout_s", _peer(self.client))
            self._refuse(raw_answer(408, "The request head came too slowly.", "request_timeout"))
        elif not self._in_flight():
            self.transport.close()

    def _body_timed_out(self) -> None:
        self._body_timer = None
        logger.debug("%s: request body incomplete at body_timeout_s", _peer(self.client))
        self._closing = True
        self.transport.close()  # the app's receive() answers http.disconnect

    def _send_timed_out(self) -> None:
        self._send_timer = None
        logger.debug("%s: read nothing of its answer for send_timeout_s", _peer(self.client))
        self._closing = True
        self.transport.abort()


def _peer(client: tuple[str, int] | None) -> str:
    return f"{client[0]}:{client[1]}" if client else "the unix socket"
