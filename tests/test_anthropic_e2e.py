"""End to end: the daemon's Unix socket -> actor -> Anthropic adapter -> strict fake on loopback."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from .fakes import AnthropicFake, anthropic_overloaded, check_messages_request, serve_app
from .helpers import running_daemon, uds_client

pytestmark = pytest.mark.anyio

KEY = "sk-ant-e2e"
SEED_ID = "call_function_jlv0n7uyomle_1"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get current weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]
SEED_HISTORY = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Weather in Paris?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": SEED_ID,
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": SEED_ID, "content": '{"temp_c":18}'},
    {"role": "user", "content": "And Rome?"},
]


def config(url: str) -> str:
    return f"""
[server]
socket = "d.sock"
metrics = ""
[router]
num_retries = 1
[router.cooldown]
allowed_fails = 1000
[[deployment]]
name = "claude"
group = "claude"
provider = "anthropic"
model = "claude-sonnet-4-5"
api_base = "{url}"
api_key = "{KEY}"
"""


@contextlib.asynccontextmanager
async def dispatcher(tmp_path: Path, fake: AnthropicFake) -> AsyncIterator[httpx.AsyncClient]:
    async with serve_app(fake) as url:
        async with running_daemon(config(url), tmp_path) as daemon, uds_client(daemon) as client:
            yield client


async def chat(client: httpx.AsyncClient, **body: Any) -> httpx.Response:
    with anyio.fail_after(10):
        return await client.post("/v1/chat/completions", json={"model": "claude", **body})


async def test_seed_history_is_accepted(tmp_path: Path) -> None:
    """The seed tool-call id reaches Anthropic paired with its result; the answer is a 200."""
    fake = AnthropicFake(api_key=KEY)
    async with dispatcher(tmp_path, fake) as client:
        response = await chat(client, messages=SEED_HISTORY, tools=TOOLS, seed=7)
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "anthropic: And Rome?"
    assert response.headers["x-dispatcher-dropped-params"] == "seed"
    [received] = fake.requests
    assert received.status == 200
    assert check_messages_request(received.json) is None
    assistant, results = received.json["messages"][1:3]
    assert assistant["content"][0]["id"] == SEED_ID
    assert results["content"][0] == {
        "type": "tool_result",
        "tool_use_id": SEED_ID,
        "content": '{"temp_c":18}',
    }
    assert received.json["system"] == "You are terse."


async def test_text_request_after_overload_retry(tmp_path: Path) -> None:
    """A 529 is retried on the same deployment; the second answer comes back as OpenAI JSON."""
    fake = AnthropicFake(api_key=KEY)
    fake.script(anthropic_overloaded())
    async with dispatcher(tmp_path, fake) as client:
        response = await chat(client, messages=[{"role": "user", "content": "hello"}])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0] == {
        "index": 0,
        "message": {"role": "assistant", "content": "anthropic: hello"},
        "finish_reason": "stop",
    }
    assert body["usage"]["total_tokens"] > 0
    assert [r.status for r in fake.requests] == [529, 200]
    assert fake.requests[0].headers["anthropic-version"] == "2023-06-01"


async def test_forced_tool_call(tmp_path: Path) -> None:
    """A named tool_choice becomes {"type": "tool"}; the tool_use comes back as tool_calls."""
    fake = AnthropicFake(api_key=KEY)
    forced = {"type": "function", "function": {"name": "get_weather"}}
    async with dispatcher(tmp_path, fake) as client:
        response = await chat(
            client,
            messages=[{"role": "user", "content": "Weather in Paris?"}],
            tools=TOOLS,
            tool_choice=forced,
            parallel_tool_calls=False,
        )
    assert response.status_code == 200, response.text
    choice = response.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    [call] = choice["message"]["tool_calls"]
    assert call["function"] == {"name": "get_weather", "arguments": '{"city":"fake"}'}
    assert call["id"].startswith("toolu_")
    [received] = fake.requests
    assert received.json["tool_choice"] == {
        "type": "tool",
        "name": "get_weather",
        "disable_parallel_tool_use": True,
    }
