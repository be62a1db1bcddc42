"""The streaming hot path's shortcuts deliver exactly what the general code does.

The SSE decoder cuts a piece made of whole one-line events with one split
(`SSEDecoder._one_line_events`) instead of searching it event by event, and gives a
parser that reads only `data` the payloads alone (`feed_data`, `_one_line_data`); the
OpenAI parser reads an in-band `error` with the chunk instead of searching the bytes,
decodes each chunk in one fused loop and copies it only to rename something in it; the
client's events are built in one join. Each
is checked against the general path, over the recorded corpus and hand-made edge
cases, whole and split at every byte.
"""

from __future__ import annotations

import random
from typing import Any, Final

import msgspec
import pytest

from actors import ChatCompletionChunk, ErrorClass, encoder
from actors.providers._openai import OpenAIStreamParser, _raise_in_band, parse_openai_chunk
from actors.providers._sse import EventTooLarge, ServerSentEvent, SSEDecoder, SSEStreamParser
from dispatcher._sse_out import sse_body
from dispatcher._streaming import ErrorChunk

from .corpus_support import load_cases
from .provider_streams import run, split


class GeneralOnly(SSEDecoder):
    """The decoder without its shortcut: every piece takes the general path."""

    def _one_line_events(self, piece: bytes) -> list[ServerSentEvent] | None:
        return None

    @staticmethod
    def _one_line_data(piece: bytes, end: int) -> list[bytes] | None:
        return None


class Counting(SSEDecoder):
    """The decoder as it is, counting the pieces its shortcut decoded."""

    __slots__ = ("data_taken", "general", "taken")

    def __init__(self, *, max_event_bytes: int = 1 << 20) -> None:
        super().__init__(max_event_bytes=max_event_bytes)
        self.taken = 0
        self.data_taken = 0
        self.general = 0

    def _one_line_data(self, piece: bytes, end: int) -> list[bytes] | None:  # type: ignore[override]
        datas = SSEDecoder._one_line_data(piece, end)
        self.data_taken += datas is not None
        return datas

    def _feed(self, piece: bytes) -> list[ServerSentEvent]:
        self.general += 1
        return super()._feed(piece)

    def _one_line_events(self, piece: bytes) -> list[ServerSentEvent] | None:
        events = super()._one_line_events(piece)
        self.taken += events is not None
        return events


def decode(
    decoder: SSEDecoder, pieces: list[bytes]
) -> tuple[list[ServerSentEvent], int | None, bytes]:
    """Events, the count delivered before an `EventTooLarge` (if any), and what is held."""
    events: list[ServerSentEvent] = []
    try:
        for piece in pieces:
            events += decoder.feed(piece)
        held = bytes(decoder._tail)
        events += decoder.close()
    except EventTooLarge as exc:
        return events + exc.events, len(events + exc.events), b""
    return events, None, held


def decode_data(decoder: SSEDecoder, pieces: list[bytes]) -> tuple[list[bytes], int | None, bytes]:
    """`decode` through `feed_data`: the events' data, the count before an error, the tail."""
    datas: list[bytes] = []
    try:
        for piece in pieces:
            datas += decoder.feed_data(piece)
        held = bytes(decoder._tail)
        datas += [e.data for e in decoder.close()]
    except EventTooLarge as exc:
        datas += [e.data for e in exc.events]
        return datas, len(datas), b""
    return datas, None, held


def data_of(decoded: tuple[list[ServerSentEvent], int | None, bytes]) -> tuple[Any, ...]:
    events, failed_after, held = decoded
    return [e.data for e in events], failed_after, held


