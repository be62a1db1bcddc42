"""An httpx transport over aiohttp's connection pool, for whole (non-streamed) bodies.

httpx's default transport (httpcore) collapses under concurrency on one core
and httpx-aiohttp converts URL, headers, timeouts and body streams on every
request. This transport does the least that the `httpx.AsyncBaseTransport`
contract needs: yarl URLs are cached per endpoint, headers go over as they are,
JSON and error answers are read whole by aiohttp into an `httpx.Response`, and
event streams are handed on piece by piece. aiohttp errors are mapped to
httpx's exception tree here, once.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator, Iterator
from typing import Final

import aiohttp
import httpx
from yarl import URL

_MAX_CACHED_URLS: Final = 64
_WHOLE_BODY_TYPES: Final = frozenset({"application/json", "text/plain", "text/html", ""})
"""Answers read whole; anything else (text/event-stream, AWS event streams) is streamed."""


class AiohttpTransport(httpx.AsyncBaseTransport):
    """One aiohttp `ClientSession` (created on first use, inside the event loop)."""

    def __init__(self, *, max_connections: int, keepalive_s: float = 60.0) -> None:
        self._max_connections = max_connections
        self._keepalive_s = keepalive_s
        self._session: aiohttp.ClientSession | None = None
        self._urls: dict[str, URL] = {}

    def _session_now(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections,
                keepalive_timeout=self._keepalive_s,
                ssl=ssl.create_default_context(),
            )
            # Deadlines are the actor's (cancel scopes); aiohttp's own would be a second owner.
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=None),
                auto_decompress=True,
                skip_auto_headers=("User-Agent",),
            )
        return self._session

    def _url(self, url: httpx.URL) -> URL:
        key = str(url)
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
            if response.status >= 300 or response.content_type in _WHOLE_BODY_TYPES:
                try:
                    body = await response.read()
                finally:
                    response.release()
                return httpx.Response(
                    response.status, headers=_decoded(response), content=body, request=request
                )
        # Event streams are handed on as they arrive; the reader must aclose() the response.
        return httpx.Response(
            response.status,
            headers=_decoded(response),
            stream=_Stream(response, request),
            request=request,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _decoded(response: aiohttp.ClientResponse) -> list[tuple[bytes, bytes]]:
    """The headers of a body aiohttp already decompressed (`auto_decompress`).

    `content-encoding` (and the compressed `content-length`) are left out: httpx would
    otherwise decode the body a second time and fail on every gzip answer.
    """
    if "Content-Encoding" not in response.headers:
        return list(response.raw_headers)
    return [
        (name, value)
        for name, value in response.raw_headers
        if name.lower() not in (b"content-encoding", b"content-length")
    ]


class _Stream(httpx.AsyncByteStream):
    """A streamed aiohttp body; closing it early drops the connection (the upstream stops)."""

    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _mapped_errors(self._request):
            async for piece in self._response.content.iter_any():
                yield piece

    async def aclose(self) -> None:
        if self._response.content.at_eof():
            self._response.release()
        else:
            self._response.close()


@contextlib.contextmanager
def _mapped_errors(request: httpx.Request) -> Iterator[None]:
    try:
        yield
    except aiohttp.ServerTimeoutError as exc:
        raise httpx.ReadTimeout(str(exc), request=request) from exc
    except aiohttp.ClientConnectorError as exc:
        raise httpx.ConnectError(str(exc), request=request) from exc
    except aiohttp.ClientPayloadError as exc:
        raise httpx.ReadError(str(exc), request=request) from exc
    except (aiohttp.ClientError, OSError) as exc:
        # Server disconnected, connection reset, invalid response...
        message = f"{type(exc).__name__}: {exc}"
        raise httpx.RemoteProtocolError(message, request=request) from exc
