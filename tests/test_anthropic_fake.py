"""`AnthropicFake` rejects what the Messages API rejects (§3.4), with its status and shape."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import httpx
import pytest

from .fakes import (
    AnthropicFake,
    anthropic_overloaded,
    anthropic_rate_limited,
    check_messages_request,
    garbage,
    serve_app,
    success,
)

pytestmark = pytest.mark.anyio

KEY = "sk-ant-test-0123"
HEADERS = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
ID = "toolu_01A09q90qw90lq917835lq9"

# PROVIDERS.md §3.2, verbatim.
EXAMPLE: dict[str, Any] = {
    "model": "claude-sonnet-4-5", "max_tokens": 1024, "system": "You are terse.",
    "messages": [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": [{"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": ID, "name": "get_weather", "input": {"city": "Paris"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": ID, "content": "{\"temp_c\":18}",
             "is_error": False},
            {"type": "text", "text": "And Rome?"}]}],
    "tools": [{"name": "get_weather", "description": "Get current weather",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                         "required": ["city"]}}],
    "tool_choice": {"type": "tool", "name": "get_weather"}, "temperature": 0.2,
    "stop_sequences": ["END"], "stream": False,
}  # fmt: skip

Edit = Callable[[dict[str, Any]], None]


def edit(path: tuple[str | int, ...], value: Any = ..., *more: Edit) -> Edit:
    """Set `path` to `value` (or delete it when `value` is omitted), then apply `more`."""

    def apply(body: dict[str, Any]) -> None:
        target: Any = body
        for key in path[:-1]:
            target = target[key]
        if value is ...:
            del target[path[-1]]
        else:
            target[path[-1]] = value
        for extra in more:
            extra(body)

    return apply


def edited(change: Edit) -> dict[str, Any]:
    body = copy.deepcopy(EXAMPLE)
    change(body)
    return body


@pytest.fixture
async def fake() -> AsyncIterator[tuple[AnthropicFake, httpx.AsyncClient]]:
    provider = AnthropicFake(api_key=KEY)
    async with serve_app(provider) as url:
        async with httpx.AsyncClient(base_url=url, headers=HEADERS) as client:
            yield provider, client


def test_the_documented_example_is_valid() -> None:
    """PROVIDERS.md §3.2's request passes every rule."""
    assert check_messages_request(EXAMPLE) is None


_RESULT = ("messages", 2, "content", 0)
REJECTED = [
    pytest.param(edit(("context_management",), {}),
                 "context_management: Extra inputs are not permitted", id="unknown-top-level"),
    pytest.param(edit(("messages", 1, "content", 1, "text"), "x"),
                 "messages.1.content.1.tool_use.text: Extra inputs are not permitted",
                 id="unknown-in-block"),
    pytest.param(edit(("tools", 0, "parameters"), {}),
                 "tools.0.custom.parameters: Extra inputs are not permitted", id="openai-tool"),
    pytest.param(edit(("max_tokens",)), "max_tokens: Field required", id="no-max-tokens"),
    pytest.param(edit(("messages", 0, "role"), "system"), 'Unexpected role "system"',
                 id="system-role"),
    pytest.param(edit(("messages", 0, "role"), "tool"), "Input should be 'user' or 'assistant'",
                 id="tool-role"),
    pytest.param(edit(("messages", 2), {"role": "user", "content": "And Rome?"}),
                 f"messages.1: `tool_use` ids were found without `tool_result` blocks immediately"
                 f" after: {ID}", id="unanswered-tool-use"),
    pytest.param(edit(("messages", 1, "content"), [{"type": "text", "text": "Checking."}]),
                 "messages.2.content.0: unexpected `tool_use_id` found in `tool_result` blocks:"
                 f" {ID}", id="orphan-tool-result"),
    pytest.param(edit(("messages", 1, "content", 1, "id"), "call.1",
                      edit((*_RESULT, "tool_use_id"), "call.1")),
                 "messages.1.content.1.tool_use.id: String should match pattern"
                 " '^[a-zA-Z0-9_-]+$'", id="tool-use-id-pattern"),
    pytest.param(edit(("tools", 0, "name"), "get.weather"),
                 "tools.0.custom.name: String should match pattern '^[a-zA-Z0-9_-]{1,128}$'",
                 id="tool-name-pattern"),
    pytest.param(edit(("messages", 0, "content"), [{"type": "text", "text": ""}]),
                 "text content blocks must be non-empty", id="empty-text"),
    pytest.param(edit(("messages", 0, "content"), ""),
                 "all messages must have non-empty content", id="empty-content"),
    pytest.param(edit(("messages", 1, "content", 1, "input"), '{"city":"Paris"}'),
                 "tool_use.input: Input should be a valid dictionary", id="input-as-string"),
    pytest.param(edit(("messages",), [{"role": "user", "content": "a"},
                                      {"role": "user", "content": "b"}]),
                 'found multiple "user" roles in a row', id="alternation"),
    pytest.param(edit(("temperature",), 1.5), "temperature: Input should be less than or equal",
                 id="temperature-range"),
    pytest.param(edit(("tool_choice",), {"type": "required"}), "Input tag 'required'",
                 id="openai-tool-choice"),
    pytest.param(edit(("tool_choice", "name"), "get_time"), "Tool 'get_time' not found",
                 id="forced-tool-missing"),
    pytest.param(edit(("tool_choice",), {"type": "none", "disable_parallel_tool_use": True}),
                 "tool_choice.none.disable_parallel_tool_use: Extra inputs", id="none-parallel"),
    pytest.param(edit(("tools", 0, "input_schema", "type"), "array"),
                 "input_schema.type: Input should be 'object'", id="schema-not-object"),
]  # fmt: skip


