"""An httpx transport over aiohttp's connection pool, for whole (non-streamed) bodies.

httpx's default transport (httpcore) collapses under concurrency on one core
and httpx-aiohttp converts URL, headers, timeouts and body streams on every
request. This transport does the least that the `httpx.AsyncBaseTransport`
contract needs: yarl URLs are cached per endpoint, headers go over as they are,
JSON and error answers are read whole by aiohttp into an `httpx.Response`, and
event streams are handed on piece by piece. aiohttp errors are mapped to
httpx's exception tree here, once.

`exchange` is the actor's narrower seam onto the same pool: a request as method, URL,
headers and body, an `Answer` back, and no `httpx.Request`/`httpx.Response` built on the
way (those cost about as much CPU as the rest of an attempt's Python code), and no
`ClientSession.request` either: `_aiohttp_send.LeanSender` takes a connection from the same
pool and writes a request head built once per endpoint (what it leaves out and why is said
there). Limits, error mapping and body decoding are the same as `handle_async_request`'s.
Neither path keeps cookies: a provider's Set-Cookie is never sent back.

Bodies are bounded: no answer, whole or streamed, may bring more than
`max_response_bytes` (decoded); past it the read fails with `ResponseTooLarge`
and the connection is dropped, not drained. Compressed answers (gzip, deflate,
and br with `brotli` installed, as aiohttp asks for them) are decoded by
aiohttp, bounded piece by piece, so the `httpx.Response` gets the decoded body
without the `content-encoding` that would make httpx decode it a second time.

TLS: aiohttp verifies against one default context that it builds once per
process, at import (before the event loop runs), and only https connections
use it; building one per transport cost ~20 ms of event loop per deployment,
http:// ones included. A caller with its own trust store passes `ssl_context`.
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import ssl
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Final

import aiohttp
import httpx
from yarl import URL

from ._aiohttp_send import LeanSender

_MAX_CACHED_URLS: Final = 64
_WHOLE_BODY_TYPES: Final = frozenset({"application/json", "text/plain", "text/html", ""})
"""Answers read whole; anything else (text/event-stream, AWS event streams) is streamed."""
_DECODED_ENCODINGS: Final = frozenset({"gzip", "deflate", "br", "zstd"})
"""The content-encodings aiohttp decodes itself (it leaves any other one alone)."""
_ENCODING_HEADERS: Final = frozenset({b"content-encoding", b"content-length"})


class ResponseTooLarge(httpx.TransportError):
    """The answer's body went past the transport's `max_response_bytes`."""


class AiohttpTransport(httpx.AsyncBaseTransport):
    """One aiohttp `ClientSession` (created on first use, inside the event loop)."""

    def __init__(
        self,
        *,
        max_connections: int,
        max_response_bytes: int = 32 * 1024 * 1024,
        keepalive_s: float = 60.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._max_connections = max_connections
        self._max_bytes = max_response_bytes
        self._keepalive_s = keepalive_s
        self._ssl: ssl.SSLContext | bool = True if ssl_context is None else ssl_context
        self._session: aiohttp.ClientSession | None = None
        self._urls: dict[str, URL] = {}
        self._lean = LeanSender(self._ssl)

    def _session_now(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections,
                keepalive_timeout=self._keepalive_s,
                ssl=self._ssl,  # True: aiohttp's shared default context, for https only
            )
            # Deadlines are the actor's (cancel scopes); aiohttp's own would be a second owner.
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=None),
                auto_decompress=True,
                skip_auto_headers=("User-Agent",),
                # A provider's Set-Cookie (e.g. a CDN's bot cookie) is never sent back: each
                # request stands alone, as the lean path (which reads no jar) sends it.
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    def _url(self, url: httpx.URL) -> URL:
        return self._url_of(str(url))

    async def exchange(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes
    ) -> Answer:
        """`handle_async_request` without the httpx objects: the answer's body is read whole
        unless it is an event stream (2xx, not JSON or text), which the caller reads with
        its `stream` (`BodyStream.next_piece`) and must close. Raises httpx's transport
        errors."""
        session = self._session_now()
        # try/except rather than `_mapped_errors`: this runs once per attempt, and a
        # generator-based context manager costs a generator and its frame each time.
        try:
            response = await self._lean.send(session, method, url, headers, body)
            seen: Mapping[str, str] = response.headers
            if _encoded(response):
                seen = httpx.Headers(_decoded_headers(response))
            if response.status >= 300 or response.content_type in _WHOLE_BODY_TYPES:
                content = await self._read_whole(response, None)
                return Answer(response.status, seen, content, None, self._max_bytes)
        except (aiohttp.ClientError, OSError) as exc:
            raise _httpx_error(exc, None) from exc
        return Answer(response.status, seen, None, response, self._max_bytes)

    def _url_of(self, key: str) -> URL:
        cached = self._urls.get(key)
        if cached is None:
            if len(self._urls) >= _MAX_CACHED_URLS:
                self._urls.clear()
            cached = self._urls[key] = URL(key, encoded=True)
        return cached

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._session_now()
        with _mapped_errors(request):
            response = await session.request(
                request.method,
                self._url(request.url),
                data=request.content,
                headers=request.headers,  # a str Mapping: aiohttp copies it once
                allow_redirects=False,
            )
            headers = _decoded_headers(response)
            if response.status >= 300 or response.content_type in _WHOLE_BODY_TYPES:
                body = await self._read_whole(response, request)
                return httpx.Response(
                    response.status, headers=headers, content=body, request=request
                )
        # Event streams are handed on as they arrive; the reader must aclose() the response.
        return httpx.Response(
            response.status,
            headers=headers,
            stream=BodyStream(response, request, self._max_bytes),
            request=request,
        )

    async def _read_whole(
        self, response: aiohttp.ClientResponse, request: httpx.Request | None
    ) -> bytes:
        """The body, read with a running count: past the limit the connection is dropped."""
        limit = self._max_bytes
        declared = response.content_length
        if declared is not None and declared > limit and not _encoded(response):
            response.close()
            raise _too_large(limit, request, declared=declared)
        pieces: list[bytes] = []
        size = 0
        try:
            async for piece in response.content.iter_any():
                size += len(piece)
                if size > limit:
                    raise _too_large(limit, request)
                pieces.append(piece)
        except BaseException:
            response.close()  # unread bytes would poison a pooled connection
            raise
        response.release()
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class BodyStream(httpx.AsyncByteStream):
    """A streamed aiohttp body, read piece by piece with `next_piece` (or iterated, as an
    httpx stream); closing it early drops the connection (the upstream stops)."""

    __slots__ = ("_content", "_limit", "_request", "_response", "_size")

    def __init__(
        self, response: aiohttp.ClientResponse, request: httpx.Request | None, limit: int
    ) -> None:
        self._response = response
        self._content = response.content
        self._request = request
        self._limit = limit
        self._size = 0

    async def next_piece(self) -> bytes | None:
        """The body's next piece as it arrives (never empty), None at its end; httpx's
        transport errors, `ResponseTooLarge` past the limit (the connection then dropped).

        A method, not an async generator: a reader pays one frame a read, no generator to
        create and close per stream, no error-mapping context manager."""
        content = self._content
        try:
            if len(content._buffer) > 1 and not content._buffer_offset:
                piece = _take_buffered(content)  # what readany() gives, in one join
            else:
                piece = await content.readany()
        except (aiohttp.ClientError, OSError) as exc:
            raise _httpx_error(exc, self._request) from exc
        if not piece:
            return None
        self._size += len(piece)
        if self._size > self._limit:
            self._response.close()
            raise _too_large(self._limit, self._request)
        return piece

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while (piece := await self.next_piece()) is not None:
            yield piece

    def at_end(self) -> bool:
        """Every piece was read and the body's end is in (no read would wait)."""
        return self._content.at_eof()

    def close(self) -> bool:
        """Let go of the connection now: back to the pool if the body was read to its end,
        dropped otherwise (unread bytes would poison it). True: nothing is left to await."""
        if self._content.at_eof():
            self._response.release()
        else:
            self._response.close()
        return True

    async def aclose(self) -> None:
        self.close()


