"""Streaming end to end: SSE in OpenAI's chunk format, failover before the first token,
never silent after it, and a client that leaves stops the upstream."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import anyio
import msgspec
import openai
import pytest

from .fakes import AzureFake, OpenAIFake, error, serve_app, sse, stream
from .helpers import openai_deployment, running_daemon, uds_client
from .provider_streams import FORCED, WEATHER, events, sdk, sdk_stream

pytestmark = pytest.mark.anyio

HEAD = """
[server]
socket = "d.sock"
metrics = ""
[router]
num_retries = 0
[router.fallbacks]
"primary" = ["spare"]
"""
KEY = "sk-fake"


def chunk(content: str | None = None, finish: str | None = None, **delta: Any) -> dict[str, Any]:
    if content is not None:
        delta["content"] = content
    return {
        "id": "chatcmpl-s",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def config(primary: str, spare: str, *extra: str) -> str:
    return (
        HEAD
        + openai_deployment("primary-a", "primary", primary, KEY, *extra)
        + openai_deployment("spare-a", "spare", spare, KEY)
    )


async def test_text_and_tool_call_streams_arrive_whole_through_the_sdk(tmp_path: Path) -> None:
    """The SDK streams text and a forced tool call from the strict fake, whole."""
    fake = OpenAIFake(api_key=KEY)
    async with serve_app(fake) as url, running_daemon(config(url, url), tmp_path) as daemon:
        async with sdk(daemon) as client:
            text = await sdk_stream(client, "hello")
            tool = await sdk_stream(client, "weather?", tools=WEATHER, tool_choice=FORCED)
    assert (text["text"], text["finish"], text["usage"]) == ("openai: hello", "stop", None)
    [call] = tool["calls"]
    assert call["name"] == "get_weather" and call["id"]
    assert isinstance(msgspec.json.decode(call["arguments"]), dict)
    assert all(r.json["stream"] is True for r in fake.requests)


async def test_failure_before_the_first_token_is_invisible(tmp_path: Path) -> None:
    """An error status and a first-token stall both fail over; the client sees one stream."""
    primary, spare = OpenAIFake(api_key=KEY), OpenAIFake(api_key=KEY, name="spare")
    primary.script(
        error(500, {"error": {"message": "boom", "type": "server_error"}}),
        stream(sse(chunk(role="assistant")), anyio.Event()),  # role only, then silence
    )
    text = config("{p}", "{s}", "first_token_timeout_s = 0.2")
    async with serve_app(primary) as p_url, serve_app(spare) as s_url:
        async with running_daemon(text.format(p=p_url, s=s_url), tmp_path) as daemon:
            async with uds_client(daemon) as client:
                for _ in range(2):
                    body = {"model": "primary", "stream": True,
                            "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
                    async with client.stream("POST", "/v1/chat/completions", json=body) as r:
                        assert r.status_code == 200
                        assert r.headers["x-dispatcher-attempts"] == "2"
                        assert r.headers["x-dispatcher-deployment"] == "spare-a"
                        got = await events(r)
                    assert got[-1] == "[DONE]"
                    assert "".join(e["choices"][0]["delta"].get("content") or ""
                                   for e in got[:-1] if e["choices"]) == "spare: hi"  # fmt: skip
    assert primary.requests[1].disconnected  # the stalled stream was closed


async def test_in_band_error_after_content_ends_with_an_error_chunk(tmp_path: Path) -> None:
    """After the first token a failure is never silent: finish_reason "error", then [DONE]."""
    primary = OpenAIFake(api_key=KEY)
    in_band = {"error": {"message": "overloaded mid-stream", "type": "server_error"}}
    primary.script(stream(sse(chunk(role="assistant"), chunk("Hel"), in_band)))
    async with serve_app(primary) as url, running_daemon(config(url, url), tmp_path) as daemon:
        async with uds_client(daemon) as client:
            body = {"model": "primary", "stream": True,
                    "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
            async with client.stream("POST", "/v1/chat/completions", json=body) as response:
                got = await events(response)
        async with sdk(daemon) as client:
            primary.script(stream(sse(chunk("Hel"), in_band)))
            with pytest.raises(openai.APIError, match="mid-stream"):  # the SDK raises on it
                async for _ in await client.chat.completions.create(
                    model="primary", stream=True, messages=[{"role": "user", "content": "x"}]
                ):
                    pass
    assert got[-1] == "[DONE]"
    last = got[-2]
    assert last["choices"][0]["finish_reason"] == "error"
    assert "mid-stream" in last["error"]["message"]
    assert got[1]["choices"][0]["delta"]["content"] == "Hel"


@pytest.mark.parametrize(
    ("pieces", "code"),
    [
        pytest.param((sse(chunk("Hel")), anyio.Event()), "timeout", id="idle-stall"),
        pytest.param((sse(chunk("Hel")),), "server_error", id="cut-before-done"),
    ],
)
async def test_stall_or_cut_after_commit_is_reported(
    tmp_path: Path, pieces: tuple[Any, ...], code: str
) -> None:
    """A stall longer than idle_timeout_s, or a body cut before [DONE], ends in an error chunk."""
    primary = OpenAIFake(api_key=KEY)
    primary.script(stream(*pieces))
    text = config("{u}", "{u}", "idle_timeout_s = 0.2")
    async with serve_app(primary) as url, running_daemon(text.format(u=url), tmp_path) as daemon:
        async with uds_client(daemon) as client:
            body = {"model": "primary", "stream": True,
                    "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
            with anyio.fail_after(10):
                async with client.stream("POST", "/v1/chat/completions", json=body) as response:
                    got = await events(response)
    assert got[-1] == "[DONE]"
    assert got[-2]["choices"][0]["finish_reason"] == "error"
    assert got[-2]["error"]["code"] == code


async def test_the_client_has_done_once_the_upstream_sent_it(tmp_path: Path) -> None:
    """The client's [DONE] goes with the provider's: an upstream that keeps its body open
    after `data: [DONE]` (here past idle_timeout_s) delays nothing and fails nothing."""
    primary = OpenAIFake(api_key=KEY)
    stall = anyio.Event()
    primary.script(stream(sse(chunk("Hel")), b"data: [DONE]\n\n", stall))
    text = config("{u}", "{u}", "idle_timeout_s = 1")
    async with serve_app(primary) as url, running_daemon(text.format(u=url), tmp_path) as daemon:
        async with uds_client(daemon) as client:
            body = {"model": "primary", "stream": True,
                    "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
            with anyio.fail_after(0.8):  # before the idle timeout
                async with client.stream("POST", "/v1/chat/completions", json=body) as response:
                    got = await events(response)
            assert [e if e == "[DONE]" else e["choices"][0]["delta"] for e in got] == [
                {"content": "Hel"},
                "[DONE]",
            ]
            [record] = primary.requests
            with anyio.fail_after(10):
                await record.wait_finished()  # the daemon gave up on the rest of the body
            stall.set()
        await anyio.wait_all_tasks_blocked()
        [actor] = [a for a in daemon.actors if a.name == "primary-a"]
        stats = actor.statistics()
        assert (stats.inflight, stats.attempts, stats.failures) == (0, 1, 0)


async def test_client_disconnect_closes_the_upstream_connection(tmp_path: Path) -> None:
    """A client that leaves mid-stream makes the daemon close its upstream connection."""
    primary = OpenAIFake(api_key=KEY)
    primary.script(stream(sse(chunk("Hel")), anyio.Event()))
    async with serve_app(primary) as url, running_daemon(config(url, url), tmp_path) as daemon:
        async with uds_client(daemon) as client:
            body = {"model": "primary", "stream": True,
                    "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
            async with client.stream("POST", "/v1/chat/completions", json=body) as response:
                async for line in response.aiter_lines():
                    if "Hel" in line:
                        break
        [record] = primary.requests
        with anyio.fail_after(10):
            await record.wait_finished()
        assert record.disconnected
        await anyio.wait_all_tasks_blocked()
        assert all(a.statistics().inflight == 0 for a in daemon.actors)


async def test_mock_stream_usage_only_when_asked(tmp_path: Path) -> None:
    """The usage chunk is sent only with stream_options.include_usage."""
    text = HEAD.replace('"primary" = ["spare"]', "") + (
        '[[deployment]]\nname = "m"\ngroup = "mini"\nprovider = "mock"\nmodel = "mock-1"\n'
    )
    async with running_daemon(text, tmp_path) as daemon, uds_client(daemon) as client:
        seen = []
        for options in ({}, {"stream_options": {"include_usage": True}}):
            body = {"model": "mini", "stream": True, **options,
                    "messages": [{"role": "user", "content": "a b c"}]}  # fmt: skip
            async with client.stream("POST", "/v1/chat/completions", json=body) as response:
                seen.append([e for e in await events(response) if e != "[DONE]" and e.get("usage")])
    assert seen[0] == []
    assert seen[1][0]["usage"]["total_tokens"] > 0


async def test_stream_names_dropped_params(tmp_path: Path) -> None:
    """A parameter the serving provider cannot take is left out and named in a header."""
    azure = AzureFake(api_key=KEY, deployments=("dep",))
    async with serve_app(azure) as url:
        text = HEAD.replace('"primary" = ["spare"]', "") + (
            '[[deployment]]\nname = "az"\ngroup = "g"\nprovider = "azure"\nmodel = "dep"\n'
            f'api_base = "{url}"\napi_version = "2024-10-21"\napi_key = "{KEY}"\n'
        )
        async with running_daemon(text, tmp_path) as daemon, uds_client(daemon) as client:
            body = {"model": "g", "stream": True, "reasoning_effort": "low",
                    "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
            async with client.stream("POST", "/v1/chat/completions", json=body) as response:
                assert response.headers["x-dispatcher-dropped-params"] == "reasoning_effort"
                got = await events(response)
    assert got[-1] == "[DONE]"
    [received] = azure.requests
    assert "reasoning_effort" not in received.json and received.json["stream"] is True


async def test_openai_stream_usage_is_counted_but_not_shown_unasked(tmp_path: Path) -> None:
    """The usage chunk the daemon asked OpenAI for feeds metrics, not the client."""
    fake = OpenAIFake(api_key=KEY)
    async with serve_app(fake) as url:
        text = HEAD.replace('"primary" = ["spare"]', "") + openai_deployment(
            "oai", "g", url, KEY
        ).replace('provider = "openai-compatible"', 'provider = "openai"')
        async with running_daemon(text, tmp_path) as daemon, uds_client(daemon) as client:
            body = {"model": "g", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
            async with client.stream("POST", "/v1/chat/completions", json=body) as response:
                got = await events(response)
            tokens = daemon.registry.get_sample_value(
                "dispatcher_tokens_total", {"group": "g", "deployment": "oai", "kind": "completion"}
            )
    assert not any(e != "[DONE]" and e.get("usage") for e in got)
    assert fake.requests[0].json["stream_options"] == {"include_usage": True}
    assert tokens and tokens > 0


async def test_streams_left_at_the_drain_deadline_end_with_an_error_chunk(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """SIGTERM with a committed stream that outlives drain_timeout_s: the client gets an
    error chunk and [DONE] (not a cut connection), the upstream call is closed, and no
    traceback is logged."""
    primary = OpenAIFake(api_key=KEY)
    primary.script(stream(sse(chunk(role="assistant"), chunk("Hel")), anyio.Event()))
    text = config("{u}", "{u}").replace('metrics = ""', 'metrics = ""\ndrain_timeout_s = 0.2')
    got: list[Any] = []
    async with serve_app(primary) as url, running_daemon(text.format(u=url), tmp_path) as daemon:
        async with uds_client(daemon) as client:
            body = {"model": "primary", "stream": True,
                    "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
            with anyio.fail_after(10):
                async with client.stream("POST", "/v1/chat/completions", json=body) as response:
                    async for line in response.aiter_lines():
                        if line.startswith("data: "):
                            data = line[len("data: ") :]
                            got.append(data if data == "[DONE]" else msgspec.json.decode(data))
                            if "Hel" in line:
                                daemon.stop()
        [record] = primary.requests
        with anyio.fail_after(10):
            await record.wait_finished()
    assert got[-1] == "[DONE]"
    assert got[-2]["choices"][0]["finish_reason"] == "error"
    assert got[-2]["error"]["code"] == "shutting_down"
    assert got[-2]["id"] == "chatcmpl-s"
    assert record.disconnected
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
