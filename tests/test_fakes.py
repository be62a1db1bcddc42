"""The strict fakes reject exactly what the real providers reject, and follow their script."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator, Callable, MutableMapping
from functools import partial
from typing import Any

import anyio
import httpx
import openai
import pytest

import tests.fakes as fakes
from tests.fakes import (
    AzureFake,
    OpenAIFake,
    azure_content_filter,
    azure_rate_limited,
    close,
    error,
    garbage,
    hang,
    openai_insufficient_quota,
    openai_rate_limited,
    serve_app,
    success,
    wait,
)

pytestmark = pytest.mark.anyio

KEY = "sk-test-0123456789"
AZURE_KEY = "azure-key-0123456789"
CALL_ID = "call_Ab12Cd34Ef56Gh78Ij90Kl12"

# PROVIDERS.md §1.2, verbatim.
EXAMPLE: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": CALL_ID, "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
        {"role": "tool", "tool_call_id": CALL_ID, "content": "{\"temp_c\":18}"},
        {"role": "user", "content": "And Rome?"},
    ],
    "tools": [{"type": "function", "function": {"name": "get_weather",
        "description": "Get current weather", "parameters": {"type": "object",
        "properties": {"city": {"type": "string"}}, "required": ["city"]}, "strict": False}}],
    "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
    "parallel_tool_calls": True, "max_completion_tokens": 256, "temperature": 0.2,
    "stream": False,
}  # fmt: skip

SIMPLE: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "hello"}],
}

Path = tuple[str | int, ...]
Edit = Callable[[dict[str, Any]], None]


def _set(path: Path, value: Any) -> Edit:
    def edit(body: dict[str, Any]) -> None:
        target: Any = body
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return edit


def _drop(path: Path) -> Edit:
    def edit(body: dict[str, Any]) -> None:
        target: Any = body
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return edit


def _both(*edits: Edit) -> Edit:
    def edit(body: dict[str, Any]) -> None:
        for one in edits:
            one(body)

    return edit


def _rename_tool(name: str) -> Edit:
    return _both(
        _set(("tools", 0, "function", "name"), name),
        _set(("tool_choice", "function", "name"), name),
        _set(("messages", 2, "tool_calls", 0, "function", "name"), name),
    )


def _call_id(call_id: str) -> Edit:
    return _both(
        _set(("messages", 2, "tool_calls", 0, "id"), call_id),
        _set(("messages", 3, "tool_call_id"), call_id),
    )


def _edited(edit: Edit, base: dict[str, Any] = EXAMPLE) -> dict[str, Any]:
    body = copy.deepcopy(base)
    edit(body)
    return body


@pytest.fixture
async def openai_fake() -> AsyncIterator[tuple[OpenAIFake, httpx.AsyncClient]]:
    fake = OpenAIFake(api_key=KEY)
    async with serve_app(fake) as url:
        headers = {"authorization": f"Bearer {KEY}"}
        async with httpx.AsyncClient(base_url=url, headers=headers) as client:
            yield fake, client


@pytest.fixture
async def azure_fake() -> AsyncIterator[tuple[AzureFake, httpx.AsyncClient]]:
    fake = AzureFake(api_key=AZURE_KEY, deployments={"gpt4o": "gpt-4o-2024-08-06"},
                     content_filter_phrase="FORBIDDEN-TOPIC")  # fmt: skip
    async with serve_app(fake) as url:
        async with httpx.AsyncClient(base_url=url, headers={"api-key": AZURE_KEY}) as client:
            yield fake, client


DEPLOYMENT_URL = "/openai/deployments/gpt4o/chat/completions?api-version=2024-10-21"
V1_URL = "/openai/v1/chat/completions"


def _error(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()["error"]
    return body


# --- body strictness, shared by both fakes -------------------------------------------------

REJECTED = [
    pytest.param(_set(("foo",), 1), "unknown_parameter", "foo", "Unknown parameter: 'foo'.",
                 id="unknown-top-level"),
    pytest.param(_set(("messages", 0, "foo"), 1), "unknown_parameter", "messages[0].foo",
                 "Unknown parameter: 'messages[0].foo'.", id="unknown-in-message"),
    pytest.param(_set(("messages", 4, "content"),
                      [{"type": "text", "text": "x", "cache_control": {"type": "ephemeral"}}]),
                 "unknown_parameter", "messages[4].content[0].cache_control",
                 "Unknown parameter: 'messages[4].content[0].cache_control'.",
                 id="unknown-in-content-part"),
    pytest.param(_set(("messages", 2, "tool_calls", 0, "index"), 0), "unknown_parameter",
                 "messages[2].tool_calls[0].index", None, id="unknown-in-tool-call"),
    pytest.param(_set(("tools", 0, "function", "input_schema"), {}), "unknown_parameter",
                 "tools[0].function.input_schema", None, id="unknown-in-tool"),
    pytest.param(_drop(("model",)), "missing_required_parameter", "model", None,
                 id="missing-model"),
    pytest.param(_drop(("messages",)), "missing_required_parameter", "messages", None,
                 id="missing-messages"),
    pytest.param(_set(("messages",), []), "empty_array", "messages", None, id="empty-messages"),
    pytest.param(_set(("messages", 1, "role"), "bot"), "invalid_value", "messages[1].role",
                 "Invalid value: 'bot'.", id="bad-role"),
    pytest.param(_drop(("messages", 1, "role")), "missing_required_parameter",
                 "messages[1].role", None, id="missing-role"),
    pytest.param(_set(("messages", 1, "content"), None), "invalid_type", "messages[1].content",
                 None, id="null-user-content"),
    pytest.param(_drop(("messages", 3, "tool_call_id")), "missing_required_parameter",
                 "messages[3].tool_call_id", None, id="tool-message-without-id"),
    pytest.param(_both(_drop(("tools",)), _drop(("parallel_tool_calls",))), None, "tool_choice",
                 "'tool_choice' is only allowed when 'tools' are specified.",
                 id="tool-choice-without-tools"),
    pytest.param(_both(_drop(("tools",)), _drop(("tool_choice",))), None, "parallel_tool_calls",
                 "'parallel_tool_calls' is only allowed when 'tools' are specified.",
                 id="parallel-tool-calls-without-tools"),
    pytest.param(_set(("stream_options",), {"include_usage": True}), None, "stream_options",
                 "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                 id="stream-options-without-stream"),
    pytest.param(_set(("tools",), []), "empty_array", "tools", None, id="empty-tools"),
    pytest.param(_set(("tool_choice", "function", "name"), "get_time"), "invalid_value",
                 "tool_choice", None, id="forced-tool-not-in-tools"),
    pytest.param(_set(("tool_choice",), "any"), "invalid_value", "tool_choice", None,
                 id="tool-choice-any"),
    pytest.param(_drop(("messages", 2)), None, "messages.[2].role",
                 "messages with role 'tool' must be a response to a preceeding message with "
                 "'tool_calls'.", id="tool-result-without-call"),
    pytest.param(_set(("messages", 3, "tool_call_id"), "call_other"), None, "messages.[3].role",
                 "must be a response to a preceeding message", id="tool-result-wrong-id"),
    pytest.param(_drop(("messages", 3)), None, "messages.[2].role",
                 "did not have response messages: " + CALL_ID, id="tool-call-unanswered"),
    pytest.param(_call_id("c" * 41), "string_above_max_length",
                 "messages[2].tool_calls[0].id",
                 "Invalid 'messages[2].tool_calls[0].id': string too long. Expected a string "
                 "with maximum length 40, but got a string with length 41 instead.",
                 id="tool-call-id-41-chars"),
    pytest.param(_rename_tool("get weather"), "invalid_value", "tools[0].function.name",
                 "Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'.",
                 id="tool-name-pattern"),
    pytest.param(_rename_tool("t" * 65), "string_above_max_length", "tools[0].function.name",
                 None, id="tool-name-65-chars"),
    pytest.param(_set(("messages", 2, "tool_calls", 0, "function", "arguments"),
                      {"city": "Paris"}), "invalid_type",
                 "messages[2].tool_calls[0].function.arguments", None,
                 id="arguments-not-a-string"),
    pytest.param(_set(("messages", 2, "tool_calls"), []), "empty_array",
                 "messages[2].tool_calls", None, id="empty-tool-calls"),
    pytest.param(_both(_drop(("messages", 2, "tool_calls")), _drop(("messages", 3))), None,
                 "messages.[2].content", "expected a string, got null",
                 id="assistant-without-content-or-calls"),
    pytest.param(_set(("parallel_tool_calls",), "yes"), "invalid_type", "parallel_tool_calls",
                 None, id="parallel-tool-calls-not-bool"),
    pytest.param(_set(("messages", 0, "content"), [{"type": "image_url",
                      "image_url": {"url": "http://x"}}]), "invalid_value",
                 "messages[0].content[0].type", None, id="image-in-system-message"),
]  # fmt: skip

ACCEPTED = [
    pytest.param(lambda body: None, id="providers-example"),
    pytest.param(_call_id("c" * 40), id="tool-call-id-40-chars"),
    pytest.param(_rename_tool("t" * 64), id="tool-name-64-chars"),
    pytest.param(_set(("messages", 0, "role"), "developer"), id="developer-role"),
    pytest.param(_set(("messages", 4, "content"), [{"type": "text", "text": "And Rome?"}]),
                 id="text-parts"),
    pytest.param(_both(_set(("stream",), True), _set(("stream_options",), {"include_usage": True})),
                 id="stream-with-options"),
    pytest.param(_set(("tool_choice",), "required"), id="tool-choice-required"),
    pytest.param(_both(_drop(("tools",)), _drop(("tool_choice",)),
                       _drop(("parallel_tool_calls",))), id="history-without-tools"),
]  # fmt: skip


@pytest.mark.parametrize(("edit", "code", "param", "message"), REJECTED)
async def test_openai_rejects(
    openai_fake: tuple[OpenAIFake, httpx.AsyncClient],
    edit: Edit,
    code: str | None,
    param: str,
    message: str | None,
) -> None:
    """Each strictness rule answers 400 invalid_request_error with OpenAI's param and code."""
    fake, client = openai_fake
    response = await client.post("/v1/chat/completions", json=_edited(edit))
    assert response.status_code == 400
    err = _error(response)
    assert (err["type"], err["code"], err["param"]) == ("invalid_request_error", code, param)
    assert message is None or message in err["message"]
    assert fake.requests[0].status == 400


