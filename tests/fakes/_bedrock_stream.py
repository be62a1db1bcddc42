"""AWS event-stream frames for `BedrockFake`'s ConverseStream (PROVIDERS.md §4.7).

botocore can decode the framing but has no encoder, so the fake writes frames
here: the prelude (total length, headers length, CRC32 of those 8 bytes), the
headers (1-byte name length, name, type 7 = string with a 2-byte length), the
JSON payload, and the CRC32 of everything before it. A test checks that
botocore's `EventStreamBuffer` decodes what this writes.

    fake.script(bedrock_stream(
        event_frame("messageStart", {"role": "assistant"}),
        bedrock_text_delta("Hel"), anyio.Event(),  # hold the stream here
        exception_frame("throttlingException", "Too many requests"),
    ))
"""

from __future__ import annotations

import binascii
import struct
from collections.abc import Mapping
from typing import Any, Final

import anyio
import msgspec

from ._chat_reply import Turn
from ._claude_models import sign_thinking
from ._script import Stream, stream

EVENT_STREAM: Final = "application/vnd.amazon.eventstream"
_STRING: Final = 7  # the header value type of a UTF-8 string
_PADDING: Final = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_ENCODER: Final = msgspec.json.Encoder()


def encode_frame(headers: Mapping[str, str], payload: bytes) -> bytes:
    """One event-stream message with string `headers` and `payload`, both CRCs included."""
    encoded = b"".join(
        struct.pack(">B", len(name.encode())) + name.encode()
        + struct.pack(">BH", _STRING, len(value.encode())) + value.encode()
        for name, value in headers.items()
    )  # fmt: skip
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack(">II", total, len(encoded))
    prelude += struct.pack(">I", binascii.crc32(prelude) & 0xFFFFFFFF)
    message = prelude + encoded + payload
    return message + struct.pack(">I", binascii.crc32(message) & 0xFFFFFFFF)


def event_frame(event_type: str, payload: Mapping[str, Any]) -> bytes:
    """An event frame, e.g. `event_frame("messageStop", {"stopReason": "end_turn"})`."""
    headers = {
        ":event-type": event_type,
        ":content-type": "application/json",
        ":message-type": "event",
    }
    return encode_frame(headers, _ENCODER.encode(payload))


def exception_frame(exception_type: str, message: str, **extra: Any) -> bytes:
    """A modeled exception frame, e.g. `exception_frame("throttlingException", "...")`."""
    headers = {
        ":exception-type": exception_type,
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    return encode_frame(headers, _ENCODER.encode({"message": message, **extra}))


def error_frame(code: str, message: str) -> bytes:
    """A protocol error frame: `:error-code` and `:error-message` headers, no payload."""
    headers = {":error-code": code, ":error-message": message, ":message-type": "error"}
    return encode_frame(headers, b"")


def bedrock_text_delta(text: str, block: int = 0) -> bytes:
    """A `contentBlockDelta` frame carrying `text` (with the `p` padding Bedrock adds)."""
    payload = {"contentBlockIndex": block, "delta": {"text": text}, "p": _PADDING[: len(text)]}
    return event_frame("contentBlockDelta", payload)


def bedrock_stream(*pieces: bytes | anyio.Event) -> Stream:
    """A scripted ConverseStream body: frames (or any bytes) and events that hold it."""
    return stream(*pieces, content_type=EVENT_STREAM)


def converse_stream_frames(
    turn: Turn, stop_reason: str, usage: Mapping[str, int], *, thought: str | None = None
) -> tuple[bytes, ...]:
    """The frames of a streamed `turn`: its signed `thought` (reasoning text in halves, then
    the signature), text and tool uses in halves, stop, then usage."""
    frames = [event_frame("messageStart", {"role": "assistant"})]
    block = 0
    if thought is not None:
        frames += [
            event_frame("contentBlockDelta", {"contentBlockIndex": block,
                                              "delta": {"reasoningContent": {"text": piece}}})
            for piece in _halves(thought)
        ]  # fmt: skip
        signature = {"reasoningContent": {"signature": sign_thinking(thought)}}
        frames.append(event_frame("contentBlockDelta", {"contentBlockIndex": block,
                                                        "delta": signature}))  # fmt: skip
        frames.append(event_frame("contentBlockStop", {"contentBlockIndex": block}))
        block += 1
    if turn.content:
        frames += [bedrock_text_delta(piece, block) for piece in _halves(turn.content)]
        frames.append(event_frame("contentBlockStop", {"contentBlockIndex": block}))
        block += 1
    for tool_use_id, name, arguments in turn.tool_calls:
        start = {"contentBlockIndex": block,
                 "start": {"toolUse": {"toolUseId": tool_use_id, "name": name}}}  # fmt: skip
        frames.append(event_frame("contentBlockStart", start))
        frames += [
            event_frame("contentBlockDelta",
                        {"contentBlockIndex": block, "delta": {"toolUse": {"input": piece}}})
            for piece in _halves(arguments)
        ]  # fmt: skip
        frames.append(event_frame("contentBlockStop", {"contentBlockIndex": block}))
        block += 1
    frames.append(event_frame("messageStop", {"stopReason": stop_reason}))
    frames.append(event_frame("metadata", {"usage": dict(usage), "metrics": {"latencyMs": 1}}))
    return tuple(frames)


def _halves(text: str) -> list[str]:
    middle = len(text) // 2
    return [part for part in (text[:middle], text[middle:]) if part]
