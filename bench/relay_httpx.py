"""Minimal relay on httpx: `python -m bench.relay_httpx --uds P --upstream URL [--transport T]`.

`--transport default` is httpx's own (httpcore) pool; `--transport aiohttp` is
httpx_aiohttp.AiohttpTransport, httpx's API over aiohttp's pool. Both keep httpx's defaults
otherwise (limits, timeouts), as a straightforward client would.
"""

from __future__ import annotations

import httpx
from httpx_aiohttp import AiohttpTransport

from bench.relay_common import (
    HEALTH,
    Receive,
    Scope,
    Send,
    lifespan,
    make_parser,
    read_body,
    respond,
    serve,
    start_stream,
)

JSON = {"Content-Type": "application/json"}


class Relay:
    def __init__(self, upstream: str, transport: str) -> None:
        self.url = upstream.rstrip("/") + "/chat/completions"
        self.transport = transport
        self.client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        aiohttp_transport = AiohttpTransport() if self.transport == "aiohttp" else None
        self.client = httpx.AsyncClient(transport=aiohttp_transport)

    async def stop(self) -> None:
        if self.client is not None:
            await self.client.aclose()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            return await lifespan(receive, send, self.start, self.stop)
        body = await read_body(receive)
        if scope["path"] == "/health":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            return await send(HEALTH)
        assert self.client is not None
        try:
            async with self.client.stream("POST", self.url, content=body, headers=JSON) as resp:
                ctype = resp.headers.get("content-type", "application/json").encode()
                if not ctype.startswith(b"text/event-stream"):
                    return await respond(send, resp.status_code, ctype, await resp.aread())
                await start_stream(send, resp.status_code, ctype)
                async for chunk in resp.aiter_raw():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b""})
        except httpx.HTTPError as exc:
            await respond(send, 502, b"text/plain", repr(exc).encode())


def main(argv: list[str] | None = None) -> None:
    parser = make_parser("python -m bench.relay_httpx", __doc__)
    parser.add_argument("--transport", choices=("default", "aiohttp"), default="default")
    args = parser.parse_args(argv)
    serve(Relay(args.upstream, args.transport), args.uds)


if __name__ == "__main__":
    main()
