"""Fast fake OpenAI upstream: `python -m bench.upstream --delay-ms 50`.

It answers every `POST .../chat/completions` with the same small, valid chat.completion (or,
for `"stream": true`, N `data:` chat.completion.chunk events then `data: [DONE]`, see
`stream_events`) after a fixed delay. It is a raw
asyncio Protocol with httptools on uvloop, with every response encoded once at start-up,
so that it stays far from being the bottleneck: it shares one core with the load generator.

It listens on TCP (the daemon's `api_base` is an http:// URL) and prints `READY <port>` on
stdout once it is listening, which is how the orchestrator knows it is up without polling.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass
from typing import cast

import httptools
import msgspec
import uvloop

MODEL = "bench-model"
STREAM_CHUNKS = 50  # chat.completion.chunk events per streamed answer, [DONE] not counted


class _StreamFlag(msgspec.Struct):
    stream: bool = False


_decode_stream_flag = msgspec.json.Decoder(_StreamFlag).decode


def _http_response(status: str, content_type: str, body: bytes) -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def completion_body() -> bytes:
    """The one chat.completion every non-streaming request gets."""
    return msgspec.json.encode(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Hello from the bench upstream."},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 9, "completion_tokens": 7, "total_tokens": 16},
        }
    )


WORDS = ("Hello", " from", " the", " bench", " upstream", ",", " piece", " by", " piece.")


def stream_events(chunks: int) -> list[bytes]:
    """`chunks` SSE events of chat.completion.chunk as OpenAI streams them, then [DONE].

    The first chunk opens the message (`delta: {"role": "assistant", "content": ""}`, no text:
    OpenAI's first chunk carries none), the middle ones carry one text piece each in
    `delta.content`, the last one is `delta: {}` with `finish_reason: "stop"`. No usage chunk:
    OpenAI sends one only for `stream_options.include_usage`, which the bench does not ask for.
    With `chunks` = 50: 1 role chunk, 48 content chunks, 1 finish chunk.
    """
    created = int(time.time())
    deltas: list[dict[str, object]] = [{"role": "assistant", "content": ""}]
    deltas += [{"content": WORDS[i % len(WORDS)]} for i in range(max(0, chunks - 2))]
    events = [_event(created, delta, None) for delta in deltas[: chunks - 1]]
    return [*events, _event(created, {}, "stop"), b"data: [DONE]\n\n"]


def _event(created: int, delta: dict[str, object], finish_reason: str | None) -> bytes:
    chunk = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": created,
        "model": MODEL,
        "system_fingerprint": None,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
    }
    return b"data: " + msgspec.json.encode(chunk) + b"\n\n"


def _chunked(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


@dataclass(frozen=True, slots=True)
class Responses:
    """Every byte string the upstream ever writes, encoded once."""

    completion: bytes
    stream_head: bytes
    stream_chunks: tuple[bytes, ...]  # each framed with chunked encoding; the end with [DONE]
    health: bytes
    not_found: bytes
    bad_request: bytes

    @classmethod
    def build(cls, chunks: int) -> Responses:
        framed = [_chunked(e) for e in stream_events(chunks)]
        framed[-1] += b"0\r\n\r\n"  # the body ends with [DONE], not one interval later
        return cls(
            completion=_http_response("200 OK", "application/json", completion_body()),
            stream_head=(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                b"Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n"
            ),
            stream_chunks=tuple(framed),
            health=_http_response("200 OK", "application/json", b'{"status":"ok"}'),
            not_found=_http_response("404 Not Found", "application/json", b'{"error":"not found"}'),
            bad_request=_http_response("400 Bad Request", "application/json", b'{"error":"bad"}'),
        )


@dataclass(frozen=True, slots=True)
class Settings:
    delay: float  # seconds before the first byte of every chat completion
    chunk_interval: float  # seconds between SSE chunks of a streamed answer (0: one write)
    responses: Responses


class UpstreamProtocol(asyncio.Protocol):
    """One HTTP/1.1 keep-alive connection. Requests are answered in order: every answer waits
    the same delay, so the timers fire in arrival order even for pipelined requests."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._loop = asyncio.get_running_loop()
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._url = b""
        self._body: list[bytes] = []

    # asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self._write([self._settings.responses.bad_request], keep_alive=False)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None

    # httptools callbacks

    def on_message_begin(self) -> None:
        self._url = b""
        self._body = []

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        r = self._settings.responses
        keep_alive = self._parser.should_keep_alive()
        method = self._parser.get_method()
        path = self._url.partition(b"?")[0]
        if method == b"POST" and path.endswith(b"/chat/completions"):
            body = b"".join(self._body)
            if b'"stream"' in body and self._wants_stream(body):
                self._later(self._settings.delay, self._stream, keep_alive)
            else:
                self._later(self._settings.delay, self._write, [r.completion], keep_alive)
        elif method == b"GET" and path in (b"/health", b"/v1/models"):
            self._write([r.health], keep_alive)
        else:
            self._write([r.not_found], keep_alive)

    # answers

    @staticmethod
    def _wants_stream(body: bytes) -> bool:
        try:
            return _decode_stream_flag(body).stream
        except msgspec.DecodeError:
            return False

    def _later(self, delay: float, callback: object, *args: object) -> None:
        assert callable(callback)
        if delay > 0:
            self._loop.call_later(delay, callback, *args)
        else:
            callback(*args)

    def _stream(self, keep_alive: bool) -> None:
        r = self._settings.responses
        interval = self._settings.chunk_interval
        if interval <= 0:
            self._write([r.stream_head, *r.stream_chunks], keep_alive)
            return
        self._write([r.stream_head, r.stream_chunks[0]], keep_alive=True)
        rest = r.stream_chunks[1:]
        for i, chunk in enumerate(rest, start=1):
            last = i == len(rest)
            self._loop.call_later(i * interval, self._write, [chunk], keep_alive or not last)

    def _write(self, parts: list[bytes], keep_alive: bool) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        transport.write(parts[0] if len(parts) == 1 else b"".join(parts))
        if not keep_alive:
            transport.close()


async def serve(host: str, port: int, settings: Settings) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: UpstreamProtocol(settings), host, port, backlog=4096, reuse_address=True
    )
    bound_port = server.sockets[0].getsockname()[1]
    print(f"READY {bound_port}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.upstream", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port (printed)")
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--stream-chunks", type=int, default=STREAM_CHUNKS)
    parser.add_argument("--chunk-interval-ms", type=float, default=0.0)
    args = parser.parse_args(argv)
    settings = Settings(
        delay=args.delay_ms / 1000,
        chunk_interval=args.chunk_interval_ms / 1000,
        responses=Responses.build(max(1, args.stream_chunks)),
    )
    try:
        uvloop.run(serve(args.host, args.port, settings))
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
