"""The provider path over real TLS on loopback: every real provider is https, and the lean
send path (actors/_aiohttp_send.py) drives the connector itself. A trusted certificate
serves whole and streamed answers on one pooled connection; an untrusted one is refused
as a connection error (verification is on)."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import trustme

from actors._exceptions import ErrorClass, ProviderError
from actors._transport import AiohttpTransport
from actors._upstream import Upstream
from actors.providers import HttpRequest

from .fakes import OpenAIFake, serve_app

pytestmark = pytest.mark.anyio

KEY = "sk-tls-test-0000000000"
HEADERS = httpx.Headers({"authorization": f"Bearer {KEY}", "content-type": "application/json"})


def _request(url: str, *, stream: bool) -> HttpRequest:
    body: dict[str, object] = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "hi"}],
    }
    if stream:
        body["stream"] = True
    return HttpRequest(
        method="POST",
        url=f"{url}/v1/chat/completions",
        headers=HEADERS,
        body=msgspec.json.encode(body),
    )


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def https_url(
    ca: trustme.CA, tmp_path: Path
) -> AsyncIterator[tuple[str, OpenAIFake, list[object]]]:
    cert = ca.issue_cert("127.0.0.1")
    chain, key = tmp_path / "chain.pem", tmp_path / "key.pem"
    for blob in cert.cert_chain_pems:
        with chain.open("ab") as f:
            f.write(blob.bytes())
    cert.private_key_pem.write_to_path(str(key))
    fake = OpenAIFake(api_key=KEY)
    peers: list[object] = []  # each request's client address (host, port): its connection

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            peers.append(scope["client"])
        await fake(scope, receive, send)

    async with serve_app(app, tls=(str(chain), str(key))) as url:
        yield url, fake, peers


async def test_whole_and_streamed_answers_over_tls_on_one_connection(
    ca: trustme.CA, https_url: tuple[str, OpenAIFake, list[object]]
) -> None:
    url, fake, peers = https_url
    assert url.startswith("https://")
    context = ssl.create_default_context()
    ca.configure_trust(context)
    upstream = Upstream(AiohttpTransport(max_connections=4, ssl_context=context), None)
    try:
        for _ in range(2):
            answer = await upstream.send(_request(url, stream=False))
            assert answer.status_code == 200
            reply = msgspec.json.decode(answer.content)
            assert reply["choices"][0]["message"]["content"] == "openai: hi"
        response = await upstream.open(_request(url, stream=True))
        reader = upstream.body(response)
        try:
            assert response.status_code == 200
            pieces = []
            while (piece := await reader.next_piece()) is not None:
                pieces.append(piece)
            body = b"".join(pieces)
        finally:
            assert reader.close()
        assert body.rstrip().endswith(b"data: [DONE]")
        events = [line[6:] for line in body.split(b"\n") if line.startswith(b"data: {")]
        text = "".join(
            choice["delta"].get("content") or ""
            for event in events
            for choice in msgspec.json.decode(event)["choices"]
        )
        assert text == "openai: hi"
    finally:
        await upstream.aclose()
    assert len(fake.requests) == 3
    # Kept alive: the three requests came over the one TLS connection.
    assert len(set(peers)) == 1


async def test_an_untrusted_certificate_is_a_connection_error(
    https_url: tuple[str, OpenAIFake, list[object]],
) -> None:
    url, fake, peers = https_url
    upstream = Upstream(AiohttpTransport(max_connections=4), None)  # the system's trust only
    try:
        with pytest.raises(ProviderError) as caught:
            await upstream.send(_request(url, stream=False))
    finally:
        await upstream.aclose()
    assert caught.value.error is ErrorClass.CONNECTION
    assert "certificate" in caught.value.message.lower()
    assert fake.requests == []
    assert peers == []
