"""The Gemini adapter's answer side: responses parsed, garbage and errors classified."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from actors import ErrorClass, ProviderError
from actors.providers import universal_id
from actors.providers._gemini_reply import classify_gemini_error, parse_generate_response

USAGE = {"promptTokenCount": 10, "candidatesTokenCount": 4, "totalTokenCount": 14}


def response(*candidates: dict[str, Any], **extra: Any) -> bytes:
    body = {"candidates": list(candidates), "usageMetadata": USAGE,
            "modelVersion": "gemini-2.5-flash", "responseId": "resp1", **extra}  # fmt: skip
    return msgspec.json.encode(body)


def candidate(*parts: dict[str, Any], reason: str = "STOP", index: int = 0) -> dict[str, Any]:
    return {"content": {"role": "model", "parts": list(parts)}, "finishReason": reason,
            "index": index}  # fmt: skip


def parsed(body: bytes) -> dict[str, Any]:
    completion = parse_generate_response(200, {}, body, model="fallback-model")
    out: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(completion))
    return out


CALL = {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}}
MINTED = universal_id("resp1:0:0:get_weather")  # candidate 0, its first function call


def tool_call(call_id: str, arguments: str = '{"city":"Rome"}') -> dict[str, Any]:
    return {"id": call_id, "type": "function",
            "function": {"name": "get_weather", "arguments": arguments}}  # fmt: skip


@pytest.mark.parametrize(
    ("candidate_body", "text", "calls", "finish"),
    [
        pytest.param(candidate({"text": "Hi"}), "Hi", None, "stop", id="stop"),
        pytest.param(
            candidate({"text": "Hm, "}, {"text": "hi"}), "Hm, hi", None, "stop", id="texts-joined"
        ),
        pytest.param(
            candidate({"text": "thinking...", "thought": True}, {"text": "Hi"}),
            "Hi", None, "stop", id="thought-summary-skipped",
        ),
        pytest.param(
            candidate({"text": "Checking."}, CALL), "Checking.", [tool_call(MINTED)],
            "tool_calls", id="stop-with-call-minted-id",
        ),
        pytest.param(
            candidate({"functionCall": {"id": "fc_9", "name": "get_weather"},
                       "thoughtSignature": "Cq8B"}),
            None, [{**tool_call("fc_9", "{}"),
                    "extra_content": {"google": {"thought_signature": "Cq8B"}}}],
            "tool_calls", id="echoed-id-no-args-signed",
        ),
        pytest.param(candidate({"text": "Hi"}, reason="MAX_TOKENS"), "Hi", None, "length",
                     id="max-tokens"),
        pytest.param(candidate({"text": "Hi"}, reason="SAFETY"), "Hi", None, "content_filter",
                     id="safety"),
        pytest.param({"finishReason": "RECITATION", "index": 0}, None, None, "content_filter",
                     id="recitation-no-content"),
        pytest.param(candidate({"text": "x"}, reason="IMAGE_SAFETY"), "x", None,
                     "content_filter", id="image-safety"),
        pytest.param(candidate({"text": "x"}, reason="OTHER"), "x", None, "stop", id="other"),
    ],
)  # fmt: skip
def test_candidate_to_choice(
    candidate_body: dict[str, Any], text: str | None, calls: list[Any] | None, finish: str
) -> None:
    """Text parts join, functionCall parts become tool_calls, finishReason maps (§8.2)."""
    out = parsed(response(candidate_body))
    [choice] = out["choices"]
    assert choice["message"]["content"] == text
    assert choice["message"].get("tool_calls") == calls
    assert choice["finish_reason"] == finish
    assert (out["id"], out["model"]) == ("resp1", "gemini-2.5-flash")


def test_minted_ids_are_deterministic_and_distinct() -> None:
    """Without Gemini ids, two calls of one answer get two stable, universal ids."""
    body = response(candidate(CALL, CALL))
    first = parsed(body)["choices"][0]["message"]["tool_calls"]
    again = parsed(body)["choices"][0]["message"]["tool_calls"]
    assert first == again
    assert len({call["id"] for call in first}) == 2


def test_several_candidates_are_several_choices() -> None:
    """candidateCount > 1 answers one choice per candidate."""
    out = parsed(response(candidate({"text": "a"}), candidate({"text": "b"}, index=1)))
    assert [(c["index"], c["message"]["content"]) for c in out["choices"]] == [(0, "a"), (1, "b")]


def test_blocked_prompt_is_a_filtered_answer() -> None:
    """No candidates and promptFeedback.blockReason: a 200 answer with content_filter."""
    body = msgspec.json.encode({"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
                                "usageMetadata": {"promptTokenCount": 3}})  # fmt: skip
    out = parse_generate_response(200, {}, body, model="gemini-2.5-pro")
    assert out.model == "gemini-2.5-pro"
    [choice] = out.choices
    assert (choice.message.content, choice.finish_reason) == (None, "content_filter")


def test_usage_counts_thoughts_as_completion() -> None:
    """completion_tokens adds thoughtsTokenCount; cached and reasoning details are kept."""
    usage = {"promptTokenCount": 412, "candidatesTokenCount": 12, "thoughtsTokenCount": 40,
             "totalTokenCount": 464, "cachedContentTokenCount": 100}  # fmt: skip
    out = parsed(response(candidate({"text": "x"}), usageMetadata=usage))
    assert out["usage"] == {
        "prompt_tokens": 412,
        "completion_tokens": 52,
        "total_tokens": 464,
        "prompt_tokens_details": {"cached_tokens": 100},
        "completion_tokens_details": {"reasoning_tokens": 40},
    }


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"<html>500</html>", id="not-json"),
        pytest.param(b"{}", id="empty-object"),
        pytest.param(b'{"candidates": "x"}', id="candidates-not-list"),
        pytest.param(b'{"error": {"code": 500, "message": "x"}}', id="error-with-200"),
        pytest.param(response({"content": {"parts": [{"functionCall": {"args": {}}}]}}),
                     id="call-without-name"),
    ],
)  # fmt: skip
def test_garbage_is_a_server_error(body: bytes) -> None:
    """A 200 that is not a generateContent answer is a `server_error` with an excerpt."""
    with pytest.raises(ProviderError) as info:
        parse_generate_response(200, {}, body, model="m")
    assert (info.value.error, info.value.status) == (ErrorClass.SERVER_ERROR, 200)
    assert info.value.message.startswith("invalid gemini response (")
    assert body[:8].decode() in info.value.message


@pytest.mark.parametrize(
    "reason", ["MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL", "TOO_MANY_TOOL_CALLS"]
)
def test_broken_tool_calls_are_provider_errors(reason: str) -> None:
    """§8.2's error finish reasons raise a retryable server_error naming the reason."""
    body = response({"finishReason": reason, "finishMessage": "bad call", "index": 0})
    with pytest.raises(ProviderError) as info:
        parse_generate_response(200, {}, body, model="m")
    assert info.value.error is ErrorClass.SERVER_ERROR and info.value.retryable
    assert info.value.message == f"gemini finishReason {reason}: bad call"


