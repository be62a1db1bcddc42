"""Mistral end to end: the dispatcher against the strict `MistralFake`, and the fake's rules."""

from __future__ import annotations

import copy
import re
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import msgspec
import pytest

from actors import ChatCall
from dispatcher import AllAttemptsFailed

from .fakes import (
    MistralFake,
    check_mistral_request,
    garbage,
    mistral_capacity_exceeded,
    mistral_context_too_large,
    mistral_rate_limited,
    serve_app,
)
from .helpers import stack

pytestmark = pytest.mark.anyio

KEY = "mistral-test-key"
SEED_ID = "call_function_jlv0n7uyomle_1"
NINE = re.compile(r"[a-zA-Z0-9]{9}")
TOOLS: list[dict[str, Any]] = [{"type": "function", "function": {
    "name": "get_weather", "description": "Get weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}]  # fmt: skip
SEED_HISTORY = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": None, "tool_calls": [{"id": SEED_ID, "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]},
    {"role": "tool", "tool_call_id": SEED_ID, "content": '{"temp_c":18}'},
    {"role": "user", "content": "And Rome?"},
]  # fmt: skip


def config(url: str) -> str:
    return "\n".join([
        "[router]", "num_retries = 0", "[[deployment]]", 'name = "mistral-a"', 'group = "g"',
        'provider = "mistral"', 'model = "mistral-large-latest"', f'api_base = "{url}/v1"',
        f'api_key = "{KEY}"',
    ])  # fmt: skip


def call(**body: Any) -> ChatCall:
    return msgspec.convert({"model": "g", **body}, ChatCall)


async def test_seed_history_reaches_mistral_with_nine_char_ids_and_pairs() -> None:
    """`call_function_jlv0n7uyomle_1` becomes one nine-alphanumeric id in call and result."""
    fake = MistralFake(api_key=KEY)
    async with serve_app(fake) as url, stack(config(url)) as s:
        with anyio.fail_after(10):
            result = await s.supervisor.complete(call(messages=SEED_HISTORY, tools=TOOLS))
    [received] = fake.requests
    assert received.status == 200
    assert check_mistral_request(received.json) is None
    messages = received.json["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool", "assistant",
                                             "user"]  # fmt: skip
    [sent_call] = messages[2]["tool_calls"]
    assert NINE.fullmatch(sent_call["id"]) and sent_call["id"] == messages[3]["tool_call_id"]
    assert messages[3]["name"] == "get_weather"
    assert result.response.choices[0].message.content == "mistral: And Rome?"


async def test_the_fake_rejects_the_seed_id_as_mistral_does() -> None:
    """Sent as OpenAI has it, the seed history gets Mistral's 400 code 3280."""
    body: dict[str, Any] = {
        "model": "mistral-large-latest",
        "messages": copy.deepcopy(SEED_HISTORY),
    }
    body["messages"][2]["content"] = ""
    body["messages"].pop()  # end on the tool result: only the id is wrong
    async with serve_app(MistralFake(api_key=KEY)) as url, httpx.AsyncClient() as http:
        response = await http.post(f"{url}/v1/chat/completions", json=body,
                                   headers={"authorization": f"Bearer {KEY}"})  # fmt: skip
    assert response.status_code == 400
    assert response.json() == {
        "object": "error", "type": "invalid_function_call", "param": None, "code": "3280",
        "message": f"Tool call id was {SEED_ID} but must be a-z, A-Z, 0-9, with a length of 9.",
    }  # fmt: skip


async def test_text_request_end_to_end() -> None:
    """A plain request, with fields Mistral refuses dropped and named."""
    fake = MistralFake(api_key=KEY)
    body = {"messages": [{"role": "user", "content": "hello"}], "seed": 3, "user": "u",
            "logprobs": True, "max_completion_tokens": 50}  # fmt: skip
    async with serve_app(fake) as url, stack(config(url)) as s:
        with anyio.fail_after(10):
            result = await s.supervisor.complete(call(**body))
    [choice] = result.response.choices
    assert (choice.message.content, choice.finish_reason) == ("mistral: hello", "stop")
    assert result.dropped_params == ("logprobs", "user")
    sent = fake.requests[0].json
    assert (sent["random_seed"], sent["max_tokens"]) == (3, 50)