@pytest.mark.parametrize(("edit", "code", "param", "message"), REJECTED)
async def test_azure_rejects(
    azure_fake: tuple[AzureFake, httpx.AsyncClient],
    edit: Edit,
    code: str | None,
    param: str,
    message: str | None,
) -> None:
    """The v1 form applies the same rules (the deployments form makes `model` optional)."""
    _, client = azure_fake
    body = _both(_set(("model",), "gpt4o"), edit)
    response = await client.post(V1_URL, json=_edited(body))
    assert response.status_code == 400
    err = _error(response)
    assert (err["type"], err["code"], err["param"]) == ("invalid_request_error", code, param)
    assert message is None or message in err["message"]


@pytest.mark.parametrize("edit", ACCEPTED)
async def test_openai_accepts(
    openai_fake: tuple[OpenAIFake, httpx.AsyncClient], edit: Edit
) -> None:
    """Valid variants of the PROVIDERS.md §1.2 request are answered 200."""
    _, client = openai_fake
    response = await client.post("/v1/chat/completions", json=_edited(edit))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("edit", ACCEPTED)
async def test_azure_accepts(azure_fake: tuple[AzureFake, httpx.AsyncClient], edit: Edit) -> None:
    """The same variants pass on the deployments form, where `model` may be left out."""
    _, client = azure_fake
    path = DEPLOYMENT_URL.replace("2024-10-21", "2024-12-01-preview")  # knows `developer`
    response = await client.post(path, json=_edited(_both(_drop(("model",)), edit)))
    assert response.status_code == 200, response.text


