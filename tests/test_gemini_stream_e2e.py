"""Gemini streaming end to end: the daemon's Unix socket -> actor -> Gemini adapter -> strict
fake on loopback, in OpenAI's chunk format, with failover before the first token."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import httpx
import msgspec
import pytest

from .fakes import (
    GeminiFake,
    gemini_stream_error,
    gemini_text_chunks,
    gemini_unavailable,
    serve_app,
    sse,
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

KEY = "gm-stream"
MODEL = "gemini-2.5-flash"
HI = {"model": "primary", "stream": True, "messages": [{"role": "user", "content": "hi"}]}


def config(primary: str, spare: str) -> str:
    return two_deployments("gemini", MODEL, KEY, primary, spare)


async def test_text_and_tool_call_streams_arrive_whole_through_the_sdk(tmp_path: Path) -> None:
    """The SDK streams text, a forced function call and the usage chunk from the strict fake."""
    fake = GeminiFake(api_key=KEY)
    async with serve_app(fake) as url, running_daemon(config(url, url), tmp_path) as daemon:
        async with sdk(daemon) as client:
            text = await sdk_stream(client, "hello", stream_options={"include_usage": True})
            tool = await sdk_stream(client, "weather?", tools=WEATHER, tool_choice=FORCED)
    assert text["text"] == "gemini: hello"
    usage = text["usage"]
    assert usage is not None and usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert tool["usage"] is None  # not asked for
    [call] = tool["calls"]
    assert call["id"] and call["name"] == "get_weather"
    assert msgspec.json.decode(call["arguments"]) == {"city": "fake"}
    assert tool["finish"] == "tool_calls"
    assert [(r.path.rsplit(":", 1)[1], r.query) for r in fake.requests] == [
        ("streamGenerateContent", {"alt": "sse"})
    ] * 2


async def test_failure_before_the_first_token_is_invisible(tmp_path: Path) -> None:
    """A 503, and an in-stream error before any text, both fail over to the spare."""
    primary, spare = GeminiFake(api_key=KEY), GeminiFake(api_key=KEY, name="spare")
    primary.script(
        gemini_unavailable(), stream(sse(gemini_stream_error(503, "UNAVAILABLE", "overloaded")))
    )
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
    assert [r.status for r in primary.requests] == [503, 200]


@pytest.mark.parametrize(
    ("tail", "code", "words"),
    [
        pytest.param(
            [gemini_stream_error(503, "UNAVAILABLE", "overloaded mid-stream")],
            "overloaded",
            "mid-stream",
            id="in-stream-error",
        ),
        pytest.param([], "server_error", "finishReason", id="cut"),
    ],
)
async def test_failure_after_content_ends_with_an_error_chunk(
    tmp_path: Path, tail: list[dict[str, Any]], code: str, words: str
) -> None:
    """After the first token a failure is never silent: finish_reason "error", then [DONE]."""
    primary = GeminiFake(api_key=KEY)
    primary.script(stream(sse(*gemini_text_chunks("Hel", "lo", "!")[:2], *tail)))
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
    assert last["id"] == "resp_stream"


async def test_fake_streams_sse_with_alt_and_a_json_array_without() -> None:
    """The fake answers :streamGenerateContent as Gemini does: SSE with alt=sse, else an array."""
    fake = GeminiFake(api_key=KEY)
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    path = f"/v1beta/models/{MODEL}:streamGenerateContent"
    async with serve_app(fake) as url, httpx.AsyncClient(base_url=url) as client:
        headers = {"x-goog-api-key": KEY}
        with anyio.fail_after(10):
            as_sse = await client.post(path, params={"alt": "sse"}, json=body, headers=headers)
            as_array = await client.post(path, json=body, headers=headers)
    assert as_sse.headers["content-type"].startswith("text/event-stream")
    payloads = [msgspec.json.decode(line[6:]) for line in as_sse.text.splitlines() if line]
    assert [{**p, "responseId": ""} for p in payloads] == [
        {**p, "responseId": ""} for p in as_array.json()
    ]
    assert "".join(p["candidates"][0]["content"]["parts"][0]["text"] for p in payloads) == (
        "gemini: hi"
    )
    assert payloads[-1]["candidates"][0]["finishReason"] == "STOP"
    assert "finishReason" not in payloads[0]["candidates"][0]
