"""The SSE decoder: events are the same however the body is split."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors import ErrorClass, ProviderError
from actors.providers._openai import OpenAIStreamParser
from actors.providers._sse import MAX_EVENT_BYTES, ServerSentEvent, SSEDecoder


def decode(pieces: list[bytes]) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    events = [e for piece in pieces for e in decoder.feed(piece)]
    return events + decoder.close()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(b"data: {}\n\ndata: [DONE]\n\n", [("message", b"{}"), ("message", b"[DONE]")],
                     id="openai"),
        pytest.param(b"event: ping\ndata: {}\n\n", [("ping", b"{}")], id="named-event"),
        pytest.param(b": OPENROUTER PROCESSING\n\ndata: x\n\n", [("message", b"x")], id="comment"),
        pytest.param(b"data: a\r\ndata: b\r\n\r\n", [("message", b"a\nb")], id="crlf-multiline"),
        pytest.param(b"data:no-space\n\n", [("message", b"no-space")], id="no-space"),
        pytest.param(b"event: x\n\n", [], id="no-data-no-event"),
        pytest.param(b"data: last", [("message", b"last")], id="unterminated-last"),
        pytest.param(b"\n\n\ndata: a\n\n", [("message", b"a")], id="leading-blank-lines"),
    ],
)  # fmt: skip
def test_events(body: bytes, expected: list[tuple[str, bytes]]) -> None:
    """Names, data joining, comments and line ends follow the event-stream format."""
    assert [(e.event, e.data) for e in decode([body])] == expected


BODY = (
    b'event: message_start\r\ndata: {"a": 1}\r\n\r\n: keep-alive\n\n'
    b'data: {"b": 2}\n\ndata: line1\ndata: line2\n\ndata: cr\rdata: only\r\r'
    b"data: [DONE]\n\n"
)


@given(st.lists(st.integers(0, len(BODY)), max_size=8))
def test_split_invariance(cuts: list[int]) -> None:
    """Any split of the body into pieces gives the same events."""
    points = [0, *sorted(cuts), len(BODY)]
    pieces = [BODY[a:b] for a, b in itertools.pairwise(points)]
    assert decode(pieces) == decode([BODY])


def test_a_line_that_never_ends_is_cut_at_the_event_limit() -> None:
    """An unterminated line fails the stream once it passes the limit, not at memory's end."""
    decoder = SSEDecoder()
    assert decoder.feed(b"data: ok\n\ndata: {") == [ServerSentEvent("message", b"ok")]
    piece = b"x" * 65536
    fed = 0
    with pytest.raises(ProviderError) as caught:
        while fed <= 4 * MAX_EVENT_BYTES:
            decoder.feed(piece)
            fed += len(piece)
    assert caught.value.error is ErrorClass.SERVER_ERROR
    held = len(b"data: {") + fed  # what the decoder held before the read that failed
    assert held <= MAX_EVENT_BYTES + 1 < held + len(piece)


@pytest.mark.parametrize(
    "pieces",
    [
        pytest.param([b"data: " + b"y" * 300 + b"\n\n"], id="whole-event-in-one-piece"),
        pytest.param([b"data: ", b"y" * 150, b"y" * 150, b"\n\n"], id="event-in-pieces"),
        pytest.param([b": " + b"p" * 300], id="comment-line"),
    ],
)  # fmt: skip
def test_any_event_over_the_limit_fails(pieces: list[bytes]) -> None:
    """The limit holds for events completed in one piece and for comments alike."""
    decoder = SSEDecoder(max_event_bytes=256)
    with pytest.raises(ProviderError):
        for piece in pieces:
            decoder.feed(piece)


def test_events_up_to_the_limit_pass_whatever_the_split() -> None:
    """An event of exactly the limit is decoded, in one piece or in many."""
    event = b"data: " + b"z" * 250
    assert len(event) == 256
    for size in (1, 7, 256, 300):
        body = event + b"\n\n" + event + b"\n\n"
        pieces = [body[i : i + size] for i in range(0, len(body), size)]
        decoder = SSEDecoder(max_event_bytes=256)
        events = [e for p in pieces for e in decoder.feed(p)] + decoder.close()
        assert [e.data for e in events] == [b"z" * 250] * 2


def test_chunks_before_an_oversized_event_are_delivered_first() -> None:
    """The stream parser hands on the chunks an overflowing read completed, then fails."""
    chunk = (
        b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m",'
        b'"choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}\n\n'
    )
    parser = OpenAIStreamParser()
    with pytest.raises(ProviderError) as caught:
        parser.feed(chunk + b"data: " + b"x" * (MAX_EVENT_BYTES + 1))
    [delivered] = caught.value.partial
    assert delivered.choices[0].delta.content == "hi"  # type: ignore[attr-defined]
