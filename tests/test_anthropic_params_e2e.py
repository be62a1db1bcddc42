"""Anthropic parameters end to end: the daemon's socket -> actor -> adapter -> strict fake.

Long answers are not cut at a default budget, dropped parameters are named in the
streamed header too, signed thinking survives a round trip, cached input is reported."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from openai.types.chat import ChatCompletion as SDKCompletion
from openai.types.chat import ChatCompletionChunk as SDKChunk

from .fakes import AnthropicFake, serve_app, success
from .helpers import running_daemon, uds_client
from .provider_streams import events, streamed_text

pytestmark = pytest.mark.anyio

KEY = "sk-ant-params"
WEATHER = [{"type": "function", "function": {
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}}]  # fmt: skip


def config(url: str, model: str, *extra: str) -> str:
    lines = "\n".join(extra)
    return (
        '[server]\nsocket = "d.sock"\nmetrics = ""\n[router]\nnum_retries = 0\n'
        f'[[deployment]]\nname = "claude"\ngroup = "claude"\nprovider = "anthropic"\n'
        f'model = "{model}"\napi_base = "{url}"\napi_key = "{KEY}"\n{lines}\n'
    )


@contextlib.asynccontextmanager
async def dispatcher(
    tmp_path: Path, fake: AnthropicFake, model: str = "claude-sonnet-4-5", *extra: str
) -> AsyncIterator[httpx.AsyncClient]:
    async with serve_app(fake) as url:
        text = config(url, model, *extra)
        async with running_daemon(text, tmp_path) as daemon, uds_client(daemon) as client:
            yield client


async def chat(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    with anyio.fail_after(10):
        response = await client.post("/v1/chat/completions", json={"model": "claude", **body})
    assert response.status_code == 200, response.text
    SDKCompletion.model_validate(response.json())
    return {"headers": response.headers, **response.json()}


async def test_a_long_answer_is_not_cut_at_a_default_budget(tmp_path: Path) -> None:
    """Without max_tokens, a 6000-token answer arrives whole (it was cut at 4096: "length")."""
    long_answer = "word " * 4800  # 24000 characters: 6000 tokens at the fakes' 4 per token
    fake = AnthropicFake(api_key=KEY)
    fake.script(success(content=long_answer))
    async with dispatcher(tmp_path, fake) as client:
        body = await chat(client, messages=[{"role": "user", "content": "write"}])
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["choices"][0]["message"]["content"] == long_answer
    assert fake.requests[0].json["max_tokens"] == 64000


async def test_streamed_answers_name_what_the_request_combination_drops(tmp_path: Path) -> None:
    """top_p next to temperature is left out of the body and named in the streamed header."""
    fake = AnthropicFake(api_key=KEY)
    request = {"model": "claude", "stream": True, "temperature": 0.3, "top_p": 0.8,
               "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
    async with dispatcher(tmp_path, fake) as client:
        with anyio.fail_after(10):
            async with client.stream("POST", "/v1/chat/completions", json=request) as response:
                assert response.status_code == 200
                assert response.headers["x-dispatcher-dropped-params"] == "top_p"
                got = await events(response)
    assert streamed_text(got) == "anthropic: hi"
    [received] = fake.requests
    assert received.json["temperature"] == 0.3 and "top_p" not in received.json


async def test_drop_params_false_skips_a_deployment_that_would_drop_top_p(tmp_path: Path) -> None:
    """With drop_params = false, a combination the model refuses makes it no candidate."""
    fake = AnthropicFake(api_key=KEY)
    async with dispatcher(tmp_path, fake, "claude-sonnet-4-5", "drop_params = false") as client:
        with anyio.fail_after(10):
            response = await client.post("/v1/chat/completions", json={
                "model": "claude", "temperature": 0.3, "top_p": 0.8,
                "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unsupported_request"
    assert fake.requests == []


async def test_signed_thinking_round_trips_through_a_tool_call(tmp_path: Path) -> None:
    """reasoning_effort turns thinking on; the answer carries reasoning_content and signed
    thinking_blocks; sent back with the tool result, the strict fake accepts them."""
    fake = AnthropicFake(api_key=KEY)
    fake.script(success(tool_calls=(("get_weather", '{"city":"Oslo"}'),)))
    question = {"role": "user", "content": "Weather in Oslo?"}
    async with dispatcher(tmp_path, fake) as client:
        first = await chat(client, messages=[question], tools=WEATHER, reasoning_effort="low")
        message = first["choices"][0]["message"]
        assert message["reasoning_content"] == "anthropic thinks about: Weather in Oslo?"
        [call] = message["tool_calls"]
        history = [question, message,
                   {"role": "tool", "tool_call_id": call["id"], "content": "-3C"}]  # fmt: skip
        second = await chat(client, messages=history, tools=WEATHER, reasoning_effort="low")
    assert second["headers"].get("x-dispatcher-dropped-params") is None
    assert [r.status for r in fake.requests] == [200, 200]
    sent = fake.requests[1].json
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 4096}
    assert sent["messages"][1]["content"][0] == message["thinking_blocks"][0]
    assert second["choices"][0]["message"]["reasoning_content"]


async def test_cached_prefix_is_reported_as_cached_tokens(tmp_path: Path) -> None:
    """cache_control reaches Anthropic; the second call reads the cache, and the answer's
    usage says so in prompt_tokens_details.cached_tokens."""
    fake = AnthropicFake(api_key=KEY)
    system = {"role": "system", "content": [
        {"type": "text", "text": "A long, stable preamble. " * 40,
         "cache_control": {"type": "ephemeral"}}]}  # fmt: skip
    async with dispatcher(tmp_path, fake) as client:
        first = await chat(client, messages=[system, {"role": "user", "content": "one"}])
        second = await chat(client, messages=[system, {"role": "user", "content": "two"}])
    assert first["usage"].get("prompt_tokens_details", {}).get("cached_tokens", 0) == 0
    cached = second["usage"]["prompt_tokens_details"]["cached_tokens"]
    assert 0 < cached <= second["usage"]["prompt_tokens"]
    assert fake.requests[0].json["system"][0]["cache_control"] == {"type": "ephemeral"}


async def test_streamed_thinking_reaches_the_client(tmp_path: Path) -> None:
    """Streamed with reasoning_effort: reasoning_content deltas, then the signed block whole,
    then the text; every chunk reads as the SDK's ChatCompletionChunk."""
    fake = AnthropicFake(api_key=KEY)
    request = {"model": "claude", "stream": True, "reasoning_effort": "medium",
               "messages": [{"role": "user", "content": "why?"}]}  # fmt: skip
    async with dispatcher(tmp_path, fake) as client:
        with anyio.fail_after(10):
            async with client.stream("POST", "/v1/chat/completions", json=request) as response:
                got = [e for e in await events(response) if e != "[DONE]"]
    deltas = [SDKChunk.model_validate(e).choices[0].delta for e in got if e["choices"]]
    reasoning = "".join((d.model_extra or {}).get("reasoning_content") or "" for d in deltas)
    blocks = [b for d in deltas for b in (d.model_extra or {}).get("thinking_blocks") or ()]
    assert reasoning == "anthropic thinks about: why?"
    assert [b["thinking"] for b in blocks] == [reasoning]
    assert streamed_text(got) == "anthropic: why?"
    assert fake.requests[0].json["thinking"] == {"type": "enabled", "budget_tokens": 8192}
