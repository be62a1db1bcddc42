"""The Anthropic adapter's parameter table: every current Chat Completions parameter is sent,
mapped, or dropped and named; every body it builds passes the strict fake's model rules."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from actors import ChatRequest, Unsupported
from actors.providers import ANTHROPIC_TABLE, OPTIONAL_PARAMS, AnthropicAdapter, Handling
from config import parse_config

from .fakes import check_messages_request
from .fakes._claude_models import sign_thinking

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"], "additionalProperties": False},
        "strict": True,
    },
}  # fmt: skip
FORCED = {"type": "function", "function": {"name": "get_weather"}}
SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"],
          "additionalProperties": False}  # fmt: skip
PDF = "data:application/pdf;base64,JVBERi0x"


def adapter(model: str = "claude-sonnet-4-5", *extra: str) -> AnthropicAdapter:
    text = "\n".join([
        "[[deployment]]", 'name = "claude"', 'group = "g"', 'provider = "anthropic"',
        f'model = "{model}"', 'api_key = "sk-ant-abc"', *extra,
    ])  # fmt: skip
    return AnthropicAdapter(parse_config(text).deployment[0])


def request(*messages: dict[str, Any], **params: Any) -> ChatRequest:
    messages = messages or ({"role": "user", "content": "hi"},)
    return msgspec.convert({"model": "g", "messages": list(messages), **params}, ChatRequest)


def built(req: ChatRequest, model: str = "claude-sonnet-4-5", *extra: str) -> tuple[Any, ...]:
    """(body, dropped) of `req`, after checking the strict fake accepts the body and that the
    adapter names the same drops before building (the streamed header, drop_params = false)."""
    chosen = adapter(model, *extra)
    http = chosen.build(req)
    body = msgspec.json.decode(http.body)
    assert check_messages_request(body) is None, (check_messages_request(body), body)
    assert chosen.dropped_params(req) == http.dropped_params
    return body, http.dropped_params


def test_the_table_has_a_row_for_every_parameter() -> None:
    """Every optional ChatRequest field has exactly one row; supported_params follows it."""
    assert set(ANTHROPIC_TABLE) == OPTIONAL_PARAMS
    dropped = {name for name, row in ANTHROPIC_TABLE.items() if row.handling is Handling.DROPPED}
    assert adapter().supported_params == OPTIONAL_PARAMS - dropped
    assert all(row.note for row in ANTHROPIC_TABLE.values())


# -- issue 9 item 4: temperature and top_p together -------------------------------------


@pytest.mark.parametrize(
    ("model", "sent", "dropped"),
    [
        pytest.param("claude-sonnet-4-5", {"temperature": 0.2}, ("top_p",), id="sonnet-4-5-one"),
        pytest.param("claude-haiku-4-5-20251001", {"temperature": 0.2}, ("top_p",), id="haiku"),
        pytest.param("claude-opus-4-1", {"temperature": 0.2}, ("top_p",), id="opus-4-1"),
        pytest.param("claude-3-5-haiku-20241022", {"temperature": 0.2, "top_p": 0.9}, (),
                     id="3-5-haiku-both"),
        pytest.param("claude-opus-4-7", {}, ("temperature", "top_p"), id="opus-4-7-none"),
        pytest.param("claude-next-9", {"temperature": 0.2}, ("top_p",), id="unknown-claude"),
        pytest.param("proxy-alias", {"temperature": 0.2}, ("top_p",), id="unknown-id"),
    ],
)  # fmt: skip
def test_temperature_and_top_p_follow_the_model(
    model: str, sent: dict[str, float], dropped: tuple[str, ...]
) -> None:
    """Models that refuse both get temperature only (top_p named); 4.7 and later get neither."""
    body, names = built(request(temperature=0.2, top_p=0.9), model)
    assert {k: body[k] for k in ("temperature", "top_p") if k in body} == sent
    assert names == dropped


def test_temperature_out_of_range_is_refused_only_when_it_would_be_sent() -> None:
    """1.5 cannot be sent to Anthropic; on a model that takes no temperature it is just dropped."""
    with pytest.raises(Unsupported, match=r"temperature 1\.5"):
        adapter().build(request(temperature=1.5))
    assert built(request(temperature=1.5), "claude-opus-4-7")[1] == ("temperature",)


# -- issue 9 item 8: the output budget ------------------------------------------------


@pytest.mark.parametrize(
    ("model", "stream", "extra", "max_tokens"),
    [
        pytest.param("claude-sonnet-4-5", False, (), 64000, id="sonnet-4-5"),
        pytest.param("claude-3-5-haiku-20241022", False, (), 8192, id="3-5-haiku"),
        pytest.param("claude-opus-4-1", False, (), 8192, id="opus-4-1-not-streamed"),
        pytest.param("claude-opus-4-1", True, (), 32000, id="opus-4-1-streamed"),
        pytest.param("claude-opus-4-6", False, (), 128000, id="opus-4-6"),
        pytest.param("some-future-model", False, (), 4096, id="unknown"),
        pytest.param("claude-sonnet-4-5", False, ("max_output_tokens = 20000",), 20000,
                     id="deployment-override"),
    ],
)  # fmt: skip
def test_unset_output_budget_is_the_models_maximum(
    model: str, stream: bool, extra: tuple[str, ...], max_tokens: int
) -> None:
    """No max_tokens from the client: the model table's maximum output, not 4096."""
    req = request(stream=True) if stream else request()
    http = adapter(model, *extra).build(req)
    body = msgspec.json.decode(http.body)
    assert body["max_tokens"] == max_tokens
    if model.startswith("claude"):
        assert check_messages_request(body) is None
    assert built(request(max_completion_tokens=300), model)[0]["max_tokens"] == 300


