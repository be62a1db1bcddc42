"""Tolerant reading of what providers send: nulls, unknown keys, new enum values, odd shapes.

Regression tests for issue 9, defects 2, 3, 6 and 7, and for what the corpus showed:
every adapter's reply and stream parser serves a good answer whatever extra or missing
piece comes with it, passes on what a client can use in OpenAI's shape, and classifies
an error body it cannot read by its status.
"""

from __future__ import annotations

import json
from typing import Any, Final

import msgspec
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from actors import ErrorClass
from actors._chat import ChatCompletionChunk as Chunk
from actors._chat import ChunkChoice, ChunkDelta, call_decoder
from actors.providers import adapter_for
from actors.providers._gemini_reply import parse_generate_response
from actors.providers._gemini_stream import GeminiStreamParser
from actors.providers._openai import parse_openai_completion
from config import parse_config

from .corpus_support import CORPUS, builtins, frame_events, streamed_answer
from .provider_streams import run

MODELS: Final = {
    "openai-compatible": "m",
    "anthropic": "claude-sonnet-4-5",
    "bedrock": "anthropic.claude-3-5-haiku-20241022-v1:0",
    "gemini": "gemini-2.5-flash",
    "mistral": "mistral-large-latest",
    "azure": "gpt-4o",
}


def adapter(provider: str) -> Any:
    lines = [
        "[[deployment]]", 'name = "d"', 'group = "g"', f'provider = "{provider}"',
        f'model = "{MODELS[provider]}"', 'api_base = "http://127.0.0.1:9"',
    ]  # fmt: skip
    if provider == "bedrock":
        lines.append('region = "us-east-1"')
    else:
        lines.append('api_key = "k"')
    if provider == "azure":
        lines.append('api_version = "2024-10-21"')
    return adapter_for(parse_config("\n".join(lines)).deployment[0])


def completion(provider: str, body: bytes | dict[str, Any]) -> dict[str, Any]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    out: dict[str, Any] = builtins(adapter(provider).parse(200, {}, raw))
    ChatCompletion.model_validate(out)
    return out


def streamed(provider: str, body: bytes) -> tuple[list[Any], tuple[ErrorClass, str, bool] | None]:
    got = run(adapter(provider).stream_parser(), [body])
    chunks = builtins(got.chunks)
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)
    return chunks, got.error


def sse(*events: dict[str, Any] | str) -> bytes:
    return b"".join(
        f"data: {event if isinstance(event, str) else json.dumps(event)}\n\n".encode()
        for event in events
    )


# -- issue 9, defect 2: `"tool_calls": null` ------------------------------------------

ISSUE_9_2: Final = (
    b'{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,'
    b'"message":{"role":"assistant","content":"hi","tool_calls":null},"finish_reason":"stop"}]}'
)


def test_tool_calls_null_is_a_text_answer() -> None:
    """Defect 9.2: vLLM's and LiteLLM's `tool_calls: null` is an answer, not garbage."""
    [choice] = completion("openai-compatible", ISSUE_9_2)["choices"]
    assert choice["message"]["content"] == "hi"
    assert choice["message"].get("tool_calls") is None
    assert choice["finish_reason"] == "stop"


def test_tool_calls_null_in_a_stream_is_a_text_delta() -> None:
    body = sse(
        {"id": "x", "choices": [{"index": 0, "delta": {"role": "assistant", "content": "hi",
                                                       "tool_calls": None}}]},
        {"id": "x", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        "[DONE]",
    )  # fmt: skip
    chunks, error = streamed("openai-compatible", body)
    assert error is None
    assert streamed_answer(chunks)["text"] == "hi"


# -- issue 9, defect 3: unknown keys, and what a client can use passes through ----------

SIGNATURE: Final = {"google": {"thought_signature": "CtwFAdHtim9sYwM9"}}
LOGPROBS: Final = {"content": [{"token": "hi", "logprob": -0.1, "bytes": [104, 105],
                                "top_logprobs": []}], "refusal": None}  # fmt: skip
ANNOTATIONS: Final = [{"type": "url_citation", "url_citation": {
    "url": "https://example.com", "title": "t", "start_index": 0, "end_index": 2}}]  # fmt: skip
USAGE: Final = {
    "prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25,
    "prompt_tokens_details": {"cached_tokens": 16, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 3, "audio_tokens": 0},
}  # fmt: skip
RICH_REPLY: Final = {
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
    "service_tier": "default", "system_fingerprint": "fp_1", "usage": USAGE,
    "choices": [{
        "index": 0, "finish_reason": "tool_calls", "logprobs": LOGPROBS,
        "message": {
            "role": "assistant", "content": "hi", "refusal": None, "audio": None,
            "annotations": ANNOTATIONS, "reasoning_content": "thinking",
            "tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                            "function": {"name": "f", "arguments": "{}"},
                            "extra_content": SIGNATURE}],
        },
    }],
}  # fmt: skip


