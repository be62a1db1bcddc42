"""The actor's HTTP boundary: httpx transports, without the client's per-request extras.

`httpx.AsyncClient.send` adds cookie extraction, redirect and auth machinery and
re-parses the URL on every request; for a gateway calling one fixed endpoint
that is most of its cost. `Upstream` builds the `httpx.Request` itself (URL
parsed once per endpoint), drives the adapter's `httpx.Auth` flow when there
is one, and hands the request straight to an httpx transport: the same
transports as `AsyncClient` (aiohttp's pool in production, `MockTransport` in
tests). On aiohttp's pool without a signing auth (every provider but Bedrock) it
goes through the transport's narrower `exchange` seam instead, and no httpx object is
built per attempt. Transport errors are mapped to classified `ProviderError`s here, once:
an answer over the deployment's `max_response_bytes` is a `server_error` (the
deployment misbehaves; another may answer), any other transport failure a
`connection` error or a `timeout`; for a streamed body, by its reader (`provider_error`),
once a read raised.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Final, Protocol

import httpx

from ._exceptions import ErrorClass, ProviderError
from ._transport import AiohttpTransport, Answer, BodyStream, ResponseTooLarge
from .providers import HttpRequest

_MAX_CACHED_URLS: Final = 64


class Body(Protocol):
    """An opened response's body, read piece by piece (`Upstream.body`)."""

    async def next_piece(self) -> bytes | None:
        """The next piece as it arrives (maybe empty), None at the end; raises httpx's
        transport errors (`provider_error` classifies them)."""

    def at_end(self) -> bool:
        """Every piece was read and the body's end is in: the next read returns None without
        waiting. False when not known."""

    def close(self) -> bool:
        """Close the response as far as can be done without waiting; False: `aclose` must
        still be awaited (shielded) to finish."""

    async def aclose(self) -> None:
        """Close the response (after `close` said False)."""


class Upstream:
    """Sends adapter-built requests through one transport and reads whole responses."""

    __slots__ = ("_auth", "_direct", "_transport", "_urls")

    def __init__(self, transport: httpx.AsyncBaseTransport, auth: httpx.Auth | None) -> None:
        self._transport = transport
        self._auth = auth
        self._urls: dict[str, httpx.URL] = {}
        # A signing auth needs an httpx.Request to sign: only unsigned requests skip it.
        self._direct = (
            transport if isinstance(transport, AiohttpTransport) and auth is None else None
        )

    async def send(self, http: HttpRequest) -> httpx.Response | Answer:
        """The provider's whole response; `ProviderError` for transport failures."""
        if self._direct is not None:
            try:
                answer = await self._direct.exchange(http.method, http.url, http.headers, http.body)
            except httpx.HTTPError as exc:
                raise _provider_error(exc) from None
            if answer.is_stream_consumed:  # read whole already: nothing to read or close
                return answer
            response: httpx.Response | Answer = answer
        else:
            response = await self.open(http)
        try:
            await response.aread()
        except httpx.HTTPError as exc:
            raise _provider_error(exc) from None
        finally:
            await response.aclose()
        return response

    async def open(self, http: HttpRequest) -> httpx.Response | Answer:
        """The provider's response with its body still to read (the caller must close it,
        or its `body`)."""
        # try/except rather than a context manager: a generator and its frame per attempt.
        try:
            if self._direct is not None:
                return await self._direct.exchange(http.method, http.url, http.headers, http.body)
            url = self._url(http.url)
            request = httpx.Request(http.method, url, headers=http.headers, content=http.body)
            if self._auth is not None:
                # Signing auth (SigV4) changes the request once and needs no response back.
                flow = self._auth.async_auth_flow(request)
                request = await flow.__anext__()
            return await self._transport.handle_async_request(request)
        except httpx.HTTPError as exc:
            raise _provider_error(exc) from None

    @staticmethod
    def body(response: httpx.Response | Answer) -> Body:
        """The body of an opened response, to read as it arrives (already whole for some
        transports); closing it closes the response. On aiohttp's pool that is the
        transport's own stream: one frame a read, closed without an await."""
        if response.is_stream_consumed:  # e.g. read whole: a JSON answer, a test transport
            return _Whole(response)
        stream = response.stream
        if isinstance(stream, BodyStream):  # aiohttp's pool: an Answer's always is
            return stream
        assert isinstance(response, httpx.Response)
        return _Iterated(response)

    def _url(self, url: str) -> httpx.URL:
        parsed = self._urls.get(url)
        if parsed is None:
            if len(self._urls) >= _MAX_CACHED_URLS:
                self._urls.clear()
            parsed = self._urls[url] = httpx.URL(url)
        return parsed

    async def aclose(self) -> None:
        await self._transport.aclose()


def _provider_error(exc: httpx.HTTPError) -> ProviderError:
    """An httpx transport error, as the classified provider error (raise it `from None`)."""
    if isinstance(exc, ResponseTooLarge):
        return ProviderError(ErrorClass.SERVER_ERROR, str(exc))
    if isinstance(exc, httpx.TimeoutException):
        return ProviderError(ErrorClass.TIMEOUT, f"timeout: {type(exc).__name__}")
    return ProviderError(ErrorClass.CONNECTION, f"{type(exc).__name__}: {exc}")


def provider_error(exc: Exception) -> Exception:
    """What a streamed body's read raised, classified if it is a transport error."""
    return _provider_error(exc) if isinstance(exc, httpx.HTTPError) else exc


class _Whole:
    """A body that was read whole: one piece."""

    __slots__ = ("_piece", "_response")

    def __init__(self, response: httpx.Response | Answer) -> None:
        self._response = response
        self._piece: bytes | None = response.content

    async def next_piece(self) -> bytes | None:
        piece, self._piece = self._piece, None
        return piece

    def at_end(self) -> bool:
        return self._piece is None

    def close(self) -> bool:
        return isinstance(self._response, Answer)  # nothing to close (it holds no stream)

    async def aclose(self) -> None:
        await self._response.aclose()


class _Iterated:
    """Any other httpx response body (e.g. a test transport's stream), iterated."""

    __slots__ = ("_pieces", "_response")

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self._pieces: AsyncIterator[bytes] | None = None

    async def next_piece(self) -> bytes | None:
        if self._pieces is None:
            self._pieces = self._response.aiter_raw()
        try:
            return await self._pieces.__anext__()
        except StopAsyncIteration:
            return None

    def at_end(self) -> bool:
        return False

    def close(self) -> bool:
        return False

    async def aclose(self) -> None:
        try:
            if self._pieces is not None:
                await self._pieces.aclose()  # type: ignore[attr-defined]
        finally:
            await self._response.aclose()
