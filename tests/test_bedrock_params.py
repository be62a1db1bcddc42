"""The Bedrock adapter's parameter table: Converse fields for what maps, names for what is
dropped; every body passes botocore's service model and the fake's per-model rules."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import anyio
import msgspec
import pytest
from openai.types.chat import ChatCompletion as SDKCompletion

from actors import ChatCall, ChatRequest, Unsupported
from actors.providers import BEDROCK_TABLE, OPTIONAL_PARAMS, BedrockAdapter
from config import parse_config
from dispatcher import Supervisor

from .fakes import BedrockFake, check_converse, serve_app, success
from .fakes._bedrock_models import converse_model_problem
from .fakes._claude_models import sign_thinking
from .helpers import stack

SONNET = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
OPUS_46 = "global.anthropic.claude-opus-4-6-v1"
HAIKU_35 = "anthropic.claude-3-5-haiku-20241022-v1:0"
NOVA = "amazon.nova-pro-v1:0"
KEY = "bedrock-api-key"
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "strict": True,
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"], "additionalProperties": False},
}}  # fmt: skip
SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"],
          "additionalProperties": False}  # fmt: skip


def adapter(model: str, *extra: str) -> BedrockAdapter:
    text = "\n".join(["[[deployment]]", 'name = "b"', 'group = "g"', 'provider = "bedrock"',
                      f'model = "{model}"', 'region = "us-east-1"', *extra])  # fmt: skip
    return BedrockAdapter(parse_config(text).deployment[0])


def request(*messages: dict[str, Any], **params: Any) -> ChatRequest:
    messages = messages or ({"role": "user", "content": "hi"},)
    return msgspec.convert({"model": "g", "messages": list(messages), **params}, ChatRequest)


def built(req: ChatRequest, model: str = SONNET, *extra: str) -> tuple[Any, ...]:
    """(body, dropped), after checking Bedrock would accept the body for `model`."""
    chosen = adapter(model, *extra)
    http = chosen.build(req)
    body = msgspec.json.decode(http.body)
    assert check_converse(body) is None, (check_converse(body), body)
    assert converse_model_problem(model, body) is None, (converse_model_problem(model, body), body)
    assert chosen.dropped_params(req) == http.dropped_params
    return body, http.dropped_params


def test_the_table_has_a_row_for_every_parameter() -> None:
    """Every optional parameter has one row, with a note; supported_params follows it."""
    assert set(BEDROCK_TABLE) == OPTIONAL_PARAMS
    assert all(row.note for row in BEDROCK_TABLE.values())


@pytest.mark.parametrize(
    ("model", "inference", "dropped"),
    [
        pytest.param(SONNET, {"temperature": 0.2}, ("top_p",), id="sonnet-4-5"),
        pytest.param(HAIKU_35, {"temperature": 0.2, "topP": 0.9}, (), id="3-5-haiku"),
        pytest.param("anthropic.claude-opus-4-7", {}, ("temperature", "top_p"), id="opus-4-7"),
        pytest.param(NOVA, {"temperature": 0.2, "topP": 0.9}, (), id="not-claude"),
    ],
)  # fmt: skip
def test_temperature_and_top_p_follow_the_model(
    model: str, inference: dict[str, float], dropped: tuple[str, ...]
) -> None:
    """Claude models that refuse both get temperature only; other models get both."""
    body, names = built(request(temperature=0.2, top_p=0.9), model)
    assert body.get("inferenceConfig", {}) == inference
    assert names == dropped


def test_output_budget() -> None:
    """Converse defaults maxTokens to the model's maximum: sent only when asked for or
    configured, or above a thinking budget (from the model table)."""
    assert "inferenceConfig" not in built(request())[0]
    assert built(request(max_tokens=50))[0]["inferenceConfig"] == {"maxTokens": 50}
    body = built(request(), SONNET, "max_output_tokens = 9000")[0]
    assert body["inferenceConfig"] == {"maxTokens": 9000}
    body = built(request(reasoning_effort="low"))[0]
    assert body["inferenceConfig"] == {"maxTokens": 64000}
    assert body["additionalModelRequestFields"] == {
        "thinking": {"type": "enabled", "budget_tokens": 4096}
    }


@pytest.mark.parametrize(
    ("model", "effort", "extra", "output", "dropped"),
    [
        pytest.param(OPUS_46, "high", {"thinking": {"type": "adaptive"}}, {"effort": "high"},
                     ("temperature",), id="adaptive"),
        pytest.param(HAIKU_35, "high", None, None, ("reasoning_effort",), id="cannot-think"),
        pytest.param(NOVA, "high", None, None, ("reasoning_effort",), id="not-claude"),
    ],
)  # fmt: skip
def test_reasoning_effort(
    model: str, effort: str, extra: Any, output: Any, dropped: tuple[str, ...]
) -> None:
    """Claude thinking goes in additionalModelRequestFields (temperature then left out),
    effort in outputConfig; models that cannot think keep temperature and name the effort."""
    body, names = built(request(reasoning_effort=effort, temperature=0.5), model)
    assert body.get("additionalModelRequestFields") == extra
    assert body.get("outputConfig") == output
    assert names == dropped


def test_json_schema_becomes_text_format() -> None:
    """json_schema -> outputConfig.textFormat with the schema as a JSON string; strict tools
    keep strict on structured-output models, and both are named elsewhere."""
    format_ = {"type": "json_schema", "json_schema": {"name": "answer", "schema": SCHEMA}}
    body, names = built(request(response_format=format_, tools=[WEATHER]))
    structure = body["outputConfig"]["textFormat"]["structure"]["jsonSchema"]
    assert msgspec.json.decode(structure["schema"]) == SCHEMA
    assert structure["name"] == "answer"
    assert body["toolConfig"]["tools"][0]["toolSpec"]["strict"] is True
    assert names == ()
    body, names = built(request(response_format=format_, tools=[WEATHER]), HAIKU_35)
    assert "outputConfig" not in body and "strict" not in body["toolConfig"]["tools"][0]["toolSpec"]
    assert names == ("response_format", "tools[].function.strict")


def test_cache_markers_become_cache_points() -> None:
    """A cache marker on a system part, a user part and a tool is a cachePoint after it;
    for a model without Claude's caching it is named instead."""
    marked = {"type": "text", "text": "rules", "cache_control": {"type": "ephemeral", "ttl": "1h"}}
    tool = {**WEATHER, "cache_control": {"type": "ephemeral"}}
    req = request({"role": "system", "content": [marked]},
                  {"role": "user", "content": [{**marked, "text": "doc"}, {"type": "text",
                   "text": "q", "prompt_cache_breakpoint": {"mode": "explicit"}}]},
                  tools=[tool])  # fmt: skip
    body, names = built(req)
    point = {"cachePoint": {"type": "default", "ttl": "1h"}}
    assert body["system"] == [{"text": "rules"}, point]
    assert body["messages"][0]["content"] == [
        {"text": "doc"},
        point,
        {"text": "q"},
        {"cachePoint": {"type": "default"}},
    ]
    assert body["toolConfig"]["tools"][1] == {"cachePoint": {"type": "default"}}
    assert names == ()
    body, names = built(req, NOVA)
    assert "cachePoint" not in msgspec.json.encode(body).decode()
    assert names == ("messages[].content[].cache_control",
                     "messages[].content[].prompt_cache_breakpoint", "tools[].cache_control",
                     "tools[].function.strict")  # fmt: skip