def test_unknown_keys_are_tolerated_and_usable_ones_pass_through() -> None:
    """Defect 9.3: extra keys never fail a reply; annotations, logprobs, reasoning, usage
    details and a Gemini tool call's `extra_content` reach the client in OpenAI's shape."""
    out = completion("openai-compatible", RICH_REPLY)
    [choice] = out["choices"]
    message = choice["message"]
    assert message["content"] == "hi"
    assert message["reasoning_content"] == "thinking"
    assert message["annotations"] == ANNOTATIONS
    assert message["tool_calls"] == [{"id": "call_1", "type": "function",
                                      "function": {"name": "f", "arguments": "{}"},
                                      "extra_content": SIGNATURE}]  # fmt: skip
    assert choice["logprobs"] == LOGPROBS
    assert out["usage"] == USAGE
    assert (out["service_tier"], out["system_fingerprint"]) == ("default", "fp_1")


def test_refusal_passes_through() -> None:
    body = {"id": "c", "choices": [{"index": 0, "finish_reason": "stop",
            "message": {"role": "assistant", "content": None, "refusal": "No."}}]}  # fmt: skip
    assert completion("openai-compatible", body)["choices"][0]["message"]["refusal"] == "No."


def test_streamed_deltas_carry_what_the_client_can_use() -> None:
    """Streamed, the same things arrive in the deltas: reasoning, refusal, annotations,
    logprobs, the tool call's `extra_content` and the usage details."""
    body = sse(
        {"id": "x", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {
            "role": "assistant", "reasoning_content": "think", "extra_content": SIGNATURE}}]},
        {"id": "x", "choices": [{"index": 0, "logprobs": LOGPROBS,
                                 "delta": {"content": "hi", "annotations": ANNOTATIONS}}]},
        {"id": "x", "choices": [{"index": 0, "delta": {"refusal": "but no"}}]},
        {"id": "x", "choices": [{"index": 0, "delta": {"tool_calls": [{
            "index": 0, "id": "call_1", "type": "function",
            "function": {"name": "f", "arguments": "{}"}, "extra_content": SIGNATURE}]},
            "finish_reason": "tool_calls"}]},
        {"id": "x", "choices": [], "usage": USAGE},
        "[DONE]",
    )  # fmt: skip
    chunks, error = streamed("openai-compatible", body)
    assert error is None
    assert streamed_answer(chunks) == {
        "text": "hi", "calls": [("f", "{}")], "finish": "tool_calls", "usage": (20, 5, 25),
        "refusal": "but no", "reasoning": "think", "cached": 16, "annotations": 1,
        "logprobs": True, "extra_content": True,
    }  # fmt: skip
    assert chunks[0]["choices"][0]["delta"]["extra_content"] == SIGNATURE


def test_a_reply_message_sent_back_by_the_sdk_is_accepted() -> None:
    """The OpenAI SDK sends a reply's message back as it came: its `annotations` and
    `extra_content` must not make the next turn a 400, and a tool call's signature goes on."""
    served = completion("openai-compatible", RICH_REPLY)["choices"][0]["message"]
    message = served | {"extra_content": SIGNATURE}  # as Gemini's endpoint may add it
    body = {"model": "g", "messages": [
        {"role": "user", "content": "hi"}, message,
        {"role": "tool", "tool_call_id": "call_1", "content": "{}"},
    ]}  # fmt: skip
    request = call_decoder.decode(json.dumps(body))
    sent = json.loads(adapter("openai-compatible").build(request).body)
    assert sent["messages"][1]["tool_calls"][0]["extra_content"] == SIGNATURE


