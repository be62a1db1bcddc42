"""How answers reach the wire through the daemon's protocol (`_protocol._CycleTransport`):
a head goes out with the first piece of its body, and never waits longer for it."""

from __future__ import annotations

import socket
from pathlib import Path

import anyio
import pytest

from dispatcher._connections import Connections, Limits
from dispatcher._server import make_server

pytestmark = pytest.mark.anyio

LIMITS = Limits(
    max_header_bytes=65536,
    max_headers=100,
    header_timeout_s=5.0,
    body_timeout_s=5.0,
    send_timeout_s=5.0,
    linger_bytes=1 << 20,
)


@pytest.fixture(
    params=[
        pytest.param(("asyncio", {"use_uvloop": False}), id="asyncio"),
        pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"),
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, bool]]:
    return request.param  # type: ignore[no-any-return]


async def test_a_head_whose_body_is_late_is_not_held_for_it(tmp_path: Path) -> None:
    """An app that sends its head, then waits (a stream before its first chunk): the client
    gets the head at once. The app sends its body only after the client has read the head,
    so a head held for its body would never arrive (the test would time out)."""
    head_read = anyio.Event()

    async def app(scope: dict, receive: object, send: object) -> None:
        start = {"type": "http.response.start", "status": 200, "headers": [(b"x-a", b"1")]}
        await send(start)  # type: ignore[operator]
        await head_read.wait()
        await send({"type": "http.response.body", "body": b"late"})  # type: ignore[operator]

    path = tmp_path / "s.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen()  # the client's connection waits in the backlog until uvicorn runs
    server = make_server(
        app,
        connections=Connections(LIMITS, 16),
        drain_timeout_s=1.0,
        keepalive_timeout_s=5.0,
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve, [listener])
        with anyio.fail_after(5):
            async with await anyio.connect_unix(path) as client:
                await client.send(b"GET / HTTP/1.1\r\nhost: d\r\n\r\n")
                seen = b""
                while b"\r\n\r\n" not in seen:
                    seen += await client.receive()
                assert seen.startswith(b"HTTP/1.1 200 ")
                assert b"x-a: 1\r\n" in seen
                head_read.set()
                while not seen.endswith(b"late\r\n0\r\n\r\n"):
                    seen += await client.receive()
        server.should_exit = True
