"""Gemini streaming: `data:` GenerateContentResponses in, OpenAI chunks out, however the body
is split; finish reasons as for whole answers; in-stream errors classified."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors import ChatRequest, ErrorClass, ProviderError
from actors.providers import GeminiAdapter, universal_id
from actors.providers._gemini_stream import GeminiStreamParser
from config import parse_config

from .fakes import (
    check_generate_request,
    gemini_response_chunks,
    gemini_stream_error,
    gemini_text_chunks,
    sse,
)
from .provider_streams import assemble, assert_split_invariant, run, split

MODEL = "gemini-2.5-flash"


def parser() -> GeminiStreamParser:
    return GeminiStreamParser(model="deployment-model", created=1)


def candidate(*parts: dict[str, Any], reason: str | None = None, index: int = 0) -> Any:
    out: dict[str, Any] = {"content": {"role": "model", "parts": list(parts)}, "index": index}
    return {**out, "finishReason": reason} if reason else out


def response(*candidates: Any, **extra: Any) -> dict[str, Any]:
    return {"candidates": list(candidates), "modelVersion": MODEL, "responseId": "r1", **extra}


def usage(prompt: int, completion: int, **extra: Any) -> dict[str, Any]:
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion, **extra}  # fmt: skip


def answer(text: str, calls: list[tuple[str, str, str]], finish: str, used: Any) -> dict[str, Any]:
    listed = [{"id": i, "name": n, "arguments": a} for i, n, a in calls]
    return {"text": text, "calls": listed, "finish": finish, "usage": used}


def call(name: str, args: dict[str, Any], call_id: str | None = None) -> dict[str, Any]:
    function: dict[str, Any] = {"name": name, "args": args}
    return {"functionCall": {**function, "id": call_id} if call_id else function}


TEXT = gemini_text_chunks("Hel", "lo, wörld ✓")
METER = {"promptTokenCount": 412, "candidatesTokenCount": 12, "totalTokenCount": 424}
WHOLE = response(
    candidate({"text": "Checking."}, call("get_weather", {"city": "Rome"}),
              call("get_time", {}, "fc_7"), reason="STOP"),
    usageMetadata=METER,
)  # fmt: skip
THOUGHTS = [
    response(candidate({"text": "pondering", "thought": True}, {"text": "An"})),
    response(candidate({"text": "swer", "thoughtSignature": "c2ln"})),
    response(candidate({"text": ""}, reason="STOP"), usageMetadata={
        "promptTokenCount": 5, "candidatesTokenCount": 2, "thoughtsTokenCount": 40,
        "totalTokenCount": 47, "cachedContentTokenCount": 3}),
]  # fmt: skip
PARALLEL = response(
    candidate(call("a", {"x": 1}), call("b", {}), reason="STOP"),
    usageMetadata={"promptTokenCount": 1, "candidatesTokenCount": 1, "totalTokenCount": 2},
)
BLOCKED = {"promptFeedback": {"blockReason": "SAFETY"}, "responseId": "r1", "modelVersion": MODEL,
           "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9}}  # fmt: skip

STREAMS = [
    pytest.param(sse(*TEXT), answer("Hello, wörld ✓", [], "stop", usage(10, 2)), id="text"),
    pytest.param(
        sse(*gemini_response_chunks(WHOLE)),
        answer("Checking.", [(universal_id("r1:0:0:get_weather"), "get_weather", '{"city":"Rome"}'),
                             ("fc_7", "get_time", "{}")],
               "tool_calls", usage(412, 12)),
        id="text-then-calls-minted-and-echoed-ids",
    ),
    pytest.param(sse(PARALLEL), answer("", [(universal_id("r1:0:0:a"), "a", '{"x":1}'),
                                            (universal_id("r1:0:1:b"), "b", "{}")],
                                       "tool_calls", usage(1, 1)), id="two-calls-in-one-event"),
    pytest.param(sse(*THOUGHTS), answer("Answer", [], "stop", usage(
        5, 42, prompt_tokens_details={"cached_tokens": 3},
        completion_tokens_details={"reasoning_tokens": 40})), id="thoughts-skipped-but-counted"),
    pytest.param(
        b": keep-alive\r\n\r\n" + sse(*TEXT).replace(b"\n", b"\r\n"),
        answer("Hello, wörld ✓", [], "stop", usage(10, 2)),
        id="crlf-and-comments",
    ),
    pytest.param(sse(*TEXT[:-1], response(candidate({"text": "!"}, reason="MAX_TOKENS")),
                     {"usageMetadata": METER, "responseId": "r1"}),
                 answer("Hel!", [], "length", usage(412, 12)), id="usage-after-finish"),
    pytest.param(sse(BLOCKED), answer("", [], "content_filter", usage(9, 0)), id="prompt-blocked"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "expected"), STREAMS)
def test_stream_becomes_openai_chunks(body: bytes, expected: dict[str, Any]) -> None:
    """Text, tool calls, finish reason and usage arrive in OpenAI's chunk form."""
    result = run(parser(), [body])
    assert result.error is None
    assert assemble(result.chunks) == expected
    [(response_id, model, created)] = {(c.id, c.model, c.created) for c in result.chunks}
    assert response_id in ("r1", "resp_stream") and (model, created) == (MODEL, 1)
    assert result.chunks[-1].choices == () and result.chunks[-1].usage


