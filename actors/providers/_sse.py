"""An incremental decoder for server-sent events (the WHATWG event-stream format).

Providers stream over SSE: `data:` lines (joined with newlines), an optional
`event:` name, `:` comment lines (keep-alives such as `: OPENROUTER PROCESSING`)
that carry nothing, and a blank line that ends each event. Bytes arrive in
arbitrary pieces; `feed` keeps the unfinished tail for the next call.

Decoding is linear in the bytes fed: each piece is scanned once (line ends
normalised, blank lines searched) and only from where the previous scan
stopped, and an unfinished event waits in one growing `bytearray`, never
re-copied. An event (its unfinished tail included) longer than
`max_event_bytes` (1 MiB by default) fails the stream as `server_error`: an
upstream that never ends a line can cost no more than that. This runs per chunk
on the hot path, so the usual read, whole one-line `data: ...` events and no
unfinished tail before it, is cut with one split (`_one_line_events`, which gives
what the general path gives: tests/test_stream_fast_paths.py). Data stays bytes
(what the JSON decoders take).
"""

from __future__ import annotations

from typing import ClassVar, Final

from msgspec import Struct

from .._chat import ChatCompletionChunk
from .._exceptions import ErrorClass, ProviderError

MAX_EVENT_BYTES: Final = 1 << 20
"""The longest event (or unfinished line) a stream may send: 1 MiB."""


class ServerSentEvent(Struct, frozen=True):
    event: str
    data: bytes


class EventTooLarge(ProviderError):
    """An event grew past the decoder's limit; `events` are those completed before it."""

    def __init__(self, limit: int, events: list[ServerSentEvent]) -> None:
        super().__init__(
            ErrorClass.SERVER_ERROR,
            f"stream event longer than {limit} bytes (an unterminated line?)",
            status=200,
        )
        self.events = events


