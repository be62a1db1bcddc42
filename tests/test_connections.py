"""The daemon's listeners on the wire: header limits, 413 closes, upgrades, timeouts, logs.

Raw sockets, because the defects live below what an HTTP client library lets a test say.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import msgspec
import pytest
from anyio.abc import ByteStream

from dispatcher import Daemon

from .helpers import running_daemon

pytestmark = pytest.mark.anyio


@pytest.fixture(
    params=[
        pytest.param(("asyncio", {"use_uvloop": False}), id="asyncio"),
        pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"),  # as `serve` runs
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, bool]]:
    """Transports differ (write_eof, pause_reading): both loops get every test."""
    return request.param  # type: ignore[no-any-return]


CONFIG = """
[server]
socket = "run/d.sock"
metrics = ""
listen = "127.0.0.1:0"
max_body_bytes = 65536
header_timeout_s = 0.5
body_timeout_s = 0.5
keepalive_timeout_s = 0.5
[[deployment]]
name = "mini-a"
group = "mini"
provider = "mock"
model = "mock-mini"
"""

CHAT = b'{"model": "mini", "messages": [{"role": "user", "content": "hi"}]}'


@contextlib.asynccontextmanager
async def tcp(daemon: Daemon) -> AsyncIterator[ByteStream]:
    assert daemon.tcp_address is not None
    host, port = daemon.tcp_address
    async with await anyio.connect_tcp(host, port) as stream:
        yield stream


async def read_to_eof(stream: ByteStream, *, limit: int = 1 << 20) -> bytes:
    """Everything the server sends until it closes (a reset counts as closing)."""
    out = bytearray()
    with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
        while len(out) < limit:
            out += await stream.receive()
    return bytes(out)


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def head_of(answer: bytes) -> bytes:
    return answer.split(b"\r\n\r\n", 1)[0].lower()


def error_of(answer: bytes) -> dict[str, object]:
    body = answer.split(b"\r\n\r\n", 1)[1]
    error = msgspec.json.decode(body)["error"]
    assert set(error) >= {"message", "type", "code", "param"}
    return dict(error)


def request(path: str = "/health", *headers: bytes, method: bytes = b"GET") -> bytes:
    lines = [method + b" " + path.encode() + b" HTTP/1.1", b"host: localhost", *headers]
    return b"\r\n".join(lines) + b"\r\n\r\n"


async def test_huge_header_is_refused_with_431_and_closed(tmp_path: Path) -> None:
    """A 1 MB header is refused (431) after at most max_header_bytes, not parsed whole."""
    async with running_daemon(CONFIG, tmp_path) as daemon, tcp(daemon) as stream:
        with anyio.fail_after(5):
            await stream.send(b"GET /health HTTP/1.1\r\nhost: localhost\r\nx-big: ")
            with contextlib.suppress(anyio.BrokenResourceError):
                for _ in range(16):
                    await stream.send(b"a" * 65536)
            answer = await read_to_eof(stream)
    assert status_of(answer) == 431
    assert b"connection: close" in head_of(answer)
    assert error_of(answer)["code"] == "request_header_fields_too_large"


async def test_too_many_headers_are_refused_with_431(tmp_path: Path) -> None:
    """More than max_headers header lines: 431, even when they are small."""
    many = [b"x-h%d: v" % i for i in range(150)]
    async with running_daemon(CONFIG, tmp_path) as daemon, tcp(daemon) as stream:
        with anyio.fail_after(5):
            await stream.send(request("/health", *many))
            answer = await read_to_eof(stream)
    assert status_of(answer) == 431


async def test_headers_within_the_limits_are_served(tmp_path: Path) -> None:
    """50 headers of 1 KiB each stay under both limits: 200, and the connection is kept."""
    headers = [b"x-h%d: %s" % (i, b"v" * 1024) for i in range(50)]
    async with running_daemon(CONFIG, tmp_path) as daemon, tcp(daemon) as stream:
        with anyio.fail_after(5):
            for _ in range(2):  # the same connection serves a second request
                await stream.send(request("/health", *headers))
                answer = await stream.receive()
                assert status_of(answer) == 200


async def test_endless_chunked_body_gets_413_and_the_connection_closes(tmp_path: Path) -> None:
    """A chunked body that never ends is answered 413 and the server stops reading it."""
    chunk = b"10000\r\n" + b"x" * 0x10000 + b"\r\n"
    sent = 0

    async def flood(stream: ByteStream) -> None:
        nonlocal sent
        with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
            while True:
                await stream.send(chunk)
                sent += len(chunk)

    async with running_daemon(CONFIG, tmp_path) as daemon, tcp(daemon) as stream:
        with anyio.fail_after(10):
            await stream.send(
                request(
                    "/v1/chat/completions",
                    b"transfer-encoding: chunked",
                    b"content-type: application/json",
                    method=b"POST",
                )
            )
            async with anyio.create_task_group() as tg:
                tg.start_soon(flood, stream)
                answer = await read_to_eof(stream)
                tg.cancel_scope.cancel()
    assert status_of(answer) == 413
    assert b"connection: close" in head_of(answer)
    assert sent < 64 * 1024 * 1024  # the server stopped reading soon after its answer


async def test_declared_oversized_body_gets_413_and_close(tmp_path: Path) -> None:
    """content-length over the limit: 413 at once, `connection: close`, then EOF."""
    async with running_daemon(CONFIG, tmp_path) as daemon, tcp(daemon) as stream:
        with anyio.fail_after(5):
            await stream.send(
                request(
                    "/v1/chat/completions",
                    b"content-length: 100000000",
                    b"content-type: application/json",
                    method=b"POST",
                )
            )
            answer = await read_to_eof(stream)
    assert status_of(answer) == 413
    assert b"connection: close" in head_of(answer)


async def test_answered_request_with_its_body_keeps_the_connection(tmp_path: Path) -> None:
    """A request whose whole body arrived is answered without closing the connection."""
    async with running_daemon(CONFIG, tmp_path) as daemon, tcp(daemon) as stream:
        with anyio.fail_after(5):
            for _ in range(2):
                await stream.send(
                    request(
                        "/v1/chat/completions",
                        b"content-length: %d" % len(CHAT),
                        b"content-type: application/json",
                        method=b"POST",
                    )
                    + CHAT
                )
                answer = await stream.receive()
                assert status_of(answer) == 200
                assert b"connection: close" not in head_of(answer)


async def test_websocket_upgrade_is_answered_as_plain_http_and_closed(tmp_path: Path) -> None:
    """An upgrade request gets a plain HTTP answer (no 500, no handshake), then EOF."""
    upgrade = request(
        "/v1/chat/completions",
        b"connection: Upgrade",
        b"upgrade: websocket",
        b"sec-websocket-version: 13",
        b"sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==",
    )
    async with running_daemon(CONFIG, tmp_path) as daemon, tcp(daemon) as stream:
        with anyio.fail_after(5):
            await stream.send(upgrade)
            answer = await read_to_eof(stream)
    assert status_of(answer) == 405
    assert error_of(answer)["code"] == "method_not_allowed"


async def test_malformed_request_lines_log_a_bounded_number_of_warnings(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """200 garbage requests: each is answered 400, but the log gets a handful of lines."""
    caplog.set_level(logging.DEBUG)
    async with running_daemon(CONFIG, tmp_path) as daemon:
        with anyio.fail_after(10):
            for _ in range(200):
                async with tcp(daemon) as stream:
                    await stream.send(b"\x16\x03\x01 garbage\r\n\r\n")
                    answer = await read_to_eof(stream)
                    assert status_of(answer) == 400
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert 1 <= len(warnings) <= 10
    assert any("invalid HTTP request" in r.getMessage() for r in warnings)


async def test_silent_and_trickling_connections_are_closed_at_the_header_deadline(
    tmp_path: Path,
) -> None:
    """Nothing sent, or a head trickled byte by byte: closed at header_timeout_s."""
    trickle = request("/health")

    async with running_daemon(CONFIG, tmp_path) as daemon:
        async with tcp(daemon) as silent, tcp(daemon) as slow:
            with anyio.fail_after(5):
                async with anyio.create_task_group() as tg:

                    async def drip() -> None:
                        with contextlib.suppress(anyio.BrokenResourceError):
                            for byte in trickle[:-4]:  # never completes the head
                                await slow.send(bytes([byte]))
                                await anyio.sleep(0.05)  # sleep-ok: the attack's pace, not a wait

                    tg.start_soon(drip)
                    assert await read_to_eof(silent) == b""
                    answer = await read_to_eof(slow)
                    tg.cancel_scope.cancel()
    assert answer == b"" or status_of(answer) == 408


@pytest.mark.parametrize("pipelined", [True, False], ids=["same-read", "later-read"])
async def test_unfinished_head_after_an_answer_is_closed_at_the_header_deadline(
    tmp_path: Path, pipelined: bool
) -> None:
    """A kept-alive connection whose next head never completes is closed at
    header_timeout_s, whether that head began in the read of the request before it or in
    a read of its own (the deadline starts with the head, not with each read)."""
    config = CONFIG.replace("keepalive_timeout_s = 0.5", "keepalive_timeout_s = 30")
    first, unfinished = request("/health"), request("/health")[:-4]
    async with running_daemon(config, tmp_path) as daemon, tcp(daemon) as stream:
        with anyio.fail_after(5):
            if pipelined:
                await stream.send(first + unfinished)
            else:
                await stream.send(first)
                answer = b""
                while not answer.endswith(b'{"status":"ok"}'):
                    answer += await stream.receive()
                await stream.send(unfinished)
            rest = await read_to_eof(stream)
    if pipelined:
        assert status_of(rest) == 200
        rest = rest.partition(b'{"status":"ok"}')[2]
    assert rest == b"" or status_of(rest) == 408


async def test_idle_keepalive_connection_is_closed(tmp_path: Path) -> None:
    """After an answer, a connection that sends nothing more is closed at keepalive_timeout_s."""
    async with running_daemon(CONFIG, tmp_path) as daemon, tcp(daemon) as stream:
        with anyio.fail_after(5):
            await stream.send(request("/health"))
            answer = await read_to_eof(stream)
    assert status_of(answer) == 200


async def test_body_that_stalls_is_cut_at_the_body_deadline(tmp_path: Path) -> None:
    """A body that stops arriving half-way is cut at body_timeout_s."""
    async with running_daemon(CONFIG, tmp_path) as daemon, tcp(daemon) as stream:
        with anyio.fail_after(5):
            await stream.send(
                request(
                    "/v1/chat/completions",
                    b"content-length: %d" % len(CHAT),
                    b"content-type: application/json",
                    method=b"POST",
                )
                + CHAT[:10]
            )
            answer = await read_to_eof(stream)
    assert answer == b"" or status_of(answer) == 408


class _LogEvent(logging.Handler):
    """Sets `event` when a record containing `text` is logged (a wait without polling)."""

    def __init__(self, text: str) -> None:
        super().__init__(logging.DEBUG)
        self.text = text
        self.event = anyio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.event.set()


async def test_client_that_reads_nothing_of_its_answer_is_disconnected(tmp_path: Path) -> None:
    """A 2 MB answer the client never reads is dropped at send_timeout_s, not held forever."""
    text = CONFIG.replace("max_body_bytes = 65536", "max_body_bytes = 4194304").replace(
        "keepalive_timeout_s = 0.5", "keepalive_timeout_s = 30\nsend_timeout_s = 0.5"
    )
    content = "a" * 2_000_000
    body = msgspec.json.encode(
        {"model": "mini", "messages": [{"role": "user", "content": content}]}
    )
    watcher = _LogEvent("send_timeout_s")
    log = logging.getLogger("dispatcher.connections")
    log.addHandler(watcher)
    old_level = log.level
    log.setLevel(logging.DEBUG)
    try:
        async with running_daemon(text, tmp_path) as daemon:
            async with await anyio.connect_unix(daemon.socket_path) as stream:
                with anyio.fail_after(5):
                    await stream.send(
                        request(
                            "/v1/chat/completions",
                            b"content-length: %d" % len(body),
                            b"content-type: application/json",
                            method=b"POST",
                        )
                        + body
                    )
                    await watcher.event.wait()  # the client has read nothing so far
                    answer = await read_to_eof(stream, limit=4_000_000)
    finally:
        log.removeHandler(watcher)
        log.setLevel(old_level)
    assert status_of(answer) == 200
    assert len(answer) < len(content)  # cut: the rest was never sent