CORPUS_SSE: Final = [case.body() for case in load_cases() if case.file.endswith(".sse")]
EDGES: Final = [
    b'data: {"a":1}\n\ndata: [DONE]\n\n',
    b'data: {"a":1}\r\n\r\ndata: [DONE]\r\n\r\n',
    b"data: a\r\rdata: b\r\r",
    b"data: a\r\n\r\ndata: b\n\ndata: c\r\r",
    b"data: x\n\n: OPENROUTER PROCESSING\n\ndata: y\n\n",
    b": keep-alive\n\ndata: x\n\n",
    b"data: x\n\nevent: ping\ndata: {}\n\n",
    b"data: x\n\nevent: ping\n\ndata: y\n\n",
    b"data: x\n\ndata:y\n\ndata:  two spaces\n\n",
    b"data: a\n\ndata: b\ndata: c\n\n",
    b"data: a\n\n\n\ndata: b\n\n\n",
    b"data: a\n\n\ndata: b\n\n",
    b"data: \n\ndata:\n\ndata: x\n\n",
    b"data: a\n\ndata: b",
    b"data: a\n\ndata: b\n",
    b'data: {"c":"data: x"}\n\n',
    b"data: a\n\nid: 7\n\nretry: 10\ndata: b\n\n",
    b"data: a\n\nfoo\n\ndata: b\n\n",
    b"data: a\ndata: b\n\n",
    b'data: {"x":"\xc3\xa9\xe6\x97\xa5"}\n\n',
    b"data: a\n\ndata: \n\ndata: b\n\n",
    b"data: a\n\ndata: data: b\n\n",
    b"data: \n\n",
    b"data: a\n\ndata: b\n\n: c\n\n",
    b"data: a\n\ndata: b\n\n\n",
    b"data: x\ndata: y\n\ndata: z\n\n",
    b"data: a\n\ndata: b\n\ndata",
    b"data: a\n\nevent: e\ndata: b\n\n",
]


def splits(body: bytes) -> list[list[bytes]]:
    """The body whole, cut in two at every byte (or a sample when long), one byte at a
    time, in small fixed sizes and at random cuts."""
    n = len(body)
    cuts = range(1, n) if n <= 3000 else random.Random(n).sample(range(1, n), 300)
    out = [[body], [body[i : i + 1] for i in range(n)]]
    out += [split(body, [cut]) for cut in cuts]
    out += [[body[i : i + size] for i in range(0, n, size)] for size in (2, 3, 7, 64)]
    rng = random.Random(body)
    out += [split(body, rng.sample(range(1, n), min(n - 1, 5))) for _ in range(20)]
    return out


@pytest.mark.parametrize("body", [*CORPUS_SSE, *EDGES])
def test_sse_shortcut_decodes_as_the_general_path(body: bytes) -> None:
    """However the body is split, the shortcut gives the general path's events and tail."""
    for pieces in splits(body):
        assert decode(Counting(), pieces) == decode(GeneralOnly(), pieces), pieces


@pytest.mark.parametrize("limit", [8, 9, 10, 16, 17])
@pytest.mark.parametrize("body", EDGES)
def test_sse_shortcut_keeps_the_event_limit(body: bytes, limit: int) -> None:
    """Near the event limit the shortcut fails, or not, exactly where the general path does."""
    for pieces in splits(body):
        fast = decode(Counting(max_event_bytes=limit), pieces)
        assert fast == decode(GeneralOnly(max_event_bytes=limit), pieces), pieces


@pytest.mark.parametrize("body", [*CORPUS_SSE, *EDGES])
def test_sse_data_shortcut_gives_the_general_paths_data(body: bytes) -> None:
    """However the body is split, `feed_data` gives the data of the general path's events."""
    for pieces in splits(body):
        assert decode_data(Counting(), pieces) == data_of(decode(GeneralOnly(), pieces)), pieces


@pytest.mark.parametrize("limit", [8, 9, 10, 16, 17])
@pytest.mark.parametrize("body", EDGES)
def test_sse_data_shortcut_keeps_the_event_limit(body: bytes, limit: int) -> None:
    """Near the event limit `feed_data` fails, or not, exactly where the general path does."""
    for pieces in splits(body):
        fast = decode_data(Counting(max_event_bytes=limit), pieces)
        assert fast == data_of(decode(GeneralOnly(max_event_bytes=limit), pieces)), pieces


def test_sse_data_shortcut_serves_whole_one_line_events() -> None:
    """Whole one-line `data: ` events take a shortcut: one alone in a piece its own, many
    `_one_line_data`; a comment, a multi-line event or an unfinished tail does not."""
    for piece in [b'data: {"a":1}\n\n', b"data: \n\n", b'data: {"a":1}\r\n\r\n']:
        decoder = Counting()
        assert decoder.feed_data(piece) == [e.data for e in GeneralOnly().feed(piece)]
        assert (decoder.data_taken, decoder.taken, decoder.general) == (0, 0, 0), piece
    taken = [
        b'data: {"a":1}\n\ndata: {"b":2}\n\ndata: [DONE]\n\n',
        b'data: {"a":1}\r\n\r\ndata: [DONE]\r\n\r\n',
        b"data: \n\ndata: x\n\n",
    ]
    for piece in taken:
        decoder = Counting()
        decoder.feed_data(piece)
        assert decoder.data_taken == 1, piece
    for piece in [b'data: {"a":1}\n\ndata: {"b"', b"data: x\n\n: c\n\n", b"data: a\ndata: b\n\n"]:
        decoder = Counting()
        decoder.feed_data(piece)
        assert decoder.data_taken == 0, piece