# -- issue 9 item 9 and the audit: nothing dropped unnamed ------------------------------


def test_strict_tools_are_sent_where_the_model_takes_them() -> None:
    """tools[].strict on structured-output models; elsewhere left out and named."""
    body, names = built(request(tools=[WEATHER]))
    assert body["tools"][0]["strict"] is True and names == ()
    body, names = built(request(tools=[WEATHER]), "claude-3-5-haiku-20241022")
    assert "strict" not in body["tools"][0]
    assert names == ("tools[].function.strict",)


def test_message_level_fields_without_an_anthropic_form_are_named() -> None:
    """A participant name, an image detail, a Gemini signature, reasoning text without its
    blocks and an audio reference are left out, each named in the dropped list."""
    image = {"type": "image_url", "image_url": {"url": "https://x.test/a.png", "detail": "low"}}
    call = {"id": "c1", "type": "function", "extra_content": {"google": {"thought_signature": "s"}},
            "function": {"name": "get_weather", "arguments": "{}"}}  # fmt: skip
    req = request(
        {"role": "system", "content": "terse", "name": "ops"},
        {"role": "user", "content": [{"type": "text", "text": "w?"}, image], "name": "ann"},
        {"role": "assistant", "content": None, "tool_calls": [call], "reasoning_content": "hmm",
         "audio": {"id": "audio_1"}},
        {"role": "tool", "tool_call_id": "c1", "content": "18C"},
        tools=[WEATHER],
    )  # fmt: skip
    body, names = built(req)
    assert names == (
        "messages[].audio",
        "messages[].content[].image_url.detail",
        "messages[].name",
        "messages[].reasoning_content",
        "messages[].tool_calls[].extra_content",
    )
    assert body["messages"][1]["content"] == [
        {"type": "tool_use", "id": "c1", "name": "get_weather", "input": {}}
    ]


@pytest.mark.parametrize(
    ("params", "expected", "dropped"),
    [
        pytest.param({"metadata": {"k": "v"}}, {}, ("metadata",), id="metadata"),
        pytest.param({"user": "u1"}, {"metadata": {"user_id": "u1"}}, (), id="user"),
        pytest.param({"user": "u1", "safety_identifier": "s1"}, {"metadata": {"user_id": "s1"}},
                     ("user",), id="safety-identifier-wins"),
        pytest.param({"service_tier": "auto"}, {"service_tier": "auto"}, (), id="tier-auto"),
        pytest.param({"service_tier": "default"}, {"service_tier": "standard_only"}, (),
                     id="tier-default"),
        pytest.param({"service_tier": "priority"}, {"service_tier": "auto"}, (),
                     id="tier-priority"),
        pytest.param({"service_tier": "flex"}, {}, ("service_tier",), id="tier-flex"),
        pytest.param({"stop": ["A", "B"]}, {"stop_sequences": ["A", "B"]}, (), id="stop"),
        pytest.param({"stream_options": {"include_usage": True}, "stream": True},
                     {"stream": True}, (), id="stream-options-mapped"),
        pytest.param({"store": True, "verbosity": "low", "prompt_cache_key": "k", "seed": 1},
                     {}, ("prompt_cache_key", "seed", "store", "verbosity"), id="openai-only"),
        pytest.param({"response_format": {"type": "json_object"}}, {}, ("response_format",),
                     id="json-object"),
        pytest.param({"response_format": {"type": "text"}}, {}, (), id="text-format"),
        pytest.param({"response_format": {"type": "json_schema",
                                          "json_schema": {"name": "n", "schema": SCHEMA}}},
                     {"output_config": {"format": {"type": "json_schema", "schema": SCHEMA}}}, (),
                     id="json-schema"),
    ],
)  # fmt: skip
def test_top_level_mappings(
    params: dict[str, Any], expected: dict[str, Any], dropped: tuple[str, ...]
) -> None:
    """Each parameter lands in Anthropic's field, or is named as dropped."""
    body, names = built(request(**params))
    for key, value in expected.items():
        assert body[key] == value, key
    assert not {"store", "seed", "verbosity", "prompt_cache_key", "response_format"} & set(body)
    assert names == dropped


