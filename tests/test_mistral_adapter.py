"""The Mistral adapter: an allow-listed body, Mistral's ids and order, answers and errors."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from actors import ChatRequest, ErrorClass, ProviderError, Unsupported, Usage, request_decoder
from actors.providers import MistralAdapter, universal_id
from config import parse_config

from .fakes import check_mistral_request

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}  # fmt: skip
SEED_ID = "call_function_jlv0n7uyomle_1"
SEED = universal_id(SEED_ID)


def adapter(*extra: str) -> MistralAdapter:
    lines = ["[[deployment]]", 'name = "m"', 'group = "g"', 'provider = "mistral"',
             'model = "mistral-large-latest"', 'api_key = "mk"', *extra]  # fmt: skip
    return MistralAdapter(parse_config("\n".join(lines)).deployment[0])


def request(**body: Any) -> ChatRequest:
    return request_decoder.decode(msgspec.json.encode({"model": "g", **body}))


def mistral(**body: Any) -> dict[str, Any]:
    built: dict[str, Any] = msgspec.json.decode(adapter().build(request(**body)).body)
    return built


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def calls(*ids: str, content: Any = None) -> dict[str, Any]:
    return {"role": "assistant", "content": content, "tool_calls": [
        {"id": i, "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
        for i in ids]}  # fmt: skip


def result(call_id: str, content: Any = "18C") -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": content}


def sent_calls(*ids: str, content: str = "") -> dict[str, Any]:
    return {"role": "assistant", "content": content, "tool_calls": [
        {"id": i, "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
        for i in ids]}  # fmt: skip


def sent_result(call_id: str, content: str = "18C") -> dict[str, Any]:
    return {"role": "tool", "content": content, "tool_call_id": call_id, "name": "get_weather"}


BRIDGE = {"role": "assistant", "content": "OK."}
MODEL = {"model": "mistral-large-latest"}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            {"messages": [{"role": "system", "content": "Be terse."}, user("hi")]},
            {**MODEL, "messages": [{"role": "system", "content": "Be terse."},
                                   {"role": "user", "content": "hi"}]},
            id="system-prompt",
        ),
        pytest.param(
            {"messages": [{"role": "developer", "content": [{"type": "text", "text": "A"}]},
                          {"role": "user", "content": "hi", "name": "ann"}]},
            {**MODEL, "messages": [{"role": "system", "content": [{"type": "text", "text": "A"}]},
                                   {"role": "user", "content": "hi"}]},
            id="developer-is-system-and-names-are-not-sent",
        ),
        pytest.param(
            {"messages": [user("hi")], "tools": [WEATHER], "tool_choice": "required",
             "parallel_tool_calls": False},
            {**MODEL, "messages": [{"role": "user", "content": "hi"}],
             "tools": [WEATHER], "tool_choice": "any", "parallel_tool_calls": False},
            id="required-is-any",
        ),
        pytest.param(
            {"messages": [user("hi")], "tools": [WEATHER], "tool_choice": "none"},
            {**MODEL, "messages": [{"role": "user", "content": "hi"}],
             "tools": [WEATHER], "tool_choice": "none"},
            id="tool-choice-none",
        ),
        pytest.param(
            {"messages": [user("hi")], "tools": [WEATHER],
             "tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
            {**MODEL, "messages": [{"role": "user", "content": "hi"}], "tools": [WEATHER],
             "tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
            id="forced-tool-choice",
        ),
        pytest.param(
            {"messages": [user("hi")], "tools": [{"type": "function",
                                                   "function": {"name": "ping", "strict": True}}],
             "tool_choice": "auto"},
            {**MODEL, "messages": [{"role": "user", "content": "hi"}], "tool_choice": "auto",
             "tools": [{"type": "function", "function": {
                 "name": "ping", "parameters": {"type": "object", "properties": {}},
                 "strict": True}}]},
            id="parameters-are-required-by-mistral",
        ),
        pytest.param(
            {"messages": [user("hi")], "tool_choice": "auto", "parallel_tool_calls": True},
            {**MODEL, "messages": [{"role": "user", "content": "hi"}]},
            id="tool-options-without-tools-are-not-sent",
        ),
        pytest.param(
            {"messages": [user("Weather?"), calls(SEED_ID), result(SEED_ID), user("Rome?")]},
            {**MODEL, "messages": [
                {"role": "user", "content": "Weather?"}, sent_calls(SEED), sent_result(SEED),
                BRIDGE, {"role": "user", "content": "Rome?"}]},
            id="seed-id-rewritten-and-user-after-tool-bridged",
        ),
        pytest.param(
            {"messages": [user("Both?"), calls("abcDEF123", "c2", content="Sure."),
                          result("abcDEF123"), result("c2", [{"type": "text", "text": "2"}])]},
            {**MODEL, "messages": [
                {"role": "user", "content": "Both?"},
                sent_calls("abcDEF123", universal_id("c2"), content="Sure."),
                sent_result("abcDEF123"), sent_result(universal_id("c2"), "2")]},
            id="consecutive-tool-results-end-the-conversation",
        ),
        pytest.param(
            {"messages": [user("Write a haiku"), {"role": "assistant", "content": "Autumn"}]},
            {**MODEL, "messages": [{"role": "user", "content": "Write a haiku"},
                                   {"role": "assistant", "content": "Autumn", "prefix": True}]},
            id="assistant-last-is-a-prefix",
        ),
        pytest.param(
            {"messages": [user("a"), {"role": "assistant", "content": ""}, user("b")]},
            {**MODEL, "messages": [{"role": "user", "content": "a"},
                                   {"role": "user", "content": "b"}]},
            id="empty-assistant-turn-dropped",
        ),
        pytest.param(
            {"messages": [{"role": "user", "content": [
                {"type": "text", "text": "What?"},
                {"type": "image_url", "image_url": {"url": "https://x/c.png", "detail": "low"}},
                {"type": "input_audio", "input_audio": {"data": "UklG", "format": "wav"}},
                {"type": "file", "file": {"file_id": "file-1"}}]}]},
            {**MODEL, "messages": [{"role": "user", "content": [
                {"type": "text", "text": "What?"},
                {"type": "image_url", "image_url": {"url": "https://x/c.png", "detail": "low"}},
                {"type": "input_audio", "input_audio": "UklG"},
                {"type": "file", "file_id": "file-1"}]}]},
            id="content-parts",
        ),
        pytest.param(
            {"messages": [user("hi")], "seed": 7, "max_tokens": 5, "max_completion_tokens": 9,
             "stop": "END", "temperature": 0.3, "top_p": 0.8, "n": 2, "presence_penalty": 0.1,
             "frequency_penalty": 0.2, "stream": False, "response_format": {"type": "json_schema",
                 "json_schema": {"name": "x", "schema": {}, "strict": True}}},
            {**MODEL, "messages": [{"role": "user", "content": "hi"}], "random_seed": 7,
             "max_tokens": 9, "stop": "END", "temperature": 0.3, "top_p": 0.8, "n": 2,
             "presence_penalty": 0.1, "frequency_penalty": 0.2, "stream": False,
             "response_format": {"type": "json_schema",
                                 "json_schema": {"name": "x", "schema": {}, "strict": True}}},
            id="seed-is-random-seed-and-max-completion-tokens-is-max-tokens",
        ),
    ],
)  # fmt: skip
def test_translation(body: dict[str, Any], expected: dict[str, Any]) -> None:
    """Each OpenAI form becomes the Mistral body §5.2 shows, which the strict rules accept."""
    built = mistral(**body)
    assert built == expected
    assert check_mistral_request(built) is None


def test_fields_mistral_refuses_are_dropped_and_named() -> None:
    """Fields that would be a 422 never reach the body; they are named for the header."""
    http = adapter().build(request(
        messages=[user("hi")], logit_bias={"1": 1.0}, logprobs=True, top_logprobs=2, user="u",
        reasoning_effort="low", stream_options={"include_usage": True},
    ))  # fmt: skip
    assert http.dropped_params == (
        "logit_bias", "logprobs", "stream_options", "top_logprobs", "user",
    )  # fmt: skip
    assert msgspec.json.decode(http.body) == {
        **MODEL, "messages": [user("hi")], "reasoning_effort": "low",
    }  # fmt: skip


def test_url_and_auth() -> None:
    """Bearer auth on `{api_base}/chat/completions` (default https://api.mistral.ai/v1)."""
    http = adapter().build(request(messages=[user("hi")]))
    assert http.url == "https://api.mistral.ai/v1/chat/completions"
    assert http.headers["authorization"] == "Bearer mk"
    assert (
        adapter('api_base = "http://127.0.0.1:9/v1/"').build(request(messages=[user("hi")])).url
        == "http://127.0.0.1:9/v1/chat/completions"
    )


@pytest.mark.parametrize(
    ("body", "phrase"),
    [
        pytest.param({"messages": [user("hi")], "tools": [{"type": "function", "function": {
                      "name": "get.weather"}}]}, "tool name 'get.weather'", id="tool-name"),
        pytest.param({"messages": [{"role": "user", "content": [{"type": "file", "file": {
                      "file_data": "data:application/pdf;base64,AA"}}]}]},
                     "file parts need a file_id", id="file-data"),
    ],
)  # fmt: skip
def test_inexpressible_requests_raise_unsupported(body: dict[str, Any], phrase: str) -> None:
    """What Mistral cannot take is refused before sending, naming mistral and the parameter."""
    with pytest.raises(Unsupported) as caught:
        adapter().build(request(**body))
    assert caught.value.message.startswith("mistral: ") and phrase in caught.value.message
    assert caught.value.deployment == "m"


def completion(message: dict[str, Any], finish: str = "stop") -> bytes:
    return msgspec.json.encode({
        "id": "cmpl-1", "object": "chat.completion", "created": 7, "model": "mistral-large-latest",
        "choices": [{"index": 0, "message": {"role": "assistant", **message},
                     "finish_reason": finish}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8,
                  "prompt_audio_seconds": None},
    })  # fmt: skip


@pytest.mark.parametrize(
    ("message", "finish", "content", "arguments", "reason"),
    [
        pytest.param({"content": "hi"}, "stop", "hi", None, "stop", id="text"),
        pytest.param({"content": "", "tool_calls": [{"id": "D681PevKs", "type": "function",
                      "function": {"name": "f", "arguments": '{"a":1}'}}]},
                     "tool_calls", None, '{"a":1}', "tool_calls", id="tool-call-string-args"),
        pytest.param({"content": None, "tool_calls": [{"id": "D681PevKs",
                      "function": {"name": "f", "arguments": {"a": 1}}}]},
                     "tool_calls", None, '{"a":1}', "tool_calls", id="tool-call-object-args"),
        pytest.param({"content": [{"type": "thinking", "thinking": [{"type": "text",
                      "text": "hmm"}]}, {"type": "text", "text": "42"}]},
                     "stop", "42", None, "stop", id="reasoning-chunks"),
        pytest.param({"content": "cut"}, "model_length", "cut", None, "length", id="model-length"),
        pytest.param({"content": "cut"}, "length", "cut", None, "length", id="length"),
    ],
)  # fmt: skip
def test_responses(
    message: dict[str, Any], finish: str, content: str | None, arguments: str | None, reason: str
) -> None:
    """Mistral's answers become OpenAI's: content, tool calls, finish reason, usage."""
    parsed = adapter().parse(200, {}, completion(message, finish))
    [choice] = parsed.choices
    assert (choice.message.content, choice.finish_reason) == (content, reason)
    if arguments is not None:
        [call] = choice.message.tool_calls  # type: ignore[misc]
        assert (call.id, call.function.arguments) == ("D681PevKs", arguments)
    assert isinstance(parsed.usage, Usage) and parsed.usage.total_tokens == 8


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"{not json", id="not-json"),
        pytest.param(b'{"id": "x", "choices": []}', id="no-choices"),
        pytest.param(b'{"object": "chat.completion"}', id="wrong-shape"),
        pytest.param(completion({"content": ""}, "error"), id="finish-reason-error"),
    ],
)
def test_garbage_is_a_server_error(body: bytes) -> None:
    """A 200 that is not a usable completion is a `server_error` with the status."""
    with pytest.raises(ProviderError) as caught:
        adapter().parse(200, {}, body)
    assert caught.value.error is ErrorClass.SERVER_ERROR and caught.value.status == 200
    assert "mistral" in caught.value.message  # the provider is named


