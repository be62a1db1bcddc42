"""Bedrock ConverseStream: AWS event-stream frames in, OpenAI chunks out, however the body is
split; exception frames classified as their HTTP errors; end to end against the strict fake."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest
from botocore.eventstream import EventStreamBuffer
from hypothesis import given, settings
from hypothesis import strategies as st

from actors import ChatRequest, ErrorClass, ProviderError
from actors.providers import BedrockAdapter
from actors.providers._bedrock_stream import ConverseStreamParser
from actors.providers._sse import MAX_EVENT_BYTES
from config import parse_config

from .fakes import (
    BedrockFake,
    bedrock_error,
    bedrock_stream,
    bedrock_throttled,
    encode_frame,
    error_frame,
    event_frame,
    exception_frame,
    serve_app,
)
from .fakes import bedrock_text_delta as text_delta
from .helpers import running_daemon, uds_client
from .provider_streams import (
    FORCED,
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

MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0"
KEY = "bedrock-api-key"
ADAPTER = BedrockAdapter(
    parse_config(
        f'[[deployment]]\nname = "b"\ngroup = "g"\nprovider = "bedrock"\nmodel = "{MODEL}"\n'
        'region = "us-east-1"\napi_key = "k"\n'
    ).deployment[0]
)


def parser() -> ConverseStreamParser:
    return ConverseStreamParser(model=MODEL, stream_id="chatcmpl-b", created=1)


def body(*frames: bytes) -> bytes:
    return b"".join(frames)


START = event_frame("messageStart", {"role": "assistant"})
STOP_BLOCK = event_frame("contentBlockStop", {"contentBlockIndex": 0})
USAGE = {"inputTokens": 412, "outputTokens": 38, "totalTokens": 450}


def stop(reason: str) -> bytes:
    return event_frame("messageStop", {"stopReason": reason})


def metadata(**usage: int) -> bytes:
    return event_frame("metadata", {"usage": {**USAGE, **usage}, "metrics": {"latencyMs": 9}})


def tool_start(block: int, tool_use_id: str, name: str) -> bytes:
    start = {"toolUse": {"toolUseId": tool_use_id, "name": name}}
    return event_frame("contentBlockStart", {"contentBlockIndex": block, "start": start})


def tool_input(block: int, piece: str) -> bytes:
    delta = {"toolUse": {"input": piece}}
    return event_frame("contentBlockDelta", {"contentBlockIndex": block, "delta": delta})


def usage(prompt: int, completion: int, **extra: Any) -> dict[str, Any]:
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion, **extra}  # fmt: skip


def answer(text: str, calls: list[tuple[str, str, str]], finish: str, used: Any) -> dict[str, Any]:
    listed = [{"id": i, "name": n, "arguments": a} for i, n, a in calls]
    return {"text": text, "calls": listed, "finish": finish, "usage": used}


TEXT = body(START, text_delta("Hel"), text_delta("lo, wörld ✓"), STOP_BLOCK, stop("end_turn"),
            metadata())  # fmt: skip
TOOLS_STREAM = body(
    START, text_delta("Checking."), STOP_BLOCK,
    tool_start(1, "tooluse_a", "get_weather"), tool_input(1, '{"ci'), tool_input(1, 'ty":"Rome"}'),
    event_frame("contentBlockStop", {"contentBlockIndex": 1}),
    tool_start(2, "tooluse_b", "get_time"),  # a call without input streams no delta
    event_frame("contentBlockStop", {"contentBlockIndex": 2}),
    stop("tool_use"), metadata(cacheReadInputTokens=100, cacheWriteInputTokens=0),
)  # fmt: skip
REASONING = body(
    START,
    event_frame("contentBlockDelta", {"contentBlockIndex": 0,
                "delta": {"reasoningContent": {"text": "hmm"}}}),
    event_frame("contentBlockDelta", {"contentBlockIndex": 0,
                "delta": {"reasoningContent": {"signature": "sig"}}}),
    STOP_BLOCK, text_delta("42", 1), event_frame("someFutureEvent", {"x": 1}),
    stop("end_turn"),
)  # fmt: skip

TWO_CALLS = [("tooluse_a", "get_weather", '{"city":"Rome"}'), ("tooluse_b", "get_time", "{}")]
CACHED = usage(512, 38, prompt_tokens_details={"cached_tokens": 100})
STREAMS = [
    pytest.param(TEXT, answer("Hello, wörld ✓", [], "stop", usage(412, 38)), id="text"),
    pytest.param(TOOLS_STREAM, answer("Checking.", TWO_CALLS, "tool_calls", CACHED),
                 id="text-then-two-tool-uses"),
    pytest.param(REASONING, answer("42", [], "stop", None), id="reasoning-and-unknown-left-out"),
    pytest.param(body(text_delta("hi"), stop("max_tokens")), answer("hi", [], "length", None),
                 id="no-message-start-still-sends-the-role"),
]  # fmt: skip


@pytest.mark.parametrize(("stream", "expected"), STREAMS)
def test_stream_becomes_openai_chunks(stream: bytes, expected: dict[str, Any]) -> None:
    """Text, tool uses (renumbered 0..n-1) and usage arrive as OpenAI's chunks would carry them."""
    got = run(parser(), [stream])
    assert got.error is None
    assert assemble(got.chunks) == expected
    assert {(c.id, c.model, c.created) for c in got.chunks} == {("chatcmpl-b", MODEL, 1)}
    assert all(c.choices or c.usage for c in got.chunks)
    if expected["usage"] is not None:
        assert got.chunks[-1].choices == () and got.chunks[-1].usage  # usage comes last, alone


