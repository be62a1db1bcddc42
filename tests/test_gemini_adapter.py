"""The Gemini adapter's request side: every translation, the parameter policy, refusals."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors import ChatRequest, Unsupported
from actors.providers import GeminiAdapter
from config import parse_config

from .fakes import check_generate_request
from .test_anthropic_adapter import WEATHER, assistant, call, request, tool, user

SCHEMA = WEATHER["function"]["parameters"]  # type: ignore[index]
FORCED = {"type": "function", "function": {"name": "get_weather"}}
SKIP = "skip_thought_signature_validator"


def adapter(model: str = "gemini-2.5-flash", *extra: str) -> GeminiAdapter:
    text = "\n".join(
        [
            "[[deployment]]",
            'name = "gem"',
            'group = "g"',
            'provider = "gemini"',
            f'model = "{model}"',
            'api_key = "gm-abc"',
            *extra,
        ]
    )
    return GeminiAdapter(parse_config(text).deployment[0])


def body_of(req: ChatRequest, model: str = "gemini-3-pro-preview") -> dict[str, Any]:
    body: dict[str, Any] = msgspec.json.decode(adapter(model).build(req).body)
    invalid = check_generate_request(body, model=model)  # the strict fake accepts every body
    assert invalid is None, (invalid, body)
    return body


def fcall(call_id: str, city: str = "Paris", *, signed: bool = True) -> dict[str, Any]:
    part: dict[str, Any] = {
        "functionCall": {"id": call_id, "name": "get_weather", "args": {"city": city}}
    }
    if signed:
        part["thoughtSignature"] = SKIP
    return part


def fresponse(call_id: str, response: Any) -> dict[str, Any]:
    return {"functionResponse": {"id": call_id, "name": "get_weather", "response": response}}


def turn(role: str, *parts: dict[str, Any]) -> dict[str, Any]:
    return {"role": role, "parts": list(parts)}


def test_url_and_headers() -> None:
    """POST {base}/v1beta/models/{model}:generateContent with x-goog-api-key."""
    built = adapter("models/gemini-2.5-flash", 'headers = { "x-goog-user-project" = "p" }').build(
        request(user("hi"))
    )
    assert built.url == (
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
    )
    assert built.headers["x-goog-api-key"] == "gm-abc"
    assert built.headers["x-goog-user-project"] == "p"
    local = adapter("gemini-2.5-pro", 'api_base = "http://127.0.0.1:9/"', 'api_version = "v1"')
    assert local.build(request(user("hi"))).url == (
        "http://127.0.0.1:9/v1/models/gemini-2.5-pro:generateContent"
    )


TRANSLATIONS = [
    pytest.param(
        [{"role": "system", "content": "Be terse."}, {"role": "developer", "content": "Two."},
         user("hi")],
        {},
        {"systemInstruction": {"parts": [{"text": "Be terse."}, {"text": "Two."}]},
         "contents": [turn("user", {"text": "hi"})]},
        id="system-instruction",
    ),
    pytest.param(
        [user("hi")], {"tools": [WEATHER, {"type": "function", "function": {"name": "ns.get:x"}}]},
        {"tools": [{"functionDeclarations": [
            {"name": "get_weather", "description": "Get current weather",
             "parametersJsonSchema": SCHEMA},
            {"name": "ns.get:x"}]}]},
        id="tools-json-schema-and-dotted-name",
    ),
    pytest.param(
        [user("hi")], {"tools": [WEATHER], "tool_choice": "auto"},
        {"toolConfig": {"functionCallingConfig": {"mode": "AUTO"}}}, id="tool-choice-auto",
    ),
    pytest.param(
        [user("hi")], {"tools": [WEATHER], "tool_choice": "required"},
        {"toolConfig": {"functionCallingConfig": {"mode": "ANY"}}}, id="tool-choice-required",
    ),
    pytest.param(
        [user("hi")], {"tools": [WEATHER], "tool_choice": "none"},
        {"toolConfig": {"functionCallingConfig": {"mode": "NONE"}}}, id="tool-choice-none",
    ),
    pytest.param(
        [user("hi")], {"tools": [WEATHER], "tool_choice": FORCED},
        {"toolConfig": {"functionCallingConfig": {"mode": "ANY",
                                                  "allowedFunctionNames": ["get_weather"]}}},
        id="tool-choice-named",
    ),
    pytest.param(
        [user("hi")], {"tool_choice": "auto"}, {"toolConfig": None}, id="auto-without-tools",
    ),
    pytest.param(
        [user("w?"), assistant(call("c1"), content="Checking."), tool("c1", '{"temp_c":18}')],
        {},
        {"contents": [
            turn("user", {"text": "w?"}),
            turn("model", {"text": "Checking."}, fcall("c1")),
            turn("user", fresponse("c1", {"temp_c": 18})),
        ]},
        id="call-and-object-response",
    ),
    pytest.param(
        [user("w?"), assistant(call("a"), call("b", arguments='{"city":"Rome"}')),
         tool("a", "18C"), tool("b", "[1, 2]"), user("thanks")],
        {},
        {"contents": [
            turn("user", {"text": "w?"}),
            turn("model", fcall("a"), fcall("b", "Rome", signed=False)),
            turn("user", fresponse("a", {"output": "18C"}), fresponse("b", {"output": "[1, 2]"})),
            turn("user", {"text": "thanks"}),
        ]},
        id="consecutive-responses-one-turn-text-wrapped",
    ),
    pytest.param(
        [user("a"), user("b"), assistant(content=""), assistant(content="c")],
        {},
        {"contents": [turn("user", {"text": "a"}, {"text": "b"}), turn("model", {"text": "c"})]},
        id="same-kind-turns-merged-empty-skipped",
    ),
    pytest.param(
        [user([
            {"type": "text", "text": "look"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
            {"type": "input_audio", "input_audio": {"data": "UklG", "format": "wav"}},
            {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE"}},
        ])],
        {},
        {"contents": [turn(
            "user",
            {"text": "look"},
            {"inlineData": {"mimeType": "image/png", "data": "iVBO"}},
            {"inlineData": {"mimeType": "audio/wav", "data": "UklG"}},
            {"inlineData": {"mimeType": "application/pdf", "data": "JVBE"}},
        )]},
        id="content-parts-inline",
    ),
    pytest.param(
        [user("hi")],
        {"max_tokens": 10, "max_completion_tokens": 20, "temperature": 0.2, "top_p": 0.9,
         "stop": ["END"], "n": 2, "seed": 5, "presence_penalty": 0.1, "frequency_penalty": 0.3},
        {"generationConfig": {"maxOutputTokens": 20, "temperature": 0.2, "topP": 0.9,
                              "candidateCount": 2, "seed": 5, "presencePenalty": 0.1,
                              "frequencyPenalty": 0.3, "stopSequences": ["END"]}},
        id="generation-config",
    ),
    pytest.param(
        [user("hi")], {"response_format": {"type": "json_object"}},
        {"generationConfig": {"responseMimeType": "application/json"}}, id="json-object",
    ),
    pytest.param(
        [user("hi")],
        {"response_format": {"type": "json_schema",
                             "json_schema": {"name": "w", "schema": SCHEMA}}},
        {"generationConfig": {"responseMimeType": "application/json",
                              "responseJsonSchema": SCHEMA}},
        id="json-schema",
    ),
    pytest.param([user("hi")], {"stop": "END"}, {"generationConfig": {"stopSequences": ["END"]}},
                 id="stop-string"),
    pytest.param([user("hi")], {}, {"generationConfig": None, "tools": None}, id="minimal"),
]  # fmt: skip


@pytest.mark.parametrize(("messages", "params", "expected"), TRANSLATIONS)
def test_translation(
    messages: list[dict[str, Any]], params: dict[str, Any], expected: dict[str, Any]
) -> None:
    """Each OpenAI form becomes its Gemini form (and the strict fake accepts the body)."""
    body = body_of(request(*messages, **params))
    for key, value in expected.items():
        assert body.get(key) == value, key


def test_unsupported_params_are_dropped_and_named() -> None:
    """user, logit_bias, parallel_tool_calls... are left out and listed in dropped_params."""
    req = request(
        user("hi"), user="u", logit_bias={"1": 2}, tools=[WEATHER], parallel_tool_calls=False
    )
    built = adapter().build(req)
    assert built.dropped_params == ("logit_bias", "parallel_tool_calls", "user")
    assert set(msgspec.json.decode(built.body)) == {"contents", "tools"}


def test_seed_id_travels_as_the_call_and_response_id() -> None:
    """Gemini echoes ids: the seed id is sent unchanged in functionCall and functionResponse."""
    seed = "call_function_jlv0n7uyomle_1"
    body = body_of(request(user("w?"), assistant(call(seed)), tool(seed), user("Rome?")))
    assert body["contents"][1]["parts"][0]["functionCall"]["id"] == seed
    assert body["contents"][2]["parts"][0]["functionResponse"]["id"] == seed


REFUSALS = [
    pytest.param(
        request(user("hi"), tools=[{"type": "function", "function": {"name": "9lives"}}]),
        "'9lives'", id="name-starts-with-digit",
    ),
    pytest.param(
        request(user("hi"), tools=[{"type": "function", "function": {"name": "a/b"}}]),
        "'a/b'", id="name-with-slash",
    ),
    pytest.param(request(user("w"), assistant(call("a", arguments="{x")), tool("a")),
                 "not valid JSON", id="invalid-arguments"),
    pytest.param(request(user("w"), tool("nobody")), "'nobody' answers no earlier",
                 id="orphan-tool-result"),
    pytest.param(
        request(user("hi"), tools=[WEATHER],
                tool_choice={"type": "function", "function": {"name": "x"}}),
        "not in tools", id="named-tool-missing",
    ),
    pytest.param(
        request(user([{"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}])),
        "data: URL", id="remote-image",
    ),
    pytest.param(request(user([{"type": "file", "file": {"file_id": "f-1"}}])), "file_id",
                 id="file-id"),
    pytest.param(request({"role": "system", "content": "only"}), "no user", id="no-turns"),
]  # fmt: skip


@pytest.mark.parametrize(("req", "fragment"), REFUSALS)
def test_requests_gemini_cannot_express_are_refused(req: ChatRequest, fragment: str) -> None:
    """`Unsupported` names the provider and the parameter; nothing is sent."""
    with pytest.raises(Unsupported) as info:
        adapter().build(req)
    assert info.value.deployment == "gem"
    assert info.value.message.startswith("gemini: ")
    assert fragment in info.value.message


_ids = st.from_regex(r"[A-Za-z0-9_.:|-]{1,50}", fullmatch=True)
_texts = st.text(max_size=12)


@st.composite
def histories(draw: st.DrawFn) -> ChatRequest:
    messages: list[dict[str, Any]] = [user(draw(_texts) or "hi")]
    pool = draw(st.lists(_ids, max_size=6, unique=True))
    while pool:
        size = draw(st.integers(1, 3))
        ids, pool = pool[:size], pool[size:]
        messages.append(assistant(*(call(i) for i in ids), content=draw(st.none() | _texts)))
        messages.extend(tool(i, draw(st.sampled_from(["18C", '{"t":1}', "", "[]"]))) for i in ids)
        if draw(st.booleans()):
            messages.append(user(draw(_texts)))
    choice = draw(st.sampled_from(["auto", "required", "none", FORCED]))
    return request(*messages, tools=[WEATHER], tool_choice=choice)


@settings(max_examples=80, deadline=None)
@given(req=histories())
def test_every_history_passes_the_strict_rules(req: ChatRequest) -> None:
    """Any valid OpenAI history translates to a body the strict Gemini 3 fake accepts."""
    body_of(req)


def test_a_tool_choice_without_tools_is_dropped_and_named() -> None:
    """A tool_choice with no tools means nothing: left out and named, as for OpenAI."""
    http = adapter().build(request(user("hi"), tool_choice=FORCED))
    assert "toolConfig" not in msgspec.json.decode(http.body)
    assert http.dropped_params == ("tool_choice",)
