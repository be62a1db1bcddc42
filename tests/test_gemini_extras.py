"""What a Gemini answer carries besides text and calls, whole and streamed: thoughts as
`reasoning_content`, thought signatures as `extra_content`, logprobs, usage details."""

from __future__ import annotations

from typing import Any

import msgspec
import openai.types.chat as sdk
import pytest

from actors.providers._gemini_reply import parse_generate_response
from actors.providers._gemini_stream import GeminiStreamParser

from .fakes import gemini_logprobs, gemini_response_chunks, sse
from .provider_streams import run

SIGNATURE = "CiQBjz1rX8lG3RlcnV0aA=="
EXTRA = {"google": {"thought_signature": SIGNATURE}}
USAGE = {"promptTokenCount": 412, "candidatesTokenCount": 12, "thoughtsTokenCount": 40,
         "cachedContentTokenCount": 400, "totalTokenCount": 464}  # fmt: skip
CALL = {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}},
        "thoughtSignature": SIGNATURE}  # fmt: skip
LOGPROBS = {
    "chosenCandidates": [{"token": "Hi", "tokenId": 1}, {"token": "!", "logProbability": -0.5}],
    "topCandidates": [
        {"candidates": [{"token": "Hi"}, {"token": "Hey", "logProbability": -2.0}]},
        {"candidates": [{"token": "!", "logProbability": -0.5}]},
    ],
}
ANSWER: dict[str, Any] = {
    "candidates": [{
        "content": {"role": "model", "parts": [
            {"text": "The user wants the weather.", "thought": True},
            {"text": "Checking."}, CALL, {"functionCall": {"name": "get_time", "args": {}}}]},
        "finishReason": "STOP", "index": 0}],
    "usageMetadata": USAGE, "modelVersion": "gemini-3-pro-preview", "responseId": "r1",
}  # fmt: skip


def whole(answer: dict[str, Any]) -> dict[str, Any]:
    completion = parse_generate_response(200, {}, msgspec.json.encode(answer), model="m")
    out: dict[str, Any] = msgspec.to_builtins(completion)
    sdk.ChatCompletion.model_validate(out)  # what the OpenAI SDK makes of it
    return out


def streamed(answer: dict[str, Any]) -> list[dict[str, Any]]:
    chunks = run(GeminiStreamParser(model="m", created=1), [sse(*gemini_response_chunks(answer))])
    assert chunks.error is None
    out: list[dict[str, Any]] = [msgspec.to_builtins(chunk) for chunk in chunks.chunks]
    for chunk in out:
        sdk.ChatCompletionChunk.model_validate(chunk)
    return out


def deltas(chunks: list[dict[str, Any]], key: str) -> list[Any]:
    return [c["choices"][0]["delta"][key] for c in chunks
            if c["choices"] and key in c["choices"][0]["delta"]]  # fmt: skip


def test_thoughts_signatures_and_usage_details_of_a_whole_answer() -> None:
    """Thoughts are reasoning_content, not content; the signed call carries extra_content."""
    [choice] = whole(ANSWER)["choices"]
    message = choice["message"]
    assert message["content"] == "Checking."
    assert message["reasoning_content"] == "The user wants the weather."
    signed, unsigned = message["tool_calls"]
    assert signed["extra_content"] == EXTRA
    assert "extra_content" not in unsigned  # Gemini signs the first of parallel calls only
    assert whole(ANSWER)["usage"] == {
        "prompt_tokens": 412, "completion_tokens": 52, "total_tokens": 464,
        "prompt_tokens_details": {"cached_tokens": 400},
        "completion_tokens_details": {"reasoning_tokens": 40},
    }  # fmt: skip


def test_thoughts_and_signatures_stream_as_deltas() -> None:
    """delta.reasoning_content for thoughts; the call's one fragment has its extra_content."""
    chunks = streamed(ANSWER)
    assert "".join(deltas(chunks, "reasoning_content")) == "The user wants the weather."
    assert "".join(deltas(chunks, "content")) == "Checking."
    calls = [call for batch in deltas(chunks, "tool_calls") for call in batch]
    assert [call.get("extra_content") for call in calls] == [EXTRA, None]
    assert chunks[-1]["usage"]["completion_tokens_details"] == {"reasoning_tokens": 40}


def test_a_signature_alone_in_a_streamed_part_is_no_content() -> None:
    """Gemini 3 may end a text stream with an empty part holding a signature: no delta."""
    events = [
        {"candidates": [{"content": {"parts": [{"text": "Hi"}]}, "index": 0}], "responseId": "r"},
        {"candidates": [{"content": {"parts": [{"text": "", "thoughtSignature": SIGNATURE}]},
                         "finishReason": "STOP", "index": 0}], "responseId": "r"},
    ]  # fmt: skip
    chunks = run(GeminiStreamParser(model="m", created=1), [sse(*events)])
    assert [c.choices[0].delta.content for c in chunks.chunks] == ["Hi", msgspec.UNSET]


LOGPROBS_CONTENT = [
    {"token": "Hi", "logprob": 0.0, "bytes": [72, 105],
     "top_logprobs": [{"token": "Hi", "logprob": 0.0, "bytes": [72, 105]},
                      {"token": "Hey", "logprob": -2.0, "bytes": [72, 101, 121]}]},
    {"token": "!", "logprob": -0.5, "bytes": [33],
     "top_logprobs": [{"token": "!", "logprob": -0.5, "bytes": [33]}]},
]  # fmt: skip


def test_logprobs_result_becomes_openai_logprobs() -> None:
    """chosenCandidates with topCandidates per step; a missing logProbability is 0."""
    answer = {
        "candidates": [{"content": {"parts": [{"text": "Hi!"}]}, "finishReason": "STOP",
                        "avgLogprobs": -0.25, "logprobsResult": LOGPROBS}],
        "responseId": "r",
    }  # fmt: skip
    [choice] = whole(answer)["choices"]
    assert choice["logprobs"] == {"content": LOGPROBS_CONTENT, "refusal": None}
    without_top = {**answer, "candidates": [{**answer["candidates"][0], "logprobsResult": {
        "chosenCandidates": LOGPROBS["chosenCandidates"]}}]}  # fmt: skip
    [choice] = whole(without_top)["choices"]
    assert [entry["top_logprobs"] for entry in choice["logprobs"]["content"]] == [[], []]


def test_streamed_logprobs_cover_each_chunks_own_tokens() -> None:
    """Each response's logprobsResult goes with that response's delta."""
    text = "Hello there, world"
    candidate = {"content": {"parts": [{"text": text}]}, "finishReason": "STOP",
                 "logprobsResult": gemini_logprobs(text, 2)}  # fmt: skip
    answer = {"candidates": [candidate], "responseId": "r"}
    chunks = streamed(answer)
    tokens = [
        entry["token"]
        for chunk in chunks
        if chunk["choices"] and chunk["choices"][0].get("logprobs")
        for entry in chunk["choices"][0]["logprobs"]["content"]
    ]
    assert "".join(tokens) == text
    assert "".join(deltas(chunks, "content")) == text


@pytest.mark.parametrize("thought", ["", "  "])
def test_an_empty_thought_part_adds_no_reasoning(thought: str) -> None:
    """A thought part without text (Gemini sends some) leaves reasoning_content unset or as
    sent; it never becomes answer content."""
    answer = {"candidates": [{"content": {"parts": [{"text": thought, "thought": True},
                                                    {"text": "ok"}]},
                              "finishReason": "STOP"}], "responseId": "r"}  # fmt: skip
    message = whole(answer)["choices"][0]["message"]
    assert message["content"] == "ok"
    assert message.get("reasoning_content", "") == thought