def _take_buffered(content: aiohttp.StreamReader) -> bytes:
    """`content.readany()` when more than one piece waits in its buffer (and none of it is
    read yet): the same bytes and the same bookkeeping, without a wait.

    aiohttp buffers each HTTP chunk of a chunked body as a piece of its own, and `readany`
    takes them one call at a time (each counting, trimming chunk splits and resuming the
    transport); a provider's stream is one HTTP chunk per event, so that was ~0.2 µs per
    event. This takes them all in one join and does the bookkeeping once, on the
    StreamReader's internals as aiohttp 3.14 has them (the pin: tests/test_aiohttp_send.py
    checks it against `readany` itself).
    """
    content._timer.assert_timeout()
    if content._exception is not None:
        raise content._exception
    buffer = content._buffer
    data = b"".join(buffer)
    buffer.clear()
    size = len(data)
    content._size -= size
    cursor = content._cursor = content._cursor + size
    splits = content._http_chunk_splits
    if splits:  # chunk ends now behind the cursor are spent (as each piece's read drops them)
        spent = bisect.bisect_left(splits, cursor)
        if spent:
            kept = list(itertools.islice(splits, spent, None))
            splits.clear()
            splits.extend(kept)
    if content._size < content._low_water and (
        splits is None or len(splits) < content._low_water_chunks
    ):
        content._protocol.resume_reading()
    return data


