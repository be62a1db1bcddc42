"""Bedrock end to end: the dispatcher against the strict `BedrockFake` on a real socket."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import msgspec
import pytest

from actors import ChatCall, Usage
from config import parse_config
from dispatcher import AllAttemptsFailed, Daemon

from .fakes import (
    AnthropicFake,
    BedrockFake,
    bedrock_input_too_long,
    bedrock_throttled,
    check_converse,
    garbage,
    hang,
    serve_app,
)
from .helpers import stack

pytestmark = pytest.mark.anyio

MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0"
SEED_ID = "call_function_jlv0n7uyomle_1"
TOOLS: list[dict[str, Any]] = [{"type": "function", "function": {
    "name": "get_weather", "description": "Get current weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}]  # fmt: skip
FORCED = {"type": "function", "function": {"name": "get_weather"}}
SEED_HISTORY = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": None, "tool_calls": [{"id": SEED_ID, "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]},
    {"role": "tool", "tool_call_id": SEED_ID, "content": '{"temp_c":18}'},
    {"role": "user", "content": "And Rome?"},
]  # fmt: skip
SIGV4 = re.compile(
    r"AWS4-HMAC-SHA256 Credential=AKIDFAKEBEDROCK0000/\d{8}/us-east-1/bedrock/aws4_request, "
)


@pytest.fixture
def fake_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """botocore's chain finds exactly the fake's credentials, in the environment."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDFAKEBEDROCK0000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fake/secret/key")
    yield


def config(url: str, *extra: str, model: str = MODEL) -> str:
    return "\n".join([
        "[router]", "num_retries = 0", "[[deployment]]", 'name = "bedrock-a"', 'group = "g"',
        'provider = "bedrock"', f'model = "{model}"', f'api_base = "{url}"',
        'region = "us-east-1"', *extra,
    ])  # fmt: skip


def call(**body: Any) -> ChatCall:
    return msgspec.convert({"model": "g", **body}, ChatCall)


async def test_seed_history_reaches_bedrock_with_pairs_intact(fake_aws: None) -> None:
    """The seed id is valid for Bedrock: sent unchanged in toolUse and toolResult, signed."""
    fake = BedrockFake(models=[MODEL])
    async with serve_app(fake) as url, stack(config(url)) as s:
        with anyio.fail_after(10):
            result = await s.supervisor.complete(call(messages=SEED_HISTORY, tools=TOOLS))
    [received] = fake.requests
    assert received.status == 200
    assert check_converse(received.json) is None
    assert SIGV4.match(received.headers["authorization"])
    assert "x-amz-date" in received.headers
    first, assistant, results = received.json["messages"]
    assert assistant["content"] == [{"toolUse": {
        "toolUseId": SEED_ID, "name": "get_weather", "input": {"city": "Paris"}}}]  # fmt: skip
    assert results["content"] == [
        {"toolResult": {"toolUseId": SEED_ID, "content": [{"text": '{"temp_c":18}'}],
                        "status": "success"}},
        {"text": "And Rome?"},
    ]  # fmt: skip
    assert first == {"role": "user", "content": [{"text": "Weather in Paris?"}]}
    assert received.json["system"] == [{"text": "You are terse."}]
    assert result.response.choices[0].message.content == "bedrock: And Rome?"


async def test_text_request_end_to_end(fake_aws: None) -> None:
    """A plain request comes back as a normal chat.completion with usage."""
    fake = BedrockFake(models=[MODEL])
    async with serve_app(fake) as url, stack(config(url)) as s:
        with anyio.fail_after(10):
            result = await s.supervisor.complete(
                call(messages=[{"role": "user", "content": "hello"}], max_tokens=64, seed=7)
            )
    [choice] = result.response.choices
    assert (choice.message.content, choice.finish_reason) == ("bedrock: hello", "stop")
    assert isinstance(result.response.usage, Usage) and result.response.usage.total_tokens > 0
    assert result.dropped_params == ("seed",)
    assert fake.requests[0].json["inferenceConfig"] == {"maxTokens": 64}


async def test_forced_tool_call_end_to_end(fake_aws: None) -> None:
    """A forced tool is sent as toolChoice.tool and answered as an OpenAI tool call."""
    fake = BedrockFake(models=[MODEL])
    body = {"messages": [{"role": "user", "content": "Paris?"}], "tools": TOOLS,
            "tool_choice": FORCED}  # fmt: skip
    async with serve_app(fake) as url, stack(config(url)) as s:
        with anyio.fail_after(10):
            result = await s.supervisor.complete(call(**body))
    assert fake.requests[0].json["toolConfig"]["toolChoice"] == {"tool": {"name": "get_weather"}}
    [choice] = result.response.choices
    assert choice.finish_reason == "tool_calls"
    [tool_call] = choice.message.tool_calls  # type: ignore[misc]
    assert tool_call.function.name == "get_weather"
    assert msgspec.json.decode(tool_call.function.arguments) == {"city": "fake"}
    assert tool_call.id.startswith("tooluse_")


