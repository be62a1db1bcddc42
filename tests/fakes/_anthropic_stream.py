"""Anthropic's streamed answers (PROVIDERS.md §3.7): named SSE events, for the fake and tests.

    fake.script(stream(anthropic_sse(*anthropic_text_events("Hel", "lo")[:4],
                                     anthropic_stream_error())))

`anthropic_message_events` turns a whole message into the events Anthropic streams for it;
`anthropic_text_events` builds a text message's events from its pieces, to cut or
extend in a test; `anthropic_sse` encodes events for the `stream(...)` directive.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec


def anthropic_sse(*events: Mapping[str, Any]) -> bytes:
    """`event: <type>` and `data: <json>` lines and a blank line, per event."""
    out = []
    for event in events:
        name = str(event["type"]).encode()
        out.append(b"event: " + name + b"\ndata: " + msgspec.json.encode(event) + b"\n\n")
    return b"".join(out)


def anthropic_message_events(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The events that stream `message` (a whole Messages API answer), as Anthropic sends them.

    Text, thinking and tool input arrive in two deltas each (a thinking block's signature in
    a `signature_delta` after them); a `ping` follows the first block's start;
    `message_start` reports the input usage, `message_delta` the stop reason and output.
    """
    usage = dict(message.get("usage") or {})
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None,
             "usage": {**usage, "output_tokens": 1}}  # fmt: skip
    events: list[dict[str, Any]] = [{"type": "message_start", "message": start}]
    for index, block in enumerate(message["content"]):
        if block["type"] == "tool_use":
            opening = {**block, "input": {}}
            deltas = [{"type": "input_json_delta", "partial_json": piece}
                      for piece in _halves(json.dumps(block["input"]))]  # fmt: skip
        elif block["type"] == "thinking":
            opening = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [{"type": "thinking_delta", "thinking": piece}
                      for piece in _halves(block["thinking"])]  # fmt: skip
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
        elif block["type"] == "redacted_thinking":
            opening, deltas = dict(block), []
        else:
            opening = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": piece} for piece in _halves(block["text"])]
        events.append({"type": "content_block_start", "index": index, "content_block": opening})
        if index == 0:
            events.append({"type": "ping"})
        events += [{"type": "content_block_delta", "index": index, "delta": d} for d in deltas]
        events.append({"type": "content_block_stop", "index": index})
    events += [
        {"type": "message_delta",
         "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
         "usage": {"output_tokens": usage.get("output_tokens", 1)}},
        {"type": "message_stop"},
    ]  # fmt: skip
    return events


def anthropic_text_events(
    *pieces: str,
    stop_reason: str = "end_turn",
    model: str = "claude-sonnet-4-5",
    message_id: str = "msg_stream",
) -> list[dict[str, Any]]:
    """A text answer streamed in `pieces`: message_start, block start, one delta per piece,
    block stop, message_delta, message_stop."""
    start: dict[str, Any] = {
        "id": message_id, "type": "message", "role": "assistant", "model": model, "content": [],
        "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 1},
    }  # fmt: skip
    deltas = [
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}
        for piece in pieces
    ]
    end = {"stop_reason": stop_reason, "stop_sequence": None}
    return [
        {"type": "message_start", "message": start},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        *deltas,
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": end, "usage": {"output_tokens": len(pieces)}},
        {"type": "message_stop"},
    ]


def anthropic_stream_error(
    kind: str = "overloaded_error", message: str = "Overloaded"
) -> dict[str, Any]:
    """An in-stream `error` event (sent after HTTP 200, §3.7)."""
    return {"type": "error", "error": {"type": kind, "message": message}}


def _halves(text: str) -> Sequence[str]:
    middle = len(text) // 2
    return [part for part in (text[:middle], text[middle:]) if part]