def test_json_schema_is_dropped_for_models_without_structured_outputs() -> None:
    """Claude 3.5 Haiku takes no output_config.format: the format is named, not sent."""
    format_ = {"type": "json_schema", "json_schema": {"name": "n", "schema": SCHEMA}}
    body, names = built(request(response_format=format_), "claude-3-5-haiku-20241022")
    assert "output_config" not in body and names == ("response_format",)


# -- reasoning_effort -> thinking ----------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "effort", "thinking", "output_config"),
    [
        pytest.param("claude-sonnet-4-5", "low", {"type": "enabled", "budget_tokens": 4096}, None,
                     id="budget-low"),
        pytest.param("claude-sonnet-4-5", "minimal", {"type": "enabled", "budget_tokens": 1024},
                     None, id="budget-minimal"),
        pytest.param("claude-3-7-sonnet-20250219", "high",
                     {"type": "enabled", "budget_tokens": 16384}, None, id="3-7-high"),
        pytest.param("claude-opus-4-6", "medium", {"type": "adaptive"}, {"effort": "medium"},
                     id="adaptive"),
        pytest.param("claude-opus-4-6", "xhigh", {"type": "adaptive"}, {"effort": "high"},
                     id="adaptive-no-xhigh"),
        pytest.param("claude-opus-4-7", "xhigh", {"type": "adaptive"}, {"effort": "xhigh"},
                     id="adaptive-only-xhigh"),
        pytest.param("claude-sonnet-4-5", "none", None, None, id="none"),
    ],
)  # fmt: skip
def test_reasoning_effort_becomes_thinking(
    model: str, effort: str, thinking: Any, output_config: Any
) -> None:
    """Budget models get a budget by effort; adaptive ones adaptive thinking with an effort."""
    body, names = built(request(reasoning_effort=effort), model)
    assert body.get("thinking") == thinking
    assert body.get("output_config") == output_config
    assert names == ()


@pytest.mark.parametrize(
    ("req", "model", "dropped"),
    [
        pytest.param(request(reasoning_effort="high"), "claude-3-5-haiku-20241022",
                     ("reasoning_effort",), id="model-cannot-think"),
        pytest.param(request(reasoning_effort="none"), "claude-opus-4-7", ("reasoning_effort",),
                     id="cannot-turn-off"),
        pytest.param(request(reasoning_effort="high", tools=[WEATHER], tool_choice=FORCED),
                     "claude-sonnet-4-5", ("reasoning_effort",), id="forced-tool"),
        pytest.param(request({"role": "user", "content": "hi"},
                             {"role": "assistant", "content": "Sure,"}, reasoning_effort="low"),
                     "claude-sonnet-4-5", ("reasoning_effort",), id="prefill"),
        pytest.param(request(reasoning_effort="high", max_tokens=1000), "claude-sonnet-4-5",
                     ("reasoning_effort",), id="no-room-for-a-budget"),
        pytest.param(request(reasoning_effort="high", temperature=0.3, top_p=0.5),
                     "claude-sonnet-4-5", ("temperature", "top_p"), id="sampling-with-thinking"),
        pytest.param(request(reasoning_effort="high", top_p=0.97), "claude-sonnet-4-5", (),
                     id="top-p-allowed-with-thinking"),
    ],
)  # fmt: skip
def test_thinking_is_left_out_where_anthropic_refuses_it(
    req: ChatRequest, model: str, dropped: tuple[str, ...]
) -> None:
    """Each combination the API answers 400 with thinking on is sent without the loser."""
    assert built(req, model)[1] == dropped