def test_reasoning_under_openrouters_name_is_reasoning_content() -> None:
    """OpenRouter and newer vLLM say `reasoning`: clients read `reasoning_content`."""
    body = {
        "id": "c",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {
                    "role": "assistant",
                    "content": "4",
                    "reasoning": "2+2",
                    "reasoning_details": [],
                },
            }
        ],
    }
    message = completion("openai-compatible", body)["choices"][0]["message"]
    assert message["reasoning_content"] == "2+2"
    assert "reasoning" not in message
    stream = sse({"id": "x", "choices": [{"index": 0, "delta": {"reasoning": "2+2"}}]},
                 {"id": "x", "choices": [{"index": 0, "delta": {"content": "4"},
                                          "finish_reason": "stop"}]}, "[DONE]")  # fmt: skip
    chunks, _ = streamed("openai-compatible", stream)
    assert streamed_answer(chunks)["reasoning"] == "2+2"
    assert all("reasoning" not in c["choices"][0]["delta"] for c in chunks if c["choices"])


def test_a_reasoning_delta_is_content_for_the_commit_point() -> None:
    """A reasoning model's thinking streams to the client as it comes (it commits)."""
    thinking = Chunk(choices=(ChunkChoice(delta=ChunkDelta(reasoning_content="hm")),))
    assert thinking.has_content()
    assert not Chunk(choices=(ChunkChoice(delta=ChunkDelta(role="assistant")),)).has_content()


# -- nulls, missing keys, new enum values, other shapes: every adapter ------------------

OPENAI_REPLIES: Final = [
    pytest.param({"id": None, "model": None, "created": None, "choices": [{"index": None,
                  "message": {"role": None, "content": "hi"}, "finish_reason": "stop"}]},
                 "hi", "stop", id="nulls-everywhere"),
    pytest.param({"id": "c", "created": 1.732719506e9, "choices": [{"index": 0,
                  "message": {"content": "hi"}, "finish_reason": "stop"}]},
                 "hi", "stop", id="created-as-float"),
    pytest.param({"id": "c", "choices": [{"message": {"content": [
                  {"type": "thinking", "thinking": [{"type": "text", "text": "hm"}]},
                  {"type": "text", "text": "hi"}]}, "finish_reason": "stop"}]},
                 "hi", "stop", id="content-as-chunk-list"),
    pytest.param({"id": "c", "choices": [{"message": {"content": "hi"},
                  "finish_reason": "eos"}]}, "hi", "stop", id="unknown-finish-reason"),
    pytest.param({"id": "c", "choices": [{"message": {"content": "hi"},
                  "finish_reason": "max_tokens"}]}, "hi", "length", id="finish-alias"),
    pytest.param({"id": "c", "choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}],
                  "usage": {"prompt_tokens": 3, "completion_tokens": None, "total_tokens": 3}},
                 "hi", "stop", id="null-token-count"),
    pytest.param({"id": "c", "object": "", "choices": [{"message": {"content": "hi"}}]},
                 "hi", "stop", id="empty-object-no-finish"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "text", "finish"), OPENAI_REPLIES)
def test_openai_compatible_replies_are_read_tolerantly(
    body: dict[str, Any], text: str, finish: str | None
) -> None:
    [choice] = completion("openai-compatible", body)["choices"]
    assert (choice["message"]["content"], choice["finish_reason"]) == (text, finish)


