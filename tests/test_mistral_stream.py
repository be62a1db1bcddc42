"""Mistral streaming: its SSE chunks in, OpenAI's chunks out (tool calls renumbered, usage split
off, finish reasons mapped), however the body is split; in-stream errors classified; end to
end through the daemon against the strict fake."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors import ChatRequest, ErrorClass
from actors.providers import MistralAdapter, universal_id
from actors.providers._mistral_stream import MistralStreamParser
from config import parse_config

from .fakes import MistralFake, mistral_rate_limited, serve_app, sse, stream
from .helpers import running_daemon, uds_client
from .provider_streams import (
    WEATHER,
    assemble,
    assert_split_invariant,
    events,
    run,
    sdk,
    sdk_stream,
    split,
    streamed_text,
    two_deployments,
)

pytestmark = pytest.mark.anyio

MODEL = "mistral-large-latest"
KEY = "mistral-test-key"
ADAPTER = MistralAdapter(
    parse_config(
        f'[[deployment]]\nname = "m"\ngroup = "g"\nprovider = "mistral"\nmodel = "{MODEL}"\n'
        f'api_key = "{KEY}"\n'
    ).deployment[0]
)
USAGE = {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}


def chunk(delta: dict[str, Any], finish: str | None = None, **top: Any) -> dict[str, Any]:
    return {"id": "cmpl-1", "object": "chat.completion.chunk", "created": 7, "model": MODEL,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **top}  # fmt: skip


def call(name: str | None, arguments: Any = None, **fields: Any) -> dict[str, Any]:
    function: dict[str, Any] = {} if name is None else {"name": name}
    if arguments is not None:
        function["arguments"] = arguments
    return {"function": function, **fields}


def answer(text: str, calls: list[tuple[str, str, str]], finish: str, used: Any) -> dict[str, Any]:
    listed = [{"id": i, "name": n, "arguments": a} for i, n, a in calls]
    return {"text": text, "calls": listed, "finish": finish, "usage": used}


ROLE = chunk({"role": "assistant", "content": ""})
DONE = b"data: [DONE]\n\n"
TEXT = sse(ROLE, chunk({"content": "Hel"}), chunk({"content": "lo ✓"}),
           chunk({"content": ""}, "stop", usage=USAGE)) + DONE  # fmt: skip
TWO_CALLS = sse(
    ROLE,
    chunk({"tool_calls": [call("get_weather", '{"city": "Rome"}', id="D681PevKs", index=0),
                          call("get_time", {}, id="Xy12Ab34C", index=1)]}),
    chunk({"content": ""}, "tool_calls", usage=USAGE),
) + DONE  # fmt: skip
ALL_AT_INDEX_0 = sse(  # whole calls in separate chunks, each claiming index 0
    chunk({"role": "assistant", "tool_calls": [call("a", "{}", id="AAAAAAAAA", index=0)]}),
    chunk({"tool_calls": [call("b", '{"x":1}', id="BBBBBBBBB", index=0)]}, "tool_calls"),
) + DONE  # fmt: skip
FRAGMENTED = sse(  # a name first, then its arguments, with no id (seen in the wild)
    ROLE,
    chunk({"tool_calls": [call("get_weather", index=0)]}),
    chunk({"tool_calls": [call(None, '{"city":', index=0)]}),
    chunk({"tool_calls": [call(None, '"Rome"}', index=0, id="null")]}),
    chunk({}, "tool_calls"),
) + DONE  # fmt: skip
NO_INDEX = sse(  # the SDK's index is optional: a fragment with none continues the last call
    ROLE,
    chunk({"tool_calls": [call("f", '{"a":', id="CCCCCCCCC")]}),
    chunk({"tool_calls": [call(None, "1}")]}, "tool_calls"),
) + DONE  # fmt: skip
THINKING = (
    b": keep-alive\n\n"
    + sse(
        chunk({"role": "assistant", "content": [{"type": "thinking", "thinking": [
            {"type": "text", "text": "hmm"}]}]}),
        chunk({"content": [{"type": "text", "text": "42"}]}),
        chunk({"content": ""}, "model_length"),
    )
    + DONE
)  # fmt: skip
MINTED = universal_id("cmpl-1:0:0")  # nine alphanumerics from the stream id, choice, call

STREAMS = [
    pytest.param(TEXT, answer("Hello ✓", [], "stop", USAGE), id="text-usage-unasked"),
    pytest.param(TWO_CALLS, answer("", [("D681PevKs", "get_weather", '{"city": "Rome"}'),
                                        ("Xy12Ab34C", "get_time", "{}")], "tool_calls", USAGE),
                 id="two-whole-calls-in-one-chunk"),
    pytest.param(ALL_AT_INDEX_0, answer("", [("AAAAAAAAA", "a", "{}"), ("BBBBBBBBB", "b",
                 '{"x":1}')], "tool_calls", None), id="calls-repeating-index-0"),
    pytest.param(FRAGMENTED, answer("", [(MINTED, "get_weather", '{"city":"Rome"}')],
                                    "tool_calls", None), id="fragmented-call-without-id"),
    pytest.param(NO_INDEX, answer("", [("CCCCCCCCC", "f", '{"a":1}')], "tool_calls", None),
                 id="fragment-without-index"),
    pytest.param(THINKING, answer("42", [], "length", None), id="thinking-left-out"),
    pytest.param(sse(chunk({"content": "x"}, "stop")), answer("x", [], "stop", None),
                 id="finished-without-done"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "expected"), STREAMS)
def test_stream_becomes_openai_chunks(body: bytes, expected: dict[str, Any]) -> None:
    """Text, tool calls (OpenAI's index rules) and usage arrive as OpenAI streams them."""
    got = run(MistralStreamParser(), [body])
    assert got.error is None
    assert assemble(got.chunks) == expected
    assert {(c.id, c.model, c.created) for c in got.chunks} == {("cmpl-1", MODEL, 7)}
    if expected["usage"] is not None:
        usage_chunks = [c for c in got.chunks if c.usage]
        assert [c.choices for c in usage_chunks] == [()]  # split off, alone, last
        assert got.chunks[-1] is usage_chunks[0]


def test_finish_comes_after_what_it_ends() -> None:
    """Tool calls and a finish reason in one Mistral chunk become two OpenAI chunks."""
    body = sse(chunk({"role": "assistant", "tool_calls": [call("a", "{}", id="AAAAAAAAA")]},
                     "tool_calls")) + DONE  # fmt: skip
    chunks = run(MistralStreamParser(), [body]).chunks
    assert [c.choices[0].finish_reason for c in chunks] == [None, "tool_calls"]
    assert chunks[0].choices[0].delta.tool_calls and not chunks[1].choices[0].delta.tool_calls


RATE_LIMITED = {"object": "error", "message": "Rate limit exceeded", "type": "rate_limited",
                "param": None, "code": "1300", "raw_status_code": 429}  # fmt: skip
CAPACITY = {"object": "error", "message": "Service tier capacity exceeded for this model.",
            "type": "invalid_request_error", "param": None, "code": None}  # fmt: skip
FAILURES = [
    pytest.param(sse(RATE_LIMITED), ErrorClass.RATE_LIMITED, "Rate limit exceeded",
                 id="rate-limited-object"),
    pytest.param(sse(CAPACITY), ErrorClass.OVERLOADED, "capacity", id="capacity-object"),
    pytest.param(sse({"error": {"message": "upstream died", "type": "server_error"}}),
                 ErrorClass.SERVER_ERROR, "upstream died", id="openai-style-error"),
    pytest.param(sse(chunk({"content": "lo"}, "error")), ErrorClass.SERVER_ERROR,
                 "ended with an error", id="finish-error"),
    pytest.param(sse(chunk({"tool_calls": [call(None, "{}", id="DDDDDDDDD")]})),
                 ErrorClass.SERVER_ERROR, "without a name", id="nameless-call"),
    pytest.param(b"", ErrorClass.SERVER_ERROR, "before data: [DONE]", id="cut"),
    pytest.param(b"data: {not json\n\n", ErrorClass.SERVER_ERROR, "invalid", id="garbage"),
]  # fmt: skip


@pytest.mark.parametrize(("tail", "error", "words"), FAILURES)
def test_failures_are_classified_after_the_chunks_before_them(
    tail: bytes, error: ErrorClass, words: str
) -> None:
    """Chunks before the failure (and with it) are delivered, then the classified error."""
    got = run(MistralStreamParser(), [sse(ROLE, chunk({"content": "Hel"})) + tail])
    assert got.error is not None
    assert got.error[0] is error
    assert words in got.error[1]
    assert assemble(got.chunks)["text"] in ("Hel", "Hello")


@pytest.mark.parametrize(
    ("status", "body"), [(429, RATE_LIMITED), (503, CAPACITY)], ids=["rate", "capacity"]
)
def test_error_objects_classify_as_their_http_errors(status: int, body: dict[str, Any]) -> None:
    """An error object in the stream is the ProviderError of the same HTTP answer (§5.5)."""
    as_http = ADAPTER.classify(status, {}, msgspec.json.encode(body))
    got = run(MistralStreamParser(), [sse(ROLE, body)])
    assert got.error is not None
    assert (got.error[0], got.error[2]) == (as_http.error, as_http.retryable)


@pytest.mark.parametrize("body", [TEXT, TWO_CALLS, FRAGMENTED, NO_INDEX, THINKING])
def test_every_split_gives_the_same_chunks(body: bytes) -> None:
    """Every two-way split, and byte-by-byte feeding, give what the whole body gives."""
    assert_split_invariant(MistralStreamParser, body)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_random_splits_give_the_same_chunks(data: st.DataObject) -> None:
    """Any number of cuts anywhere leaves the chunks unchanged."""
    body = data.draw(st.sampled_from([TEXT, TWO_CALLS, ALL_AT_INDEX_0, THINKING]))
    cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=12))
    assert run(MistralStreamParser(), split(body, cuts)) == run(MistralStreamParser(), [body])