def test_sse_shortcut_serves_the_usual_pieces() -> None:
    """Whole events, alone or many to a piece, LF or CRLF, take the shortcut (so the tests
    above compare it, not the general path with itself)."""
    pieces = [
        b'data: {"a":1}\n\n',
        b'data: {"a":1}\n\ndata: {"b":2}\n\ndata: [DONE]\n\n',
        b'data: {"a":1}\r\n\r\n',
        b'data: {"a":1}\n\ndata: {"b"',
        b"data: x\n\n: comment\n\ndata:y\n\n",
    ]
    for piece in pieces:
        decoder = Counting()
        decoder.feed(piece)
        assert decoder.taken == 1, piece
    multi_line = Counting()
    assert multi_line.feed(b"data: a\ndata: b\n\n") == [ServerSentEvent("message", b"a\nb")]
    assert multi_line.taken == 0


# -- the OpenAI parser ------------------------------------------------------------


def event(payload: dict[str, Any]) -> bytes:
    return b"data: " + msgspec.json.encode(payload) + b"\n\n"


def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [choice], **extra}  # fmt: skip


def sent(chunks: tuple[ChatCompletionChunk, ...] | list[ChatCompletionChunk]) -> list[Any]:
    """The chunks as the client reads them."""
    return [msgspec.json.decode(encoder.encode(c)) for c in chunks]


IN_BAND: Final = event({"error": {"message": "overloaded", "code": "server_error"}})


@pytest.mark.parametrize(
    "tail",
    [
        pytest.param(IN_BAND, id="in-band"),
        pytest.param(IN_BAND + b"data: [DONE]\n\n", id="in-band-then-done"),
        pytest.param(
            event({**chunk({"content": ""}, "error"), "error": {"message": "cut", "code": 502}}),
            id="openrouter-style",
        ),
    ],
)
def test_in_band_errors_are_found_however_the_key_is_split(tail: bytes) -> None:
    """An in-band error, cut anywhere, even a byte at a time, still ends the stream with
    the chunks before it delivered."""
    body = event(chunk({"role": "assistant", "content": "Hel"})) + tail
    for pieces in splits(body):
        got = run(OpenAIStreamParser(), pieces)
        assert got.error is not None, pieces
        assert got.error[0] is ErrorClass.SERVER_ERROR
        assert [c.choices[0].delta.content for c in got.chunks] == ["Hel"]


def test_an_error_key_is_read_as_json_reads_it() -> None:
    """The `error` member is found by the decode, not in the bytes: an escaped key is one
    too, as the official SDK (which parses the JSON) reads it."""
    body = event(chunk({"content": "a"})) + b'data: {"\\u0065rror": {"message": "m"}}\n\n'
    got = run(OpenAIStreamParser(), [body + b"data: [DONE]\n\n"])
    assert got.error == (ErrorClass.SERVER_ERROR, "in-stream error m", True)
    assert [c.choices[0].delta.content for c in got.chunks] == ["a"]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(event(chunk({"content": "error"})), id="content-is-the-word"),
        pytest.param(event(chunk({"content": 'say "error"'})), id="content-quotes-it"),
        pytest.param(event(chunk({"content": "x"}, error=None)), id="error-null"),
        pytest.param(event(chunk({"content": "x"}, error=[1])), id="error-not-an-object"),
        pytest.param(
            event(chunk({"content": [{"type": "text", "text": "x"}]}, error=7)),
            id="error-not-an-object-tolerant-read",
        ),
    ],
)
def test_an_error_word_that_is_no_error_object_is_content(body: bytes) -> None:
    """Only an `error` object (or message) is an in-band error, whatever the split; any
    other `error` member is left out of the chunk, as any unknown key is."""
    body += b"data: [DONE]\n\n"
    for pieces in splits(body):
        got = run(OpenAIStreamParser(), pieces)
        assert got.error is None and len(got.chunks) == 1, pieces
        assert "error" not in sent(got.chunks)[0]