@pytest.mark.parametrize(("change", "message"), REJECTED)
async def test_rejects_like_anthropic(
    fake: tuple[AnthropicFake, httpx.AsyncClient], change: Edit, message: str
) -> None:
    """400 invalid_request_error in Anthropic's shape; no directive is consumed."""
    provider, client = fake
    provider.script(anthropic_overloaded())
    response = await client.post("/v1/messages", json=edited(change))
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["type"] == "error" and body["request_id"].startswith("req_")
    assert body["error"]["type"] == "invalid_request_error"
    assert message in body["error"]["message"]
    assert provider.statistics().scripted == 1


@pytest.mark.parametrize(
    ("method", "path", "headers", "status", "kind", "message"),
    [
        pytest.param("POST", "/v1/complete", HEADERS, 404, "not_found_error", "Not Found",
                     id="route"),
        pytest.param("GET", "/v1/messages", HEADERS, 404, "not_found_error", "Not Found",
                     id="method"),
        pytest.param("POST", "/v1/messages", {"anthropic-version": "2023-06-01"}, 401,
                     "authentication_error", "x-api-key header is required", id="no-key"),
        pytest.param("POST", "/v1/messages", {**HEADERS, "x-api-key": "nope"}, 401,
                     "authentication_error", "invalid x-api-key", id="wrong-key"),
        pytest.param("POST", "/v1/messages", {"x-api-key": KEY}, 400, "invalid_request_error",
                     "anthropic-version: header is required", id="no-version"),
    ],
)  # fmt: skip
async def test_route_auth_and_version(
    method: str, path: str, headers: dict[str, str], status: int, kind: str, message: str
) -> None:
    """Route, key and version are checked before the body."""
    provider = AnthropicFake(api_key=KEY)
    async with serve_app(provider) as url, httpx.AsyncClient(base_url=url) as client:
        response = await client.request(method, path, json=EXAMPLE, headers=headers)
    assert response.status_code == status
    assert response.json()["error"] == {"type": kind, "message": message}


async def test_default_answers(fake: tuple[AnthropicFake, httpx.AsyncClient]) -> None:
    """A forced tool is called with schema-shaped input; otherwise the last user text echoes."""
    provider, client = fake
    forced = (await client.post("/v1/messages", json=EXAMPLE)).json()
    assert forced["type"] == "message" and forced["stop_reason"] == "tool_use"
    [block] = forced["content"]
    assert block["type"] == "tool_use" and block["name"] == "get_weather"
    assert block["input"] == {"city": "fake"} and block["id"].startswith("toolu_")
    plain = edited(edit(("tool_choice",)))
    answer = (await client.post("/v1/messages", json=plain)).json()
    assert answer["content"] == [{"type": "text", "text": "anthropic: And Rome?"}]
    assert answer["stop_reason"] == "end_turn"
    assert answer["usage"]["input_tokens"] > 0
    assert [r.status for r in provider.requests] == [200, 200]


async def test_script_is_followed(fake: tuple[AnthropicFake, httpx.AsyncClient]) -> None:
    """Directives answer in order: a 429 with retry-after, garbage, then a scripted refusal."""
    provider, client = fake
    provider.script(
        anthropic_rate_limited(retry_after=3),
        garbage(),
        success(content="I can't help with that.", finish_reason="refusal"),
    )
    with anyio.fail_after(10):
        limited = await client.post("/v1/messages", json=EXAMPLE)
        broken = await client.post("/v1/messages", json=EXAMPLE)
        refused = await client.post("/v1/messages", json=EXAMPLE)
    assert limited.status_code == 429 and limited.headers["retry-after"] == "3"
    assert limited.json()["error"]["type"] == "rate_limit_error"
    assert broken.status_code == 200 and broken.content == b"{not json"
    assert refused.json()["stop_reason"] == "refusal"
    assert refused.json()["content"] == [{"type": "text", "text": "I can't help with that."}]


def test_alternation_can_be_relaxed() -> None:
    """The SDK now documents that consecutive same-role turns are combined; a fake may allow it."""
    turns = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
    body = {"model": "m", "max_tokens": 5, "messages": turns}
    assert check_messages_request(body, alternation=False) is None
    assert check_messages_request(body) is not None