# --- OpenAI transport-level rules ----------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "headers", "content", "status", "code"),
    [
        pytest.param("POST", "/v1/chat/completions", {"authorization": ""}, None, 401, None,
                     id="no-key"),
        pytest.param("POST", "/v1/chat/completions", {"authorization": "Bearer sk-wrong-key"},
                     None, 401, "invalid_api_key", id="wrong-key"),
        pytest.param("POST", "/v1/chat/completion", {}, None, 404, None, id="wrong-path"),
        pytest.param("GET", "/v1/chat/completions", {}, None, 404, None, id="wrong-method"),
        pytest.param("POST", "/v1/chat/completions", {"content-type": "text/plain"}, None, 400,
                     None, id="not-json-content-type"),
        pytest.param("POST", "/v1/chat/completions", {"content-type": "application/json"},
                     b"{not json", 400, None, id="invalid-json"),
        pytest.param("POST", "/v1/chat/completions", {"content-type": "application/json"},
                     b"[]", 400, None, id="json-array"),
    ],
)  # fmt: skip
async def test_openai_transport_rules(
    openai_fake: tuple[OpenAIFake, httpx.AsyncClient],
    method: str,
    path: str,
    headers: dict[str, str],
    content: bytes | None,
    status: int,
    code: str | None,
) -> None:
    """Route, Bearer auth and JSON content type are checked before the body."""
    _, client = openai_fake
    payload = json.dumps(SIMPLE).encode() if content is None else content
    extra = {"content-type": "application/json", **headers}
    response = await client.request(method, path, content=payload, headers=extra)
    assert response.status_code == status
    err = _error(response)
    assert (err["type"], err["code"]) == ("invalid_request_error", code)
    assert "sk-wrong-key" not in err["message"]  # wrong keys are echoed masked


