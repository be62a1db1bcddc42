"""A request onto aiohttp's connection pool without `ClientSession.request`.

`ClientSession._request` is general: per request it merges default headers, parses the
URL, starts a `TimeoutHandle`, filters the cookie jar, strips credentials from the URL,
checks proxies, netrc, traces and middlewares, runs a redirect/retry loop, builds a
`ClientRequest` (header multidicts, a `BytesPayload`, its headers) and, on Python 3.11, a
task that writes the body. For a gateway posting bytes to one fixed endpoint nearly all of
that is the same every time, so `LeanSender` does it once per (method, URL, headers) - a
real `ClientRequest` is built then, and its headers, with aiohttp's own defaults (Host,
Accept, Accept-Encoding, the body's Content-Type), are serialized by aiohttp into the
request head - and per request only: takes a connection from the session's connector
(same pool, limits, keep-alive, TLS), sets the protocol's response parser (auto-decompress,
line and field limits as the session's), writes head and body in one write, and reads the
status line and headers into a `ClientResponse`, as `_connect_and_send_request` does.
The head on the wire is byte for byte the one `session.request` sends (a test checks it).

What is left out, and why that is safe here: redirects (never followed: the actor asks
`allow_redirects=False`), the retry of an idempotent request on a stale keep-alive
connection (aiohttp never retries a POST, which is all the providers send; a stale
connection fails as a `ServerDisconnectedError`, a `connection` error the actor fails over
on), cookies (the session's jar is a `DummyCookieJar`: a provider's Set-Cookie is never sent
back), proxies from the environment (`trust_env` is off), traces, middlewares, the
per-request total timeout (deadlines are the actor's cancel scopes), 100-continue and
request compression (never asked for).

This drives aiohttp internals: `BaseConnector.connect`, `ResponseHandler.set_response_params`
and `start_timeout`, the `ClientResponse` constructor and `start`, the session's private
parser limits and `aiohttp.http_writer._serialize_headers`. pyproject.toml pins aiohttp to the
minor version this was written against (3.14), and tests/test_aiohttp_send.py fails loudly
if a release changes any of them (signatures, and the head on the wire compared with
`session.request`'s).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from typing import Final

import aiohttp
import httpx
from aiohttp import http_writer
from aiohttp.client_exceptions import ClientConnectionResetError
from aiohttp.helpers import TimerNoop
from multidict import CIMultiDict
from yarl import URL

_MAX_ROUTES: Final = 64
_LENGTH_MARK: Final = "18446744073709551615"
"""A Content-Length stand-in when the head is serialized once; cut out per request."""
_JOIN_BELOW: Final = 16 * 1024
"""Below this a body is copied after the head (one buffer); above, both go to writelines."""


class _Route:
    """What every request to one (method, URL, headers) shares, built once."""

    __slots__ = ("after", "before", "info", "loop", "method", "template", "url")

    def __init__(self, template: aiohttp.ClientRequest, before: bytes, after: bytes) -> None:
        self.template = template  # the connector's key, TLS and host come from it
        self.method = template.method
        self.url = template.original_url
        self.info = template.request_info
        self.loop = template.loop
        self.before = before  # the head up to the Content-Length value
        self.after = after  # the rest of the head, blank line included


class LeanSender:
    """Sends requests through a `ClientSession`'s connector, head built once per route.

    Routes are cached per transport (bounded, cleared when full); no state is shared
    between requests beyond them and the session's pool."""

    __slots__ = ("_routes", "_ssl", "_timer")

    def __init__(self, ssl_setting: ssl.SSLContext | bool) -> None:
        self._ssl = ssl_setting
        self._routes: dict[tuple[object, ...], _Route] = {}
        self._timer = TimerNoop()

    async def send(
        self,
        session: aiohttp.ClientSession,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
    ) -> aiohttp.ClientResponse:
        """The response with its status and headers read, its body still to read (the
        caller must release or close it). Raises aiohttp's errors, as `session.request`."""
        if isinstance(headers, httpx.Headers):
            key: tuple[object, ...] = (method, url, *headers.raw)
        else:
            key = (method, url, *headers.items())
        route = self._routes.get(key)
        if route is None:
            route = self._route(session, key, method, url, headers)
        connector = session.connector
        assert connector is not None
        if session.closed:
            raise RuntimeError("Session is closed")
        conn = await connector.connect(route.template, traces=[], timeout=session.timeout)
        try:
            protocol = conn.protocol
            assert protocol is not None
            protocol.set_response_params(
                timer=self._timer,
                skip_payload=False,
                read_until_eof=True,
                auto_decompress=session.auto_decompress,
                read_timeout=None,
                read_bufsize=session._read_bufsize,
                timeout_ceil_threshold=connector._timeout_ceil_threshold,
                max_line_size=session._max_line_size,
                max_field_size=session._max_field_size,
                max_headers=session._max_headers,
            )
            transport = protocol.transport
            if transport is None or transport.is_closing():
                raise ClientConnectionResetError("Cannot write to closing transport")
            head = route.before + str(len(body)).encode() + route.after
            if len(body) < _JOIN_BELOW:
                transport.write(head + body)
            else:
                transport.writelines((head, body))
            protocol.start_timeout()
            sent = http_writer.StreamWriter(protocol, route.loop)
            sent.output_size = len(head) + len(body)
            response = aiohttp.ClientResponse(
                route.method,
                route.url,
                writer=None,
                continue100=None,
                timer=self._timer,
                request_info=route.info,
                traces=[],
                loop=route.loop,
                session=session,
                stream_writer=sent,
            )
            try:
                await response.start(conn)
            except BaseException:
                response.close()
                raise
        except BaseException:
            conn.close()
            raise
        return response

    def _route(
        self,
        session: aiohttp.ClientSession,
        key: tuple[object, ...],
        method: str,
        url: str,
        headers: Mapping[str, str],
    ) -> _Route:
        items = headers.multi_items() if isinstance(headers, httpx.Headers) else headers.items()
        template = aiohttp.ClientRequest(
            method,
            URL(url, encoded=True),
            headers=CIMultiDict(items),
            skip_auto_headers=session.skip_auto_headers,
            data=b"",  # a bytes payload: aiohttp adds its Content-Length and Content-Type
            loop=asyncio.get_running_loop(),
            session=session,
            ssl=self._ssl,
        )
        if not template.url.raw_host:
            raise aiohttp.InvalidUrlClientError(url)
        wire = template.headers.copy()
        # The empty body's Content-Length (in place: the order stays aiohttp's), cut per request.
        wire["Content-Length"] = _LENGTH_MARK
        line = f"{template.method} {template.url.raw_path_qs} HTTP/1.1"
        before, _, after = http_writer._serialize_headers(line, wire).partition(
            _LENGTH_MARK.encode()
        )
        if len(self._routes) >= _MAX_ROUTES:
            self._routes.clear()
        route = self._routes[key] = _Route(template, before, after)
        return route