def rpc(code: int, status: str, message: str, *details: dict[str, Any]) -> bytes:
    error = {"code": code, "message": message, "status": status, "details": list(details)}
    return msgspec.json.encode({"error": error})


RETRY = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"}
PER_MINUTE = {
    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
    "violations": [{"quotaId": "GenerateRequestsPerMinutePerProjectPerModel"}],
}
PER_DAY = {
    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
    "violations": [{"quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier"}],
}
KEY = {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}


@pytest.mark.parametrize(
    ("status", "body", "headers", "expected", "retryable", "wait"),
    [
        pytest.param(429, rpc(429, "RESOURCE_EXHAUSTED", "quota", PER_MINUTE, RETRY), {},
                     ErrorClass.RATE_LIMITED, True, 37.0, id="429-retry-delay-in-body"),
        pytest.param(429, rpc(429, "RESOURCE_EXHAUSTED", "quota", {**RETRY, "retryDelay": "1.5s"}),
                     {"retry-after": "9"}, ErrorClass.RATE_LIMITED, True, 1.5,
                     id="body-delay-beats-header"),
        pytest.param(429, rpc(429, "RESOURCE_EXHAUSTED", "quota"), {"retry-after": "9"},
                     ErrorClass.RATE_LIMITED, True, 9.0, id="429-header-only"),
        pytest.param(429, rpc(429, "RESOURCE_EXHAUSTED", "quota", PER_DAY, RETRY), {},
                     ErrorClass.RATE_LIMITED, False, 37.0, id="429-per-day-not-retryable"),
        pytest.param(400, rpc(400, "INVALID_ARGUMENT",
                              "The input token count (1196265) exceeds the maximum number of"
                              " tokens allowed (1048576)."), {},
                     ErrorClass.CONTEXT_WINDOW_EXCEEDED, False, None, id="context-window"),
        pytest.param(400, rpc(400, "INVALID_ARGUMENT",
                              'Invalid JSON payload received. Unknown name "x"'),
                     {}, ErrorClass.BAD_REQUEST, False, None, id="400-invalid-argument"),
        pytest.param(400, rpc(400, "INVALID_ARGUMENT",
                              "API key not valid. Please pass a valid API key.", KEY), {},
                     ErrorClass.AUTH, False, None, id="400-bad-key-is-auth"),
        pytest.param(403, rpc(403, "PERMISSION_DENIED", "denied"), {}, ErrorClass.AUTH, False,
                     None, id="403"),
        pytest.param(401, rpc(401, "UNAUTHENTICATED", "no"), {}, ErrorClass.AUTH, False, None,
                     id="401"),
        pytest.param(404, rpc(404, "NOT_FOUND", "models/x is not found"), {},
                     ErrorClass.NOT_FOUND, False, None, id="404"),
        pytest.param(500, rpc(500, "INTERNAL", "Internal error encountered."), {},
                     ErrorClass.SERVER_ERROR, True, None, id="500"),
        pytest.param(503, rpc(503, "UNAVAILABLE", "The model is overloaded."), {},
                     ErrorClass.OVERLOADED, True, None, id="503-overloaded"),
        pytest.param(504, rpc(504, "DEADLINE_EXCEEDED", "Deadline expired"), {},
                     ErrorClass.TIMEOUT, True, None, id="504-timeout"),
        pytest.param(500, b'[{"error": {"code": 503, "status": "UNAVAILABLE", "message": "x"}}]',
                     {}, ErrorClass.OVERLOADED, True, None, id="list-wrapped"),
        pytest.param(502, b"<html>Bad Gateway</html>", {}, ErrorClass.SERVER_ERROR, True, None,
                     id="502-html"),
        pytest.param(404, b"<html>Not Found</html>", {}, ErrorClass.NOT_FOUND, False, None,
                     id="404-html"),
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
    """error.status, the details and the message decide the class; retryDelay is read."""
    exc = classify_gemini_error(status, headers, body)
    assert (exc.error, exc.retryable, exc.retry_after, exc.status) == (
        expected,
        retryable,
        wait,
        status,
    )
