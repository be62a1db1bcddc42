"""Compressed answers, as real providers behind CDNs send them.

A fake compresses every answer the client's `accept-encoding` allows: br (when
`brotli` is installed) or gzip, in the fake's order of preference. A whole body
is compressed at once (its `content-length` is the compressed one); a streamed
body is compressed piece by piece with a flush after each, so the client can
decode every piece as soon as it arrives, as a CDN passing an event stream does.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any, Final

from ._asgi import Message, Send

try:
    import brotli
except ImportError:  # pragma: no cover - brotli is a dependency of the daemon
    brotli = None

ENCODINGS: Final = ("br", "gzip") if brotli is not None else ("gzip",)
"""What a fake can send, best first."""


def negotiate(accept_encoding: str, preferred: Sequence[str] = ENCODINGS) -> str | None:
    """The first of `preferred` that `accept_encoding` allows (q > 0); None: identity."""
    allowed: dict[str, float] = {}
    for item in accept_encoding.split(","):
        name, *params = (part.strip() for part in item.split(";"))
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if name:
            allowed[name.lower()] = q
    for encoding in preferred:
        if encoding not in ENCODINGS:
            continue
        if allowed.get(encoding, allowed.get("*", 0.0)) > 0:
            return encoding
    return None


class _Compressor:
    def __init__(self, encoding: str) -> None:
        self._gzip = encoding == "gzip"
        # wbits 31: the gzip container (16) around a 32 KiB-window deflate stream (15).
        self._impl: Any = (
            zlib.compressobj(6, zlib.DEFLATED, 31) if self._gzip else brotli.Compressor()
        )

    def piece(self, data: bytes, *, last: bool) -> bytes:
        impl = self._impl
        if self._gzip:
            mode = zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH
            return bytes(impl.compress(data) + impl.flush(mode))
        return bytes(impl.process(data) + (impl.finish() if last else impl.flush()))


def compressing(send: Send, encoding: str) -> Send:
    """`send`, with the response body compressed as `encoding` (unless already encoded)."""
    compressor = _Compressor(encoding)
    held: list[Message] = []  # the start of a whole body, sent with its length once known
    passthrough = False

    async def wrapped(message: Message) -> None:
        nonlocal passthrough
        kind = message["type"]
        if kind == "http.response.start":
            headers = [(k, v) for k, v in message.get("headers", ())]
            if any(k.lower() == b"content-encoding" for k, _ in headers):
                passthrough = True
                await send(message)
                return
            whole = any(k.lower() == b"content-length" for k, _ in headers)
            headers = [(k, v) for k, v in headers if k.lower() != b"content-length"]
            headers.append((b"content-encoding", encoding.encode()))
            start = {**message, "headers": headers}
            if whole:
                held.append(start)
            else:
                await send(start)
            return
        if kind != "http.response.body" or passthrough:
            await send(message)
            return
        more = bool(message.get("more_body", False))
        body = compressor.piece(message.get("body", b""), last=not more)
        if held:
            start = held.pop()
            if not more:
                start["headers"].append((b"content-length", str(len(body)).encode()))
            await send(start)
        await send({**message, "body": body})

    return wrapped