def test_tool_call_arguments_in_other_shapes_become_json_text() -> None:
    """An arguments object (some servers) is its JSON text; none at all is "{}"."""
    body = {"id": "c", "choices": [{"finish_reason": "tool_calls", "message": {"tool_calls": [
        {"id": "a", "type": "function", "function": {"name": "f", "arguments": {"x": 1}}},
        {"id": "b", "type": "function", "function": {"name": "g", "arguments": None}},
        {"id": "c", "type": "function", "function": {"name": "h"}},
    ]}}]}  # fmt: skip
    calls = completion("openai-compatible", body)["choices"][0]["message"]["tool_calls"]
    assert [(c["function"]["name"], c["function"]["arguments"]) for c in calls] == [
        ("f", '{"x":1}'),
        ("g", "{}"),
        ("h", "{}"),
    ]


def test_a_reply_without_choices_is_garbage() -> None:
    """No choice means no answer: a server_error (the next deployment answers instead)."""
    for body in (b'{"id":"c","choices":[]}', b'{"id":"c","choices":null}', b"{}"):
        with pytest.raises(Exception) as info:
            parse_openai_completion(body)
        assert getattr(info.value, "error", None) is ErrorClass.SERVER_ERROR


OPENAI_STREAMS: Final = [
    pytest.param(sse({"id": "x", "choices": [{"index": 0, "delta": {"content": "hi"},
                                              "finish_reason": ""}]},
                     {"id": "x", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
                     "[DONE]"), id="empty-finish-reason"),
    pytest.param(sse({"id": "x", "choices": None, "usage": None},
                     {"id": "x", "choices": [{"index": None, "delta": {"content": "hi"},
                                              "finish_reason": "stop"}]}, "[DONE]"),
                 id="null-choices-and-index"),
    pytest.param(sse({"id": "x", "choices": [{"index": 0, "delta": {"content": [
                     {"type": "text", "text": "hi"}]}, "finish_reason": "end_turn"}]}, "[DONE]"),
                 id="content-list-and-new-finish"),
    pytest.param(b": keep-alive\n\nevent: completion\ndata:{\"id\":\"x\",\"choices\":[{\"index\":0,"
                 b"\"delta\":{\"content\":\"hi\"},\"finish_reason\":\"stop\"}]}\r\n\r\ndata:[DONE]\n",
                 id="comment-event-name-crlf-done-without-space"),
]  # fmt: skip


@pytest.mark.parametrize("body", OPENAI_STREAMS)
def test_openai_compatible_streams_are_read_tolerantly(body: bytes) -> None:
    chunks, error = streamed("openai-compatible", body)
    assert error is None
    answer = streamed_answer(chunks)
    assert (answer["text"], answer["finish"]) == ("hi", "stop")


def _anthropic_stream(*events: dict[str, Any] | str) -> bytes:
    return b"".join(
        (b"data: [DONE]\n\n" if event == "[DONE]" else
         f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode())  # type: ignore[index]
        for event in events
    )  # fmt: skip


START: Final = {"type": "message_start", "message": {"id": "msg_1", "type": "message",
                "usage": {"input_tokens": 5, "output_tokens": None,
                          "cache_read_input_tokens": None}}}  # fmt: skip
TEXT_HI: Final = [
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}},
]