@pytest.mark.parametrize(
    ("reason", "finish"),
    [("end_turn", "stop"), ("stop_sequence", "stop"), ("tool_use", "tool_calls"),
     ("max_tokens", "length"), ("model_context_window_exceeded", "length"),
     ("guardrail_intervened", "content_filter"), ("content_filtered", "content_filter")],
)  # fmt: skip
def test_stop_reason_maps_as_for_whole_answers(reason: str, finish: str) -> None:
    """messageStop's stopReason maps as Converse's does (§8.2)."""
    got = run(parser(), [body(START, text_delta("x"), stop(reason))])
    assert got.error is None
    assert got.chunks[-1].choices[0].finish_reason == finish


FAILURES = [
    pytest.param(exception_frame("throttlingException", "Too many requests, please wait."),
                 ErrorClass.RATE_LIMITED, True, "ThrottlingException", id="throttling"),
    pytest.param(exception_frame("throttlingException",
                                 "Too many tokens per day, please wait before trying again."),
                 ErrorClass.RATE_LIMITED, False, "per day", id="daily-quota-no-retry"),
    pytest.param(exception_frame("modelStreamErrorException", "Model stream error",
                                 originalStatusCode=529, originalMessage="Overloaded"),
                 ErrorClass.OVERLOADED, True, "529 Overloaded", id="model-stream-error"),
    pytest.param(exception_frame("validationException", "Input is too long for requested model."),
                 ErrorClass.CONTEXT_WINDOW_EXCEEDED, False, "too long", id="context"),
    pytest.param(exception_frame("validationException", "bad"), ErrorClass.BAD_REQUEST, False,
                 "ValidationException: bad", id="validation"),
    pytest.param(exception_frame("internalServerException", "oops"), ErrorClass.SERVER_ERROR,
                 True, "InternalServerException", id="internal"),
    pytest.param(exception_frame("serviceUnavailableException", "busy"), ErrorClass.OVERLOADED,
                 True, "ServiceUnavailable", id="unavailable"),
    pytest.param(error_frame("InternalFailure", "boom"), ErrorClass.SERVER_ERROR, True,
                 "InternalFailure: boom", id="protocol-error-frame"),
    pytest.param(stop("malformed_tool_use"), ErrorClass.SERVER_ERROR, True, "malformed_tool_use",
                 id="malformed-output"),
    pytest.param(b"", ErrorClass.SERVER_ERROR, True, "before messageStop", id="cut"),
    pytest.param(stop("end_turn")[:-3], ErrorClass.SERVER_ERROR, True, "inside a frame",
                 id="cut-inside-a-frame"),
    pytest.param(stop("end_turn")[:-1] + b"\x00", ErrorClass.SERVER_ERROR, True,
                 "ChecksumMismatch", id="bad-crc"),
    pytest.param(encode_frame({":message-type": "event", ":event-type": "messageStop"}, b"{"),
                 ErrorClass.SERVER_ERROR, True, "invalid messageStop event", id="bad-json"),
    pytest.param(tool_input(3, "{}"), ErrorClass.SERVER_ERROR, True, "without its", id="orphan"),
]  # fmt: skip


