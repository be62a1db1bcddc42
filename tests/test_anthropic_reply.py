"""The Anthropic adapter's answer side: messages parsed, garbage and errors classified."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from actors import ErrorClass, ProviderError
from actors.providers._anthropic_reply import classify_anthropic_error, parse_message

DATE = {"date": "Tue, 01 Jul 2025 12:00:00 GMT"}
USAGE = {"input_tokens": 10, "output_tokens": 5}


def message(content: list[dict[str, Any]], stop_reason: str, **extra: Any) -> bytes:
    return msgspec.json.encode(
        {
            "id": "msg_01",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5-20250929",
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": USAGE,
            **extra,
        }
    )


TEXT = {"type": "text", "text": "Hello"}
USE = {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Rome"}}
CALL = {
    "id": "toolu_01",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
}


@pytest.mark.parametrize(
    ("content", "stop_reason", "text", "calls", "finish"),
    [
        pytest.param([TEXT], "end_turn", "Hello", None, "stop", id="end-turn"),
        pytest.param([TEXT], "stop_sequence", "Hello", None, "stop", id="stop-sequence"),
        pytest.param([TEXT], "pause_turn", "Hello", None, "stop", id="pause-turn"),
        pytest.param([TEXT], "max_tokens", "Hello", None, "length", id="max-tokens"),
        pytest.param([TEXT], "model_context_window_exceeded", "Hello", None, "length", id="window"),
        pytest.param([TEXT, USE], "tool_use", "Hello", [CALL], "tool_calls", id="tool-use"),
        pytest.param([USE], "tool_use", None, [CALL], "tool_calls", id="tool-use-only"),
        pytest.param([TEXT], "refusal", "Hello", None, "content_filter", id="refusal"),
        pytest.param(
            [{"type": "thinking", "thinking": "hmm", "signature": "s"}, TEXT, TEXT],
            "end_turn",
            "HelloHello",
            None,
            "stop",
            id="thinking-skipped-texts-joined",
        ),
        pytest.param([], "end_turn", None, None, "stop", id="empty"),
    ],
)
def test_message_to_completion(
    content: list[dict[str, Any]],
    stop_reason: str,
    text: str | None,
    calls: list[dict[str, Any]] | None,
    finish: str,
) -> None:
    """Text blocks join into content, tool_use blocks become tool_calls, stop_reason maps."""
    completion = parse_message(200, DATE, message(content, stop_reason))
    out = msgspec.json.decode(msgspec.json.encode(completion))
    [choice] = out["choices"]
    assert choice["message"]["content"] == text
    assert choice["message"].get("tool_calls") == calls
    assert choice["finish_reason"] == finish
    assert (out["id"], out["model"], out["created"]) == (
        "msg_01",
        "claude-sonnet-4-5-20250929",
        1751371200,
    )


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        pytest.param(
            USAGE,
            {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
            id="plain",
        ),
        pytest.param(
            {**USAGE, "cache_creation_input_tokens": 100, "cache_read_input_tokens": 1000},
            {
                "prompt_tokens": 1110,
                "completion_tokens": 5,
                "total_tokens": 1115,
                "prompt_tokens_details": {"cached_tokens": 1000, "cache_creation_tokens": 100},
            },
            id="cache-counts-as-prompt",
        ),
        pytest.param(
            {
                **USAGE,
                "cache_creation_input_tokens": 300,
                "cache_read_input_tokens": 0,
                "cache_creation": {
                    "ephemeral_5m_input_tokens": 100,
                    "ephemeral_1h_input_tokens": 200,
                },
            },
            {
                "prompt_tokens": 310,
                "completion_tokens": 5,
                "total_tokens": 315,
                "prompt_tokens_details": {
                    "cached_tokens": 0,
                    "cache_creation_tokens": 300,
                    "cache_creation_token_details": {
                        "ephemeral_5m_input_tokens": 100,
                        "ephemeral_1h_input_tokens": 200,
                    },
                },
            },
            id="cache-writes-by-lifetime",
        ),
    ],
)
def test_usage(usage: dict[str, int], expected: dict[str, Any]) -> None:
    """prompt_tokens adds the cached input Anthropic counts apart (§3.6)."""
    completion = parse_message(200, {}, message([TEXT], "end_turn", usage=usage))
    assert msgspec.to_builtins(completion.usage) == expected


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"<html>502 Bad Gateway</html>", id="not-json"),
        pytest.param(b"", id="empty"),
        pytest.param(b"[1, 2]", id="array"),
        pytest.param(
            b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}',
            id="error-object-with-200",
        ),
        pytest.param(b'{"id":"msg_1","type":"message"}', id="no-content"),
        pytest.param(
            message([{"type": "tool_use", "id": "t", "name": "f", "input": "x"}], "tool_use"),
            id="tool-use-input-not-object",
        ),
    ],
)
def test_garbage_is_a_server_error(body: bytes) -> None:
    """A 200 that is not an Anthropic message is a retryable `server_error` with an excerpt."""
    with pytest.raises(ProviderError) as info:
        parse_message(200, {}, body)
    assert info.value.error is ErrorClass.SERVER_ERROR
    assert info.value.status == 200
    assert info.value.retryable
    assert info.value.message.startswith("invalid anthropic response (")
    assert body[:8].decode() in info.value.message


def error(kind: str, text: str) -> bytes:
    return msgspec.json.encode(
        {"type": "error", "error": {"type": kind, "message": text}, "request_id": "req_1"}
    )


@pytest.mark.parametrize(
    ("status", "body", "headers", "expected", "retryable", "wait"),
    [
        pytest.param(
            529, error("overloaded_error", "Overloaded"), {},
            ErrorClass.OVERLOADED, True, None, id="529-overloaded",
        ),
        pytest.param(
            429, error("rate_limit_error", "slow down"), {"retry-after": "7"},
            ErrorClass.RATE_LIMITED, True, 7.0, id="429-retry-after",
        ),
        pytest.param(
            429, error("rate_limit_error", "slow down"), {"retry-after-ms": "1500"},
            ErrorClass.RATE_LIMITED, True, 1.5, id="429-retry-after-ms",
        ),
        pytest.param(
            400, error("invalid_request_error", "prompt is too long: 213021 tokens > 200000"),
            {}, ErrorClass.CONTEXT_WINDOW_EXCEEDED, False, None, id="prompt-too-long",
        ),
        pytest.param(
            400,
            error("invalid_request_error",
                  "input length and `max_tokens` exceed context limit: 188240 + 21333 > 200000"),
            {}, ErrorClass.CONTEXT_WINDOW_EXCEEDED, False, None, id="input-plus-max-tokens",
        ),
        pytest.param(
            400, error("invalid_request_error", "messages.1: Extra inputs are not permitted"),
            {}, ErrorClass.BAD_REQUEST, False, None, id="400-invalid-request",
        ),
        pytest.param(
            400, error("invalid_request_error", "Your credit balance is too low to access the API"),
            {}, ErrorClass.RATE_LIMITED, False, None, id="credit-balance-quota",
        ),
        pytest.param(
            402, error("billing_error", "billing"), {},
            ErrorClass.RATE_LIMITED, False, None, id="402-billing",
        ),
        pytest.param(
            401, error("authentication_error", "invalid x-api-key"), {},
            ErrorClass.AUTH, False, None, id="401-auth",
        ),
        pytest.param(
            403, error("permission_error", "no"), {}, ErrorClass.AUTH, False, None, id="403",
        ),
        pytest.param(
            404, error("not_found_error", "model: x"), {},
            ErrorClass.NOT_FOUND, False, None, id="404-not-found",
        ),
        pytest.param(
            413, error("request_too_large", "Request exceeds the maximum size"), {},
            ErrorClass.CONTEXT_WINDOW_EXCEEDED, False, None, id="413-too-large",
        ),
        pytest.param(
            500, error("api_error", "Internal server error"), {},
            ErrorClass.SERVER_ERROR, True, None, id="500-api-error",
        ),
        pytest.param(
            504, error("timeout_error", "Request timed out"), {},
            ErrorClass.TIMEOUT, True, None, id="504-timeout",
        ),
        pytest.param(
            502, b"<html>Bad Gateway</html>", {}, ErrorClass.SERVER_ERROR, True, None,
            id="502-html",
        ),
        pytest.param(503, b"", {}, ErrorClass.OVERLOADED, True, None, id="503-empty"),
        pytest.param(
            500, error("api_error", "x"), {"x-should-retry": "false"},
            ErrorClass.SERVER_ERROR, False, None, id="should-not-retry",
        ),
        pytest.param(418, b"", {}, ErrorClass.BAD_REQUEST, False, None, id="other-4xx"),
    ],
)  # fmt: skip
def test_classification(
    status: int,
    body: bytes,
    headers: dict[str, str],
    expected: ErrorClass,
    retryable: bool,
    wait: float | None,
) -> None:
    """error.type, then the message, then the status decide the class."""
    exc = classify_anthropic_error(status, headers, body)
    assert (exc.error, exc.retryable, exc.retry_after, exc.status) == (
        expected,
        retryable,
        wait,
        status,
    )
    assert exc.message.startswith(str(status))