@pytest.mark.parametrize(
    ("provider", "body", "text", "finish"),
    [
        pytest.param("anthropic", {"id": "m", "role": "assistant", "content": [
            {"type": "text", "text": "hi"}], "stop_reason": "end_turn",
            "usage": {"input_tokens": None, "output_tokens": 2}}, "hi", "stop",
            id="anthropic-no-type-null-count"),
        pytest.param("anthropic", {"type": "message", "content": [
            {"type": "tool_use", "id": "t", "name": "f", "input": None}],
            "stop_reason": "a_new_stop_reason"}, None, "stop", id="anthropic-null-input"),
        pytest.param("anthropic", {"type": "message", "content": [
            {"type": "container_upload", "file_id": "f"}, {"type": "text", "text": "hi"}]},
            "hi", "stop", id="anthropic-unknown-block"),
        pytest.param("gemini", {"candidates": [{"content": {"parts": None, "role": "model"},
                     "finishReason": "MAX_TOKENS"}], "responseId": "r"}, None, "length",
                     id="gemini-null-parts"),
        pytest.param("gemini", {"candidates": [{"content": {"parts": [
                     {"text": "hi", "thought": None}]}, "finishReason": "A_NEW_REASON"}],
                     "responseId": "r"}, "hi", "stop", id="gemini-null-thought-new-reason"),
        pytest.param("gemini", {"candidates": None, "promptFeedback": {"blockReason": "OTHER"}},
                     None, "content_filter", id="gemini-null-candidates-blocked"),
        pytest.param("mistral", {"choices": [{"message": {"content": "hi"},
                     "finish_reason": "a_new_one"}]}, "hi", "stop", id="mistral-no-id-new-finish"),
        pytest.param("mistral", {"id": "c", "choices": [{"finish_reason": "stop"}]}, None,
                     "stop", id="mistral-no-message"),
        pytest.param("bedrock", {"output": {"message": {"content": [{"text": "hi"}]}},
                     "stopReason": "end_turn"}, "hi", "stop", id="bedrock-no-usage"),
        pytest.param("bedrock", {"output": {"message": {"content": [{"text": "hi"}]}},
                     "stopReason": "a_new_reason", "usage": {"inputTokens": 1, "outputTokens": 1,
                     "totalTokens": 2, "cacheReadInputTokens": None}}, "hi", "stop",
                     id="bedrock-null-cache-new-reason"),
    ],
)  # fmt: skip
def test_native_replies_are_read_tolerantly(
    provider: str, body: dict[str, Any], text: str | None, finish: str
) -> None:
    [choice] = completion(provider, body)["choices"]
    assert (choice["message"]["content"], choice["finish_reason"]) == (text, finish)


def test_anthropic_stream_tolerates_nulls_and_a_proxys_done() -> None:
    """Null counts and OpenRouter's `data: [DONE]` (even mid-stream) are not garbage."""
    body = _anthropic_stream(START, *TEXT_HI, "[DONE]",
                             {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                              "usage": {"output_tokens": 2, "input_tokens": None}},
                             {"type": "message_stop"}, "[DONE]")  # fmt: skip
    chunks, error = streamed("anthropic", body)
    assert error is None
    assert streamed_answer(chunks)["usage"] == (5, 2, 7)


def test_anthropic_server_tool_input_is_not_a_client_tool_call() -> None:
    """A server tool's streamed input (web search) is Anthropic's business, not an error."""
    body = _anthropic_stream(
        START, *TEXT_HI,
        {"type": "content_block_start", "index": 1, "content_block": {
            "type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}}},
        {"type": "content_block_delta", "index": 1, "delta": {
            "type": "input_json_delta", "partial_json": "{\"query\": \"x\"}"}},
        {"type": "content_block_stop", "index": 1},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}}, {"type": "message_stop"},
    )  # fmt: skip
    chunks, error = streamed("anthropic", body)
    assert error is None
    answer = streamed_answer(chunks)
    assert (answer["text"], answer["calls"], answer["finish"]) == ("hi", [], "stop")


def test_anthropic_stream_without_usage_sends_no_usage_of_zeros() -> None:
    start = {"type": "message_start", "message": {"id": "msg_1", "type": "message"}}
    body = _anthropic_stream(start, *TEXT_HI, {"type": "message_delta", "delta": {
        "stop_reason": "end_turn"}}, {"type": "message_stop"})  # fmt: skip
    chunks, _ = streamed("anthropic", body)
    assert all(chunk.get("usage") is None for chunk in chunks)


def test_gemini_stream_ignores_a_proxys_done() -> None:
    event = {
        "candidates": [{"content": {"parts": [{"text": "hi"}]}, "finishReason": "STOP"}],
        "responseId": "r",
    }
    chunks, error = streamed("gemini", sse(event, "[DONE]"))
    assert error is None
    assert streamed_answer(chunks)["text"] == "hi"


def test_mistral_empty_finish_reason_is_no_finish_yet() -> None:
    """Magistral sends `finish_reason: ""` on every chunk: not a finish, not a client error."""
    chunk = {"id": "c", "choices": [{"index": 0, "delta": {"content": "h"}, "finish_reason": ""}]}
    last = {"id": "c", "choices": [{"index": 0, "delta": {"content": "i"},
                                    "finish_reason": "stop"}]}  # fmt: skip
    chunks, error = streamed("mistral", sse(chunk, last, "[DONE]"))
    assert error is None
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finishes[:-1] == [None] * (len(finishes) - 1) and finishes[-1] == "stop"