@pytest.mark.parametrize(("tail", "error", "retryable", "words"), FAILURES)
def test_failures_are_classified_after_the_chunks_before_them(
    tail: bytes, error: ErrorClass, retryable: bool, words: str
) -> None:
    """Chunks before the failure are delivered, then the classified error."""
    got = run(parser(), [body(START, text_delta("Hel"), tail)])
    assert got.error is not None
    assert got.error[0] is error and got.error[2] is retryable
    assert words in got.error[1]
    assert assemble(got.chunks)["text"] == "Hel"


@pytest.mark.parametrize(
    ("member", "message"),
    [("throttlingException", "Too many requests, please wait before trying again."),
     ("throttlingException", "Too many tokens per day, please wait before trying again."),
     ("validationException", "Input is too long for requested model."),
     ("validationException", "Malformed input request"),
     ("internalServerException", "x"), ("serviceUnavailableException", "x"),
     ("modelStreamErrorException", "x")],
)  # fmt: skip
def test_exception_frames_classify_as_their_http_errors(member: str, message: str) -> None:
    """An exception frame is the ProviderError its HTTP answer (§4.5) would be."""
    kind = member[0].upper() + member[1:]
    http = bedrock_error(kind, message, status=424 if member.startswith("model") else None)
    as_http = ADAPTER.classify(http.status, dict(http.headers), msgspec.json.encode(http.body))
    got = run(parser(), [body(START, exception_frame(member, message))])
    assert got.error is not None
    assert (got.error[0], got.error[2]) == (as_http.error, as_http.retryable)


def test_botocore_decodes_the_fake_encoder() -> None:
    """The test-side encoder writes frames botocore's parser reads back, CRCs included."""
    headers = {":message-type": "event", ":event-type": "contentBlockDelta", "ü": "✓"}
    frames = encode_frame(headers, b'{"a":1}') + encode_frame({":message-type": "x"}, b"")
    buffer = EventStreamBuffer()
    buffer.add_data(frames)
    first, second = list(buffer)
    assert (first.headers, first.payload) == (headers, b'{"a":1}')
    assert (second.headers, second.payload) == ({":message-type": "x"}, b"")
    assert first.prelude.total_length + second.prelude.total_length == len(frames)


def test_a_frame_that_never_ends_is_cut_at_the_event_limit() -> None:
    """A frame whose bytes keep coming fails once 1 MiB waits, not at botocore's 24 MiB."""
    payload = b'{"contentBlockIndex":0,"delta":{"text":"' + b"x" * (4 << 20) + b'"}}'
    frame = encode_frame({":message-type": "event", ":event-type": "contentBlockDelta"}, payload)
    head = body(START, text_delta("Hel"))
    pieces = [head] + [frame[i : i + 65536] for i in range(0, len(frame), 65536)]
    p = parser()
    fed = 0
    got = None
    for piece in pieces:
        try:
            p.feed(piece)
        except ProviderError as exc:
            got = exc
            break
        fed += len(piece)
    assert got is not None and got.error is ErrorClass.SERVER_ERROR
    assert "longer than" in got.message
    assert fed < len(head) + MAX_EVENT_BYTES + 65536


@pytest.mark.parametrize("stream", [TEXT, TOOLS_STREAM, REASONING, body(START, text_delta("a"),
                         exception_frame("throttlingException", "slow"))])  # fmt: skip
def test_every_split_gives_the_same_chunks(stream: bytes) -> None:
    """Every two-way split, and byte-by-byte feeding, give what the whole body gives."""
    assert_split_invariant(parser, stream)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_random_splits_give_the_same_chunks(data: st.DataObject) -> None:
    """Any number of cuts anywhere leaves the chunks unchanged."""
    stream = data.draw(st.sampled_from([TEXT, TOOLS_STREAM, REASONING]))
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=12))
    assert run(parser(), split(stream, cuts)) == run(parser(), [stream])


