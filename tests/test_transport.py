"""The aiohttp-backed httpx transport against real loopback sockets."""

from __future__ import annotations

import socket

import httpx
import msgspec
import pytest

from actors._transport import AiohttpTransport

from .fakes import OpenAIFake, close, garbage, serve_app, success

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
