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
`connection` error or a `timeout`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Final

import httpx

from ._exceptions import ErrorClass, ProviderError
from ._transport import AiohttpTransport, Answer, ResponseTooLarge
from .providers import HttpRequest

_MAX_CACHED_URLS: Final = 64


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
            with _mapped():
                await response.aread()
        finally:
            await response.aclose()
        return response

    async def open(self, http: HttpRequest) -> httpx.Response | Answer:
        """The provider's response with its body still to read (the caller must aclose it)."""
        if self._direct is not None:
            with _mapped():
                return await self._direct.exchange(http.method, http.url, http.headers, http.body)
        url = self._url(http.url)
        request = httpx.Request(http.method, url, headers=http.headers, content=http.body)
        with _mapped():
            if self._auth is not None:
                # Signing auth (SigV4) changes the request once and needs no response back.
                flow = self._auth.async_auth_flow(request)
                request = await flow.__anext__()
            return await self._transport.handle_async_request(request)

    @staticmethod
    async def pieces(response: httpx.Response | Answer) -> AsyncIterator[bytes]:
        """The body of an opened response as it arrives (already whole for some transports)."""
        if response.is_stream_consumed:  # e.g. httpx.MockTransport reads the body itself
            yield response.content
            return
        with _mapped():
            async for piece in response.aiter_raw():
                yield piece

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


@contextlib.contextmanager
def _mapped() -> Iterator[None]:
    """httpx's transport errors, as classified provider errors."""
    try:
        yield
    except httpx.HTTPError as exc:
        raise _provider_error(exc) from None