class SSEDecoder:
    """Turns byte pieces into complete events, in time and memory linear in the input."""

    __slots__ = ("_cr", "_limit", "_tail")

    def __init__(self, *, max_event_bytes: int = MAX_EVENT_BYTES) -> None:
        self._tail = bytearray()  # the unfinished event, line ends already normalised
        self._cr = False  # the last piece ended with CR: maybe the first half of a CRLF
        self._limit = max_event_bytes

    def feed(self, piece: bytes) -> list[ServerSentEvent]:
        """The events `piece` completes; `EventTooLarge` past the limit."""
        piece = self._normalised(piece)
        if not self._tail and piece.startswith(b"data: ") and len(piece) <= self._limit:
            events = self._one_line_events(piece)
            if events is not None:
                return events
        return self._feed(piece)

    def feed_data(self, piece: bytes) -> list[bytes]:
        """The data of the events `piece` completes: `[e.data for e in self.feed(piece)]`.

        For a parser that reads nothing but `data` (OpenAI's): the usual piece, whole
        one-line events, costs a split and no event object (`_one_line_data`).
        """
        if self._cr or piece.find(b"\r") >= 0:  # (no call for the usual LF-only piece)
            piece = self._normalised(piece)
        if not self._tail and piece.startswith(b"data: ") and len(piece) <= self._limit:
            end = piece.find(b"\n")
            if end == len(piece) - 2 and piece[-1] == 10:  # "data: x\n\n": a slow stream's
                return [piece[6:end]]  # every read, so no call
            datas = self._one_line_data(piece, end)
            if datas is not None:
                return datas
            events = self._one_line_events(piece)
            if events is not None:
                return [event.data for event in events]
        return [event.data for event in self._feed(piece)]

    def _normalised(self, piece: bytes) -> bytes:
        """`piece` with LF line ends (a CR at its very end held: maybe half a CRLF)."""
        if self._cr:
            piece = b"\r" + piece
            self._cr = False
        if piece.find(b"\r") >= 0:  # (`find`: cheaper than `in` per call, and this is per read)
            # CRLF and CR line ends; a CR at the very end may be the first half of a CRLF.
            if piece.endswith(b"\r"):
                piece = piece[:-1]
                self._cr = True
            piece = piece.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        return piece

    @staticmethod
    def _one_line_data(piece: bytes, end: int) -> list[bytes] | None:
        """The data of `piece` when it is whole one-line `data: ` events only (else `None`).

        Cut where a blank line is followed by `data: `: when no part has a line end in
        it but the last part's final blank line, the piece is `data: <part>` events, a
        blank line after each, whose data are the parts, as `_feed` reads them. (A line
        end is looked for in the parts joined: `memchr` over one copy costs less than
        `count` or a search a part; before the first line end there is none.)
        The caller checked the start, the limit and that no tail waits, and found the
        first line end (`end`).
        """
        if not piece.endswith(b"\n\n"):
            return None
        datas = piece.split(b"\n\ndata: ")
        joined = b"".join(datas)
        if joined.find(b"\n", end, len(joined) - 2) >= 0:
            return None  # a multi-line event, a comment, a blank line too many...
        datas[0] = datas[0][6:]
        datas[-1] = datas[-1][:-2]
        return datas

    def _one_line_events(self, piece: bytes) -> list[ServerSentEvent] | None:
        """The events of `piece` when each is one line (else `None`), with no tail before it.

        The usual piece: whole `data: {...}` events, a line and a blank line each. Its
        lines then alternate event, blank, event... (an odd count, the last one the
        unfinished rest), and cutting it at blank lines as `_feed` does gives those very
        lines: one split and a slice per event instead of a search and a copy per event.
        The caller checked that the piece is within the limit, so each event is too.
        """
        end = piece.find(b"\n")
        if end == len(piece) - 2 and piece.endswith(b"\n\n"):
            return [ServerSentEvent("message", piece[6:end])]  # a slow stream's every read
        lines = piece.split(b"\n")
        if not len(lines) & 1 or any(lines[1::2]):
            return None  # a multi-line event, or an odd run of line ends: the general path
        rest = lines.pop()
        events: list[ServerSentEvent] = []
        for line in lines[::2]:
            if line.startswith(b"data: "):
                events.append(ServerSentEvent("message", line[6:]))
            elif line:
                event = _event(line)  # `data:` without a space, a comment, a lone name
                if event is not None:
                    events.append(event)
        if rest:
            self._tail += rest
        return events

    def _feed(self, piece: bytes) -> list[ServerSentEvent]:
        """The general path: `piece` (line ends normalised) after what the tail holds."""
        tail = self._tail
        buffer: bytes | bytearray
        if tail:
            # Only the new bytes are searched, from the last one already seen (a blank
            # line may straddle the two).
            start = len(tail) - 1
            tail += piece
            buffer = tail
        else:
            start = 0
            buffer = piece
        events: list[ServerSentEvent] = []
        begin = 0
        limit = self._limit
        while True:
            end = buffer.find(b"\n\n", start)
            if end < 0:
                break
            if end - begin > limit:
                self._reset()
                raise EventTooLarge(limit, events)
            event = _event(bytes(buffer[begin:end]))
            if event is not None:
                events.append(event)
            begin = start = end + 2
        if buffer is tail:
            del tail[:begin]  # O(1) in CPython: the bytearray moves its start
        else:
            tail += memoryview(piece)[begin:]
        if len(tail) > limit + 1:  # an event of the limit may wait for its blank line's 2nd LF
            self._reset()
            raise EventTooLarge(limit, events)
        return events

    def close(self) -> list[ServerSentEvent]:
        """The last event when the body ends without its blank line."""
        held = b"\n" if self._cr else b""
        self._cr = False
        events = self.feed(held + b"\n\n") if self._tail.strip(b"\n") or held else []
        self._reset()
        return events

    def _reset(self) -> None:
        self._tail = bytearray()
        self._cr = False


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
        try:
            events = self._sse.feed(data)
        except EventTooLarge as exc:
            exc.partial = tuple(self._chunks(exc.events))  # delivered before the error
            raise
        return self._chunks(events)

    def close(self) -> list[ChatCompletionChunk]:
        chunks = self._chunks(self._sse.close())
        if not self._complete():
            raise ProviderError(ErrorClass.SERVER_ERROR, self.cut_message, status=200)
        return chunks + self._tail()

    def ended(self) -> bool:
        return False

    def _chunks(self, events: list[ServerSentEvent]) -> list[ChatCompletionChunk]:
        raise NotImplementedError

    def _complete(self) -> bool:
        raise NotImplementedError

    def _tail(self) -> list[ChatCompletionChunk]:
        """Chunks owed at the end of a complete stream (e.g. usage reported on the way)."""
        return []