# --- Azure routes, auth, api-version, deployments, content filter ---------------------------


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "code"),
    [
        pytest.param(DEPLOYMENT_URL, SIMPLE, {}, 200, None, id="deployments-with-model"),
        pytest.param(V1_URL, {**SIMPLE, "model": "gpt4o"}, {}, 200, None, id="v1"),
        pytest.param(DEPLOYMENT_URL, SIMPLE,
                     {"api-key": "", "authorization": f"Bearer {AZURE_KEY}"}, 200, None,
                     id="bearer-key"),
        pytest.param(DEPLOYMENT_URL, SIMPLE, {"api-key": "wrong"}, 401, "401", id="wrong-key"),
        pytest.param(V1_URL, {**SIMPLE, "model": "gpt4o"}, {"api-key": ""}, 401, "401",
                     id="no-key"),
        pytest.param("/openai/deployments/gpt4o/chat/completions", SIMPLE, {}, 404, "404",
                     id="missing-api-version"),
        pytest.param(DEPLOYMENT_URL.replace("gpt4o", "gpt5"), SIMPLE, {}, 404,
                     "DeploymentNotFound", id="unknown-deployment"),
        pytest.param(V1_URL, {**SIMPLE, "model": "gpt5"}, {}, 404, "DeploymentNotFound",
                     id="v1-unknown-deployment"),
        pytest.param(V1_URL, {"messages": SIMPLE["messages"]}, {}, 400,
                     "missing_required_parameter", id="v1-without-model"),
        pytest.param("/openai/chat/completions", SIMPLE, {}, 404, "404", id="unknown-route"),
        pytest.param(DEPLOYMENT_URL, {**SIMPLE, "store": True}, {}, 400, "unknown_parameter",
                     id="store-unknown"),
        pytest.param(DEPLOYMENT_URL, {**SIMPLE, "metadata": {"a": "b"}}, {}, 400,
                     "unknown_parameter", id="metadata-unknown"),
        pytest.param(DEPLOYMENT_URL, {**SIMPLE, "reasoning_effort": "low"}, {}, 400,
                     "unknown_parameter", id="reasoning-effort-unknown"),
        pytest.param(DEPLOYMENT_URL, {**SIMPLE, "messages": [{"role": "user",
                     "content": "tell me about FORBIDDEN-TOPIC"}]}, {}, 400, "content_filter",
                     id="content-filter"),
        pytest.param(DEPLOYMENT_URL, {**SIMPLE, "messages": [{"role": "system",
                     "content": "FORBIDDEN-TOPIC"}, {"role": "user", "content": "hi"}]}, {},
                     200, None, id="filter-phrase-outside-user-message"),
    ],
)  # fmt: skip
async def test_azure_rules(
    azure_fake: tuple[AzureFake, httpx.AsyncClient],
    path: str,
    body: dict[str, Any],
    headers: dict[str, str],
    status: int,
    code: str | None,
) -> None:
    """Azure answers in its own error shapes for route, auth, version and deployment."""
    _, client = azure_fake
    response = await client.post(path, json=body, headers=headers)
    assert response.status_code == status, response.text
    if code is not None:
        assert _error(response)["code"] == code