async def test_model_arn_with_colons_and_slash_is_signed_and_routed(fake_aws: None) -> None:
    """An inference-profile ARN travels as one encoded segment and its signature verifies."""
    arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-v1:0"
    fake = BedrockFake(models=[arn])
    async with serve_app(fake) as url, stack(config(url, model=arn)) as s:
        with anyio.fail_after(10):
            await s.supervisor.complete(call(messages=[{"role": "user", "content": "hi"}]))
    [received] = fake.requests
    assert received.status == 200  # route, model and signature all checked by the fake
    assert received.path == f"/model/{arn}/converse"
    assert "%2F" in fake.raw_path(received)  # the slash stays inside the segment


async def test_bedrock_api_key_is_sent_as_bearer() -> None:
    """With api_key, a Bearer token authenticates and nothing is signed; a wrong key is auth."""
    fake = BedrockFake(models=[MODEL], api_key="bedrock-key")
    hello = call(messages=[{"role": "user", "content": "hi"}])
    async with serve_app(fake) as url:
        async with stack(config(url, 'api_key = "bedrock-key"')) as s:
            with anyio.fail_after(10):
                await s.supervisor.complete(hello)
        async with stack(config(url, 'api_key = "wrong-key"')) as s:
            with pytest.raises(AllAttemptsFailed) as failed, anyio.fail_after(10):
                await s.supervisor.complete(hello)
    ok, denied = fake.requests
    assert ok.headers["authorization"] == "Bearer bedrock-key" and "x-amz-date" not in ok.headers
    assert (ok.status, denied.status) == (200, 403)
    [attempt] = failed.value.attempts
    assert attempt.outcome == "auth"
    assert "UnrecognizedClientException" in (attempt.message or "")


@pytest.mark.parametrize(
    ("directive", "outcome", "status"),
    [
        pytest.param(bedrock_throttled(), "rate_limited", 429, id="throttled"),
        pytest.param(bedrock_input_too_long(), "context_window_exceeded", 400, id="too-long"),
        pytest.param(garbage(200, b'{"output": 1}'), "server_error", 200, id="garbage"),
    ],
)
async def test_scripted_failures_are_classified(
    fake_aws: None, directive: Any, outcome: str, status: int
) -> None:
    """Bedrock's error answers, through the real client, land in the right class."""
    fake = BedrockFake(models=[MODEL])
    fake.script(directive)
    async with serve_app(fake) as url, stack(config(url)) as s:
        with pytest.raises(AllAttemptsFailed) as failed, anyio.fail_after(10):
            await s.supervisor.complete(call(messages=[{"role": "user", "content": "hi"}]))
    [attempt] = failed.value.attempts
    assert (attempt.outcome, attempt.status) == (outcome, status)


FALLBACK = """
[server]
socket = "d.sock"
metrics = ""
[router]
num_retries = 0
[router.fallbacks]
"primary" = ["claude"]
[router.cooldown]
allowed_fails = 1000
[[deployment]]
name = "bedrock-primary"
group = "primary"
provider = "bedrock"
model = "{model}"
api_base = "{bedrock_url}"
region = "us-east-1"
timeout_s = 0.3
[[deployment]]
name = "anthropic-direct"
group = "claude"
provider = "anthropic"
model = "claude-3-5-haiku-latest"
api_base = "{anthropic_url}"
api_key = "sk-ant-test"
"""


async def test_fallback_from_a_bedrock_timeout_keeps_tools_and_tool_choice(
    fake_aws: None, tmp_path: Path
) -> None:
    """Bedrock hangs past its timeout; the strict Anthropic fake gets the tools and the choice."""
    bedrock, anthropic = BedrockFake(models=[MODEL]), AnthropicFake(api_key="sk-ant-test")
    bedrock.script(hang())
    async with serve_app(bedrock) as b_url, serve_app(anthropic) as a_url:
        text = FALLBACK.format(model=MODEL, bedrock_url=b_url, anthropic_url=a_url)
        daemon = Daemon(parse_config(text), tmp_path)
        async with anyio.create_task_group() as tg:
            await tg.start(daemon.run)
            transport = httpx.AsyncHTTPTransport(uds=os.fspath(daemon.socket_path))
            async with httpx.AsyncClient(transport=transport, base_url="http://d") as client:
                body = {"model": "primary", "tools": TOOLS, "tool_choice": FORCED,
                        "messages": [{"role": "user", "content": "Weather in Paris?"}]}  # fmt: skip
                with anyio.fail_after(10):
                    response = await client.post("/v1/chat/completions", json=body)
            daemon.stop()
    assert response.status_code == 200, response.text
    assert response.headers["x-dispatcher-attempts"] == "2"
    [tool_call] = response.json()["choices"][0]["message"]["tool_calls"]
    assert tool_call["function"]["name"] == "get_weather"
    [timed_out] = bedrock.requests
    assert timed_out.json["toolConfig"]["toolChoice"] == {"tool": {"name": "get_weather"}}
    [received] = anthropic.requests
    assert received.status == 200
    assert [tool["name"] for tool in received.json["tools"]] == ["get_weather"]
    assert received.json["tools"][0]["input_schema"] == TOOLS[0]["function"]["parameters"]
    assert received.json["tool_choice"] == {"type": "tool", "name": "get_weather"}