def err(message: Any, kind: str = "invalid_request_error", code: Any = None) -> dict[str, Any]:
    return {"object": "error", "message": message, "type": kind, "param": None, "code": code}


EXTRA = {"detail": [{"type": "extra_forbidden", "loc": ["body", "n"],
         "msg": "Extra inputs are not permitted", "input": 1}]}  # fmt: skip


@pytest.mark.parametrize(
    ("status", "body", "headers", "error", "phrase", "wait"),
    [
        pytest.param(429, {**err("Rate limit exceeded", "rate_limited", "1300"),
                           "raw_status_code": 429}, {"retry-after": "2"},
                     ErrorClass.RATE_LIMITED, "1300: Rate limit exceeded", 2.0, id="rate-limited"),
        pytest.param(429, {"message": "Requests rate limit exceeded"}, {},
                     ErrorClass.RATE_LIMITED, "Requests rate limit", None, id="old-rate-limit"),
        pytest.param(422, err(EXTRA), {}, ErrorClass.BAD_REQUEST, "extra_forbidden", None,
                     id="unknown-field-422"),
        pytest.param(422, {"object": "Error", "detail": EXTRA["detail"], "message": [],
                           "type": "invalid_request_error", "code": 3001}, {},
                     ErrorClass.BAD_REQUEST, "3001", None, id="unknown-field-422-newer"),
        pytest.param(400, err("Prompt contains 300000 tokens, too large for model with 131072"
                              " maximum context length"), {},
                     ErrorClass.CONTEXT_WINDOW_EXCEEDED, "too large for model", None,
                     id="context-too-large"),
        pytest.param(400, err("Tool call id was call_0fypS1hVX but must be a-z, A-Z, 0-9, with a"
                              " length of 9.", "invalid_function_call", "3280"), {},
                     ErrorClass.BAD_REQUEST, "3280: Tool call id", None, id="bad-tool-call-id"),
        pytest.param(401, {"message": "Unauthorized", "request_id": "r"}, {}, ErrorClass.AUTH,
                     "Unauthorized", None, id="unauthorized"),
        pytest.param(404, {"detail": "Not Found"}, {}, ErrorClass.NOT_FOUND, "Not Found", None,
                     id="not-found"),
        pytest.param(500, err("Internal error"), {}, ErrorClass.SERVER_ERROR, "Internal", None,
                     id="server-error"),
        pytest.param(503, err("Service tier capacity exceeded for this model."), {},
                     ErrorClass.OVERLOADED, "capacity exceeded", None, id="capacity-503"),
        pytest.param(429, err("Service tier capacity exceeded for this model."), {},
                     ErrorClass.OVERLOADED, "capacity exceeded", None, id="capacity-429"),
        pytest.param(502, None, {}, ErrorClass.SERVER_ERROR, "<html>", None, id="html-502"),
    ],
)  # fmt: skip
def test_error_classification(
    status: int, body: Any, headers: dict[str, str], error: ErrorClass, phrase: str,
    wait: float | None,
) -> None:  # fmt: skip
    """Status and body map to the class PROVIDERS.md §5.5/§8.3 gives; retry-after is read."""
    raw = b"<html>bad gateway</html>" if body is None else msgspec.json.encode(body)
    classified = adapter().classify(status, headers, raw)
    assert (classified.error, classified.status, classified.retry_after) == (error, status, wait)
    assert phrase in classified.message