async def test_azure_content_filter_body(azure_fake: tuple[AzureFake, httpx.AsyncClient]) -> None:
    """The filter phrase yields §2.3's body, innererror included."""
    _, client = azure_fake
    part = {"type": "text", "text": "FORBIDDEN-TOPIC"}
    body = {"messages": [{"role": "user", "content": [part]}]}
    response = await client.post(DEPLOYMENT_URL, json=body)
    assert response.json() == azure_content_filter().body
    assert _error(response)["innererror"]["code"] == "ResponsibleAIPolicyViolation"


async def test_azure_api_versions_can_be_restricted() -> None:
    """With `api_versions` set, an unlisted version is a 400."""
    fake = AzureFake(api_key=AZURE_KEY, deployments=["d"], api_versions=["2024-10-21"])
    async with serve_app(fake) as url, httpx.AsyncClient(base_url=url) as client:
        path = "/openai/deployments/d/chat/completions?api-version="
        ok = await client.post(path + "2024-10-21", json=SIMPLE, headers={"api-key": AZURE_KEY})
        bad = await client.post(path + "2023-05-15", json=SIMPLE, headers={"api-key": AZURE_KEY})
    assert (ok.status_code, bad.status_code) == (200, 400)


async def test_azure_accepted_params_are_configurable() -> None:
    """A fake built with a wider allow-list accepts `store`."""
    fake = AzureFake(api_key=AZURE_KEY, deployments=["d"],
                     accepted_params=fakes.AZURE_PARAMS | {"store", "metadata"})  # fmt: skip
    async with serve_app(fake) as url, httpx.AsyncClient(base_url=url) as client:
        response = await client.post(
            "/openai/deployments/d/chat/completions?api-version=2024-10-21",
            json={**SIMPLE, "store": False, "metadata": {}},
            headers={"api-key": AZURE_KEY},
        )
    assert response.status_code == 200


async def test_azure_reply_carries_filter_results(
    azure_fake: tuple[AzureFake, httpx.AsyncClient],
) -> None:
    """A 200 has prompt and choice filter results and the deployment's model name."""
    _, client = azure_fake
    reply = (await client.post(DEPLOYMENT_URL, json=SIMPLE)).json()
    assert reply["model"] == "gpt-4o-2024-08-06"
    assert reply["prompt_filter_results"][0]["prompt_index"] == 0
    assert reply["choices"][0]["content_filter_results"]["hate"]["filtered"] is False
    assert reply["choices"][0]["message"]["content"] == "azure: hello"


# --- default replies -----------------------------------------------------------------------