class Answer:
    """A provider's answer from `AiohttpTransport.exchange`: what the actor reads of an
    `httpx.Response` (status_code, headers, content, is_success, stream, aread, aclose),
    without building one. `content` is there once the body was read whole, else
    `stream` reads it."""

    __slots__ = ("_body", "headers", "status_code", "stream")

    def __init__(
        self,
        status: int,
        headers: Mapping[str, str],
        content: bytes | None,
        response: aiohttp.ClientResponse | None,
        limit: int,
    ) -> None:
        self.status_code = status
        self.headers = headers
        self._body = content
        self.stream = None if response is None else BodyStream(response, None, limit)

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    @property
    def is_stream_consumed(self) -> bool:
        return self._body is not None

    @property
    def content(self) -> bytes:
        if self._body is None:
            raise httpx.ResponseNotRead()
        return self._body

    async def aread(self) -> bytes:
        if self._body is None:
            assert self.stream is not None
            self._body = b"".join([piece async for piece in self.stream])
        return self._body

    async def aclose(self) -> None:
        if self.stream is not None:
            self.stream.close()


def _encoded(response: aiohttp.ClientResponse) -> bool:
    encoding = response.headers.get("Content-Encoding")
    return encoding is not None and encoding.strip().lower() in _DECODED_ENCODINGS


def _decoded_headers(
    response: aiohttp.ClientResponse,
) -> tuple[tuple[bytes, bytes], ...] | list[tuple[bytes, bytes]]:
    """The response headers, less those that describe a body aiohttp already decoded."""
    if not _encoded(response):
        return response.raw_headers
    return [(k, v) for k, v in response.raw_headers if k.lower() not in _ENCODING_HEADERS]


def _too_large(
    limit: int, request: httpx.Request | None, *, declared: int | None = None
) -> ResponseTooLarge:
    size = f" ({declared} bytes declared)" if declared is not None else ""
    return ResponseTooLarge(
        f"response body over max_response_bytes = {limit}{size}", request=request
    )


def _httpx_error(
    exc: aiohttp.ClientError | OSError, request: httpx.Request | None
) -> httpx.HTTPError:
    """An aiohttp failure as the httpx transport error it is (raise it `from exc`)."""
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return httpx.ReadTimeout(str(exc), request=request)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError(str(exc), request=request)
    if isinstance(exc, aiohttp.ClientPayloadError):
        return httpx.ReadError(str(exc), request=request)
    # Server disconnected, connection reset, invalid response...
    return httpx.RemoteProtocolError(f"{type(exc).__name__}: {exc}", request=request)


@contextlib.contextmanager
def _mapped_errors(request: httpx.Request | None) -> Iterator[None]:
    try:
        yield
    except (aiohttp.ClientError, OSError) as exc:
        raise _httpx_error(exc, request) from exc