async def test_forced_tool_call_end_to_end() -> None:
    """`required` goes out as `any`; the call comes back with a nine-alphanumeric id."""
    fake = MistralFake(api_key=KEY)
    body = {"messages": [{"role": "user", "content": "Paris?"}], "tools": TOOLS,
            "tool_choice": "required"}  # fmt: skip
    async with serve_app(fake) as url, stack(config(url)) as s:
        with anyio.fail_after(10):
            result = await s.supervisor.complete(call(**body))
    assert fake.requests[0].json["tool_choice"] == "any"
    [choice] = result.response.choices
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    [tool_call] = choice.message.tool_calls  # type: ignore[misc]
    assert NINE.fullmatch(tool_call.id)
    assert msgspec.json.decode(tool_call.function.arguments) == {"city": "fake"}


@pytest.mark.parametrize(
    ("directive", "outcome", "status"),
    [
        pytest.param(mistral_rate_limited(retry_after=1), "rate_limited", 429, id="rate-limited"),
        pytest.param(mistral_capacity_exceeded(), "overloaded", 503, id="capacity"),
        pytest.param(mistral_context_too_large(), "context_window_exceeded", 400, id="context"),
        pytest.param(garbage(200, b"[1, 2]"), "server_error", 200, id="garbage"),
    ],
)
async def test_scripted_failures_are_classified(directive: Any, outcome: str, status: int) -> None:
    """Mistral's error answers, through the real client, land in the right class."""
    fake = MistralFake(api_key=KEY)
    fake.script(directive)
    async with serve_app(fake) as url, stack(config(url)) as s:
        with pytest.raises(AllAttemptsFailed) as failed, anyio.fail_after(10):
            await s.supervisor.complete(call(messages=[{"role": "user", "content": "hi"}]))
    [attempt] = failed.value.attempts
    assert (attempt.outcome, attempt.status) == (outcome, status)


# -- the fake's rules, over HTTP -----------------------------------------------------

VALID: dict[str, Any] = {
    "model": "mistral-large-latest",
    "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "", "tool_calls": [{"id": "D681PevKs", "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]},
        {"role": "tool", "tool_call_id": "D681PevKs", "name": "get_weather",
         "content": '{"temp_c":18}'},
        {"role": "assistant", "content": "18C."},
        {"role": "user", "content": "And Rome?"},
    ],
    "tools": TOOLS,
    "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
    "max_tokens": 256, "random_seed": 7,
}  # fmt: skip


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with serve_app(MistralFake(api_key=KEY)) as url:
        headers = {"authorization": f"Bearer {KEY}"}
        async with httpx.AsyncClient(base_url=f"{url}/v1", headers=headers) as http:
            yield http


def changed(**edits: Any) -> dict[str, Any]:
    body = copy.deepcopy(VALID)
    for dotted, value in edits.items():
        *parents, last = dotted.split("__")
        target: Any = body
        for key in parents:
            target = target[int(key)] if key.isdigit() else target[key]
        if value is None:
            del target[int(last) if last.isdigit() else last]
        else:
            target[int(last) if last.isdigit() else last] = value
    return body


