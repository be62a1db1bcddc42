"""Anthropic streaming end to end: the daemon's Unix socket -> actor -> Anthropic adapter ->
strict fake on loopback, in OpenAI's chunk format, with failover before the first token."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest

from .fakes import (
    AnthropicFake,
    anthropic_overloaded,
    anthropic_sse,
    anthropic_stream_error,
    anthropic_text_events,
    serve_app,
    stream,
)
from .helpers import running_daemon, uds_client
from .provider_streams import (
    FORCED,
    WEATHER,
    events,
    sdk,
    sdk_stream,
    streamed_text,
    two_deployments,
)

pytestmark = pytest.mark.anyio

KEY = "sk-ant-stream"
MODEL = "claude-sonnet-4-5"
HI = {"model": "primary", "stream": True, "messages": [{"role": "user", "content": "hi"}]}


def config(primary: str, spare: str) -> str:
    return two_deployments("anthropic", MODEL, KEY, primary, spare)


async def test_text_and_tool_call_streams_arrive_whole_through_the_sdk(tmp_path: Path) -> None:
    """The SDK streams text, a forced tool call and the usage chunk from the strict fake."""
    fake = AnthropicFake(api_key=KEY)
    async with serve_app(fake) as url, running_daemon(config(url, url), tmp_path) as daemon:
        async with sdk(daemon) as client:
            text = await sdk_stream(client, "hello", stream_options={"include_usage": True})
            tool = await sdk_stream(client, "weather?", tools=WEATHER, tool_choice=FORCED)
    assert text["text"] == "anthropic: hello"
    usage = text["usage"]
    assert usage is not None and usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert tool["usage"] is None  # not asked for
    [call] = tool["calls"]
    assert call["id"].startswith("toolu_") and call["name"] == "get_weather"
    assert msgspec.json.decode(call["arguments"]) == {"city": "fake"}
    assert tool["finish"] == "tool_calls"
    assert [r.json["stream"] for r in fake.requests] == [True, True]
    assert fake.requests[0].headers["accept"] == "text/event-stream"


async def test_failure_before_the_first_token_is_invisible(tmp_path: Path) -> None:
    """A 529, and an in-stream error before any content, both fail over to the spare."""
    primary, spare = AnthropicFake(api_key=KEY), AnthropicFake(api_key=KEY, name="spare")
    before_content = anthropic_sse(*anthropic_text_events()[:2], {"type": "ping"},
                                   anthropic_stream_error())  # fmt: skip
    primary.script(anthropic_overloaded(), stream(before_content))
    async with serve_app(primary) as p_url, serve_app(spare) as s_url:
        async with running_daemon(config(p_url, s_url), tmp_path) as daemon:
            async with uds_client(daemon) as client:
                for _ in range(2):
                    with anyio.fail_after(10):
                        async with client.stream("POST", "/v1/chat/completions", json=HI) as r:
                            assert r.status_code == 200
                            assert r.headers["x-dispatcher-attempts"] == "2"
                            assert r.headers["x-dispatcher-deployment"] == "spare-a"
                            got = await events(r)
                    assert got[-1] == "[DONE]"
                    assert streamed_text(got) == "spare: hi"
                    assert got[-2]["choices"][0]["finish_reason"] == "stop"
    assert [r.status for r in primary.requests] == [529, 200]


@pytest.mark.parametrize(
    ("tail", "code", "words"),
    [
        pytest.param([anthropic_stream_error()], "overloaded", "Overloaded", id="in-stream-error"),
        pytest.param([], "server_error", "message_stop", id="cut"),
    ],
)
async def test_failure_after_content_ends_with_an_error_chunk(
    tmp_path: Path, tail: list[dict[str, Any]], code: str, words: str
) -> None:
    """After the first token a failure is never silent: finish_reason "error", then [DONE]."""
    primary = AnthropicFake(api_key=KEY)
    primary.script(stream(anthropic_sse(*anthropic_text_events("Hel", "lo")[:4], *tail)))
    async with serve_app(primary) as url, running_daemon(config(url, url), tmp_path) as daemon:
        async with uds_client(daemon) as client:
            with anyio.fail_after(10):
                async with client.stream("POST", "/v1/chat/completions", json=HI) as response:
                    got = await events(response)
    assert got[-1] == "[DONE]"
    assert streamed_text(got[:-2]) == "Hello"
    last = got[-2]
    assert last["choices"][0]["finish_reason"] == "error"
    assert last["error"]["code"] == code and words in last["error"]["message"]
    assert last["id"] == "msg_stream"