def test_a_tool_call_without_its_thinking_blocks_turns_thinking_off() -> None:
    """The last tool-calling turn must start with its thinking: without the blocks, no thinking;
    with them (signed by the model), thinking goes on and the blocks lead the turn."""
    call = {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
    history = [{"role": "user", "content": "w?"},
               {"role": "assistant", "content": None, "tool_calls": [call]},
               {"role": "tool", "tool_call_id": "c1", "content": "18C"}]  # fmt: skip
    body, names = built(request(*history, tools=[WEATHER], reasoning_effort="low"))
    assert "thinking" not in body and names == ("reasoning_effort",)
    thought = "Call the tool."
    blocks = [{"type": "thinking", "thinking": thought, "signature": sign_thinking(thought)},
              {"type": "redacted_thinking", "data": "EncRypted"}]  # fmt: skip
    history[1] = {**history[1], "thinking_blocks": blocks, "reasoning_content": thought}
    body, names = built(request(*history, tools=[WEATHER], reasoning_effort="low"))
    assert body["thinking"]["type"] == "enabled" and names == ()
    assert body["messages"][1]["content"][:2] == blocks


def test_a_changed_thinking_block_is_refused_by_the_fake() -> None:
    """The fake checks signatures as Anthropic does: an edited block is a 400."""
    call = {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
    blocks = [{"type": "thinking", "thinking": "edited", "signature": sign_thinking("original")}]
    req = request({"role": "user", "content": "w?"},
                  {"role": "assistant", "tool_calls": [call], "thinking_blocks": blocks},
                  {"role": "tool", "tool_call_id": "c1", "content": "18C"},
                  tools=[WEATHER])  # fmt: skip
    body = msgspec.json.decode(adapter().build(req).body)
    assert "Invalid `signature`" in (check_messages_request(body) or "")


def test_malformed_thinking_blocks_are_refused() -> None:
    """A thinking block without its signature cannot be sent back: a clear Unsupported."""
    req = request({"role": "user", "content": "hi"},
                  {"role": "assistant", "content": "x", "thinking_blocks": [{"type": "thinking"}]},
                  {"role": "user", "content": "more"})  # fmt: skip
    with pytest.raises(Unsupported, match="thinking_blocks"):
        adapter().build(req)


# -- cache markers, files, legacy functions -------------------------------------------------


def test_cache_markers_reach_their_blocks() -> None:
    """cache_control on system, text, image and tool, and an OpenAI breakpoint, become
    Anthropic cache_control on the same blocks (the fake counts at most four)."""
    ephemeral = {"type": "ephemeral"}
    rules = {"type": "text", "text": "rules", "cache_control": ephemeral}
    req = request(
        {"role": "system", "content": [rules]},
        {"role": "user", "content": [
            {"type": "text", "text": "doc", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
            {"type": "text", "text": "q", "prompt_cache_breakpoint": {"mode": "explicit"}},
        ]},
        tools=[{**WEATHER, "cache_control": ephemeral}],
    )  # fmt: skip
    body, names = built(req)
    assert body["system"] == [{"type": "text", "text": "rules", "cache_control": ephemeral}]
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "doc", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
        {"type": "text", "text": "q", "cache_control": ephemeral},
    ]
    assert body["tools"][0]["cache_control"] == ephemeral
    assert names == ()
    with pytest.raises(Unsupported, match="cache_control"):
        adapter().build(request({"role": "user", "content": [
            {"type": "text", "text": "x", "cache_control": {"type": "persistent"}}]}))  # fmt: skip


def test_pdf_file_parts_become_documents_with_their_title() -> None:
    """A PDF data URL is a base64 document block; its filename is the document's title."""
    part = {"type": "file", "file": {"file_data": PDF, "filename": "report.pdf"}}
    body, _ = built(request({"role": "user", "content": [part]}))
    assert body["messages"][0]["content"] == [
        {"type": "document", "title": "report.pdf",
         "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"}}
    ]  # fmt: skip


def test_legacy_functions_are_tools() -> None:
    """functions, function_call, an assistant function_call and its function result map to
    tools, tool_choice, tool_use and tool_result, paired by a minted id."""
    req = request(
        {"role": "user", "content": "w?"},
        {"role": "assistant", "content": None,
         "function_call": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}},
        {"role": "function", "name": "get_weather", "content": "-3C"},
        functions=[{"name": "get_weather", "parameters": {"type": "object", "properties": {}}}],
        function_call={"name": "get_weather"},
    )  # fmt: skip
    body, names = built(req)
    assert body["tools"] == [{"name": "get_weather",
                              "input_schema": {"type": "object", "properties": {}}}]  # fmt: skip
    # The legacy API makes one call per turn: parallel calls are switched off.
    assert body["tool_choice"] == {
        "type": "tool",
        "name": "get_weather",
        "disable_parallel_tool_use": True,
    }
    use, result = body["messages"][1]["content"][0], body["messages"][2]["content"][0]
    assert use["type"] == "tool_use" and use["input"] == {"city": "Oslo"}
    assert result == {"type": "tool_result", "tool_use_id": use["id"], "content": "-3C"}
    assert names == ()
    both = request(functions=[{"name": "f"}], function_call="auto", tools=[WEATHER],
                   tool_choice="none")  # fmt: skip
    body, names = built(both)
    assert body["tool_choice"] == {"type": "none"} and names == ("function_call",)


def test_a_function_result_without_its_call_is_refused() -> None:
    """A role "function" message that answers no call cannot be paired: a clear refusal."""
    req = request({"role": "user", "content": "w?"},
                  {"role": "function", "name": "get_weather", "content": "-3C"})  # fmt: skip
    with pytest.raises(Unsupported, match="role 'function'"):
        adapter().build(req)