async def test_named_tool_choice_calls_that_tool(
    openai_fake: tuple[OpenAIFake, httpx.AsyncClient],
) -> None:
    """A forced function is called with schema-derived arguments and finish_reason "stop"."""
    _, client = openai_fake
    reply = (await client.post("/v1/chat/completions", json=EXAMPLE)).json()
    choice = reply["choices"][0]
    (call,) = choice["message"]["tool_calls"]
    assert call["function"] == {"name": "get_weather", "arguments": '{"city":"fake"}'}
    assert call["id"].startswith("call_") and len(call["id"]) == 29
    assert choice["finish_reason"] == "stop"
    assert reply["object"] == "chat.completion" and reply["model"] == "gpt-4o-mini"
    usage = reply["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


async def test_required_tool_choice_calls_first_tool() -> None:
    """`"required"` calls the first tool with finish_reason "tool_calls"."""
    fake = OpenAIFake(api_key=KEY)
    async with serve_app(fake) as url, httpx.AsyncClient(base_url=url) as client:
        body = _edited(_set(("tool_choice",), "required"))
        response = await client.post("/v1/chat/completions", json=body,
                                     headers={"authorization": f"Bearer {KEY}"})  # fmt: skip
    choice = response.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"][0]["function"]["name"] == "get_weather"


async def test_auto_tool_choice_answers_text(
    openai_fake: tuple[OpenAIFake, httpx.AsyncClient],
) -> None:
    """Without a forced tool the fake echoes the last user message after its name."""
    _, client = openai_fake
    body = _edited(_set(("tool_choice",), "auto"))
    message = (await client.post("/v1/chat/completions", json=body)).json()["choices"][0]
    assert message["message"] == {"role": "assistant", "content": "openai: And Rome?",
                                  "refusal": None}  # fmt: skip
    assert message["finish_reason"] == "stop"


async def test_openai_stream(openai_fake: tuple[OpenAIFake, httpx.AsyncClient]) -> None:
    """`stream: true` gets SSE chunks, a usage chunk with empty choices, then [DONE]."""
    _, client = openai_fake
    body = {**SIMPLE, "stream": True, "stream_options": {"include_usage": True}}
    response = await client.post("/v1/chat/completions", json=body)
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [line.removeprefix("data: ") for line in response.text.split("\n\n") if line]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "openai: hello"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert {c["id"] for c in chunks} == {chunks[0]["id"]}


async def test_azure_stream_starts_with_prompt_filter_chunk(
    azure_fake: tuple[AzureFake, httpx.AsyncClient],
) -> None:
    """Azure's first chunk has empty choices and an empty model (§2.5)."""
    _, client = azure_fake
    response = await client.post(DEPLOYMENT_URL, json={**SIMPLE, "stream": True})
    first = json.loads(response.text.split("\n\n")[0].removeprefix("data: "))
    assert first["choices"] == [] and first["model"] == ""
    assert "prompt_filter_results" in first


# --- the real SDK parses what the fakes send ------------------------------------------------


async def test_openai_sdk_round_trip() -> None:
    """openai.AsyncOpenAI accepts the fake's completion, tool call and 429."""
    fake = OpenAIFake(api_key=KEY)
    fake.script(success(), openai_insufficient_quota())
    async with serve_app(fake) as url:
        async with openai.AsyncOpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0) as sdk:
            reply = await sdk.chat.completions.create(**EXAMPLE)
            with pytest.raises(openai.RateLimitError) as caught:
                await sdk.chat.completions.create(**SIMPLE)
    tool_call = reply.choices[0].message.tool_calls
    assert tool_call is not None and tool_call[0].type == "function"
    assert tool_call[0].function.name == "get_weather"
    assert caught.value.code == "insufficient_quota"


async def test_azure_sdk_round_trip() -> None:
    """openai.AsyncAzureOpenAI talks to the deployments form with its api-key header."""
    fake = AzureFake(api_key=AZURE_KEY, deployments=["gpt4o"])
    async with serve_app(fake) as url:
        async with openai.AsyncAzureOpenAI(
            azure_endpoint=url, api_key=AZURE_KEY, api_version="2024-10-21", max_retries=0
        ) as sdk:
            reply = await sdk.chat.completions.create(model="gpt4o", messages=SIMPLE["messages"])
    assert reply.choices[0].message.content == "azure: hello"
    (request,) = fake.requests
    assert request.path == "/openai/deployments/gpt4o/chat/completions"
    assert request.query == {"api-version": "2024-10-21"}
    assert request.headers["api-key"] == AZURE_KEY


# --- script directives ---------------------------------------------------------------------


async def test_script_is_consumed_in_order_by_valid_requests(
    openai_fake: tuple[OpenAIFake, httpx.AsyncClient],
) -> None:
    """Rejected requests do not consume a directive; an empty queue means success."""
    fake, client = openai_fake
    fake.script(error(503, {"error": {"message": "busy"}}, {"x-should-retry": "true"}),
                success(content="scripted", finish_reason="length"))  # fmt: skip
    statuses = []
    for body in (SIMPLE, {**SIMPLE, "foo": 1}, SIMPLE, SIMPLE, SIMPLE):
        statuses.append(await client.post("/v1/chat/completions", json=body))
    assert [r.status_code for r in statuses] == [503, 400, 200, 200, 200]
    assert statuses[0].headers["x-should-retry"] == "true"
    assert statuses[2].json()["choices"][0]["message"]["content"] == "scripted"
    assert statuses[2].json()["choices"][0]["finish_reason"] == "length"
    assert statuses[3].json()["choices"][0]["message"]["content"] == "openai: hello"
    assert [r.status for r in fake.requests] == [503, 400, 200, 200, 200]


async def test_scripted_tool_calls(openai_fake: tuple[OpenAIFake, httpx.AsyncClient]) -> None:
    """`success(tool_calls=...)` sends exactly those calls, malformed arguments included."""
    fake, client = openai_fake
    fake.script(success(tool_calls=[("lookup", "{not json"), ("lookup", "{}")]))
    reply = (await client.post("/v1/chat/completions", json=SIMPLE)).json()["choices"][0]
    calls = reply["message"]["tool_calls"]
    assert [c["function"]["arguments"] for c in calls] == ["{not json", "{}"]
    assert len({c["id"] for c in calls}) == 2 and reply["finish_reason"] == "tool_calls"


