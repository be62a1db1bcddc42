"""Bedrock Converse answers: responses, finish reasons, usage, garbage and error classes."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from actors import ErrorClass, ProviderError, Usage
from actors.providers import BedrockAdapter
from config import parse_config

ADAPTER = BedrockAdapter(
    parse_config(
        '[[deployment]]\nname = "b"\ngroup = "g"\nprovider = "bedrock"\n'
        'model = "anthropic.claude-3-5-haiku-20241022-v1:0"\nregion = "us-east-1"\n'
    ).deployment[0]
)
USAGE = {"inputTokens": 412, "outputTokens": 38, "totalTokens": 450}


def answer(content: list[dict[str, Any]], stop: str = "end_turn", **usage: int) -> bytes:
    return msgspec.json.encode({
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop, "usage": {**USAGE, **usage}, "metrics": {"latencyMs": 812},
    })  # fmt: skip


def test_text_and_tool_use_become_content_and_tool_calls() -> None:
    """PROVIDERS.md §4.6's example: text joins, toolUse input becomes a JSON string."""
    body = answer([{"text": "Checking Rome."}, {"toolUse": {"toolUseId": "tooluse_abc",
                   "name": "get_weather", "input": {"city": "Rome"}}}], "tool_use")  # fmt: skip
    completion = ADAPTER.parse(200, {"x-amzn-requestid": "req-1"}, body)
    assert completion.id == "chatcmpl-req-1"
    assert completion.model == "anthropic.claude-3-5-haiku-20241022-v1:0"
    [choice] = completion.choices
    assert choice.message.content == "Checking Rome."
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls  # type: ignore[misc]
    assert (call.id, call.function.name) == ("tooluse_abc", "get_weather")
    assert msgspec.json.decode(call.function.arguments) == {"city": "Rome"}
    assert isinstance(completion.usage, Usage)
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (412, 38)
    assert completion.usage.total_tokens == 450


def test_cache_tokens_count_as_prompt_tokens() -> None:
    """OpenAI's prompt_tokens include cached ones; Bedrock's inputTokens do not."""
    body = answer([{"text": "hi"}], cacheReadInputTokens=100, cacheWriteInputTokens=10)
    usage = ADAPTER.parse(200, {}, body).usage
    assert isinstance(usage, Usage)
    assert (usage.prompt_tokens, usage.total_tokens) == (522, 560)
    assert usage.prompt_tokens_details == {"cached_tokens": 100, "cache_creation_tokens": 10}


def test_reasoning_blocks_are_not_text() -> None:
    """Only `text` blocks make the message content; reasoning stays out."""
    body = answer([{"reasoningContent": {"reasoningText": {"text": "hmm"}}}, {"text": "42"}])
    assert ADAPTER.parse(200, {}, body).choices[0].message.content == "42"


@pytest.mark.parametrize(
    ("stop", "finish"),
    [
        pytest.param("end_turn", "stop", id="end_turn"),
        pytest.param("stop_sequence", "stop", id="stop_sequence"),
        pytest.param("tool_use", "tool_calls", id="tool_use"),
        pytest.param("max_tokens", "length", id="max_tokens"),
        pytest.param("model_context_window_exceeded", "length", id="context-window"),
        pytest.param("guardrail_intervened", "content_filter", id="guardrail"),
        pytest.param("content_filtered", "content_filter", id="content_filtered"),
    ],
)
def test_finish_reasons(stop: str, finish: str) -> None:
    """Every Converse stopReason maps as PROVIDERS.md §8.2 says."""
    assert ADAPTER.parse(200, {}, answer([{"text": "x"}], stop)).choices[0].finish_reason == finish


@pytest.mark.parametrize(
    ("body", "phrase"),
    [
        pytest.param(b"{not json", "invalid Converse response", id="not-json"),
        pytest.param(b'{"choices": []}', "invalid Converse response", id="openai-shape"),
        pytest.param(b'{"output": {}, "stopReason": "end_turn"}', "invalid", id="missing-usage"),
        pytest.param(b"<html>502 Bad Gateway</html>", "<html>502", id="html"),
        pytest.param(answer([{"text": "x"}], "malformed_tool_use"), "malformed_tool_use",
                     id="malformed-tool-use"),
        pytest.param(answer([{"text": "x"}], "malformed_model_output"), "malformed_model_output",
                     id="malformed-model-output"),
    ],
)  # fmt: skip
def test_garbage_is_a_server_error(body: bytes, phrase: str) -> None:
    """A 200 that is not a usable Converse answer is a `server_error` naming status and body."""
    with pytest.raises(ProviderError) as caught:
        ADAPTER.parse(200, {}, body)
    assert caught.value.error is ErrorClass.SERVER_ERROR
    assert caught.value.status == 200
    assert phrase in caught.value.message