ONE_EACH: Final = [
    pytest.param(chunk({"content": "hi"}), chunk({"content": "hi"}), id="plain"),
    pytest.param(
        chunk({"content": "hi", "obfuscation": "x"}, obfuscation="abc", stop_reason=None),
        chunk({"content": "hi"}),
        id="unknown-keys-dropped",
    ),
    pytest.param(
        {**chunk({"content": None, "role": None}), "usage": None, "system_fingerprint": None},
        {**chunk({"content": None, "role": None}), "usage": None, "system_fingerprint": None},
        id="nulls",
    ),
    pytest.param(
        chunk({"reasoning": "think"}), chunk({"reasoning_content": "think"}), id="reasoning"
    ),
    pytest.param(
        chunk({"reasoning": "a", "reasoning_content": "b"}),
        chunk({"reasoning_content": "b"}),
        id="reasoning-beside-reasoning-content",
    ),
    pytest.param(chunk({}, "eos"), chunk({}, "stop"), id="finish-eos"),
    pytest.param(chunk({}, "MAX_TOKENS"), chunk({}, "length"), id="finish-upper"),
    pytest.param(chunk({}, "something_new"), chunk({}, "stop"), id="finish-unknown"),
    pytest.param(chunk({}, ""), chunk({}, None), id="finish-empty"),
    pytest.param(chunk({}, "tool_calls"), chunk({}, "tool_calls"), id="finish-known"),
    pytest.param(
        {**chunk({}), "object": ""}, chunk({}), id="object-fixed"
    ),
    pytest.param(
        {**chunk({}), "choices": [
            {"index": 0, "delta": {"content": "a"}, "finish_reason": None},
            {"index": 1, "delta": {"reasoning": "b"}, "finish_reason": "end_turn"},
        ]},
        {**chunk({}), "choices": [
            {"index": 0, "delta": {"content": "a"}, "finish_reason": None},
            {"index": 1, "delta": {"reasoning_content": "b"}, "finish_reason": "stop"},
        ]},
        id="second-choice-renamed",
    ),
    pytest.param(
        chunk({"content": [{"type": "text", "text": "hi"}, {"type": "thinking", "thinking": "t"}]}),
        chunk({"content": "hi", "reasoning_content": "t"}),
        id="content-list-repaired",
    ),
    pytest.param(
        {**chunk({"content": "x"}), "created": 1.0}, chunk({"content": "x"}), id="float-created"
    ),
]  # fmt: skip


@pytest.mark.parametrize(("given", "expected"), ONE_EACH)
def test_chunks_are_read_and_renamed_as_before(
    given: dict[str, Any], expected: dict[str, Any]
) -> None:
    """Unknown keys dropped, nulls kept, reasoning and finish reasons in OpenAI's words, in
    every choice; the stream parser, however split, gives the same chunk."""
    want = [_encoded_shape(expected)]
    assert sent([parse_openai_chunk(msgspec.json.encode(given))]) == want
    body = event(given) + b"data: [DONE]\n\n"
    for pieces in splits(body)[:40]:
        got = run(OpenAIStreamParser(), pieces)
        assert got.error is None and sent(got.chunks) == want, pieces


class GeneralParser(OpenAIStreamParser):
    """The OpenAI parser without its shortcuts: events through the SSE decoder's general
    path, each chunk through `parse_openai_chunk`, one event at a time."""

    def __init__(self) -> None:
        super().__init__()
        self._sse = GeneralOnly()

    def feed(self, data: bytes) -> list[ChatCompletionChunk]:
        return SSEStreamParser.feed(self, data)  # whole events, through `_chunks`

    def _data_chunks(self, datas: list[bytes]) -> list[ChatCompletionChunk]:
        out: list[ChatCompletionChunk] = []
        for raw in datas:
            if raw == b"[DONE]":
                self._done = True
            elif raw and not self._done:
                if b'"error"' in raw:
                    _raise_in_band(raw, out)
                chunk = parse_openai_chunk(raw)
                if any(choice.finish_reason for choice in chunk.choices):
                    self._finished = True
                if chunk.choices or chunk.usage:
                    out.append(chunk)
        return out