def test_stream_request_and_fresh_parsers() -> None:
    """`stream: true` stays in the body (never `stream_options`); each attempt gets a parser."""
    request = msgspec.convert({"model": "g", "messages": [{"role": "user", "content": "hi"}],
                               "stream": True, "stream_options": {"include_usage": True}},
                              ChatRequest)  # fmt: skip
    built = ADAPTER.build(request)
    sent = msgspec.json.decode(built.body)
    assert sent["stream"] is True and "stream_options" not in sent
    assert built.dropped_params == ("stream_options",)
    assert built.headers["accept"] == "text/event-stream"
    assert ADAPTER.stream_parser() is not ADAPTER.stream_parser()


# -- end to end ----------------------------------------------------------------


def config(primary: str, spare: str) -> str:
    return two_deployments("mistral", MODEL, KEY, primary + "/v1", spare + "/v1")


def chat(**extra: Any) -> dict[str, Any]:
    return {"model": "primary", "stream": True,
            "messages": [{"role": "user", "content": "hi"}], **extra}  # fmt: skip


async def test_text_and_tool_streams_arrive_whole_through_the_sdk(tmp_path: Path) -> None:
    """The SDK streams text and a forced tool call from the strict fake, with usage if asked."""
    fake = MistralFake(api_key=KEY)
    async with serve_app(fake) as url, running_daemon(config(url, url), tmp_path) as daemon:
        async with sdk(daemon) as client:
            text = await sdk_stream(client, "hello", stream_options={"include_usage": True})
            tool = await sdk_stream(client, "weather?", tools=WEATHER, tool_choice="required")
    assert text["text"] == "mistral: hello"
    assert text["usage"] is not None and text["usage"].total_tokens > 0
    assert tool["usage"] is None  # not asked for: never forwarded
    [only] = tool["calls"]
    assert only["name"] == "get_weather" and len(only["id"]) == 9
    assert msgspec.json.decode(only["arguments"]) == {"city": "fake"}
    assert tool["finish"] == "tool_calls"
    assert all(r.json["stream"] is True and r.status == 200 for r in fake.requests)