def aws(error_type: str) -> dict[str, str]:
    return {
        "x-amzn-errortype": f"{error_type}:http://internal.amazon.com/coral/com.amazon.bedrock/"
    }


@pytest.mark.parametrize(
    ("status", "headers", "body", "error", "retryable"),
    [
        pytest.param(429, aws("ThrottlingException"),
                     {"message": "Too many requests, please wait before trying again."},
                     ErrorClass.RATE_LIMITED, True, id="throttling"),
        pytest.param(429, aws("ThrottlingException"),
                     {"message": "Too many tokens per day, please wait before trying again."},
                     ErrorClass.RATE_LIMITED, False, id="daily-token-quota"),
        pytest.param(400, aws("ServiceQuotaExceededException"), {"message": "quota"},
                     ErrorClass.RATE_LIMITED, False, id="service-quota"),
        pytest.param(408, aws("ModelTimeoutException"),
                     {"message": "Processing time exceeded the model timeout length."},
                     ErrorClass.TIMEOUT, True, id="model-timeout"),
        pytest.param(503, aws("ServiceUnavailableException"), {"message": "unavailable"},
                     ErrorClass.OVERLOADED, True, id="service-unavailable"),
        pytest.param(429, aws("ModelNotReadyException"), {"message": "not ready"},
                     ErrorClass.OVERLOADED, True, id="model-not-ready"),
        pytest.param(424, aws("ModelErrorException"),
                     {"message": "boom", "originalStatusCode": 500, "resourceName": "m"},
                     ErrorClass.OVERLOADED, True, id="model-error"),
        pytest.param(400, aws("ValidationException"),
                     {"message": "A conversation must alternate between user and assistant roles."},
                     ErrorClass.BAD_REQUEST, False, id="validation"),
        pytest.param(400, aws("ValidationException"),
                     {"message": "Input is too long for requested model."},
                     ErrorClass.CONTEXT_WINDOW_EXCEEDED, False, id="input-too-long"),
        pytest.param(403, aws("AccessDeniedException"), {"message": "denied"},
                     ErrorClass.AUTH, False, id="access-denied"),
        pytest.param(403, aws("UnrecognizedClientException"),
                     {"message": "The security token included in the request is invalid."},
                     ErrorClass.AUTH, False, id="unrecognized-client"),
        pytest.param(404, aws("ResourceNotFoundException"), {"message": "no such model"},
                     ErrorClass.NOT_FOUND, False, id="not-found"),
        pytest.param(500, aws("InternalServerException"), {"message": "oops"},
                     ErrorClass.SERVER_ERROR, True, id="internal"),
        pytest.param(429, {}, {"__type": "com.amazon.coral#ThrottlingException", "message": "x"},
                     ErrorClass.RATE_LIMITED, True, id="type-from-body-__type"),
        pytest.param(400, {}, {"Code": "ModelTimeoutException", "Message": "slow"},
                     ErrorClass.TIMEOUT, True, id="type-from-body-Code"),
        pytest.param(502, {}, None, ErrorClass.SERVER_ERROR, True, id="unknown-5xx-html"),
        pytest.param(503, {}, None, ErrorClass.OVERLOADED, True, id="bare-503"),
    ],
)  # fmt: skip
def test_error_classification(
    status: int, headers: dict[str, str], body: Any, error: ErrorClass, retryable: bool
) -> None:
    """Status, `x-amzn-ErrorType` and body map to the class PROVIDERS.md §4.5/§8.3 gives."""
    raw = b"<html>Bad Gateway</html>" if body is None else msgspec.json.encode(body)
    classified = ADAPTER.classify(status, headers, raw)
    assert classified.error is error
    assert classified.retryable is retryable
    assert classified.status == status
    assert str(status) in classified.message
    if body is None:
        assert "Bad Gateway" in classified.message
    else:
        assert (body.get("message") or body.get("Message")) in classified.message


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        pytest.param({"retry-after": "3"}, 3.0, id="retry-after"),
        pytest.param({"retry-after-ms": "1500"}, 1.5, id="retry-after-ms"),
        pytest.param({}, None, id="none-documented"),
    ],
)
def test_retry_after_from_headers(headers: dict[str, str], seconds: float | None) -> None:
    """A Bedrock 429 may carry no retry header at all (§4.5); when it does, it is used."""
    classified = ADAPTER.classify(
        429, {**aws("ThrottlingException"), **headers}, b'{"message":"Too many requests"}'
    )
    assert classified.retry_after == seconds
