"""The strict fakes take every current parameter with a valid value, and refuse the rest."""

from __future__ import annotations

from typing import Any

import pytest

from .fakes import (
    OPENAI_PARAMS,
    azure_dialect,
    azure_params,
    check_chat_request,
    check_mistral_request,
)

USER = {"role": "user", "content": "hi"}
BASE: dict[str, Any] = {"model": "gpt-4o", "messages": [USER]}
FUNCTION = {"name": "lookup", "parameters": {"type": "object"}}

ACCEPTED = [
    pytest.param({"store": True, "metadata": {"k" * 64: "v" * 512}}, id="store-metadata"),
    pytest.param({"modalities": ["text", "audio"], "audio": {"format": "mp3", "voice": "alloy"}},
                 id="audio-output"),
    pytest.param({"audio": {"format": "wav", "voice": {"id": "voice_1"}}}, id="custom-voice"),
    pytest.param({"service_tier": "flex", "verbosity": "high", "reasoning_effort": "xhigh"},
                 id="enums"),
    pytest.param({"prediction": {"type": "content", "content": [{"type": "text", "text": "x"}]}},
                 id="prediction-parts"),
    pytest.param({"prompt_cache_key": "k", "prompt_cache_retention": "in_memory",
                  "prompt_cache_options": {"mode": "explicit", "ttl": "30m"}}, id="prompt-cache"),
    pytest.param({"safety_identifier": "h", "web_search_options": {"user_location": {
                  "type": "approximate", "approximate": {"city": "Paris"}}}}, id="web-search"),
    pytest.param({"moderation": {"model": "omni", "policy": {"output": {"mode": "block"}}}},
                 id="moderation"),
    pytest.param({"functions": [FUNCTION], "function_call": {"name": "lookup"}}, id="functions"),
    pytest.param({"messages": [USER, {"role": "assistant", "content": None,
                  "function_call": {"name": "lookup", "arguments": "{}"}},
                  {"role": "function", "name": "lookup", "content": "42"}]},
                 id="function-turn"),
    pytest.param({"temperature": None, "top_p": None, "n": None, "store": None}, id="nulls"),
    pytest.param({"logprobs": True, "top_logprobs": 20, "stop": ["a", "b", "c", "d"]},
                 id="bounds"),
]  # fmt: skip

