"""Anthropic streaming: named SSE events in, OpenAI chunks out, however the body is split;
in-stream errors classified; end to end through the daemon against the strict fake."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors import ChatRequest, ErrorClass
from actors.providers import AnthropicAdapter
from actors.providers._anthropic_stream import AnthropicStreamParser
from config import parse_config

from .fakes import (
    anthropic_message_events,
    anthropic_sse,
    anthropic_stream_error,
    anthropic_text_events,
    check_messages_request,
)
from .provider_streams import (
    assemble,
    assert_split_invariant,
    run,
    split,
)

MODEL = "claude-sonnet-4-5"
KEY = "sk-ant-stream"


def parser() -> AnthropicStreamParser:
    return AnthropicStreamParser(model="deployment-model", created=1)


def message(*content: dict[str, Any], stop_reason: str, **usage: int) -> dict[str, Any]:
    return {"id": "msg_01", "type": "message", "role": "assistant", "model": MODEL,
            "content": list(content), "stop_reason": stop_reason, "stop_sequence": None,
            "usage": {"input_tokens": 412, "output_tokens": 38, **usage}}  # fmt: skip


def use(call_id: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"type": "tool_use", "id": call_id, "name": name, "input": arguments}


def usage(prompt: int, completion: int, **extra: Any) -> dict[str, Any]:
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion, **extra}  # fmt: skip


def answer(text: str, calls: list[tuple[str, str, str]], finish: str, used: Any) -> dict[str, Any]:
    listed = [{"id": i, "name": n, "arguments": a} for i, n, a in calls]
    return {"text": text, "calls": listed, "finish": finish, "usage": used}


TEXT = anthropic_text_events("Hel", "lo, wörld ✓")
START, BLOCK, DELTA = TEXT[0], TEXT[1], TEXT[2]
TOOL_MESSAGE = message(
    {"type": "text", "text": "Checking."},
    use("toolu_01", "get_weather", {"city": "Rome"}),
    use("toolu_02", "get_time", {}),
    stop_reason="tool_use",
    cache_read_input_tokens=100,
    cache_creation_input_tokens=0,
)
BARE_CALL = [  # a tool_use without input streams no input_json_delta at all
    START,
    {"type": "content_block_start", "index": 0, "content_block": use("toolu_9", "now", {})},
    {"type": "content_block_stop", "index": 0},
    {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 3}},
    {"type": "message_stop"},
]
THINKING = [
    START,
    {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking"}},
    {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "thinking_delta", "thinking": "h"},
    },
    {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta"}},
    {"type": "content_block_stop", "index": 0},
    {"type": "future_event", "what": "ever"},
    *TEXT[1:],
]

STREAMS = [
    pytest.param(anthropic_sse(*TEXT), answer("Hello, wörld ✓", [], "stop", usage(10, 2)),
                 id="text"),
    pytest.param(
        anthropic_sse(*anthropic_message_events(TOOL_MESSAGE)),
        answer("Checking.", [("toolu_01", "get_weather", '{"city": "Rome"}'),
                             ("toolu_02", "get_time", "{}")],
               "tool_calls", usage(512, 38, prompt_tokens_details={"cached_tokens": 100})),
        id="text-then-two-tool-calls",
    ),
    pytest.param(anthropic_sse(*BARE_CALL), answer("", [("toolu_9", "now", "{}")], "tool_calls",
                                                   usage(10, 3)), id="call-without-input"),
    pytest.param(
        b": keep-alive\r\n\r\n" + anthropic_sse(TEXT[0], {"type": "ping"}, *TEXT[1:]).replace(
            b"\n", b"\r\n"
        ),
        answer("Hello, wörld ✓", [], "stop", usage(10, 2)),
        id="crlf-comments-and-pings",
    ),
    pytest.param(anthropic_sse(*THINKING), answer("Hello, wörld ✓", [], "stop", usage(10, 2)),
                 id="thinking-and-unknown-events-skipped"),
    pytest.param(anthropic_sse(*TEXT[:-1]), answer("Hello, wörld ✓", [], "stop", usage(10, 2)),
                 id="no-message-stop-after-stop-reason"),
    pytest.param(anthropic_sse(*TEXT, anthropic_stream_error()),
                 answer("Hello, wörld ✓", [], "stop", usage(10, 2)), id="nothing-after-stop"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "expected"), STREAMS)
def test_stream_becomes_openai_chunks(body: bytes, expected: dict[str, Any]) -> None:
    """Text, tool calls, finish reason and usage arrive in OpenAI's chunk form."""
    result = run(parser(), [body])
    assert result.error is None
    assert assemble(result.chunks) == expected
    [(message_id, model, created)] = {(c.id, c.model, c.created) for c in result.chunks}
    assert message_id.startswith("msg_") and (model, created) == (MODEL, 1)
    assert result.chunks[-1].choices == () and result.chunks[-1].usage


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [("end_turn", "stop"), ("stop_sequence", "stop"), ("pause_turn", "stop"),
     ("max_tokens", "length"), ("model_context_window_exceeded", "length"),
     ("refusal", "content_filter"), ("tool_use", "tool_calls"), ("brand_new", "stop")],
)  # fmt: skip
def test_stop_reason_maps_as_for_whole_answers(stop_reason: str, finish: str) -> None:
    """stop_reason becomes the finish_reason of a whole answer (PROVIDERS.md §8.2)."""
    body = anthropic_sse(*anthropic_text_events("x", stop_reason=stop_reason))
    assert assemble(run(parser(), [body]).chunks)["finish"] == finish


