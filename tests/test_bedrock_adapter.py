"""The Bedrock Converse adapter: translation, responses and errors as tables, no network."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from actors import ChatRequest, Unsupported, request_decoder
from actors.providers import BedrockAdapter, universal_id
from config import parse_config

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get current weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
WEATHER_SPEC = {
    "toolSpec": {
        "name": "get_weather",
        "description": "Get current weather",
        "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"}}}},
    }
}
SEED_ID = "call_function_jlv0n7uyomle_1"


def adapter(*extra: str, model: str = "anthropic.claude-3-5-haiku-20241022-v1:0") -> BedrockAdapter:
    lines = ["[[deployment]]", 'name = "b"', 'group = "g"', 'provider = "bedrock"',
             f'model = "{model}"', *extra]  # fmt: skip
    if not any(line.startswith(("region", "api_base")) for line in extra):
        lines.append('region = "us-west-2"')
    return BedrockAdapter(parse_config("\n".join(lines)).deployment[0])


def request(**body: Any) -> ChatRequest:
    return request_decoder.decode(msgspec.json.encode({"model": "g", **body}))


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def call(call_id: str = SEED_ID, name: str = "get_weather", args: str = '{"city":"Paris"}') -> Any:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}


def calls(*tool_calls: Any, content: Any = None) -> dict[str, Any]:
    return {"role": "assistant", "content": content, "tool_calls": list(tool_calls)}


def result(call_id: str = SEED_ID, content: Any = "18C") -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": content}


def converse(**body: Any) -> dict[str, Any]:
    built: dict[str, Any] = msgspec.json.decode(adapter().build(request(**body)).body)
    return built


def use(call_id: str = SEED_ID, city: str = "Paris") -> dict[str, Any]:
    return {"toolUse": {"toolUseId": call_id, "name": "get_weather", "input": {"city": city}}}


def tool_result(call_id: str = SEED_ID, text: str = "18C") -> dict[str, Any]:
    return {"toolResult": {"toolUseId": call_id, "content": [{"text": text}], "status": "success"}}


HISTORY = [user("Weather?"), calls(call()), result(), user("And Rome?")]
HISTORY_TURNS = [
    {"role": "user", "content": [{"text": "Weather?"}]},
    {"role": "assistant", "content": [use()]},
    {"role": "user", "content": [tool_result(), {"text": "And Rome?"}]},
]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            {"messages": [{"role": "system", "content": "Be terse."}, user("hi")]},
            {"system": [{"text": "Be terse."}], "messages": [
                {"role": "user", "content": [{"text": "hi"}]}]},
            id="system-prompt",
        ),
        pytest.param(
            {"messages": [{"role": "developer", "content": [{"type": "text", "text": "A"}]},
                          user("hi"), {"role": "system", "content": "B"}]},
            {"system": [{"text": "A"}, {"text": "B"}], "messages": [
                {"role": "user", "content": [{"text": "hi"}]}]},
            id="developer-and-late-system-join-the-system-blocks",
        ),
        pytest.param(
            {"messages": [user("hi")], "tools": [WEATHER]},
            {"messages": [{"role": "user", "content": [{"text": "hi"}]}],
             "toolConfig": {"tools": [WEATHER_SPEC]}},
            id="tools-without-choice",
        ),
        pytest.param(
            {"messages": [user("hi")], "tools": [WEATHER], "tool_choice": "auto"},
            {"messages": [{"role": "user", "content": [{"text": "hi"}]}],
             "toolConfig": {"tools": [WEATHER_SPEC], "toolChoice": {"auto": {}}}},
            id="tool-choice-auto",
        ),
        pytest.param(
            {"messages": [user("hi")], "tools": [WEATHER], "tool_choice": "required"},
            {"messages": [{"role": "user", "content": [{"text": "hi"}]}],
             "toolConfig": {"tools": [WEATHER_SPEC], "toolChoice": {"any": {}}}},
            id="tool-choice-required-is-any",
        ),
        pytest.param(
            {"messages": [user("hi")], "tools": [WEATHER],
             "tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
            {"messages": [{"role": "user", "content": [{"text": "hi"}]}],
             "toolConfig": {"tools": [WEATHER_SPEC],
                            "toolChoice": {"tool": {"name": "get_weather"}}}},
            id="forced-tool-choice",
        ),
        pytest.param(
            {"messages": [user("hi")], "tools": [WEATHER], "tool_choice": "none"},
            {"messages": [{"role": "user", "content": [{"text": "hi"}]}]},
            id="tool-choice-none-without-history-omits-toolConfig",
        ),
        pytest.param(
            {"messages": HISTORY, "tools": [WEATHER]},
            {"messages": HISTORY_TURNS, "toolConfig": {"tools": [WEATHER_SPEC]}},
            id="tool-call-and-result-then-user-text-in-one-turn",
        ),
        pytest.param(
            {"messages": HISTORY},
            {"messages": HISTORY_TURNS, "toolConfig": {"tools": [{"toolSpec": {
                "name": "get_weather", "inputSchema": {"json": {"type": "object"}}}}]}},
            id="tool-history-without-tools-reconstructs-toolConfig",
        ),
        pytest.param(
            {"messages": [user("Both?"),
                          calls(call("c1"), call("c2", args='{"city":"Rome"}'), content="Sure."),
                          result("c1", "18C"), result("c2", [{"type": "text", "text": "21C"}])],
             "tools": [WEATHER]},
            {"messages": [
                {"role": "user", "content": [{"text": "Both?"}]},
                {"role": "assistant", "content": [{"text": "Sure."}, use("c1"), use("c2", "Rome")]},
                {"role": "user", "content": [tool_result("c1"), tool_result("c2", "21C")]}],
             "toolConfig": {"tools": [WEATHER_SPEC]}},
            id="consecutive-tool-results-in-one-user-turn",
        ),
        pytest.param(
            {"messages": [user("a"), user("b"), {"role": "assistant", "content": "x"},
                          {"role": "assistant", "content": [{"type": "text", "text": "y"}]}]},
            {"messages": [{"role": "user", "content": [{"text": "a"}, {"text": "b"}]},
                          {"role": "assistant", "content": [{"text": "x"}, {"text": "y"}]}]},
            id="same-role-turns-merge",
        ),
        pytest.param(
            {"messages": [{"role": "assistant", "content": "Hello!"}, user("hi")]},
            {"messages": [{"role": "user", "content": [{"text": "(continue)"}]},
                          {"role": "assistant", "content": [{"text": "Hello!"}]},
                          {"role": "user", "content": [{"text": "hi"}]}]},
            id="conversation-starts-with-a-user-turn",
        ),
        pytest.param(
            {"messages": [user("hi"), {"role": "assistant", "content": ""}, user("  ")]},
            {"messages": [{"role": "user", "content": [{"text": "hi"}]}]},
            id="blank-texts-are-not-sent",
        ),
        pytest.param(
            {"messages": [{"role": "user", "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/jpg;base64,AAAA"}}]}]},
            {"messages": [{"role": "user", "content": [
                {"text": "What is this?"},
                {"image": {"format": "jpeg", "source": {"bytes": "AAAA"}}}]}]},
            id="content-parts-text-and-data-url-image",
        ),
        pytest.param(
            {"messages": [user("hi")], "max_tokens": 10, "max_completion_tokens": 20,
             "temperature": 0.2, "top_p": 0.9, "stop": "END"},
            {"messages": [{"role": "user", "content": [{"text": "hi"}]}],
             "inferenceConfig": {"maxTokens": 20, "temperature": 0.2, "topP": 0.9,
                                 "stopSequences": ["END"]}},
            id="inference-config",
        ),
        pytest.param(
            {"messages": [user("hi")], "max_tokens": 10, "stop": ["a", "b"], "temperature": None},
            {"messages": [{"role": "user", "content": [{"text": "hi"}]}],
             "inferenceConfig": {"maxTokens": 10, "stopSequences": ["a", "b"]}},
            id="max-tokens-and-stop-list-null-temperature",
        ),
    ],
)  # fmt: skip
def test_translation(body: dict[str, Any], expected: dict[str, Any]) -> None:
    """Each OpenAI form becomes the Converse body PROVIDERS.md §4.2 shows."""
    assert converse(**body) == expected


def test_unsupported_params_are_dropped_and_named() -> None:
    """Parameters Converse cannot express are left out and listed for the response header."""
    body = request(
        messages=[user("hi")], seed=1, user="u", n=1,
        response_format={"type": "json_object"}, logprobs=True,
    )  # fmt: skip
    http = adapter().build(body)
    assert http.dropped_params == ("logprobs", "n", "response_format", "seed", "user")
    assert msgspec.json.decode(http.body) == {
        "messages": [{"role": "user", "content": [{"text": "hi"}]}]
    }


@pytest.mark.parametrize(
    ("body", "phrase"),
    [
        pytest.param({"messages": HISTORY, "tools": [WEATHER], "tool_choice": "none"},
                     'tool_choice "none"', id="tool-choice-none-with-tool-history"),
        pytest.param({"messages": [user("hi")], "temperature": 1.5},
                     "temperature 1.5", id="temperature-above-one"),
        pytest.param({"messages": [{"role": "user", "content": [{"type": "image_url",
                      "image_url": {"url": "https://x.test/cat.png"}}]}]},
                     "image_url", id="image-by-url"),
        pytest.param({"messages": [{"role": "user", "content": [{"type": "input_audio",
                      "input_audio": {"data": "AAAA", "format": "wav"}}]}]},
                     "'input_audio'", id="audio-part"),
        pytest.param({"messages": [user("hi")], "tools": [{"type": "function",
                      "function": {"name": "get weather"}}]},
                     "tool name 'get weather'", id="tool-name-with-space"),
        pytest.param({"messages": [user("hi"), calls(call(name="a.b")), result(), user("x")]},
                     "tool name 'a.b'", id="history-tool-name-with-dot"),
        pytest.param({"messages": [user("hi"), calls(call(args="{nope")), result(), user("x")]},
                     "are not JSON", id="tool-arguments-not-json"),
    ],
)  # fmt: skip
def test_inexpressible_requests_raise_unsupported(body: dict[str, Any], phrase: str) -> None:
    """What Converse cannot express is refused before sending, naming bedrock and the parameter."""
    with pytest.raises(Unsupported) as caught:
        adapter().build(request(**body))
    assert caught.value.message.startswith("bedrock: ")
    assert phrase in caught.value.message
    assert caught.value.deployment == "b"


@pytest.mark.parametrize(
    ("original", "sent"),
    [
        pytest.param(SEED_ID, SEED_ID, id="seed-id-already-valid"),
        pytest.param("tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q",
                     id="bedrock-minted"),
        pytest.param("call:ns.1-a_b", "call:ns.1-a_b", id="colon-and-dot-allowed-since-2026"),
        pytest.param("call abc/def", universal_id("call abc/def"), id="space-and-slash"),
        pytest.param("x" * 65, universal_id("x" * 65), id="longer-than-64"),
    ],
)  # fmt: skip
def test_tool_call_ids_follow_the_tooluseid_rule(original: str, sent: str) -> None:
    """Ids Bedrock rejects are rewritten the same way in toolUse and in toolResult."""
    body = converse(messages=[user("hi"), calls(call(original)), result(original), user("x")])
    assert body["messages"][1]["content"][0]["toolUse"]["toolUseId"] == sent
    assert body["messages"][2]["content"][0]["toolResult"]["toolUseId"] == sent


@pytest.mark.parametrize(
    ("extra", "model", "url"),
    [
        pytest.param((), "anthropic.claude-3-5-haiku-20241022-v1:0",
                     "https://bedrock-runtime.us-west-2.amazonaws.com/model/"
                     "anthropic.claude-3-5-haiku-20241022-v1%3A0/converse", id="region"),
        pytest.param(('api_base = "https://bedrock-runtime.eu-west-3.amazonaws.com"',),
                     "m", "https://bedrock-runtime.eu-west-3.amazonaws.com/model/m/converse",
                     id="api-base"),
        pytest.param((), "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.x.y-v1:0",
                     "https://bedrock-runtime.us-west-2.amazonaws.com/model/arn%3Aaws%3Abedrock"
                     "%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.x.y-v1%3A0/converse",
                     id="arn-is-one-encoded-segment"),
    ],
)  # fmt: skip
def test_url(extra: tuple[str, ...], model: str, url: str) -> None:
    """The model id is one percent-encoded path segment, as botocore sends it (§4.1)."""
    assert adapter(*extra, model=model).build(request(messages=[user("hi")])).url == url


def test_region_comes_from_api_base_when_not_given() -> None:
    """SigV4 signs for the region of a `bedrock-runtime.{region}` api_base."""
    auth = adapter('api_base = "https://bedrock-runtime.ap-south-1.amazonaws.com"').auth
    assert auth is not None and auth.region == "ap-south-1"  # type: ignore[attr-defined]


def test_api_key_is_a_bearer_token_and_disables_signing() -> None:
    """With `api_key`, Bedrock API keys go in `Authorization: Bearer` and nothing signs."""
    with_key = adapter('api_key = "bedrock-api-key"')
    assert with_key.auth is None
    assert with_key.build(request(messages=[user("hi")])).headers["authorization"] == (
        "Bearer bedrock-api-key"
    )
    assert type(adapter().auth).__name__ == "BedrockSigV4"
    assert "authorization" not in adapter().build(request(messages=[user("hi")])).headers