def test_stream_request_goes_to_converse_stream() -> None:
    """`stream: true` posts the same body to /converse-stream and accepts event streams."""
    request = msgspec.convert({"model": "g", "messages": [{"role": "user", "content": "hi"}],
                               "stream": True}, ChatRequest)  # fmt: skip
    streamed = ADAPTER.build(request)
    whole = ADAPTER.build(msgspec.structs.replace(request, stream=False))
    assert streamed.url.endswith("-v1%3A0/converse-stream")
    assert whole.url.endswith("%3A0/converse")
    assert streamed.body == whole.body
    assert streamed.headers["accept"] == "application/vnd.amazon.eventstream"
    assert ADAPTER.stream_parser() is not ADAPTER.stream_parser()


# -- end to end ----------------------------------------------------------------


@pytest.fixture
def fake_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """botocore's chain finds exactly the fake's credentials, in the environment."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDFAKEBEDROCK0000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fake/secret/key")
    yield


def config(primary: str, spare: str) -> str:
    return two_deployments("bedrock", MODEL, KEY, primary, spare)


def chat(**extra: Any) -> dict[str, Any]:
    return {"model": "primary", "stream": True,
            "messages": [{"role": "user", "content": "hi"}], **extra}  # fmt: skip


async def test_text_and_tool_streams_arrive_whole_through_the_sdk(tmp_path: Path) -> None:
    """The SDK streams text and a forced tool call from the strict fake's ConverseStream."""
    fake = BedrockFake(api_key=KEY)
    async with serve_app(fake) as url, running_daemon(config(url, url), tmp_path) as daemon:
        async with sdk(daemon) as client:
            text = await sdk_stream(client, "hello")
            tool = await sdk_stream(client, "weather?", tools=WEATHER, tool_choice=FORCED)
    assert text["text"] == "bedrock: hello"
    [made] = tool["calls"]
    assert made["name"] == "get_weather" and made["id"].startswith("tooluse_")
    assert msgspec.json.decode(made["arguments"]) == {"city": "fake"}
    assert tool["finish"] == "tool_calls"
    assert [r.path.rsplit("/", 1)[-1] for r in fake.requests] == ["converse-stream"] * 2


async def test_sigv4_signs_converse_stream(tmp_path: Path, fake_aws: None) -> None:
    """A SigV4 deployment signs the /converse-stream request (the fake recomputes it)."""
    fake = BedrockFake()
    text = config("{u}", "{u}").replace(f'api_key = "{KEY}"\n', "")
    async with serve_app(fake) as url:
        async with running_daemon(text.format(u=url), tmp_path) as daemon:
            async with uds_client(daemon) as client:
                body_ = chat(stream_options={"include_usage": True})
                async with client.stream("POST", "/v1/chat/completions", json=body_) as response:
                    got = await events(response)
    [record] = fake.requests
    assert record.status == 200
    assert record.headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKID")
    assert streamed_text(got) == "bedrock: hi"
    assert got[-1] == "[DONE]" and got[-2]["choices"] == [] and got[-2]["usage"]["total_tokens"]


async def test_failure_before_the_first_token_is_invisible(tmp_path: Path) -> None:
    """A 429 and an exception frame before any content both fail over to the spare."""
    primary, spare = BedrockFake(api_key=KEY), BedrockFake(api_key=KEY, name="spare")
    primary.script(
        bedrock_throttled(),
        bedrock_stream(START, exception_frame("serviceUnavailableException", "busy")),
    )
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
                    assert all(e["choices"][0].get("finish_reason") != "error"
                               for e in got[:-1] if e["choices"])  # fmt: skip
    assert len(primary.requests) == 2


async def test_exception_frame_after_content_ends_with_an_error_chunk(tmp_path: Path) -> None:
    """After the first token an exception frame ends the stream with finish_reason "error"."""
    primary = BedrockFake(api_key=KEY)
    held = anyio.Event()
    primary.script(
        bedrock_stream(
            START, text_delta("Hel"), held, text_delta("lo"),
            exception_frame("modelStreamErrorException", "Model stream failed",
                            originalStatusCode=500, originalMessage="boom"),
        )
    )  # fmt: skip
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
    assert last["error"]["code"] == "overloaded"
    assert "ModelStreamErrorException" in last["error"]["message"]
    assert "boom" in last["error"]["message"]
    assert streamed_text(rest) == "lo"
