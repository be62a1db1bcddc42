"""The Gemini adapter's parameter table and what each parameter becomes (request side)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from actors import ChatRequest, Unsupported
from actors.providers import GEMINI_TABLE, OPTIONAL_PARAMS, Handling, supported_by

from .fakes import check_generate_request, thought_signature
from .test_anthropic_adapter import WEATHER, assistant, call, request, tool, user
from .test_gemini_adapter import SKIP, adapter

GEMINI_3 = "gemini-3-pro-preview"


def built(req: ChatRequest, model: str = GEMINI_3) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The body (which the strict fake accepts for `model`) and the dropped parameters."""
    http = adapter(model).build(req)
    body: dict[str, Any] = msgspec.json.decode(http.body)
    invalid = check_generate_request(body, model=model)
    assert invalid is None, (invalid, body)
    return body, http.dropped_params


def generation(model: str, **params: Any) -> dict[str, Any]:
    config: dict[str, Any] = built(request(user("hi"), **params), model)[0]["generationConfig"]
    return config


def test_the_table_names_every_parameter_and_is_what_the_adapter_supports() -> None:
    """One row per optional parameter; supported = sent or mapped, per deployment's model."""
    assert GEMINI_TABLE.keys() == OPTIONAL_PARAMS
    assert all(row.note for row in GEMINI_TABLE.values())
    assert adapter("gemini-2.5-flash").supported_params == supported_by(GEMINI_TABLE)
    assert GEMINI_TABLE["reasoning_effort"].handling is Handling.MAPPED
    for model in ("gemini-2.0-flash", "gemma-3-27b-it"):  # models that do not think
        assert "reasoning_effort" not in adapter(model).supported_params


@pytest.mark.parametrize(
    ("model", "effort", "expected"),
    [
        pytest.param(GEMINI_3, "high", {"thinkingLevel": "HIGH", "includeThoughts": True},
                     id="3-pro-high"),
        pytest.param(GEMINI_3, "medium", {"thinkingLevel": "HIGH", "includeThoughts": True},
                     id="3-pro-has-no-medium"),
        pytest.param(GEMINI_3, "minimal", {"thinkingLevel": "LOW", "includeThoughts": True},
                     id="3-pro-has-no-minimal"),
        pytest.param(GEMINI_3, "none", {"thinkingLevel": "LOW"}, id="3-pro-cannot-stop"),
        pytest.param("gemini-3.1-pro-preview", "medium",
                     {"thinkingLevel": "MEDIUM", "includeThoughts": True}, id="3.1-pro-medium"),
        pytest.param("gemini-3-flash-preview", "minimal",
                     {"thinkingLevel": "MINIMAL", "includeThoughts": True}, id="3-flash-minimal"),
        pytest.param("gemini-3-flash-preview", "none", {"thinkingLevel": "MINIMAL"},
                     id="3-flash-none"),
        pytest.param("gemini-3-flash-preview", "xhigh",
                     {"thinkingLevel": "HIGH", "includeThoughts": True}, id="xhigh-is-high"),
        pytest.param("gemini-2.5-flash", "low", {"thinkingBudget": 1024, "includeThoughts": True},
                     id="2.5-budget-low"),
        pytest.param("gemini-2.5-flash", "medium",
                     {"thinkingBudget": 8192, "includeThoughts": True}, id="2.5-budget-medium"),
        pytest.param("gemini-2.5-flash", "none", {"thinkingBudget": 0}, id="2.5-flash-off"),
        pytest.param("gemini-2.5-pro", "none", {"thinkingBudget": 128}, id="2.5-pro-least"),
        pytest.param("gemini-flash-latest", "high",
                     {"thinkingBudget": 24576, "includeThoughts": True}, id="alias-budget"),
    ],
)  # fmt: skip
def test_reasoning_effort_becomes_the_models_thinking_config(
    model: str, effort: str, expected: dict[str, Any]
) -> None:
    """thinkingLevel for Gemini 3, thinkingBudget for 2.5 and aliases; the fake accepts it."""
    assert generation(model, reasoning_effort=effort)["thinkingConfig"] == expected