@pytest.mark.parametrize(
    ("reason", "finish"),
    [("STOP", "stop"), ("MAX_TOKENS", "length"), ("SAFETY", "content_filter"),
     ("RECITATION", "content_filter"), ("PROHIBITED_CONTENT", "content_filter"),
     ("IMAGE_SAFETY", "content_filter"), ("OTHER", "stop"), ("LANGUAGE", "stop")],
)  # fmt: skip
def test_finish_reason_maps_as_for_whole_answers(reason: str, finish: str) -> None:
    """finishReason becomes the finish_reason of a whole answer (PROVIDERS.md §8.2)."""
    body = sse(*gemini_text_chunks("x", finish_reason=reason))
    assert assemble(run(parser(), [body]).chunks)["finish"] == finish


def test_candidates_are_choices_each_with_role_and_finish() -> None:
    """candidateCount 2: two choices, each opened with the role and closed with its reason."""
    body = sse(
        response(candidate({"text": "a"}), candidate({"text": "b"}, index=1)),
        response(candidate({"text": "c"}, index=1, reason="STOP")),
        response(candidate({"text": "d"}, reason="MAX_TOKENS")),
    )
    result = run(parser(), [body])
    assert result.error is None
    seen = [(ch.index, ch.delta.role, ch.delta.content, ch.finish_reason)
            for chunk in result.chunks for ch in chunk.choices]  # fmt: skip
    assert seen == [
        (0, "assistant", "a", None), (1, "assistant", "b", None), (1, msgspec.UNSET, "c", None),
        (1, msgspec.UNSET, msgspec.UNSET, "stop"), (0, msgspec.UNSET, "d", None),
        (0, msgspec.UNSET, msgspec.UNSET, "length"),
    ]  # fmt: skip


def test_minted_id_is_stable_without_response_id() -> None:
    """Without responseId the chunk id is a digest of the first event: the same every time."""
    body = sse(*({k: v for k, v in chunk.items() if k != "responseId"} for chunk in TEXT))
    first, second = run(parser(), [body]), run(parser(), split(body, [7, 30]))
    assert first == second and first.error is None
    assert len({c.id for c in first.chunks}) == 1 and first.chunks[0].id


def failing(*extra: Any) -> bytes:
    return sse(TEXT[0], *extra)


RATE = gemini_stream_error(429, "RESOURCE_EXHAUSTED", "quota")
RATE["error"]["details"] = [{"@type": "type.googleapis.com/google.rpc.RetryInfo",
                             "retryDelay": "7s"}]  # fmt: skip