@pytest.mark.parametrize(
    ("directive", "status", "headers", "body"),
    [
        pytest.param(openai_rate_limited(retry_after=1.5, retry_after_ms=1500), 429,
                     {"retry-after": "1.5", "retry-after-ms": "1500"},
                     {"code": "rate_limit_exceeded", "type": "tokens"}, id="openai-429"),
        pytest.param(azure_rate_limited(retry_after=7), 429, {"retry-after": "7"},
                     {"code": "429"}, id="azure-429"),
        pytest.param(error(500, {"error": {"message": "boom", "type": "server_error"}}), 500,
                     {}, {"type": "server_error"}, id="openai-500"),
    ],
)  # fmt: skip
async def test_scripted_errors(
    openai_fake: tuple[OpenAIFake, httpx.AsyncClient],
    directive: fakes.Directive,
    status: int,
    headers: dict[str, str],
    body: dict[str, str],
) -> None:
    """Scripted errors are sent verbatim with their headers."""
    fake, client = openai_fake
    fake.script(directive)
    response = await client.post("/v1/chat/completions", json=SIMPLE)
    assert response.status_code == status
    assert headers.items() <= response.headers.items()
    assert body.items() <= _error(response).items()


async def test_azure_429_has_no_type(azure_fake: tuple[AzureFake, httpx.AsyncClient]) -> None:
    """Azure's 429 carries the string code "429" and the retry delay in its message."""
    fake, client = azure_fake
    fake.script(azure_rate_limited(retry_after=7))
    err = _error(await client.post(DEPLOYMENT_URL, json=SIMPLE))
    assert set(err) == {"code", "message"} and "retry after 7 seconds" in err["message"]


async def test_garbage(openai_fake: tuple[OpenAIFake, httpx.AsyncClient]) -> None:
    """`garbage()` sends raw bytes under the given status and content type."""
    fake, client = openai_fake
    fake.script(garbage(), garbage(502, b"<html>Bad Gateway</html>", content_type="text/html"))
    first = await client.post("/v1/chat/completions", json=SIMPLE)
    second = await client.post("/v1/chat/completions", json=SIMPLE)
    assert (first.status_code, first.content) == (200, b"{not json")
    assert (second.status_code, second.headers["content-type"]) == (502, "text/html")


async def test_close_drops_the_connection(
    openai_fake: tuple[OpenAIFake, httpx.AsyncClient],
) -> None:
    """`close()` drops the socket: the client gets a protocol error, the record says dropped."""
    fake, client = openai_fake
    fake.script(close())
    with pytest.raises(httpx.RemoteProtocolError):
        await client.post("/v1/chat/completions", json=SIMPLE)
    (record,) = fake.requests
    assert (record.status, record.dropped, record.disconnected) == (None, True, False)
    assert (await client.post("/v1/chat/completions", json=SIMPLE)).status_code == 200


async def test_close_without_serve_app_raises() -> None:
    """Under httpx.ASGITransport `close()` surfaces as ConnectionDropped in the client."""
    fake = OpenAIFake(api_key=KEY)
    fake.script(close())
    transport = httpx.ASGITransport(app=fake)
    async with httpx.AsyncClient(transport=transport, base_url="http://fake") as client:
        with pytest.raises(fakes.ConnectionDropped):
            await client.post("/v1/chat/completions", json=SIMPLE,
                              headers={"authorization": f"Bearer {KEY}"})  # fmt: skip


async def test_wait_holds_the_answer_until_the_event(
    openai_fake: tuple[OpenAIFake, httpx.AsyncClient],
) -> None:
    """`wait(event, then)` answers only after the test sets the event."""
    fake, client = openai_fake
    release = anyio.Event()
    fake.script(wait(release, then=success(content="released")))
    responses: list[httpx.Response] = []
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:

            async def call() -> None:
                responses.append(await client.post("/v1/chat/completions", json=SIMPLE))

            tg.start_soon(call)
            (record,) = await fake.wait_for_requests(1)
            assert record.status is None and fake.statistics().in_flight == 1
            release.set()
    assert responses[0].json()["choices"][0]["message"]["content"] == "released"
    assert record.status == 200 and not record.disconnected


