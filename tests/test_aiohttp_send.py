"""The lean send path onto aiohttp's pool (actors/_aiohttp_send.py) against a raw
loopback server: the head on the wire is aiohttp's own, stale keep-alive connections fail
as connection errors, cookies are never sent back, and the aiohttp internals it drives are
still there (a new aiohttp release that changes them fails here, loudly)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import aiohttp
import anyio
import anyio.abc
import h11
import httpx
import pytest
from aiohttp.client_proto import ResponseHandler

from actors._exceptions import ErrorClass, ProviderError
from actors._transport import AiohttpTransport
from actors._upstream import Upstream
from actors.providers import HttpRequest

pytestmark = pytest.mark.anyio

BODY = b'{"model":"m","messages":[{"role":"user","content":"hi"}]}'
HEADERS = httpx.Headers({"authorization": "Bearer sk-t", "content-type": "application/json"})
OK = b'{"ok":true}'

Answerer = Callable[[int, int], bytes | None]
"""(connection number, request number on it) -> the raw answer, or None to close."""


def answer(extra: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
        + extra
        + b"content-length: %d\r\n\r\n" % len(OK)
        + OK
    )


class RawServer:
    """Records each request's raw head and body per connection; answers as told."""

    def __init__(self, answerer: Answerer) -> None:
        self.answerer = answerer
        self.heads: list[tuple[int, bytes]] = []  # (connection number, raw head)
        self.bodies: list[bytes] = []
        self.connections = 0

    async def handle(self, stream: anyio.abc.ByteStream) -> None:
        number = self.connections
        self.connections += 1
        parser = h11.Connection(h11.SERVER)
        raw = b""
        served = 0
        async with stream:
            while True:
                event = parser.next_event()
                if event is h11.NEED_DATA:
                    try:
                        data = await stream.receive()
                    except (anyio.EndOfStream, anyio.BrokenResourceError):
                        return
                    raw += data
                    parser.receive_data(data)
                    continue
                if isinstance(event, h11.Request):
                    head, _, raw = raw.partition(b"\r\n\r\n")
                    self.heads.append((number, head + b"\r\n\r\n"))
                elif isinstance(event, h11.Data):
                    self.bodies.append(bytes(event.data))
                    raw = raw[len(event.data) :]
                elif isinstance(event, h11.EndOfMessage):
                    reply = self.answerer(number, served)
                    served += 1
                    if reply is None:
                        return  # closes without an answer, as a stale keep-alive peer does
                    await stream.send(reply)
                    parser = h11.Connection(h11.SERVER)
                    if raw:  # (h11 reads b"" as the end of the stream)
                        parser.receive_data(raw)
                else:
                    return


@asynccontextmanager
async def raw_server(answerer: Answerer, host: str = "127.0.0.1") -> AsyncIterator[RawServer]:
    server = RawServer(answerer)
    listener = await anyio.create_tcp_listener(local_host=host, local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, server.handle)
        server.url = f"http://{host}:{port}/v1/chat/completions"  # type: ignore[attr-defined]
        yield server
        tg.cancel_scope.cancel()