FAILURES = [
    pytest.param(failing(gemini_stream_error(503, "UNAVAILABLE", "The model is overloaded.")),
                 ErrorClass.OVERLOADED, "Hel", "in-stream error 503 UNAVAILABLE",
                 id="unavailable"),
    pytest.param(failing(RATE), ErrorClass.RATE_LIMITED, "Hel", "quota", id="rate-limited"),
    pytest.param(failing(gemini_stream_error(500, "INTERNAL", "Internal error encountered.")),
                 ErrorClass.SERVER_ERROR, "Hel", "INTERNAL", id="internal"),
    pytest.param(failing(gemini_stream_error(400, "INVALID_ARGUMENT",
                         "The input token count (1196265) exceeds the maximum number of tokens")),
                 ErrorClass.CONTEXT_WINDOW_EXCEEDED, "Hel", "token count", id="context"),
    pytest.param(sse(gemini_stream_error(504, "DEADLINE_EXCEEDED", "late")), ErrorClass.TIMEOUT,
                 "", "late", id="error-before-content"),
    pytest.param(failing(response(candidate(reason="MALFORMED_FUNCTION_CALL"))),
                 ErrorClass.SERVER_ERROR, "Hel", "MALFORMED_FUNCTION_CALL", id="malformed-call"),
    pytest.param(failing() + b"data: {not json\n\n", ErrorClass.SERVER_ERROR, "Hel",
                 "invalid gemini stream event", id="garbage"),
    pytest.param(failing() + b"data: [1, 2]\n\n", ErrorClass.SERVER_ERROR, "Hel",
                 "invalid gemini stream event", id="not-an-object"),
    pytest.param(failing(), ErrorClass.SERVER_ERROR, "Hel", "ended before its finishReason",
                 id="cut-before-finish"),
    pytest.param(b"", ErrorClass.SERVER_ERROR, "", "ended before", id="empty-body"),
    pytest.param(failing(response(candidate({"text": "b"}, index=1, reason="STOP"))),
                 ErrorClass.SERVER_ERROR, "Hel", "ended before", id="one-candidate-unfinished"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "error", "text", "words"), FAILURES)
def test_failures_are_classified_after_the_chunks_before_them(
    body: bytes, error: ErrorClass, text: str, words: str
) -> None:
    """In-stream errors classify like answered ones; broken calls, garbage, cuts: server errors."""
    result = run(parser(), [body])
    assert result.error is not None
    assert result.error[0] is error and words in result.error[1]
    assert assemble(result.chunks)["text"] == text


def test_in_stream_rate_limit_keeps_its_retry_delay() -> None:
    """RetryInfo in an in-stream error becomes retry_after, as it does for a 429 answer."""
    fresh = parser()
    fresh.feed(sse(TEXT[0]))
    with pytest.raises(ProviderError) as caught:
        fresh.feed(sse(RATE))
    assert caught.value.retry_after == 7.0 and caught.value.status is None


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


def adapter() -> GeminiAdapter:
    text = f'[[deployment]]\nname = "g"\ngroup = "g"\nprovider = "gemini"\nmodel = "{MODEL}"\n'
    return GeminiAdapter(parse_config(text + 'api_key = "k"\n').deployment[0])


def test_stream_request_and_fresh_parsers() -> None:
    """stream=true posts the same body to :streamGenerateContent?alt=sse; new parser per call."""
    base = {"model": "g", "messages": [{"role": "user", "content": "hi"}]}
    streamed = adapter().build(msgspec.convert({**base, "stream": True}, ChatRequest))
    whole = adapter().build(msgspec.convert(base, ChatRequest))
    assert streamed.url.endswith(f"/v1beta/models/{MODEL}:streamGenerateContent?alt=sse")
    assert whole.url.endswith(f"/v1beta/models/{MODEL}:generateContent")
    assert streamed.body == whole.body
    assert check_generate_request(json.loads(streamed.body), model=MODEL) is None
    first, second = adapter().stream_parser(), adapter().stream_parser()
    assert first is not second
    assert repr(first) == "<GeminiStreamParser ? [candidates 0 | finished 0 | tool calls 0]>"