def test_reasoning_effort_is_dropped_and_named_for_models_that_do_not_think() -> None:
    """gemini-2.0-flash would answer 400 to a thinkingConfig: it is left out and named."""
    body, dropped = built(request(user("hi"), reasoning_effort="high"), "gemini-2.0-flash")
    assert "generationConfig" not in body
    assert dropped == ("reasoning_effort",)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        pytest.param({"logprobs": True, "top_logprobs": 3},
                     {"responseLogprobs": True, "logprobs": 3}, id="logprobs-top-3"),
        pytest.param({"logprobs": True, "top_logprobs": 0}, {"responseLogprobs": True},
                     id="top-0-sends-none"),
        pytest.param({"logprobs": True}, {"responseLogprobs": True}, id="logprobs-only"),
        pytest.param({"logprobs": False}, None, id="logprobs-false"),
        pytest.param({"seed": 2**40 + 5}, {"seed": 5}, id="seed-folded-into-int32"),
        pytest.param({"seed": -7}, {"seed": -7}, id="negative-seed-kept"),
        pytest.param({"seed": 2**31}, {"seed": -(2**31)}, id="seed-wraps"),
        pytest.param({"response_format": {"type": "json_schema",
                                          "json_schema": {"name": "x", "strict": True}}},
                     {"responseMimeType": "application/json"}, id="json-schema-without-schema"),
        pytest.param({"response_format": {"type": "text"}}, None, id="text-format"),
    ],
)  # fmt: skip
def test_generation_config_mappings(params: dict[str, Any], expected: Any) -> None:
    """logprobs, seed and response_format reach generationConfig as Gemini takes them."""
    body, dropped = built(request(user("hi"), **params))
    assert body.get("generationConfig") == expected
    assert dropped == ()


@pytest.mark.parametrize(
    ("tier", "expected"),
    [("flex", "flex"), ("priority", "priority"), ("fast", "priority"), ("default", "standard"),
     ("auto", None), ("scale", None), (None, None)],
)  # fmt: skip
def test_service_tier_becomes_service_tier(tier: str | None, expected: str | None) -> None:
    """serviceTier sits at the top of the body; auto leaves Gemini's default."""
    body, dropped = built(request(user("hi"), service_tier=tier))
    assert body.get("serviceTier") == expected
    assert dropped == ()


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        pytest.param({"reasoning_effort": "turbo"}, "reasoning_effort 'turbo'", id="effort"),
        pytest.param({"top_logprobs": 2}, "top_logprobs needs logprobs", id="top-without"),
        pytest.param({"logprobs": False, "top_logprobs": 2}, "top_logprobs needs logprobs",
                     id="top-with-false"),
        pytest.param({"service_tier": "turbo"}, "service_tier 'turbo'", id="tier"),
    ],
)  # fmt: skip
def test_values_gemini_cannot_express_are_refused(params: dict[str, Any], fragment: str) -> None:
    """An unknown effort or tier, or top_logprobs without logprobs (OpenAI's 400 too)."""
    with pytest.raises(Unsupported) as info:
        adapter(GEMINI_3).build(request(user("hi"), **params))
    assert fragment in info.value.message


def test_openai_only_parameters_are_dropped_and_named() -> None:
    """store, metadata, verbosity, prompt caching keys... never reach Gemini, all named."""
    names = {
        "store": True, "metadata": {"k": "v"}, "verbosity": "low", "prompt_cache_key": "p",
        "safety_identifier": "s", "modalities": ["text"], "prediction": {
            "type": "content", "content": "x"}, "web_search_options": {},
    }  # fmt: skip
    body, dropped = built(request(user("hi"), **names))
    assert dropped == tuple(sorted(names))
    assert set(body) == {"contents"}


def test_cache_hints_are_left_out_and_named() -> None:
    """cache_control on a part or a tool: Gemini caches implicitly; named `cache_control`."""
    hinted = {"type": "text", "text": "long", "cache_control": {"type": "ephemeral"}}
    body, dropped = built(request(user([hinted]), store=False))
    assert body["contents"] == [{"role": "user", "parts": [{"text": "long"}]}]
    assert dropped == ("cache_control", "store")
    tool_hint = {**WEATHER, "cache_control": {"type": "ephemeral"}}
    assert built(request(user("hi"), tools=[tool_hint]))[1] == ("cache_control",)
    breakpoint_hint = {"type": "text", "text": "x", "prompt_cache_breakpoint": {"mode": "x"}}
    assert built(request(user([breakpoint_hint])))[1] == ("cache_control",)
    assert built(request(user("plain")))[1] == ()


# -- thought signatures -----------------------------------------------------------------


def signed(call_id: str, signature: str, city: str = "Paris") -> dict[str, Any]:
    made = call(call_id, arguments=f'{{"city":"{city}"}}')
    return {**made, "extra_content": {"google": {"thought_signature": signature}}}


