"""The aiohttp-backed httpx transport against real loopback sockets."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path
from typing import Any

import anyio
import httpx
import msgspec
import pytest

from actors._transport import AiohttpTransport, ResponseTooLarge

from .fakes import OpenAIFake, close, flood, garbage, serve_app, success
from .helpers import chat_json, openai_deployment, running_daemon, uds_client
from .provider_streams import events

pytestmark = pytest.mark.anyio

BODY = msgspec.json.encode(
    {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
)
HEADERS = {"authorization": "Bearer sk-t", "content-type": "application/json"}


async def test_round_trip_keeps_status_headers_and_body() -> None:
    """A request reaches the server whole; the response comes back whole."""
    fake = OpenAIFake(api_key="sk-t")
    fake.script(success(content="hello there"), garbage(502, b"<html>bad gateway</html>"))
    transport = AiohttpTransport(max_connections=4)
    async with serve_app(fake) as url:
        for _ in range(2):
            request = httpx.Request(
                "POST", f"{url}/v1/chat/completions", headers=HEADERS, content=BODY
            )
            response = await transport.handle_async_request(request)
            if response.status_code == 200:
                assert response.json()["choices"][0]["message"]["content"] == "hello there"
                assert response.headers["content-type"].startswith("application/json")
            else:
                assert (response.status_code, response.content) == (
                    502,
                    b"<html>bad gateway</html>",
                )
        await transport.aclose()
    assert [r.json for r in fake.requests] == [msgspec.json.decode(BODY)] * 2


async def test_refused_connection_is_a_connect_error() -> None:
    """Nobody listening: httpx.ConnectError (classified `connection` by the actor)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    transport = AiohttpTransport(max_connections=1)
    request = httpx.Request("POST", f"http://127.0.0.1:{port}/v1/chat/completions", content=BODY)
    with pytest.raises(httpx.ConnectError):
        await transport.handle_async_request(request)
    await transport.aclose()


async def test_dropped_connection_is_a_transport_error() -> None:
    """The server closing without an answer is an httpx.TransportError, never a hang."""
    fake = OpenAIFake(api_key="sk-t")
    fake.script(close())
    transport = AiohttpTransport(max_connections=1)
    async with serve_app(fake) as url:
        request = httpx.Request("POST", f"{url}/v1/chat/completions", headers=HEADERS, content=BODY)
        with pytest.raises(httpx.TransportError):
            await transport.handle_async_request(request)
        await transport.aclose()


def post(url: str) -> httpx.Request:
    return httpx.Request("POST", f"{url}/v1/chat/completions", headers=HEADERS, content=BODY)


@pytest.mark.parametrize("encoding", ["gzip", "br"])
async def test_compressed_answers_are_decoded_once(encoding: str) -> None:
    """A compressed JSON answer and a compressed error reach httpx decoded, without the
    content-encoding that would make httpx decode them again."""
    fake = OpenAIFake(api_key="sk-t")
    fake.encodings = (encoding,)
    fake.script(success(content="squeezed " * 100), garbage(502, b"<html>" + b"x" * 5000))
    transport = AiohttpTransport(max_connections=2)
    async with serve_app(fake) as url:
        ok = await transport.handle_async_request(post(url))
        bad = await transport.handle_async_request(post(url))
        await transport.aclose()
    assert [r.content_encoding for r in fake.requests] == [encoding, encoding]
    assert "content-encoding" not in ok.headers and "content-encoding" not in bad.headers
    assert ok.json()["choices"][0]["message"]["content"] == "squeezed " * 100
    assert bad.content == b"<html>" + b"x" * 5000


async def test_gzip_answer_through_the_daemon(tmp_path: Path) -> None:
    """The reproduction of the 502: an upstream answering gzip (aiohttp asked for it)."""
    fake = OpenAIFake(api_key="sk-t")
    fake.encodings = ("gzip",)
    async with serve_app(fake) as url:
        config = "[server]\nmetrics = ''\n" + openai_deployment("up", "g", url, "sk-t")
        async with running_daemon(config, tmp_path) as daemon, uds_client(daemon) as client:
            response = await client.post("/v1/chat/completions", json=chat_json("g", "zip"))
            body = chat_json("g", "zip", stream=True)
            async with client.stream("POST", "/v1/chat/completions", json=body) as streamed:
                chunks = await events(streamed)
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "openai: zip"
    assert streamed.status_code == 200 and chunks[-1] == "[DONE]"
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks[:-1]
                   if c["choices"]) == "openai: zip"  # fmt: skip
    assert [r.content_encoding for r in fake.requests] == ["gzip", "gzip"]


LIMIT = 256 * 1024


@pytest.mark.parametrize(
    "directive",
    [
        pytest.param(garbage(200, b"[" + b"1," * LIMIT + b"1]"), id="declared-length"),
        pytest.param(flood(b"1," * 4096, head=b"["), id="never-ending-json"),
        pytest.param(flood(b"1," * 4096, head=b"[", status=500), id="never-ending-error"),
        pytest.param(flood(b"x" * 4096, head=b"data: ", content_type="text/event-stream"),
                     id="never-ending-stream"),
    ],
)  # fmt: skip
async def test_bodies_past_the_limit_fail_and_drop_the_connection(directive: Any) -> None:
    """Whole or streamed, a body past max_response_bytes fails the read (decoded bytes
    counted, compressed or not) and the connection is dropped, not drained."""
    fake = OpenAIFake(api_key="sk-t")
    fake.script(directive)
    transport = AiohttpTransport(max_connections=1, max_response_bytes=LIMIT)
    async with serve_app(fake) as url:
        with anyio.fail_after(10), pytest.raises(ResponseTooLarge):
            response = await transport.handle_async_request(post(url))
            try:
                async for _ in response.aiter_raw():
                    pass
            finally:
                await response.aclose()
        [record] = fake.requests
        with anyio.fail_after(10):
            await record.wait_finished()
        await transport.aclose()
    assert record.disconnected or directive.__class__.__name__ == "Garbage"


async def test_a_body_at_the_limit_is_read_whole() -> None:
    """The limit is a limit, not a cut: a body of exactly that many bytes arrives."""
    body = b"[" + b"1," * ((LIMIT - 3) // 2) + b"1]"
    body = body + b" " * (LIMIT - len(body))
    fake = OpenAIFake(api_key="sk-t")
    fake.script(garbage(200, body), flood(b"1," * 1024, head=b"[", tail=b"1]", times=8))
    transport = AiohttpTransport(max_connections=1, max_response_bytes=LIMIT)
    async with serve_app(fake) as url:
        first = await transport.handle_async_request(post(url))
        second = await transport.handle_async_request(post(url))
        await transport.aclose()
    assert len(first.content) == LIMIT and first.content == body
    assert len(msgspec.json.decode(second.content)) == 8 * 1024 + 1


async def test_no_tls_context_is_built_per_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cold transports to an http:// upstream build no SSL context (it cost ~20 ms of
    event loop each); https ones share aiohttp's, built once per process."""
    built: list[object] = []
    real = ssl.create_default_context

    def counting(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        built.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(ssl, "create_default_context", counting)
    fake = OpenAIFake(api_key="sk-t")
    transports = [AiohttpTransport(max_connections=1) for _ in range(20)]
    async with serve_app(fake) as url:
        for transport in transports:
            response = await transport.handle_async_request(post(url))
            assert response.status_code == 200
            await transport.aclose()
    assert built == []