async def test_failure_before_the_first_token_is_invisible(tmp_path: Path) -> None:
    """A 429 and an in-stream error object before any content both fail over to the spare."""
    primary, spare = MistralFake(api_key=KEY), MistralFake(api_key=KEY, name="spare")
    primary.script(mistral_rate_limited(), stream(sse(ROLE, CAPACITY)))
    async with serve_app(primary) as p_url, serve_app(spare) as s_url:
        async with running_daemon(config(p_url, s_url), tmp_path) as daemon:
            async with uds_client(daemon) as client:
                for _ in range(2):
                    async with client.stream("POST", "/v1/chat/completions", json=chat()) as r:
                        assert r.status_code == 200
                        assert r.headers["x-dispatcher-attempts"] == "2"
                        assert r.headers["x-dispatcher-deployment"] == "spare-a"
                        got = await events(r)
                    assert got[-1] == "[DONE]"
                    assert streamed_text(got) == "spare: hi"
    assert len(primary.requests) == 2


async def test_in_band_error_after_content_ends_with_an_error_chunk(tmp_path: Path) -> None:
    """After the first token an in-stream error ends the stream with finish_reason "error"."""
    primary = MistralFake(api_key=KEY)
    held = anyio.Event()
    primary.script(stream(sse(ROLE, chunk({"content": "Hel"})), held,
                          sse(chunk({"content": "lo"}), RATE_LIMITED)))  # fmt: skip
    async with serve_app(primary) as url, running_daemon(config(url, url), tmp_path) as daemon:
        async with uds_client(daemon) as client:
            async with client.stream("POST", "/v1/chat/completions", json=chat()) as response:
                lines = response.aiter_lines()
                async for line in lines:
                    if "Hel" in line:  # committed: the first token reached the client
                        break
                held.set()
                rest: list[Any] = [
                    msgspec.json.decode(line[6:]) if line != "data: [DONE]" else "[DONE]"
                    async for line in lines
                    if line.startswith("data: ")
                ]
    assert rest[-1] == "[DONE]"
    last = rest[-2]
    assert last["choices"][0]["finish_reason"] == "error"
    assert last["error"]["code"] == "rate_limited"
    assert "Rate limit exceeded" in last["error"]["message"]
    assert streamed_text(rest) == "lo"
