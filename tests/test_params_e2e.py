"""Parameters end to end: the daemon against strict OpenAI, Azure, Mistral, Anthropic fakes."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from actors.providers import OPTIONAL_PARAMS

from .fakes import (
    AnthropicFake,
    AzureFake,
    MistralFake,
    OpenAIFake,
    check_chat_request,
    check_mistral_request,
    serve_app,
)
from .helpers import running_daemon, uds_client
from .jobsupport import finished
from .provider_streams import events

pytestmark = pytest.mark.anyio

KEY = "sk-params"
TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]  # fmt: skip
ALL: dict[str, Any] = {
    "messages": [{"role": "system", "content": "Be brief."},
                 {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]}],
    "audio": {"format": "wav", "voice": "alloy"},
    "frequency_penalty": 0.1,
    "function_call": "auto",
    "functions": [{"name": "lookup", "parameters": {"type": "object", "properties": {}}}],
    "logit_bias": {"50256": -100},
    "logprobs": True,
    "max_completion_tokens": 200,
    "max_tokens": 100,
    "metadata": {"ticket": "T-1"},
    "modalities": ["text", "audio"],
    "moderation": {"model": "omni-moderation-latest", "policy": {"input": {"mode": "score"}}},
    "n": 1,
    "parallel_tool_calls": True,
    "prediction": {"type": "content", "content": [{"type": "text", "text": "It is"}]},
    "presence_penalty": 0.2,
    "prompt_cache_key": "weather-v1",
    "prompt_cache_options": {"mode": "implicit", "ttl": "30m"},
    "prompt_cache_retention": "24h",
    "reasoning_effort": "low",
    "response_format": {"type": "json_schema", "json_schema": {
        "name": "answer", "schema": {"type": "object"}, "strict": True}},
    "safety_identifier": "user-hash-1",
    "seed": 7,
    "service_tier": "auto",
    "stop": ["END"],
    "store": True,
    "stream": True,
    "stream_options": {"include_usage": True},
    "temperature": 0.5,
    "tool_choice": "auto",
    "tools": TOOLS,
    "top_logprobs": 2,
    "top_p": 0.9,
    "user": "u-1",
    "verbosity": "low",
    "web_search_options": {"search_context_size": "low"},
}  # fmt: skip
"""Every parameter of the current Chat Completions API, each with a valid value."""
MISTRAL_DROPPED = (
    "audio", "function_call", "logit_bias", "logprobs", "modalities", "moderation",
    "prompt_cache_options", "prompt_cache_retention", "safety_identifier", "service_tier",
    "store", "stream_options", "top_logprobs", "user", "verbosity", "web_search_options",
)  # fmt: skip
"""What Mistral's API has no field for (`function_call` gives way to `tool_choice`)."""


def deployment(name: str, provider: str, model: str, url: str, *extra: str) -> str:
    lines = ["[[deployment]]", f'name = "{name}"', f'group = "{name}"', f'provider = "{provider}"',
             f'model = "{model}"', f'api_base = "{url}"', f'api_key = "{KEY}"', *extra]  # fmt: skip
    return "\n".join(lines) + "\n"


HEAD = '[server]\nsocket = "d.sock"\nmetrics = ""\n[router]\nnum_retries = 0\n'


async def post(client: httpx.AsyncClient, body: dict[str, Any]) -> tuple[httpx.Response, Any]:
    """Send `body`; the answer and its decoded JSON, or its SSE events when streamed."""
    with anyio.fail_after(10):
        if body.get("stream"):
            async with client.stream("POST", "/v1/chat/completions", json=body) as response:
                return response, await events(response)
        response = await client.post("/v1/chat/completions", json=body)
        return response, response.json()


def test_the_request_sets_every_parameter() -> None:
    """`ALL` really is all of them (a new `ChatRequest` field must be added here)."""
    assert set(ALL) - {"messages"} == OPTIONAL_PARAMS


async def test_every_parameter_reaches_openai_intact(tmp_path: Path) -> None:
    """The strict OpenAI fake accepts the whole API, and gets it exactly as sent."""
    fake = OpenAIFake(api_key=KEY)
    async with serve_app(fake) as url:
        text = HEAD + deployment("oa", "openai", "gpt-4o", f"{url}/v1")
        async with running_daemon(text, tmp_path) as daemon, uds_client(daemon) as client:
            response, got = await post(client, {"model": "oa", **ALL})
    assert response.status_code == 200
    assert "x-dispatcher-dropped-params" not in response.headers
    assert got[-1] == "[DONE]"
    [received] = fake.requests
    assert received.status == 200
    assert received.json == {"model": "gpt-4o", **ALL}