OPENAI_SSE: Final = [
    case.body()
    for case in load_cases()
    if case.file.endswith(".sse") and case.provider in ("openai", "azure", "openai-compatible")
]
USAGE_ONLY: Final = {**chunk({}), "choices": [], "usage": {"total_tokens": 3}}
OPENAI_EDGES: Final = [
    event(chunk({"content": "a"})) + event(chunk({}, "eos")) + b"data: [DONE]\n\n",
    event(chunk({"content": "a"})) + event(chunk({}, "")) + b"data: [DONE]\n\n",
    event(chunk({"reasoning": "r"})) + event(chunk({}, "stop")),
    event(chunk({"content": "a"})) + event(USAGE_ONLY),
    event({**chunk({}), "choices": []}) + event(chunk({"content": "a"})),
    event({**chunk({}), "choices": [], "object": ""}),
    event({**chunk({}, "length"), "object": ""}),
    event({**chunk({}, "length"), "object": 1}),
    event(chunk({"content": "a"})) + b"data: {not json}\n\n",
    event(chunk({"content": "a"})) + event({"choices": "x"}),
    event(chunk({"content": ["a", {"type": "text", "text": "b"}]})),
    event(chunk({"content": "a"})) + event({**chunk({}), "created": 2.0}),
    event(chunk({"content": "a"})) + b"data: [DONE]\n\n" + event(chunk({"content": "late"})),
    event(chunk({"content": "a"})) + IN_BAND + event(chunk({"content": "b"})),
    event(chunk({"content": "a"}, error=None)) + event(chunk({"content": "b"}, error=[1])),
    event(chunk({"content": "error"}, error="")) + event({"error": "x", "choices": "y"}),
    event(chunk({"content": "a"})) + event({"error": {"message": "m"}, "created": "z"}),
    event(chunk({"content": "a"})) + event({**chunk({}, "eos"), "error": {"message": "m"}}),
    event(chunk({"content": [{"type": "text", "text": "a"}]}, error=7)),
    event(chunk({"content": 'a "error"', "tool_calls": [{"index": 0, "error": {}}]})),
    event({**chunk({}), "choices": [{"index": 0, "delta": {}, "finish_reason": None},
                                    {"index": 1, "delta": {}, "finish_reason": "stop"}]}),
]  # fmt: skip


@pytest.mark.parametrize("body", [*OPENAI_SSE, *OPENAI_EDGES])
def test_openai_parser_gives_what_its_general_path_does(body: bytes) -> None:
    """The fused per-chunk loop over the data shortcut gives the chunks, the end and the
    error that one chunk at a time over the general SSE path gives, however split."""
    for pieces in splits(body)[:200]:
        fast, general = run(OpenAIStreamParser(), pieces), run(GeneralParser(), pieces)
        assert fast.error == general.error, pieces
        assert fast.chunks == general.chunks, pieces
        assert sent(fast.chunks) == sent(general.chunks)


def _encoded_shape(payload: dict[str, Any]) -> dict[str, Any]:
    """`payload` as our encoder writes it: through the chunk type and back."""
    decoded = msgspec.json.decode(msgspec.json.encode(payload), type=ChatCompletionChunk)
    return msgspec.json.decode(encoder.encode(decoded))  # type: ignore[no-any-return]


# -- the client's side -------------------------------------------------------------


def test_sse_body_is_one_event_per_chunk() -> None:
    """A batch is its chunks' events in order, error chunk included; nothing for no chunks."""
    raws = [chunk({"role": "assistant", "content": ""}), chunk({"content": 'a "b"\n'}),
            chunk({}, "stop")]  # fmt: skip
    batch: list[ChatCompletionChunk | ErrorChunk] = [
        parse_openai_chunk(msgspec.json.encode(r)) for r in raws
    ]
    batch.append(ErrorChunk(id="c", created=1, model="m", error={"message": "x"}))
    body = sse_body(batch)
    assert body == b"".join(b"data: " + encoder.encode(c) + b"\n\n" for c in batch)
    events = SSEDecoder().feed(body)
    assert [e.data for e in events] == [encoder.encode(c) for c in batch]
    assert sse_body(batch[:1]) == b"data: " + encoder.encode(batch[0]) + b"\n\n"
    assert sse_body([]) == b""