# -- error bodies that are not JSON, or not the shape we know ---------------------------

ODD_ERROR_BODIES: Final = [
    b"<html><body>502 Bad Gateway</body></html>", b"", b"null", b'"overloaded"', b"[]",
    b'{"error": null}', b'{"error": ["x"]}', b'{"error": {"message": null, "code": [1]}}',
    b'{"message": 5, "type": {}}', b'[{"error": {"code": "x", "details": "y"}}]',
]  # fmt: skip


@pytest.mark.parametrize("provider", sorted(MODELS))
@pytest.mark.parametrize("body", ODD_ERROR_BODIES)
def test_error_bodies_of_any_shape_classify_by_status(provider: str, body: bytes) -> None:
    classify = adapter(provider).classify
    assert classify(429, {}, body).error is ErrorClass.RATE_LIMITED
    assert classify(503, {}, body).error is ErrorClass.OVERLOADED
    assert classify(401, {}, body).error is ErrorClass.AUTH
    assert classify(500, {}, body).error is ErrorClass.SERVER_ERROR


# -- issue 9, defect 6: Bedrock stream, a tool call without arguments -------------------


def test_bedrock_streamed_call_without_arguments_is_empty_json_like_the_whole_reply() -> None:
    """Defect 9.6: the stream gives "{}", as the non-streamed reply does, exactly once."""
    whole = completion("bedrock", (CORPUS / "bedrock/reply_tool_no_input.json").read_bytes())
    [call] = whole["choices"][0]["message"]["tool_calls"]
    body = frame_events((CORPUS / "bedrock/stream_tool_no_input.events").read_bytes())
    chunks, _ = streamed("bedrock", body)
    assert streamed_answer(chunks)["calls"] == [("get_time", call["function"]["arguments"])]
    assert call["function"]["arguments"] == "{}"
    # Without its contentBlockStop (a cut block), messageStop still closes the call.
    lines = (CORPUS / "bedrock/stream_tool_no_input.events").read_bytes().splitlines()
    cut = frame_events(
        b"\n".join(line for line in lines if not line.startswith(b"contentBlockStop"))
    )
    chunks, _ = streamed("bedrock", cut)
    assert streamed_answer(chunks)["calls"] == [("get_time", "{}")]


# -- issue 9, defect 7: Gemini call ids, streamed or whole ------------------------------


def test_gemini_minted_ids_are_the_same_streamed_and_whole() -> None:
    """Defect 9.7: the same recorded answer, whole and streamed part by part (text before
    the function call), gives its id-less calls the same ids."""
    raw = (CORPUS / "gemini/reply_thought_text_call.json").read_bytes()
    whole = parse_generate_response(200, {}, raw, model="gemini-2.5-flash")
    reply: dict[str, Any] = msgspec.json.decode(raw)
    [candidate] = reply.pop("candidates")
    parts = candidate["content"]["parts"]
    events = []
    for number, part in enumerate(parts):
        last = number == len(parts) - 1
        event_candidate = {"content": {"parts": [part], "role": "model"}, "index": 0}
        if last:
            event_candidate["finishReason"] = candidate["finishReason"]
        events.append({**reply, "candidates": [event_candidate]})
    parser = GeminiStreamParser(model="gemini-2.5-flash")
    got = run(parser, [sse(*events)])
    assert got.error is None
    streamed_ids = [call["id"] for call in _calls(builtins(got.chunks))]
    whole_ids = [call.id for call in whole.choices[0].message.tool_calls or ()]
    assert whole_ids and streamed_ids == whole_ids


def _calls(chunks: list[Any]) -> list[Any]:
    return [
        call
        for chunk in chunks
        for choice in chunk["choices"]
        for call in choice["delta"].get("tool_calls") or ()
        if call.get("id")
    ]