async def test_every_parameter_to_mistral_names_exactly_what_is_dropped(tmp_path: Path) -> None:
    """Mistral gets what it takes (mapped where named otherwise); the header names the rest."""
    fake = MistralFake(api_key=KEY)
    async with serve_app(fake) as url:
        text = HEAD + deployment("mi", "mistral", "mistral-large-latest", f"{url}/v1")
        async with running_daemon(text, tmp_path) as daemon, uds_client(daemon) as client:
            response, got = await post(client, {"model": "mi", **ALL})
    assert response.status_code == 200
    assert response.headers["x-dispatcher-dropped-params"] == ",".join(MISTRAL_DROPPED)
    assert got[-1] == "[DONE]"
    [received] = fake.requests
    assert received.status == 200 and check_mistral_request(received.json) is None
    sent = received.json
    assert not set(MISTRAL_DROPPED) & set(sent)
    assert (sent["random_seed"], sent["max_tokens"], sent["reasoning_effort"]) == (7, 200, "low")
    assert sent["prediction"] == {"type": "content", "content": "It is"}
    assert sent["metadata"] == {"ticket": "T-1"} and sent["prompt_cache_key"] == "weather-v1"
    assert [tool["function"]["name"] for tool in sent["tools"]] == ["get_weather", "lookup"]
    assert (sent["tool_choice"], sent["parallel_tool_calls"]) == ("auto", True)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_tool_choice_without_tools_is_dropped_for_openai_and_azure(
    tmp_path: Path, stream: bool
) -> None:
    """Seed 000's 400: `tool_choice` (and friends) without `tools` is left out and named."""
    openai, azure = OpenAIFake(api_key=KEY), AzureFake(api_key=KEY, deployments=("dep",))
    async with serve_app(openai) as o_url, serve_app(azure) as a_url:
        azure_line = deployment("az", "azure", "dep", a_url, 'api_version = "2024-10-21"')
        text = HEAD + deployment("oa", "openai", "gpt-4o", f"{o_url}/v1") + azure_line
        async with running_daemon(text, tmp_path) as daemon, uds_client(daemon) as client:
            body = {"messages": [{"role": "user", "content": "hi"}], "tool_choice": "required",
                    "parallel_tool_calls": False, "stream": stream}  # fmt: skip
            answers = [await post(client, {"model": group, **body}) for group in ("oa", "az")]
    for response, _ in answers:
        assert response.status_code == 200
        dropped = response.headers["x-dispatcher-dropped-params"]
        assert dropped == "parallel_tool_calls,tool_choice"
    for fake in (openai, azure):
        [received] = fake.requests
        assert received.status == 200
        assert "tool_choice" not in received.json and "parallel_tool_calls" not in received.json


