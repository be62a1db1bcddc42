"""Mistral's parameters: what is mapped, what is named as dropped, what is refused."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from actors import ChatRequest, Unsupported, request_decoder
from actors.providers import OPTIONAL_PARAMS, MistralAdapter, supported_by, table_of
from config import parse_config

from .fakes import check_mistral_request

USER = {"role": "user", "content": "hi"}
WEATHER = {"name": "get_weather", "description": "Weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}}}  # fmt: skip
MODEL = "mistral-large-latest"


def adapter() -> MistralAdapter:
    lines = ["[[deployment]]", 'name = "m"', 'group = "g"', 'provider = "mistral"',
             f'model = "{MODEL}"', 'api_key = "mk"']  # fmt: skip
    return MistralAdapter(parse_config("\n".join(lines)).deployment[0])


def request(**body: Any) -> ChatRequest:
    return request_decoder.decode(msgspec.json.encode({"model": "g", "messages": [USER], **body}))


def built(**body: Any) -> tuple[dict[str, Any], tuple[str, ...]]:
    http = adapter().build(request(**body))
    sent: dict[str, Any] = msgspec.json.decode(http.body)
    assert check_mistral_request(sent) is None, sent
    return sent, http.dropped_params


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param({"metadata": {"ticket": "T-1"}}, {"metadata": {"ticket": "T-1"}},
                     id="metadata"),
        pytest.param({"prompt_cache_key": "k"}, {"prompt_cache_key": "k"}, id="prompt-cache-key"),
        pytest.param({"reasoning_effort": "minimal"}, {"reasoning_effort": "minimal"},
                     id="reasoning-effort"),
        pytest.param({"reasoning_effort": "max"}, {"reasoning_effort": "xhigh"},
                     id="reasoning-effort-max-is-xhigh"),
        pytest.param({"prediction": {"type": "content", "content": "draft"}},
                     {"prediction": {"type": "content", "content": "draft"}}, id="prediction"),
        pytest.param({"prediction": {"type": "content", "content": [
                          {"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}},
                     {"prediction": {"type": "content", "content": "ab"}},
                     id="prediction-parts-joined"),
        pytest.param({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
                     {"response_format": {"type": "json_object"}},
                     id="json-schema-without-schema-is-json-mode"),
        pytest.param({"response_format": {"type": "json_object"}},
                     {"response_format": {"type": "json_object"}}, id="json-object"),
        pytest.param({"seed": 3, "max_completion_tokens": 9},
                     {"random_seed": 3, "max_tokens": 9}, id="renamed"),
    ],
)  # fmt: skip
def test_parameters_mistral_takes(body: dict[str, Any], expected: dict[str, Any]) -> None:
    """Mistral's API has these fields: they go (renamed where its name differs)."""
    sent, dropped = built(**body)
    assert dropped == ()
    assert sent == {"model": MODEL, "messages": [USER], **expected}


def test_an_original_detail_image_goes_in_high_detail() -> None:
    """OpenAI's `detail: "original"` has no Mistral value (a 422): the nearest is `high`."""
    image = {"type": "image_url", "image_url": {"url": "https://x/c.png", "detail": "original"}}
    sent, dropped = built(messages=[{"role": "user", "content": [image]}])
    assert sent["messages"][0]["content"][0]["image_url"]["detail"] == "high"
    assert dropped == ()


@pytest.mark.parametrize(
    ("body", "dropped"),
    [
        pytest.param({"tool_choice": "auto", "parallel_tool_calls": True},
                     ("parallel_tool_calls", "tool_choice"), id="tool-options-without-tools"),
        pytest.param({"messages": [{"role": "user", "content": "hi", "name": "ann"}]},
                     ("messages[].name",), id="message-name"),
        pytest.param({"messages": [{"role": "user", "content": [{"type": "text", "text": "hi",
                      "cache_control": {"type": "ephemeral"}}]}]},
                     ("messages[].content[].cache_control",), id="cache-control"),
        pytest.param({"messages": [USER, {"role": "assistant", "content": "yes",
                      "reasoning_content": "hmm"}, USER]},
                     ("messages[].reasoning_content",), id="replayed-reasoning"),
        pytest.param({"messages": [USER, {"role": "assistant", "content": "hello",
                      "audio": {"id": "audio_1"}}, USER]},
                     ("messages[].audio",), id="assistant-audio"),
        pytest.param({"tools": [{"type": "function", "function": WEATHER}], "tool_choice": "auto",
                      "functions": [WEATHER], "function_call": "none"},
                     ("function_call",), id="function-call-gives-way-to-tool-choice"),
    ],
)  # fmt: skip
def test_what_mistral_cannot_take_is_named(body: dict[str, Any], dropped: tuple[str, ...]) -> None:
    """Nothing is lost silently: each left-out field is named (by path inside messages)."""
    assert built(**body)[1] == dropped


def test_a_refusal_is_kept_as_what_the_assistant_said() -> None:
    """An earlier refusal goes as the assistant's content (Mistral has no `refusal` field)."""
    assistant = {"role": "assistant", "content": None, "refusal": "I can't help with that."}
    sent, dropped = built(messages=[USER, assistant, USER])
    assert sent["messages"][1] == {"role": "assistant", "content": "I can't help with that."}
    assert dropped == ()


def test_legacy_functions_become_tools() -> None:
    """`functions` -> tools, a named `function_call` -> a forced tool, one call per turn."""
    sent, dropped = built(functions=[WEATHER], function_call={"name": "get_weather"})
    assert dropped == ()
    assert sent["tools"] == [{"type": "function", "function": WEATHER}]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert sent["parallel_tool_calls"] is False


def test_a_legacy_call_and_its_result_become_a_paired_tool_turn() -> None:
    """The assistant's `function_call` gets an id that its `function` result answers."""
    call = {"name": "get_weather", "arguments": '{"city":"Paris"}'}
    messages = [USER, {"role": "assistant", "content": None, "function_call": call},
                {"role": "function", "name": "get_weather", "content": "18C"},
                {"role": "user", "content": "And Rome?"}]  # fmt: skip
    sent, dropped = built(messages=messages, functions=[WEATHER])
    assert dropped == ()
    [tool_call] = sent["messages"][1]["tool_calls"]
    assert tool_call["function"] == {"name": "get_weather", "arguments": '{"city":"Paris"}'}
    assert sent["messages"][2] == {"role": "tool", "content": "18C", "name": "get_weather",
                                   "tool_call_id": tool_call["id"]}  # fmt: skip
    again, _ = built(messages=messages, functions=[WEATHER])
    assert again == sent  # the minted id is deterministic


def test_a_function_result_without_its_call_is_refused() -> None:
    """A result Mistral could not pair with a call is refused, naming the message."""
    orphan = [USER, {"role": "function", "name": "get_weather", "content": "18C"}]
    with pytest.raises(Unsupported) as caught:
        adapter().build(request(messages=orphan))
    assert caught.value.message.startswith("mistral: the role 'function' message of 'get_weather'")


def test_the_table_is_complete_and_drives_supported_params() -> None:
    table = table_of(adapter())
    assert set(table) == OPTIONAL_PARAMS
    assert adapter().supported_params == supported_by(table)