def failing(*extra: dict[str, Any]) -> bytes:
    return anthropic_sse(START, BLOCK, DELTA, *extra)


FAILURES = [
    pytest.param(failing(anthropic_stream_error()), ErrorClass.OVERLOADED, "Hel",
                 "in-stream error overloaded_error: Overloaded", id="overloaded"),
    pytest.param(failing(anthropic_stream_error("rate_limit_error", "slow down")),
                 ErrorClass.RATE_LIMITED, "Hel", "slow down", id="rate-limited"),
    pytest.param(failing(anthropic_stream_error("api_error", "Internal server error")),
                 ErrorClass.SERVER_ERROR, "Hel", "api_error", id="api-error"),
    pytest.param(failing(anthropic_stream_error("invalid_request_error",
                                                "prompt is too long: 213021 tokens > 200000")),
                 ErrorClass.CONTEXT_WINDOW_EXCEEDED, "Hel", "too long", id="prompt-too-long"),
    pytest.param(failing(anthropic_stream_error("strange_error", "?")), ErrorClass.SERVER_ERROR,
                 "Hel", "strange_error", id="unknown-error-type"),
    pytest.param(anthropic_sse(START, {"type": "ping"}, anthropic_stream_error()),
                 ErrorClass.OVERLOADED, "", "Overloaded", id="error-before-content"),
    pytest.param(failing() + b"event: content_block_delta\ndata: {not json\n\n",
                 ErrorClass.SERVER_ERROR, "Hel", "invalid anthropic stream event",
                 id="garbage-event"),
    pytest.param(failing(), ErrorClass.SERVER_ERROR, "Hel", "ended before message_stop",
                 id="cut-before-message-stop"),
    pytest.param(b"", ErrorClass.SERVER_ERROR, "", "ended before", id="empty-body"),
    pytest.param(failing({"type": "content_block_delta", "index": 0,
                          "delta": {"type": "input_json_delta", "partial_json": "{"}}),
                 ErrorClass.SERVER_ERROR, "Hel", "not a tool_use", id="arguments-for-text"),
    pytest.param(anthropic_sse(START, {"type": "content_block_start", "index": 0,
                                       "content_block": {"type": "tool_use", "name": "x"}}),
                 ErrorClass.SERVER_ERROR, "", "without id", id="tool-use-without-id"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "error", "text", "words"), FAILURES)
def test_failures_are_classified_after_the_chunks_before_them(
    body: bytes, error: ErrorClass, text: str, words: str
) -> None:
    """In-stream errors classify like answered ones; garbage and cuts are server errors."""
    result = run(parser(), [body])
    assert result.error is not None
    assert result.error[0] is error and words in result.error[1]
    assert assemble(result.chunks)["text"] == text


def test_billing_error_in_stream_is_not_retryable() -> None:
    """A billing error mid-stream is quota: fall back, do not retry."""
    body = failing(anthropic_stream_error("billing_error", "credit balance is too low"))
    result = run(parser(), [body])
    assert result.error == (
        ErrorClass.RATE_LIMITED,
        "in-stream error billing_error: credit balance is too low",
        False,
    )


BODIES = [pytest.param(param.values[0], id=param.id) for param in (*STREAMS, *FAILURES)]


@pytest.mark.parametrize("body", BODIES)
def test_every_split_gives_the_same_chunks(body: bytes) -> None:
    """Split in two anywhere, or fed byte by byte, the body gives the same chunks and error."""
    assert_split_invariant(parser, body)


@settings(max_examples=40, deadline=None)
@given(data=st.data())
@pytest.mark.parametrize("body", BODIES)
def test_random_splits_give_the_same_chunks(body: bytes, data: st.DataObject) -> None:
    """Any number of cuts anywhere give what the whole body gives."""
    cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=12))
    assert run(parser(), split(body, cuts)) == run(parser(), [body])


# -- the adapter -----------------------------------------------------------------


def adapter() -> AnthropicAdapter:
    text = f'[[deployment]]\nname = "c"\ngroup = "g"\nprovider = "anthropic"\nmodel = "{MODEL}"\n'
    return AnthropicAdapter(parse_config(text + 'api_key = "k"\n').deployment[0])


def test_stream_request_and_fresh_parsers() -> None:
    """stream=true sets "stream": true and asks for SSE; each attempt gets a new parser."""
    base = {"model": "g", "messages": [{"role": "user", "content": "hi"}]}
    streamed = adapter().build(msgspec.convert({**base, "stream": True}, ChatRequest))
    whole = adapter().build(msgspec.convert(base, ChatRequest))
    body = json.loads(streamed.body)
    assert body["stream"] is True and "stream" not in json.loads(whole.body)
    assert check_messages_request(body) is None
    assert streamed.headers["accept"] == "text/event-stream"
    assert streamed.url == whole.url
    first, second = adapter().stream_parser(), adapter().stream_parser()
    assert first is not second
    assert repr(first).endswith("streaming [tool calls 0]>")