async def test_the_head_on_the_wire_is_session_requests() -> None:
    """Byte for byte the head `ClientSession.request` sends (Host, the adapter's headers,
    Accept, Accept-Encoding, Content-Length, in aiohttp's order), for two body sizes."""
    transport = AiohttpTransport(max_connections=1)
    big = b"[" + b"1," * 20000 + b"1]"
    async with raw_server(lambda _c, _r: answer()) as server:
        url = server.url  # type: ignore[attr-defined]
        for body in (BODY, big):
            lean = await transport.exchange("POST", url, HEADERS, body)
            assert (lean.status_code, lean.content) == (200, OK)
            session = transport._session_now()
            old = await session.request(
                "POST", url, data=body, headers=HEADERS, allow_redirects=False
            )
            assert await old.read() == OK
        await transport.aclose()
    heads = [head for _, head in server.heads]
    assert heads[0] == heads[1] and heads[2] == heads[3], heads
    assert heads[0].startswith(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:")
    assert b"\r\nContent-Length: %d\r\n" % len(BODY) in heads[0]
    assert server.bodies == [BODY, BODY, big, big]
    assert {number for number, _ in server.heads} == {0}  # one pooled keep-alive connection


async def test_a_stale_keepalive_connection_is_a_connection_error() -> None:
    """The pooled connection's peer closes instead of answering (it timed the connection
    out): the attempt fails as a `connection` error (no hang, no silent resend of a POST),
    and the next attempt gets a fresh connection."""
    transport = AiohttpTransport(max_connections=1)
    upstream = Upstream(transport, None)

    def answerer(connection: int, request: int) -> bytes | None:
        return None if (connection, request) == (0, 1) else answer()

    async with raw_server(answerer) as server:
        http = HttpRequest(method="POST", url=server.url, headers=HEADERS, body=BODY)  # type: ignore[attr-defined]
        with anyio.fail_after(10):
            first = await upstream.send(http)
            with pytest.raises(ProviderError) as failed:
                await upstream.send(http)
            third = await upstream.send(http)
        await upstream.aclose()
    assert first.content == third.content == OK
    assert failed.value.error is ErrorClass.CONNECTION
    assert [number for number, _ in server.heads] == [0, 0, 1]


@pytest.mark.parametrize("path", ["exchange", "httpx"])
async def test_a_providers_cookie_is_never_sent_back(path: str) -> None:
    """A Set-Cookie (a CDN's bot cookie, say) is not stored and replayed on the next
    request to that host, by either path onto the pool."""
    transport = AiohttpTransport(max_connections=1)
    cookie = b"set-cookie: __cf_bm=abc; Path=/; Domain=localhost; HttpOnly\r\n"
    async with raw_server(lambda _c, _r: answer(cookie), host="localhost") as server:
        url = server.url  # type: ignore[attr-defined]
        for _ in range(2):
            if path == "exchange":
                response = await transport.exchange("POST", url, HEADERS, BODY)
                assert response.content == OK
            else:
                request = httpx.Request("POST", url, headers=HEADERS, content=BODY)
                assert (await transport.handle_async_request(request)).content == OK
        await transport.aclose()
    assert len(server.heads) == 2
    assert all(b"\r\ncookie:" not in head.lower() for _, head in server.heads), server.heads


def test_the_aiohttp_internals_the_lean_path_drives_are_there() -> None:
    """If this fails, aiohttp changed an internal actors/_aiohttp_send.py relies on: read
    `ClientSession._request`/`_connect_and_send_request` of the new release and port it."""
    assert aiohttp.__version__.startswith("3.14."), aiohttp.__version__
    params = set(inspect.signature(ResponseHandler.set_response_params).parameters)
    assert {
        "timer", "skip_payload", "read_until_eof", "auto_decompress", "read_timeout",
        "read_bufsize", "timeout_ceil_threshold", "max_line_size", "max_field_size",
        "max_headers",
    } <= params  # fmt: skip
    assert set(inspect.signature(aiohttp.ClientResponse.__init__).parameters) == {
        "self", "method", "url", "writer", "continue100", "timer", "request_info", "traces",
        "loop", "session", "stream_writer",
    }  # fmt: skip
    assert list(inspect.signature(aiohttp.BaseConnector.connect).parameters) == [
        "self", "req", "traces", "timeout",
    ]  # fmt: skip
    assert hasattr(ResponseHandler, "start_timeout")
    session_slots = set(aiohttp.ClientSession.ATTRS)
    assert {"_read_bufsize", "_max_line_size", "_max_field_size", "_max_headers"} <= session_slots
    assert hasattr(aiohttp.BaseConnector, "_timeout_ceil_threshold") or (
        "_timeout_ceil_threshold" in inspect.getsource(aiohttp.BaseConnector.__init__)
    )
    assert callable(aiohttp.http_writer._serialize_headers)


class _Protocol:
    """What a StreamReader asks of its protocol: whether reading is paused."""

    def __init__(self) -> None:
        self.paused = False
        self._reading_paused = False

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self, resume_parser: bool = True) -> None:
        self.paused = False


def _reader(protocol: _Protocol) -> aiohttp.StreamReader:
    from aiohttp.helpers import TimerNoop

    # limit 64: high water 128 bytes, 4 chunk splits at most before a pause
    return aiohttp.StreamReader(protocol, 64, loop=asyncio.get_running_loop(), timer=TimerNoop())


def _state(reader: aiohttp.StreamReader, protocol: _Protocol) -> tuple[object, ...]:
    return (
        reader._size,
        reader._cursor,
        list(reader._buffer),
        list(reader._http_chunk_splits or ()),
        reader.total_bytes,
        protocol.paused,
    )


@pytest.mark.parametrize(
    "rounds",
    [
        [[b"a" * 10] * 3],  # a few small HTTP chunks
        [[b"b" * 50] * 6, [b"c"], [b"d" * 200, b"e"]],  # past high water: paused, then resumed
        [[b"f" * 7] * 40, [b"g" * 3] * 2],  # many chunk splits (past the split limit)
    ],
)
async def test_buffered_pieces_are_taken_as_readany_takes_them(rounds: list[list[bytes]]) -> None:
    """`_take_buffered` (one join for the pieces a chunked body buffered) gives what
    aiohttp's own `readany` gives and leaves the reader as it leaves it: a new aiohttp that
    keeps its StreamReader otherwise fails here."""
    from actors._transport import _take_buffered

    mine, theirs = _Protocol(), _Protocol()
    fast, slow = _reader(mine), _reader(theirs)
    for pieces in rounds:
        for reader in (fast, slow):
            for piece in pieces:
                reader.begin_http_chunk_receiving()
                reader.feed_data(piece)
                reader.end_http_chunk_receiving()
        assert _state(fast, mine) == _state(slow, theirs)
        got = _take_buffered(fast) if len(pieces) > 1 else await fast.readany()
        assert got == await slow.readany() == b"".join(pieces)
        assert _state(fast, mine) == _state(slow, theirs)
    for reader in (fast, slow):
        reader.feed_eof()
    assert await fast.readany() == await slow.readany() == b""


async def test_a_failed_body_fails_the_buffered_take_as_readany() -> None:
    from actors._transport import _take_buffered

    reader = _reader(_Protocol())
    for piece in (b"x", b"y"):
        reader.begin_http_chunk_receiving()
        reader.feed_data(piece)
        reader.end_http_chunk_receiving()
    reader.set_exception(aiohttp.ClientPayloadError("cut"))
    with pytest.raises(aiohttp.ClientPayloadError):
        _take_buffered(reader)
    with pytest.raises(aiohttp.ClientPayloadError):
        await reader.readany()