async def test_a_stream_names_message_extensions_left_out(tmp_path: Path) -> None:
    """The streamed header names what the body left out, nested paths included."""
    fake = OpenAIFake(api_key=KEY)
    part = {"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}
    async with serve_app(fake) as url:
        text = HEAD + deployment("oa", "openai", "gpt-4o", f"{url}/v1")
        async with running_daemon(text, tmp_path) as daemon, uds_client(daemon) as client:
            body = {"model": "oa", "stream": True,
                    "messages": [{"role": "user", "content": [part]}]}  # fmt: skip
            response, got = await post(client, body)
    assert response.headers["x-dispatcher-dropped-params"] == "messages[].content[].cache_control"
    assert got[-1] == "[DONE]"
    [received] = fake.requests
    assert received.json["messages"][0]["content"] == [{"type": "text", "text": "hi"}]


async def test_a_legacy_functions_conversation_reaches_mistral_as_tools(tmp_path: Path) -> None:
    """`functions`, an assistant `function_call` and its `function` result become tools."""
    fake = MistralFake(api_key=KEY)
    history = [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None,
         "function_call": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
        {"role": "function", "name": "get_weather", "content": "18C"},
        {"role": "user", "content": "And Rome?"},
    ]  # fmt: skip
    body = {"model": "mi", "messages": history, "functions": [TOOLS[0]["function"]],
            "function_call": {"name": "get_weather"}}  # fmt: skip
    async with serve_app(fake) as url:
        text = HEAD + deployment("mi", "mistral", "mistral-large-latest", f"{url}/v1")
        async with running_daemon(text, tmp_path) as daemon, uds_client(daemon) as client:
            response, answer = await post(client, body)
    assert response.status_code == 200, answer
    assert "x-dispatcher-dropped-params" not in response.headers
    [call] = answer["choices"][0]["message"]["tool_calls"]
    assert call["function"]["name"] == "get_weather"
    sent = fake.requests[0].json
    assert check_mistral_request(sent) is None
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert sent["parallel_tool_calls"] is False
    [legacy_call] = sent["messages"][1]["tool_calls"]
    assert sent["messages"][2]["tool_call_id"] == legacy_call["id"]


async def test_job_metadata_never_reaches_a_provider_but_openai_gets_its_own(
    tmp_path: Path,
) -> None:
    """Seed 002 kept: the envelope's `metadata` stays home; the request's goes to OpenAI only."""
    openai, anthropic = OpenAIFake(api_key=KEY), AnthropicFake(api_key=KEY)
    request = {"messages": [{"role": "user", "content": "hi"}],
               "metadata": {"ticket": "request-tag-3"}}  # fmt: skip
    async with serve_app(openai) as o_url, serve_app(anthropic) as a_url:
        text = (HEAD + '[jobs]\nstore = "jobs.sqlite3"\n'
                + deployment("oa", "openai", "gpt-4o", f"{o_url}/v1")
                + deployment("an", "anthropic", "claude-sonnet-4-5", a_url))  # fmt: skip
        async with running_daemon(text, tmp_path) as daemon, uds_client(daemon) as client:
            jobs = []
            for group in ("oa", "an"):
                envelope = {
                    "request": {"model": group, **copy.deepcopy(request), "fallbacks": ["oa"]},
                    "metadata": {"tenant": "envelope-marker-1"},
                    "priority": 2,
                }
                with anyio.fail_after(10):
                    submitted = await client.post("/v1/jobs", json=envelope)
                    assert submitted.status_code == 202, submitted.text
                    jobs.append(await finished(client, submitted.json()["id"]))
    assert [job["status"] for job in jobs] == ["succeeded", "succeeded"]
    assert jobs[0]["metadata"] == {"tenant": "envelope-marker-1"}
    [to_openai] = openai.requests
    [to_anthropic] = anthropic.requests
    assert to_openai.json["metadata"] == {"ticket": "request-tag-3"}
    assert check_chat_request(to_openai.json) is None
    assert "metadata" not in to_anthropic.json
    for received in (to_openai, to_anthropic):
        assert received.status == 200
        assert b"envelope-marker" not in received.body and b"fallbacks" not in received.body
    assert b"request-tag" not in to_anthropic.body


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_the_mock_answers_a_forced_legacy_function_as_openai_does(
    tmp_path: Path, stream: bool
) -> None:
    """`function_call: {"name": X}` is answered with `message.function_call`, not tool_calls."""
    text = HEAD + '[[deployment]]\nname = "mock"\ngroup = "mock"\nprovider = "mock"\nmodel = "m"\n'
    body = {"model": "mock", "messages": [{"role": "user", "content": "hi"}], "stream": stream,
            "functions": [{"name": "lookup"}], "function_call": {"name": "lookup"}}  # fmt: skip
    async with running_daemon(text, tmp_path) as daemon, uds_client(daemon) as client:
        response, answer = await post(client, body)
    assert response.status_code == 200
    if stream:
        chunks = [ChatCompletionChunk.model_validate(event) for event in answer[:-1]]
        calls = [c.choices[0].delta.function_call for c in chunks if c.choices]
        name = "".join(call.name or "" for call in calls if call is not None)
        arguments = "".join(call.arguments or "" for call in calls if call is not None)
        finish = [c.choices[0].finish_reason for c in chunks if c.choices][-1]
    else:
        choice = ChatCompletion.model_validate(answer).choices[0]
        legacy = choice.message.function_call
        assert legacy is not None and not choice.message.tool_calls
        name, arguments, finish = legacy.name, legacy.arguments, choice.finish_reason
    assert (name, arguments, finish) == ("lookup", "{}", "function_call")