async def test_client_leaving_a_wait_is_recorded(
    openai_fake: tuple[OpenAIFake, httpx.AsyncClient],
) -> None:
    """If the client goes away while held, the record says disconnected and nothing is sent."""
    fake, client = openai_fake
    fake.script(wait(anyio.Event()))
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(partial(client.post, "/v1/chat/completions", json=SIMPLE))
            (record,) = await fake.wait_for_requests(1)
            tg.cancel_scope.cancel()  # the client request is abandoned
        await record.wait_finished()
    assert record.disconnected and record.status is None


async def test_hang_ends_when_the_server_stops() -> None:
    """Leaving serve_app aborts a hung request: the client sees the connection drop."""
    fake = OpenAIFake(api_key=KEY)
    fake.script(hang())
    failures: list[Exception] = []
    with anyio.fail_after(5):
        async with httpx.AsyncClient(headers={"authorization": f"Bearer {KEY}"}) as client:
            async with anyio.create_task_group() as tg:
                async with serve_app(fake) as url:

                    async def call() -> None:
                        try:
                            await client.post(url + "/v1/chat/completions", json=SIMPLE)
                        except httpx.TransportError as exc:
                            failures.append(exc)

                    tg.start_soon(call)
                    await fake.wait_for_requests(1)
    assert len(failures) == 1 and isinstance(failures[0], httpx.RemoteProtocolError)
    assert fake.requests[0].disconnected and fake.statistics().in_flight == 0


async def test_serve_app_cancels_any_hung_app() -> None:
    """An arbitrary ASGI app stuck forever is cancelled when serve_app exits."""
    started = anyio.Event()
    cancelled = anyio.Event()

    async def stuck(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        started.set()
        try:
            await anyio.sleep_forever()
        finally:
            cancelled.set()

    with anyio.fail_after(5):
        async with httpx.AsyncClient() as client, anyio.create_task_group() as tg:
            async with serve_app(stuck) as url:

                async def call() -> None:
                    with pytest.raises(httpx.RemoteProtocolError):
                        await client.get(url)

                tg.start_soon(call)
                await started.wait()
    assert cancelled.is_set()


# --- recording -----------------------------------------------------------------------------


async def test_requests_are_recorded(azure_fake: tuple[AzureFake, httpx.AsyncClient]) -> None:
    """Method, path, query, lower-cased headers, raw and parsed body, status are kept."""
    fake, client = azure_fake
    raw = json.dumps(SIMPLE).encode()
    await client.post(DEPLOYMENT_URL, content=raw,
                      headers={"Content-Type": "application/json", "X-Trace": "t1"})  # fmt: skip
    (record,) = await fake.wait_for_requests(1)
    assert (record.method, record.path) == ("POST", "/openai/deployments/gpt4o/chat/completions")
    assert record.query == {"api-version": "2024-10-21"}
    assert record.headers["x-trace"] == "t1" and record.headers["api-key"] == AZURE_KEY
    assert (record.body, record.json, record.status) == (raw, SIMPLE, 200)
    assert repr(fake) == "<AzureFake 'azure' [requests 1 | scripted 0 | in flight 0]>"


async def test_wait_for_requests_wakes_on_arrival(
    openai_fake: tuple[OpenAIFake, httpx.AsyncClient],
) -> None:
    """A waiter started before any request returns once the n-th arrives."""
    fake, client = openai_fake
    fake.script(hang(), hang())
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(partial(client.post, "/v1/chat/completions", json=SIMPLE))
            tg.start_soon(partial(client.post, "/v1/chat/completions", json=SIMPLE))
            assert len(await fake.wait_for_requests(2)) == 2
            assert fake.statistics().in_flight == 2
            tg.cancel_scope.cancel()


def test_exports_are_sorted_and_complete() -> None:
    """`tests.fakes.__all__` is sorted (ruff's isort style) and lists every public name."""

    def isort_style(name: str) -> tuple[int, str]:
        return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)

    assert fakes.__all__ == sorted(fakes.__all__, key=isort_style)
    public = {name for name in vars(fakes) if not name.startswith("_")}
    assert set(fakes.__all__) == public
