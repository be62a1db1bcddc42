"""An incremental decoder for server-sent events (the WHATWG event-stream format).

Providers stream over SSE: `data:` lines (joined with newlines), an optional
`event:` name, `:` comment lines (keep-alives such as `: OPENROUTER PROCESSING`)
that carry nothing, and a blank line that ends each event. Bytes arrive in
arbitrary pieces; `feed` keeps the unfinished tail for the next call.
"""

from __future__ import annotations

from msgspec import Struct


class ServerSentEvent(Struct, frozen=True):
    event: str
    data: str


class SSEDecoder:
    """Turns byte pieces into complete events."""

    __slots__ = ("_buffer", "_data", "_event")

    def __init__(self) -> None:
        self._buffer = b""
        self._event = ""
        self._data: list[str] = []

    def feed(self, piece: bytes) -> list[ServerSentEvent]:
        buffer = self._buffer + piece
        events: list[ServerSentEvent] = []
        start = 0
        while True:
            end = buffer.find(b"\n", start)
            if end < 0:
                break
            line = buffer[start:end]
            start = end + 1
            if line.endswith(b"\r"):
                line = line[:-1]
            event = self._line(line.decode("utf-8", "replace"))
            if event is not None:
                events.append(event)
        self._buffer = buffer[start:]
        return events

    def close(self) -> list[ServerSentEvent]:
        """Events still pending when the body ends (a last event without its blank line)."""
        events = self.feed(b"\n") if self._buffer else []
        if self._data:
            events.append(self._dispatch())
        return events

    def _line(self, line: str) -> ServerSentEvent | None:
        if not line:
            return self._dispatch() if self._data else None
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        return None

    def _dispatch(self) -> ServerSentEvent:
        event = ServerSentEvent(self._event or "message", "\n".join(self._data))
        self._event = ""
        self._data = []
        return event