def test_files_become_document_blocks() -> None:
    """PDF and other document data URLs are document blocks with a valid, unique name."""
    pdf = {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0x",
                                    "filename": "Q3 report: final!.pdf"}}  # fmt: skip
    csv = {"type": "file", "file": {"file_data": "data:text/csv;base64,YSxi"}}
    body, _ = built(request({"role": "user", "content": [pdf, pdf, csv]}))
    docs = [block["document"] for block in body["messages"][0]["content"]]
    assert [(d["format"], d["name"]) for d in docs] == [
        ("pdf", "Q3 report final"),
        ("pdf", "Q3 report final (2)"),
        ("csv", "document"),
    ]
    assert docs[0]["source"] == {"bytes": "JVBERi0x"}


@pytest.mark.parametrize(
    ("params", "expected", "dropped"),
    [
        pytest.param({"metadata": {"team": "search", "run": "r-1"}},
                     {"requestMetadata": {"team": "search", "run": "r-1"}}, (), id="metadata"),
        pytest.param({"metadata": {"note": "has \"quotes\""}}, {}, ("metadata",),
                     id="metadata-that-does-not-fit"),
        pytest.param({"service_tier": "flex"}, {"serviceTier": {"type": "flex"}}, (), id="flex"),
        pytest.param({"service_tier": "auto"}, {}, (), id="auto"),
        pytest.param({"service_tier": "scale"}, {}, ("service_tier",), id="scale"),
        pytest.param({"user": "u", "parallel_tool_calls": False, "safety_identifier": "s"}, {},
                     ("parallel_tool_calls", "safety_identifier", "user"), id="not-in-converse"),
        pytest.param({"response_format": {"type": "json_object"}}, {}, ("response_format",),
                     id="json-object"),
    ],
)  # fmt: skip
def test_top_level_mappings(
    params: dict[str, Any], expected: dict[str, Any], dropped: tuple[str, ...]
) -> None:
    """Each parameter lands in its Converse field, or is named as dropped."""
    body, names = built(request(**params))
    for key, value in expected.items():
        assert body[key] == value
    assert not {"requestMetadata", "serviceTier"} - set(expected) & set(body)
    assert names == dropped