def model_turn(body: dict[str, Any]) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = body["contents"][1]["parts"]
    return parts


def test_a_signature_from_gemini_goes_back_as_the_parts_thought_signature() -> None:
    """extra_content.google.thought_signature -> thoughtSignature, not the placeholder."""
    signature = thought_signature(GEMINI_3, "get_weather", {"city": "Paris"})
    req = request(user("w?"), assistant(signed("c1", signature)), tool("c1"))
    [part] = model_turn(built(req)[0])
    assert part["thoughtSignature"] == signature


def test_parallel_calls_keep_their_signatures_and_get_no_placeholder() -> None:
    """Gemini signs the first of parallel calls only; the turn goes back exactly so."""
    signature = thought_signature(GEMINI_3, "get_weather", {"city": "Paris"})
    req = request(
        user("w?"),
        assistant(signed("a", signature), call("b", arguments='{"city":"Rome"}')),
        tool("a"),
        tool("b"),
    )
    first, second = model_turn(built(req)[0])
    assert first["thoughtSignature"] == signature
    assert "thoughtSignature" not in second


def test_an_unsigned_turn_gets_the_placeholder_on_its_first_call_only() -> None:
    """History from another provider: Google's documented placeholder, once per turn."""
    req = request(user("w?"), assistant(call("a"), call("b")), tool("a"), tool("b"))
    first, second = model_turn(built(req)[0])
    assert first["thoughtSignature"] == SKIP
    assert "thoughtSignature" not in second


def test_a_signature_for_another_call_is_rejected_by_the_strict_fake() -> None:
    """The fake binds signatures to their call and model, as Gemini does."""
    wrong = thought_signature(GEMINI_3, "get_weather", {"city": "Rome"})
    req = request(user("w?"), assistant(signed("c1", wrong)), tool("c1"))
    body = msgspec.json.decode(adapter(GEMINI_3).build(req).body)
    invalid = check_generate_request(body, model=GEMINI_3)
    assert invalid is not None and invalid.message == "Corrupted thought signature."


# -- the legacy functions API -------------------------------------------------------------

LEGACY = {"name": "get_weather", "description": "Get current weather",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}  # fmt: skip


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        pytest.param({"name": "get_weather"},
                     {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}, id="named"),
        pytest.param("none", {"mode": "NONE"}, id="none"),
        pytest.param("auto", {"mode": "AUTO"}, id="auto"),
    ],
)  # fmt: skip
def test_functions_and_function_call_become_declarations_and_tool_config(
    choice: Any, expected: dict[str, Any]
) -> None:
    """The deprecated forms are mapped like tools and tool_choice, and nothing is dropped."""
    body, dropped = built(request(user("w?"), functions=[LEGACY], function_call=choice))
    assert body["tools"] == [{"functionDeclarations": [{
        "name": "get_weather", "description": "Get current weather",
        "parametersJsonSchema": LEGACY["parameters"]}]}]  # fmt: skip
    assert body["toolConfig"] == {"functionCallingConfig": expected}
    assert dropped == ()


def test_legacy_function_history_becomes_calls_and_responses() -> None:
    """An assistant function_call and its role "function" answer pair up by name."""
    legacy_call = {
        "role": "assistant",
        "content": None,
        "function_call": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
    }
    answer = {"role": "function", "name": "get_weather", "content": '{"temp_c":18}'}
    req = request(user("w?"), legacy_call, answer, user("and?"), functions=[LEGACY])
    body, _ = built(req)
    [part] = model_turn(body)
    call_id = part["functionCall"]["id"]
    paris = {"id": call_id, "name": "get_weather", "args": {"city": "Paris"}}
    assert part == {"functionCall": paris, "thoughtSignature": SKIP}
    assert body["contents"][2] == {"role": "user", "parts": [{"functionResponse": {
        "id": call_id, "name": "get_weather", "response": {"temp_c": 18}}}]}  # fmt: skip
    assert built(req)[0] == body  # the same history gets the same ids


def test_a_function_message_answering_nothing_is_refused() -> None:
    """A role "function" message without an earlier function_call of its name."""
    answer = {"role": "function", "name": "get_weather", "content": "18C"}
    with pytest.raises(Unsupported) as info:
        adapter(GEMINI_3).build(request(user("w?"), answer))
    assert "answers no earlier function_call" in info.value.message
