"""The SSE decoder: events are the same however the body is split."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.providers._sse import ServerSentEvent, SSEDecoder


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
    b'data: {"b": 2}\n\ndata: line1\ndata: line2\n\ndata: [DONE]\n\n'
)


@given(st.lists(st.integers(0, len(BODY)), max_size=8))
def test_split_invariance(cuts: list[int]) -> None:
    """Any split of the body into pieces gives the same events."""
    points = [0, *sorted(cuts), len(BODY)]
    pieces = [BODY[a:b] for a, b in itertools.pairwise(points)]
    assert decode(pieces) == decode([BODY])
