"""What the minimal relays share: the command line, the ASGI plumbing and the serving.

A relay is the smallest honest proxy: uvicorn (httptools, uvloop) serving a raw ASGI app on a
Unix socket, forwarding each request body to the upstream with one shared HTTP client and
sending back the status, the content type and the body (streamed through when the upstream
streams). It is the yardstick the daemon is compared with.
"""

from __future__ import annotations

import argparse
import os
import socket
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import uvicorn

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
HEALTH = {"type": "http.response.body", "body": b'{"status":"ok"}'}


def make_parser(prog: str, doc: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=doc)
    parser.add_argument("--uds", required=True, help="path of the Unix socket to serve on")
    parser.add_argument("--upstream", required=True, help="e.g. http://127.0.0.1:8000/v1")
    return parser


async def read_body(receive: Receive) -> bytes:
    parts: list[bytes] = []
    while True:
        message = await receive()
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(parts)


async def lifespan(
    receive: Receive,
    send: Send,
    start: Callable[[], Awaitable[None]],
    stop: Callable[[], Awaitable[None]],
) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await start()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await stop()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def respond(send: Send, status: int, content_type: bytes, body: bytes) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def start_stream(send: Send, status: int, content_type: bytes) -> None:
    headers = [(b"content-type", content_type)]  # no length: uvicorn sends it chunked
    await send({"type": "http.response.start", "status": status, "headers": headers})


def serve(app: Callable[[Scope, Receive, Send], Awaitable[None]], path: str) -> None:
    """Bind and listen first, then say READY: connections made from then on wait in the
    backlog until uvicorn accepts them, so the orchestrator needs no polling."""
    if os.path.exists(path):
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    sock.listen(4096)
    config = uvicorn.Config(
        app,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        proxy_headers=False,  # no proxy in front of a Unix socket: skip that middleware
        log_level="warning",
        backlog=4096,
    )
    print("READY", flush=True)
    uvicorn.Server(config).run(sockets=[sock])
