"""End to end: dispatcher -> actor -> Gemini adapter -> strict fake on loopback (and fallbacks)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import msgspec
import pytest

from actors import ChatCall

from .fakes import (
    AnthropicFake,
    GeminiFake,
    check_generate_request,
    check_messages_request,
    gemini_rate_limited,
    serve_app,
)
from .helpers import running_daemon, stack, uds_client
from .test_anthropic_e2e import SEED_HISTORY, SEED_ID, TOOLS

pytestmark = pytest.mark.anyio

KEY = "gm-e2e"
MODEL = "gemini-3-pro-preview"


def deployment(name: str, provider: str, model: str, url: str, key: str) -> str:
    return f"""
[[deployment]]
name = "{name}"
group = "{name}"
provider = "{provider}"
model = "{model}"
api_base = "{url}"
api_key = "{key}"
"""


HEAD = """
[server]
socket = "d.sock"
metrics = ""
[router]
num_retries = 1
[router.cooldown]
allowed_fails = 1000
"""


@contextlib.asynccontextmanager
async def dispatcher(tmp_path: Path, fake: GeminiFake) -> AsyncIterator[httpx.AsyncClient]:
    async with serve_app(fake) as url:
        text = HEAD + deployment("gem", "gemini", MODEL, url, KEY)
        async with running_daemon(text, tmp_path) as daemon, uds_client(daemon) as client:
            yield client


async def chat(client: httpx.AsyncClient, **body: Any) -> httpx.Response:
    with anyio.fail_after(10):
        return await client.post("/v1/chat/completions", json={"model": "gem", **body})


async def test_seed_history_is_accepted(tmp_path: Path) -> None:
    """The seed id travels as functionCall.id / functionResponse.id, named, signed: a 200."""
    fake = GeminiFake(api_key=KEY)
    async with dispatcher(tmp_path, fake) as client:
        response = await chat(client, messages=SEED_HISTORY, tools=TOOLS, user="u-1")
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "gemini: And Rome?"
    assert response.headers["x-dispatcher-dropped-params"] == "user"
    [received] = fake.requests
    assert received.status == 200 and received.headers["x-goog-api-key"] == KEY
    assert check_generate_request(received.json, model=MODEL) is None
    model_turn, answer_turn = received.json["contents"][1:3]
    assert model_turn["parts"] == [
        {
            "functionCall": {"id": SEED_ID, "name": "get_weather", "args": {"city": "Paris"}},
            "thoughtSignature": "skip_thought_signature_validator",
        }
    ]
    assert answer_turn == {
        "role": "user",
        "parts": [
            {
                "functionResponse": {
                    "id": SEED_ID,
                    "name": "get_weather",
                    "response": {"temp_c": 18},
                }
            }
        ],
    }
    assert received.json["systemInstruction"] == {"parts": [{"text": "You are terse."}]}


async def test_text_request(tmp_path: Path) -> None:
    """A plain request comes back as an OpenAI chat.completion with usage."""
    fake = GeminiFake(api_key=KEY)
    async with dispatcher(tmp_path, fake) as client:
        response = await chat(client, messages=[{"role": "user", "content": "hello"}], n=1)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "chat.completion" and body["model"] == MODEL
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "gemini: hello"}
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["total_tokens"] > 0
    assert fake.requests[0].json["generationConfig"] == {"candidateCount": 1}


async def test_forced_tool_call_and_its_round_trip(tmp_path: Path) -> None:
    """A forced call gets a minted id; sending it back with its result is accepted."""
    fake = GeminiFake(api_key=KEY)
    forced = {"type": "function", "function": {"name": "get_weather"}}
    question = {"role": "user", "content": "Weather in Paris?"}
    async with dispatcher(tmp_path, fake) as client:
        first = await chat(client, messages=[question], tools=TOOLS, tool_choice=forced)
        assert first.status_code == 200, first.text
        message = first.json()["choices"][0]["message"]
        [call] = message["tool_calls"]
        result = {"role": "tool", "tool_call_id": call["id"], "content": "18C"}
        second = await chat(client, messages=[question, message, result], tools=TOOLS)
    assert first.json()["choices"][0]["finish_reason"] == "tool_calls"
    assert call["function"] == {"name": "get_weather", "arguments": '{"city":"fake"}'}
    assert fake.requests[0].json["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}
    }
    assert second.status_code == 200, second.text
    answer = fake.requests[1].json["contents"][2]["parts"][0]["functionResponse"]
    assert answer == {"id": call["id"], "name": "get_weather", "response": {"output": "18C"}}


async def test_daily_quota_falls_back_to_anthropic_without_retry() -> None:
    """A per-day 429 is not retried; the Anthropic fallback accepts the same seed history."""
    gemini, claude = GeminiFake(api_key=KEY), AnthropicFake(api_key="sk-ant")
    gemini.script(gemini_rate_limited(retry_delay="30s", per_day=True))
    async with serve_app(gemini) as g_url, serve_app(claude) as c_url:
        text = (
            HEAD
            + '[router.fallbacks]\n"gem" = ["claude"]\n'
            + deployment("gem", "gemini", MODEL, g_url, KEY)
            + deployment("claude", "anthropic", "claude-sonnet-4-5", c_url, "sk-ant")
        )
        call = msgspec.convert({"model": "gem", "messages": SEED_HISTORY, "tools": TOOLS}, ChatCall)
        async with stack(text) as s:
            with anyio.fail_after(10):
                result = await s.supervisor.complete(call)
    assert result.deployment == "claude"
    assert [(a.deployment, a.outcome) for a in result.attempts] == [
        ("gem", "rate_limited"),
        ("claude", "success"),
    ]
    assert [r.status for r in gemini.requests] == [429]
    [received] = claude.requests
    assert received.status == 200 and check_messages_request(received.json) is None
    assert received.json["messages"][1]["content"][0]["id"] == SEED_ID
