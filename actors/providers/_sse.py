"""An incremental decoder for server-sent events (the WHATWG event-stream format).

Providers stream over SSE: `data:` lines (joined with newlines), an optional
`event:` name, `:` comment lines (keep-alives such as `: OPENROUTER PROCESSING`)
that carry nothing, and a blank line that ends each event. Bytes arrive in
arbitrary pieces; `feed` keeps the unfinished tail for the next call.

Events are cut at blank lines in bulk and the usual one-line `data: ...` event
takes a fast path: streams are tens of events per answer, so this runs per
chunk on the hot path. Data stays bytes (what the JSON decoders take).
"""

from __future__ import annotations

from typing import ClassVar

from msgspec import Struct

from .._chat import ChatCompletionChunk
from .._exceptions import ErrorClass, ProviderError


class ServerSentEvent(Struct, frozen=True):
    event: str
    data: bytes


class SSEDecoder:
    """Turns byte pieces into complete events."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, piece: bytes) -> list[ServerSentEvent]:
        buffer = self._buffer + piece if self._buffer else piece
        if b"\r" in buffer:
            # CRLF and CR line ends; a CR at the very end may be the first half of a CRLF.
            held = buffer.endswith(b"\r")
            body = buffer[:-1] if held else buffer
            buffer = body.replace(b"\r\n", b"\n").replace(b"\r", b"\n") + (b"\r" if held else b"")
        events: list[ServerSentEvent] = []
        start = 0
        while True:
            end = buffer.find(b"\n\n", start)
            if end < 0:
                break
            event = _event(buffer[start:end])
            if event is not None:
                events.append(event)
            start = end + 2
        self._buffer = buffer[start:]
        return events

    def close(self) -> list[ServerSentEvent]:
        """The last event when the body ends without its blank line."""
        events = self.feed(b"\n\n") if self._buffer.strip(b"\r\n") else []
        self._buffer = b""
        return events


def _event(block: bytes) -> ServerSentEvent | None:
    if block.startswith(b"data: ") and b"\n" not in block:
        return ServerSentEvent("message", block[6:])
    name = ""
    data: list[bytes] = []
    for line in block.split(b"\n"):
        if not line or line.startswith(b":"):
            continue
        field, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if field == b"data":
            data.append(value)
        elif field == b"event":
            name = value.decode("utf-8", "replace")
    if not data:
        return None  # as the spec says: an event without data is not dispatched
    return ServerSentEvent(name or "message", b"\n".join(data))


class SSEStreamParser:
    """Base of the stream parsers of SSE-speaking providers.

    A subclass turns decoded events into chunks (`_chunks`) and says whether the
    stream reached its proper end (`_complete`); a body that ends before it was cut,
    which is a `server_error` (after the chunks it did complete, delivered first).
    """

    __slots__ = ("_sse",)

    cut_message: ClassVar[str] = "stream ended before its end marker"

    def __init__(self) -> None:
        self._sse = SSEDecoder()

    def feed(self, data: bytes) -> list[ChatCompletionChunk]:
        return self._chunks(self._sse.feed(data))

    def close(self) -> list[ChatCompletionChunk]:
        chunks = self._chunks(self._sse.close())
        if not self._complete():
            raise ProviderError(ErrorClass.SERVER_ERROR, self.cut_message, status=200)
        return chunks + self._tail()

    def _chunks(self, events: list[ServerSentEvent]) -> list[ChatCompletionChunk]:
        raise NotImplementedError

    def _complete(self) -> bool:
        raise NotImplementedError

    def _tail(self) -> list[ChatCompletionChunk]:
        """Chunks owed at the end of a complete stream (e.g. usage reported on the way)."""
        return []