REJECTED = [
    pytest.param({"temperature": 2.5}, "temperature", "decimal_above_max_value", id="temperature"),
    pytest.param({"top_logprobs": 21}, "top_logprobs", "integer_above_max_value",
                 id="top-logprobs"),
    pytest.param({"max_tokens": 0}, "max_tokens", "integer_below_min_value", id="max-tokens-0"),
    pytest.param({"stop": ["a", "b", "c", "d", "e"]}, "stop", "array_above_max_length",
                 id="five-stops"),
    pytest.param({"metadata": {"k": 1}}, "metadata.k", "invalid_type", id="metadata-value"),
    pytest.param({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata",
                 "object_above_max_properties", id="metadata-17-pairs"),
    pytest.param({"reasoning_effort": "extreme"}, "reasoning_effort", "invalid_value",
                 id="reasoning-effort"),
    pytest.param({"modalities": ["text", "audio"]}, "audio", "missing_required_parameter",
                 id="audio-modality-without-audio"),
    pytest.param({"audio": {"format": "ogg", "voice": "alloy"}}, "audio.format", "invalid_value",
                 id="audio-format"),
    pytest.param({"prediction": {"type": "content"}}, "prediction.content",
                 "missing_required_parameter", id="prediction-content"),
    pytest.param({"prompt_cache_options": {"ttl": "1h"}}, "prompt_cache_options.ttl",
                 "invalid_value", id="prompt-cache-ttl"),
    pytest.param({"web_search_options": {"size": "low"}}, "web_search_options.size",
                 "unknown_parameter", id="web-search-unknown"),
    pytest.param({"moderation": {"policy": None}}, "moderation.model",
                 "missing_required_parameter", id="moderation-model"),
    pytest.param({"function_call": "auto"}, "function_call", None,
                 id="function-call-without-functions"),
    pytest.param({"functions": [{"name": "bad name"}]}, "functions[0].name", "invalid_value",
                 id="function-name"),
    pytest.param({"messages": [USER, {"role": "function", "content": "42"}]}, "messages[1].name",
                 "missing_required_parameter", id="function-message-without-name"),
    pytest.param({"response_format": {"type": "json_schema"}}, "response_format.json_schema",
                 "missing_required_parameter", id="json-schema-missing"),
    pytest.param({"messages": [{"role": "user", "content": [{"type": "image_url",
                  "image_url": {"url": "u", "detail": "max"}}]}]},
                 "messages[0].content[0].image_url.detail", "invalid_value", id="image-detail"),
]  # fmt: skip


@pytest.mark.parametrize("extra", ACCEPTED)
def test_openai_takes_every_current_parameter(extra: dict[str, Any]) -> None:
    assert check_chat_request({**BASE, **extra}, accepted=OPENAI_PARAMS) is None


@pytest.mark.parametrize(("extra", "param", "code"), REJECTED)
def test_openai_refuses_invalid_values(extra: dict[str, Any], param: str, code: str | None) -> None:
    invalid = check_chat_request({**BASE, **extra}, accepted=OPENAI_PARAMS)
    assert invalid is not None
    assert (invalid.param, invalid.code) == (param, code)


@pytest.mark.parametrize(
    ("version", "param", "taken"),
    [
        pytest.param("2024-06-01", "parallel_tool_calls", False, id="2024-06-01-parallel"),
        pytest.param("2024-10-21", "max_completion_tokens", True, id="2024-10-21-budget"),
        pytest.param("2024-10-21", "store", False, id="2024-10-21-store"),
        pytest.param("2024-12-01-preview", "reasoning_effort", True, id="2024-12-reasoning"),
        pytest.param("2024-12-01-preview", "prediction", False, id="2024-12-prediction"),
        pytest.param("2025-01-01-preview", "prediction", True, id="2025-01-prediction"),
        pytest.param("2025-04-01-preview", "verbosity", False, id="dated-verbosity"),
        pytest.param(None, "verbosity", True, id="v1-verbosity"),
    ],
)  # fmt: skip
def test_azure_takes_what_its_api_version_declares(
    version: str | None, param: str, taken: bool
) -> None:
    assert (param in azure_params(version)) is taken


def test_old_azure_refuses_the_developer_role_and_breakpoints() -> None:
    developer = {**BASE, "messages": [{"role": "developer", "content": "x"}, USER]}
    old, new = azure_dialect("2024-10-21"), azure_dialect("2024-12-01-preview")
    invalid = check_chat_request(developer, accepted=azure_params("2024-10-21"), dialect=old)
    assert invalid is not None and invalid.param == "messages[0].role"
    assert check_chat_request(developer, accepted=azure_params(None), dialect=new) is None
    part = {"type": "text", "text": "x", "prompt_cache_breakpoint": {"mode": "explicit"}}
    breakpoint_ = {**BASE, "messages": [{"role": "user", "content": [part]}]}
    invalid = check_chat_request(breakpoint_, accepted=azure_params(None), dialect=new)
    assert invalid is not None and invalid.code == "unknown_parameter"
    assert check_chat_request(breakpoint_, accepted=OPENAI_PARAMS) is None


MISTRAL_BASE: dict[str, Any] = {"model": "mistral-large-latest", "messages": [USER]}


@pytest.mark.parametrize(
    ("extra", "loc"),
    [
        pytest.param({"reasoning_effort": "max"}, ["body", "reasoning_effort"], id="effort-max"),
        pytest.param({"prompt_mode": "fast"}, ["body", "prompt_mode"], id="prompt-mode"),
        pytest.param({"prediction": {"type": "content", "content": [{"type": "text"}]}},
                     ["body", "prediction", "content"], id="prediction-parts"),
        pytest.param({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
                     ["body", "response_format", "json_schema", "schema"], id="schema-missing"),
        pytest.param({"messages": [{"role": "user", "content": [{"type": "image_url",
                      "image_url": {"url": "u", "detail": "original"}}]}]},
                     ["body", "messages", 0, "user", "content", 0, "image_url", "image_url",
                      "detail"], id="image-detail-original"),
    ],
)  # fmt: skip
def test_mistral_refuses_what_its_schema_refuses(extra: dict[str, Any], loc: list[Any]) -> None:
    rejection = check_mistral_request({**MISTRAL_BASE, **extra})
    assert rejection is not None and rejection.status == 422
    assert [problem["loc"] for problem in rejection.body["message"]["detail"]] == [loc]


def test_mistral_takes_its_current_parameters() -> None:
    extra = {"metadata": {"a": 1}, "prediction": {"type": "content", "content": "x"},
             "reasoning_effort": "xhigh", "prompt_mode": "reasoning", "safe_prompt": True,
             "prompt_cache_key": "k", "guardrails": [], "stop": ["x"]}  # fmt: skip
    assert check_mistral_request({**MISTRAL_BASE, **extra}) is None
