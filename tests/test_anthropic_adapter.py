"""The Anthropic adapter's request side: every translation, the parameter policy, refusals."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors import ChatRequest, Unsupported, UserMessage
from actors.providers import AnthropicAdapter, universal_id
from config import parse_config

from .fakes import check_messages_request

DESCRIPTION = "Get current weather"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": DESCRIPTION,
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
CLOCK = {"type": "function", "function": {"name": "get_time"}}
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}}
FORCED = {"type": "function", "function": {"name": "get_weather"}}
SEED_ID = "call_function_jlv0n7uyomle_1"


def adapter(*extra: str) -> AnthropicAdapter:
    text = "\n".join(
        [
            "[[deployment]]",
            'name = "claude"',
            'group = "g"',
            'provider = "anthropic"',
            'model = "claude-sonnet-4-5"',
            'api_key = "sk-ant-abc"',
            *extra,
        ]
    )
    return AnthropicAdapter(parse_config(text).deployment[0])


def request(*messages: dict[str, Any], **params: Any) -> ChatRequest:
    return msgspec.convert({"model": "g", "messages": list(messages), **params}, ChatRequest)


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


def call(call_id: str, name: str = "get_weather", arguments: str = '{"city":"Paris"}') -> Any:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def assistant(*calls: Any, content: Any = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = list(calls)
    return message


def tool(call_id: str, content: Any = "18C") -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": content}


def body_of(req: ChatRequest) -> dict[str, Any]:
    built = adapter().build(req)
    body: dict[str, Any] = msgspec.json.decode(built.body)
    assert check_messages_request(body) is None, body  # the strict fake accepts every body
    return body


def text(value: str) -> dict[str, str]:
    return {"type": "text", "text": value}


def use(call_id: str, city: str = "Paris") -> dict[str, Any]:
    return {"type": "tool_use", "id": call_id, "name": "get_weather", "input": {"city": city}}


def result(call_id: str, content: str = "18C") -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": call_id, "content": content}


def test_url_and_headers() -> None:
    """POST {api_base}/v1/messages with x-api-key, anthropic-version and extra headers."""
    built = adapter('headers = { "anthropic-beta" = "b1" }').build(request(user("hi")))
    assert (built.method, built.url) == ("POST", "https://api.anthropic.com/v1/messages")
    assert built.headers["x-api-key"] == "sk-ant-abc"
    assert built.headers["anthropic-version"] == "2023-06-01"
    assert built.headers["anthropic-beta"] == "b1"
    local = adapter('api_base = "http://127.0.0.1:9/v1/"', 'api_version = "2023-01-01"')
    built = local.build(request(user("hi")))
    assert built.url == "http://127.0.0.1:9/v1/messages"
    assert built.headers["anthropic-version"] == "2023-01-01"


TRANSLATIONS = [
    pytest.param(
        [{"role": "system", "content": "Be terse."}, user("hi")],
        {},
        {"system": "Be terse.", "messages": [{"role": "user", "content": [text("hi")]}]},
        id="system-prompt-hoisted",
    ),
    pytest.param(
        [
            {"role": "system", "content": "One."},
            {"role": "developer", "content": [text("Two.")]},
            user("hi"),
        ],
        {},
        {"system": [text("One."), text("Two.")]},
        id="system-and-developer-as-blocks",
    ),
    pytest.param(
        [user("hi")],
        {"tools": [WEATHER, CLOCK]},
        {
            "tools": [
                {"name": "get_weather", "input_schema": SCHEMA, "description": DESCRIPTION},
                {"name": "get_time", "input_schema": {"type": "object", "properties": {}}},
            ]
        },
        id="tools-input-schema",
    ),
    pytest.param(
        [user("hi")], {"tools": [WEATHER], "tool_choice": "auto"},
        {"tool_choice": {"type": "auto"}}, id="tool-choice-auto",
    ),
    pytest.param(
        [user("hi")], {"tools": [WEATHER], "tool_choice": "required"},
        {"tool_choice": {"type": "any"}}, id="tool-choice-required",
    ),
    pytest.param(
        [user("hi")], {"tools": [WEATHER], "tool_choice": "none", "parallel_tool_calls": False},
        {"tool_choice": {"type": "none"}}, id="tool-choice-none",
    ),
    pytest.param(
        [user("hi")], {"tools": [WEATHER], "tool_choice": FORCED},
        {"tool_choice": {"type": "tool", "name": "get_weather"}}, id="tool-choice-named",
    ),
    pytest.param(
        [user("hi")], {"tools": [WEATHER], "tool_choice": FORCED, "parallel_tool_calls": False},
        {"tool_choice": {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True}},
        id="named-no-parallel",
    ),
    pytest.param(
        [user("hi")], {"tools": [WEATHER], "parallel_tool_calls": False},
        {"tool_choice": {"type": "auto", "disable_parallel_tool_use": True}},
        id="no-parallel-alone",
    ),
    pytest.param(
        [user("hi")], {"tool_choice": "none"}, {"tool_choice": None}, id="none-without-tools",
    ),
    pytest.param(
        [user("w?"), assistant(call("toolu_1"), content="Checking."), tool("toolu_1")],
        {},
        {
            "messages": [
                {"role": "user", "content": [text("w?")]},
                {"role": "assistant", "content": [text("Checking."), use("toolu_1")]},
                {"role": "user", "content": [result("toolu_1")]},
            ]
        },
        id="assistant-tool-call-and-result",
    ),
    pytest.param(
        [
            user("w?"),
            assistant(call("a"), call("b", arguments='{"city":"Rome"}')),
            tool("a"),
            tool("b", [text("20C")]),
            user("thanks"),
        ],
        {},
        {
            "messages": [
                {"role": "user", "content": [text("w?")]},
                {"role": "assistant", "content": [use("a"), use("b", "Rome")]},
                {"role": "user", "content": [result("a"), result("b", "20C"), text("thanks")]},
            ]
        },
        id="consecutive-tool-results-one-turn",
    ),
    pytest.param(
        [user("w?"), assistant(call("a", arguments="")), tool("a", "")],
        {},
        {
            "messages": [
                {"role": "user", "content": [text("w?")]},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "a",
                                                   "name": "get_weather", "input": {}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "a"}]},
            ]
        },
        id="empty-arguments-and-result",
    ),
    pytest.param(
        [user("a"), user("b"), assistant(content=""), user("c")],
        {},
        {"messages": [{"role": "user", "content": [text("a"), text("b"), text("c")]}]},
        id="same-role-turns-merged",
    ),
    pytest.param(
        [
            user(
                [
                    text("look"),
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
                    {"type": "image_url", "image_url": {"url": "https://x.test/a.jpg"}},
                    {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE"}},
                ]
            )
        ],
        {},
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        text("look"),
                        {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                     "data": "iVBO"}},
                        {"type": "image", "source": {"type": "url", "url": "https://x.test/a.jpg"}},
                        {"type": "document", "source": {"type": "base64",
                                                        "media_type": "application/pdf",
                                                        "data": "JVBE"}},
                    ],
                }
            ]
        },
        id="content-parts",
    ),
    pytest.param(
        [user("hi"), assistant(content=[{"type": "refusal", "refusal": "No."}]), user("why")],
        {},
        {"messages": [{"role": "user", "content": [text("hi")]},
                      {"role": "assistant", "content": [text("No.")]},
                      {"role": "user", "content": [text("why")]}]},
        id="refusal-part-as-text",
    ),
    pytest.param([user("hi")], {}, {"max_tokens": 64000}, id="max-tokens-default-model-max"),
    pytest.param(
        [user("hi")], {"max_tokens": 50, "max_completion_tokens": 70}, {"max_tokens": 70},
        id="max-completion-tokens-wins",
    ),
    pytest.param(
        [user("hi")],
        {"stop": "END", "temperature": 0.2, "top_p": 0.9, "user": "u-1"},
        {"stop_sequences": ["END"], "temperature": 0.2, "top_p": None,
         "metadata": {"user_id": "u-1"}},
        id="sampling-stop-user",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("messages", "params", "expected"), TRANSLATIONS)
def test_translation(
    messages: list[dict[str, Any]], params: dict[str, Any], expected: dict[str, Any]
) -> None:
    """Each OpenAI form becomes its Anthropic form (and the strict fake accepts the body)."""
    body = body_of(request(*messages, **params))
    for key, value in expected.items():
        assert body.get(key) == value, key
    assert body["model"] == "claude-sonnet-4-5"


def test_unsupported_params_are_dropped_and_named() -> None:
    """seed, n, response_format... are left out of the body and listed in dropped_params."""
    req = request(user("hi"), seed=1, n=1, response_format={"type": "json_object"}, logprobs=True)
    built = adapter().build(req)
    body = msgspec.json.decode(built.body)
    assert built.dropped_params == ("logprobs", "n", "response_format", "seed")
    assert not set(body) & {"seed", "n", "response_format", "logprobs"}


def test_seed_id_is_kept_and_bad_ids_are_rewritten_in_pairs() -> None:
    """Ids matching ^[a-zA-Z0-9_-]+$ pass; others become the same universal id twice."""
    body = body_of(
        request(
            user("w?"),
            assistant(call(SEED_ID), call("call.1:x", arguments='{"city":"Rome"}')),
            tool(SEED_ID),
            tool("call.1:x"),
        )
    )
    uses = [block["id"] for block in body["messages"][1]["content"]]
    results = [block["tool_use_id"] for block in body["messages"][2]["content"]]
    assert uses == results == [SEED_ID, universal_id("call.1:x")]


REFUSALS = [
    pytest.param(request(user("hi"), temperature=1.5), "temperature 1.5", id="temperature-over-1"),
    pytest.param(
        request(user("hi"), tools=[{"type": "function", "function": {"name": "get.weather"}}]),
        "'get.weather'",
        id="tool-name-with-dot",
    ),
    pytest.param(
        request(user("w"), assistant(call("a", arguments="{oops")), tool("a")),
        "not valid JSON",
        id="invalid-arguments",
    ),
    pytest.param(
        request(user("w"), assistant(call("a", arguments="[1]")), tool("a")),
        "not an object",
        id="arguments-not-object",
    ),
    pytest.param(
        request(user("hi"), tool_choice="required"), "needs tools", id="required-no-tools"
    ),
    pytest.param(
        request(user("hi"), tools=[WEATHER], tool_choice={"type": "function",
                                                          "function": {"name": "x"}}),
        "not in tools",
        id="named-tool-missing",
    ),
    pytest.param(
        request(user([{"type": "input_audio", "input_audio": {"data": "AA", "format": "wav"}}])),
        "input_audio",
        id="audio-part",
    ),
    pytest.param(
        request(user([{"type": "file", "file": {"file_id": "file-1"}}])), "file_id", id="file-id"
    ),
    pytest.param(
        request(user([{"type": "image_url", "image_url": {"url": "data:image/bmp;base64,Qk0"}}])),
        "image_url",
        id="image-type",
    ),
    pytest.param(
        request(user("hi"), tools=[{"type": "function", "function": {"name": "t",
                                    "parameters": {"type": "array"}}}]),
        "input_schema",
        id="schema-not-object",
    ),
    pytest.param(request({"role": "system", "content": "only"}), "no user", id="no-turns"),
]  # fmt: skip


@pytest.mark.parametrize(("req", "fragment"), REFUSALS)
def test_requests_anthropic_cannot_express_are_refused(req: ChatRequest, fragment: str) -> None:
    """`Unsupported` names the provider and the parameter; nothing is sent."""
    with pytest.raises(Unsupported) as info:
        adapter().build(req)
    assert info.value.deployment == "claude"
    assert info.value.message.startswith("anthropic: ")
    assert fragment in info.value.message


_ids = st.from_regex(r"[A-Za-z0-9_.:|-]{1,50}", fullmatch=True)
_texts = st.text(min_size=0, max_size=12)


@st.composite
def histories(draw: st.DrawFn) -> ChatRequest:
    messages: list[dict[str, Any]] = []
    if draw(st.booleans()):
        messages.append({"role": "system", "content": draw(_texts)})
    messages.append(user(draw(_texts) or "hi"))
    pool = draw(st.lists(_ids, max_size=6, unique=True))  # ids are unique in a history
    while pool:
        size = draw(st.integers(1, 3))
        ids, pool = pool[:size], pool[size:]
        messages.append(assistant(*(call(i) for i in ids), content=draw(st.none() | _texts)))
        messages.extend(tool(i, draw(_texts)) for i in ids)
        if draw(st.booleans()):
            messages.append(user(draw(_texts)))
    params: dict[str, Any] = {"tools": [WEATHER]}
    params["tool_choice"] = draw(st.sampled_from(["auto", "required", "none", FORCED]))
    return request(*messages, **params)


@settings(max_examples=80, deadline=None)
@given(req=histories())
def test_every_history_passes_the_strict_rules(req: ChatRequest) -> None:
    """Any valid OpenAI history translates to a body the strict fake accepts, or is refused
    with a precise Unsupported (e.g. only blank text: Anthropic rejects empty content)."""
    try:
        body_of(req)
    except Unsupported as exc:
        assert exc.message.startswith("anthropic: ")
        assert all(
            isinstance(m.content, str) and not m.content.strip()
            for m in req.messages
            if isinstance(m, UserMessage)
        )