async def test_the_documented_example_is_accepted(client: httpx.AsyncClient) -> None:
    """A §5.2-shaped request (bridged after the tool result) is answered 200."""
    response = await client.post("/chat/completions", json=VALID)
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == (
        "get_weather"
    )


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        pytest.param(changed(seed=1), ["body", "seed"], id="seed"),
        pytest.param(changed(user="u"), ["body", "user"], id="user"),
        pytest.param(changed(stream_options={"include_usage": True}), ["body", "stream_options"],
                     id="stream-options"),
        pytest.param(changed(max_completion_tokens=9), ["body", "max_completion_tokens"],
                     id="max-completion-tokens"),
        pytest.param(changed(messages__1__name="ann"), ["body", "messages", 1, "user", "name"],
                     id="user-name"),
        pytest.param(changed(messages__4__reasoning_content="hmm"),
                     ["body", "messages", 4, "assistant", "reasoning_content"],
                     id="reasoning-content"),
        pytest.param(changed(tools__0__function__strict_mode=True),
                     ["body", "tools", 0, "function", "strict_mode"], id="nested-tool-field"),
    ],
)  # fmt: skip
async def test_unknown_fields_are_422_extra_forbidden(
    client: httpx.AsyncClient, body: dict[str, Any], loc: list[Any]
) -> None:
    """Unknown fields at any depth answer 422 with pydantic's `extra_forbidden` and its loc."""
    response = await client.post("/chat/completions", json=body)
    assert response.status_code == 422
    [problem] = response.json()["message"]["detail"]
    assert (problem["type"], problem["loc"]) == ("extra_forbidden", loc)
    assert problem["msg"] == "Extra inputs are not permitted"


@pytest.mark.parametrize(
    ("body", "code", "phrase"),
    [
        pytest.param(changed(messages__2__tool_calls__0__id="call_0fypS1hVX",
                             messages__3__tool_call_id="call_0fypS1hVX"),
                     "3280", "Tool call id was call_0fypS1hVX but must be a-z, A-Z, 0-9, with a"
                     " length of 9.", id="call-id"),
        pytest.param(changed(messages__4=None), "3230",
                     "Unexpected role 'user' after role 'tool'", id="user-after-tool"),
        pytest.param(changed(messages__5=None), "3230",
                     "Expected last role User or Tool (or Assistant with prefix True) for serving"
                     " but got assistant", id="assistant-last"),
        pytest.param(changed(messages__3=None), "3230",
                     "Not the same number of function calls and responses", id="unanswered-call"),
        pytest.param(changed(messages__3__tool_call_id="Zzzzzzzz9"), "3230",
                     "Unexpected tool call id Zzzzzzzz9 in tool results", id="stray-result"),
        pytest.param(changed(tools__0__function__name="get weather"), "3280",
                     "Function name was get weather", id="function-name"),
    ],
)  # fmt: skip
async def test_validator_rules_are_400(
    client: httpx.AsyncClient, body: dict[str, Any], code: str, phrase: str
) -> None:
    """mistral-common's serving rules answer 400 `{"object": "error", ...}` with their code."""
    response = await client.post("/chat/completions", json=body)
    assert response.status_code == 400, response.text
    error = response.json()
    assert (error["object"], error["code"]) == ("error", code)
    assert phrase in error["message"]


@pytest.mark.parametrize(
    ("path", "headers", "body", "status"),
    [
        pytest.param("/v1/chat/completions", {}, VALID, 401, id="no-key"),
        pytest.param("/v1/chat/completions", {"authorization": "Bearer nope"}, VALID, 401,
                     id="wrong-key"),
        pytest.param("/v1/chat", {"authorization": f"Bearer {KEY}"}, VALID, 404, id="route"),
        pytest.param("/v1/chat/completions", {"authorization": f"Bearer {KEY}"},
                     {**VALID, "model": "gpt-4o"}, 400, id="unknown-model"),
    ],
)  # fmt: skip
async def test_auth_route_and_model(
    path: str, headers: dict[str, str], body: dict[str, Any], status: int
) -> None:
    """Bearer auth, the one route, and known models only."""
    async with serve_app(MistralFake(api_key=KEY)) as url, httpx.AsyncClient() as http:
        response = await http.post(f"{url}{path}", json=body, headers=headers)
    assert response.status_code == status
