"""The fakes compress as real servers do: by the client's accept-encoding, whole bodies at
once, streams piece by piece (each piece decodable as it arrives)."""

from __future__ import annotations

import json
import zlib

import anyio
import brotli
import httpx
import pytest

from .fakes import OpenAIFake, serve_app, sse, stream
from .fakes._compress import negotiate

pytestmark = pytest.mark.anyio

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        pytest.param("gzip, deflate, br", "br", id="aiohttp-with-brotli"),
        pytest.param("gzip, deflate", "gzip", id="aiohttp-without-brotli"),
        pytest.param("br;q=0, gzip;q=0.5", "gzip", id="refused-br"),
        pytest.param("identity", None, id="identity"),
        pytest.param("", None, id="none"),
        pytest.param("*", "br", id="anything"),
        pytest.param("*, br;q=0", "gzip", id="anything-but-br"),
    ],
)  # fmt: skip
def test_negotiation_follows_accept_encoding(accept: str, expected: str | None) -> None:
    """br when allowed, else gzip, else identity; q=0 refuses an encoding."""
    assert negotiate(accept) == expected


@pytest.mark.parametrize("encoding", ["gzip", "br"])
async def test_each_streamed_piece_decodes_as_it_arrives(encoding: str) -> None:
    """A held stream's first event is readable before the rest is sent (a flush per piece)."""
    fake = OpenAIFake(api_key="sk")
    release = anyio.Event()
    fake.script(stream(sse({"first": 1}), release, sse({"second": 2})))
    headers = {"authorization": "Bearer sk", "accept-encoding": encoding}
    async with serve_app(fake) as url, httpx.AsyncClient(base_url=url) as client:
        request = client.build_request("POST", "/v1/chat/completions", json=BODY, headers=headers)
        response = await client.send(request, stream=True)
        assert response.headers["content-encoding"] == encoding
        raw = response.aiter_raw()
        if encoding == "gzip":
            decoder = zlib.decompressobj(31)
            decode = decoder.decompress
        else:
            decode = brotli.Decompressor().process
        with anyio.fail_after(5):
            first = decode(await anext(raw))
        release.set()
        rest = b"".join([decode(piece) async for piece in raw])
        await response.aclose()
    assert first == b'data: {"first":1}\n\n'
    assert rest == b'data: {"second":2}\n\n'
    assert fake.requests[0].content_encoding == encoding


async def test_whole_bodies_carry_the_compressed_length() -> None:
    """A JSON answer is compressed once, with its content-length; plain when not accepted."""
    fake = OpenAIFake(api_key="sk")
    async with serve_app(fake) as url, httpx.AsyncClient(base_url=url) as client:
        bodies = []
        for accept in ("gzip", "identity"):
            headers = {"authorization": "Bearer sk", "accept-encoding": accept}
            request = client.build_request(
                "POST", "/v1/chat/completions", json=BODY, headers=headers
            )
            response = await client.send(request, stream=True)
            raw = b"".join([piece async for piece in response.aiter_raw()])
            await response.aclose()
            assert int(response.headers["content-length"]) == len(raw)
            bodies.append(raw)
    gzipped, plain = bodies
    unzipped = json.loads(zlib.decompress(gzipped, 31))
    assert unzipped["choices"] == json.loads(plain)["choices"]
    assert [r.content_encoding for r in fake.requests] == ["gzip", None]