def test_thinking_blocks_go_back_as_reasoning_content() -> None:
    """Signed thinking blocks of a Claude answer lead the assistant turn as reasoningContent;
    for other models they are named as dropped."""
    thought = "Call the tool."
    blocks = [{"type": "thinking", "thinking": thought, "signature": sign_thinking(thought)}]
    call = {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
    history = [{"role": "user", "content": "w?"},
               {"role": "assistant", "tool_calls": [call], "thinking_blocks": blocks},
               {"role": "tool", "tool_call_id": "c1", "content": "18C"}]  # fmt: skip
    body, names = built(request(*history, tools=[WEATHER], reasoning_effort="low"))
    assert body["messages"][1]["content"][0] == {"reasoningContent": {"reasoningText": {
        "text": thought, "signature": sign_thinking(thought)}}}  # fmt: skip
    assert names == ()
    body, names = built(request(*history, tools=[WEATHER]), NOVA)
    assert "reasoningContent" not in msgspec.json.encode(body).decode()
    assert "messages[].thinking_blocks" in names


@contextlib.asynccontextmanager
async def supervisor(fake: BedrockFake, model: str) -> AsyncIterator[Supervisor]:
    async with serve_app(fake) as url:
        text = "\n".join(["[router]", "num_retries = 0", "[[deployment]]", 'name = "b"',
                          'group = "g"', 'provider = "bedrock"', f'model = "{model}"',
                          f'api_base = "{url}"', f'api_key = "{KEY}"'])  # fmt: skip
        async with stack(text) as s:
            yield s.supervisor


async def complete(chosen: Supervisor, **body: Any) -> Any:
    with anyio.fail_after(10):
        result = await chosen.complete(msgspec.convert({"model": "g", **body}, ChatCall))
    return SDKCompletion.model_validate(msgspec.json.decode(msgspec.json.encode(result.response)))


@pytest.mark.anyio
async def test_thinking_structured_output_and_cache_end_to_end() -> None:
    """Against the strict fake: a thinking answer round-trips its signed block, a JSON-schema
    answer is JSON, and the second call with a cache point reports cached_tokens."""
    fake = BedrockFake(models=[SONNET], api_key=KEY)
    fake.script(success(tool_calls=(("get_weather", '{"city":"Oslo"}'),)))
    question = {"role": "user", "content": "Weather in Oslo?"}
    async with supervisor(fake, SONNET) as chosen:
        first = await complete(chosen, messages=[question], tools=[WEATHER],
                               reasoning_effort="low")  # fmt: skip
        message = first.choices[0].message
        assert message.model_extra["reasoning_content"].startswith("bedrock thinks about")
        [call] = message.tool_calls
        history = [question, message.model_dump(exclude_none=True),
                   {"role": "tool", "tool_call_id": call.id, "content": "-3C"}]  # fmt: skip
        await complete(chosen, messages=history, tools=[WEATHER], reasoning_effort="low")
        format_ = {"type": "json_schema", "json_schema": {"name": "n", "schema": SCHEMA}}
        shaped = await complete(chosen, messages=[question], response_format=format_)
        system = {
            "role": "system",
            "content": [
                {"type": "text", "text": "Preamble. " * 50, "cache_control": {"type": "ephemeral"}}
            ],
        }
        await complete(chosen, messages=[system, question])
        cached = await complete(chosen, messages=[system, {"role": "user", "content": "more"}])
    assert [r.status for r in fake.requests] == [200] * 5
    assert msgspec.json.decode(shaped.choices[0].message.content) == {"a": 0}
    assert cached.usage.prompt_tokens_details.cached_tokens > 0


def test_legacy_functions_are_a_tool_config() -> None:
    """functions / function_call and a function's result become toolSpec, toolChoice and a
    toolUse / toolResult pair; a result that answers no call is refused."""
    req = request(
        {"role": "user", "content": "w?"},
        {"role": "assistant", "content": None,
         "function_call": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}},
        {"role": "function", "name": "get_weather", "content": "-3C"},
        functions=[{"name": "get_weather", "parameters": {"type": "object", "properties": {}}}],
        function_call={"name": "get_weather"},
    )  # fmt: skip
    body, names = built(req, HAIKU_35)
    assert body["toolConfig"]["toolChoice"] == {"tool": {"name": "get_weather"}}
    use = body["messages"][1]["content"][0]["toolUse"]
    result = body["messages"][2]["content"][0]["toolResult"]
    assert (use["input"], result["toolUseId"]) == ({"city": "Oslo"}, use["toolUseId"])
    assert names == ()
    orphan = request({"role": "user", "content": "w?"},
                     {"role": "function", "name": "get_weather", "content": "-3C"})  # fmt: skip
    with pytest.raises(Unsupported, match="role 'function'"):
        adapter(HAIKU_35).build(orphan)
