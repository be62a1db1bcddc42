"""Minimal relay on aiohttp's client: `python -m bench.relay_aiohttp --uds P --upstream URL`."""

from __future__ import annotations

import aiohttp

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
    def __init__(self, upstream: str) -> None:
        self.url = upstream.rstrip("/") + "/chat/completions"
        self.session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        # One session, aiohttp's defaults (a pool of up to 100 connections per host).
        self.session = aiohttp.ClientSession()

    async def stop(self) -> None:
        if self.session is not None:
            await self.session.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            return await lifespan(receive, send, self.start, self.stop)
        body = await read_body(receive)
        if scope["path"] == "/health":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            return await send(HEALTH)
        assert self.session is not None
        try:
            async with self.session.post(self.url, data=body, headers=JSON) as resp:
                ctype = resp.headers.get("Content-Type", "application/json").encode()
                if not ctype.startswith(b"text/event-stream"):
                    return await respond(send, resp.status, ctype, await resp.read())
                await start_stream(send, resp.status, ctype)
                async for chunk in resp.content.iter_any():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b""})
        except aiohttp.ClientError as exc:
            await respond(send, 502, b"text/plain", repr(exc).encode())


def main(argv: list[str] | None = None) -> None:
    args = make_parser("python -m bench.relay_aiohttp", __doc__).parse_args(argv)
    serve(Relay(args.upstream), args.uds)


if __name__ == "__main__":
    main()
