"""Synthesised successful replies: a `chat.completion` object or its SSE chunks (§1.6, §1.7).

The "model" is deterministic so tests can assert on it: with a forced or required
`tool_choice` it calls that tool with arguments built from the JSON schema; otherwise it
answers `"<speaker>: <last user text>"`.  A `Success` directive overrides any part of that.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec

from ._script import Success

_ENCODER: Final = msgspec.json.Encoder()


@dataclass(frozen=True, kw_only=True)
class Turn:
    """What the fake model says: text or tool calls `(id, name, arguments)`, and why it stopped."""

    content: str | None
    tool_calls: tuple[tuple[str, str, str], ...]
    finish_reason: str


@dataclass(frozen=True, kw_only=True)
class Shape:
    """Provider-specific decoration of the otherwise shared reply."""

    model: str
    completion_id: str
    created: int
    top_extra: Mapping[str, Any] = field(default_factory=dict)
    choice_extra: Mapping[str, Any] = field(default_factory=dict)
    first_chunks: Sequence[Mapping[str, Any]] = ()  # Azure's prompt-filter chunk


def plan_turn(
    body: Mapping[str, Any], directive: Success, *, speaker: str, named_choice_stop: bool
) -> Turn:
    """Decide the assistant turn for a validated `body` and a `Success` directive."""
    call_id = _call_id_maker(body)
    if directive.content is not None or directive.tool_calls is not None:
        calls = tuple(
            (call_id(index), name, arguments)
            for index, (name, arguments) in enumerate(directive.tool_calls or ())
        )
        finish = "tool_calls" if calls else "stop"
        return Turn(
            content=directive.content,
            tool_calls=calls,
            finish_reason=directive.finish_reason or finish,
        )
    forced = _forced_tool(body)
    if forced is not None:
        name, schema, named = forced
        arguments = json.dumps(_example(schema), separators=(",", ":"))
        finish = "stop" if named and named_choice_stop else "tool_calls"
        return Turn(
            content=None,
            tool_calls=((call_id(0), name, arguments),),
            finish_reason=directive.finish_reason or finish,
        )
    return Turn(
        content=f"{speaker}: {last_user_text(body.get('messages', []))}",
        tool_calls=(),
        finish_reason=directive.finish_reason or "stop",
    )


def completion(body: Mapping[str, Any], turn: Turn, shape: Shape) -> dict[str, Any]:
    """The non-streaming `chat.completion` object."""
    message: dict[str, Any] = {"role": "assistant", "content": turn.content, "refusal": None}
    if turn.tool_calls:
        message["tool_calls"] = [
            {"id": cid, "type": "function", "function": {"name": name, "arguments": args}}
            for cid, name, args in turn.tool_calls
        ]
    choice = {"index": 0, "message": message, "logprobs": None,
              "finish_reason": turn.finish_reason, **shape.choice_extra}  # fmt: skip
    return {
        "id": shape.completion_id,
        "object": "chat.completion",
        "created": shape.created,
        "model": shape.model,
        "choices": [choice],
        "usage": _usage(body, turn),
        "system_fingerprint": "fp_fake",
        **shape.top_extra,
    }


def sse_chunks(body: Mapping[str, Any], turn: Turn, shape: Shape) -> tuple[bytes, ...]:
    """The `data: {...}` events of a streamed reply, ending with `data: [DONE]`."""
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    common = {"id": shape.completion_id, "object": "chat.completion.chunk",
              "created": shape.created, "model": shape.model}  # fmt: skip

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish,
                  **shape.choice_extra}  # fmt: skip
        event: dict[str, Any] = {**common, "choices": [choice]}
        if include_usage:
            event["usage"] = None
        return event

    events: list[Mapping[str, Any]] = list(shape.first_chunks)
    if turn.tool_calls:
        for index, (cid, name, args) in enumerate(turn.tool_calls):
            head = {"index": index, "id": cid, "type": "function",
                    "function": {"name": name, "arguments": ""}}  # fmt: skip
            delta: dict[str, Any] = {"tool_calls": [head]}
            if index == 0:
                delta = {"role": "assistant", "content": None, **delta}
            events.append(chunk(delta))
            for piece in _halves(args):
                fragment = {"index": index, "function": {"arguments": piece}}
                events.append(chunk({"tool_calls": [fragment]}))
    else:
        events.append(chunk({"role": "assistant", "content": "", "refusal": None}))
        events.extend(chunk({"content": piece}) for piece in _halves(turn.content or ""))
    events.append(chunk({}, turn.finish_reason))
    if include_usage:
        events.append({**common, "choices": [], "usage": _usage(body, turn)})
    return (*(b"data: " + _ENCODER.encode(e) + b"\n\n" for e in events), b"data: [DONE]\n\n")


def last_user_text(messages: Sequence[Any]) -> str:
    """The text of the last user message (text parts joined), or "" when there is none."""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return message_text(message)
    return ""


def message_text(message: Mapping[str, Any]) -> str:
    """A message's text whether `content` is a string or a list of text parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def _forced_tool(body: Mapping[str, Any]) -> tuple[str, Mapping[str, Any], bool] | None:
    """`(name, parameters schema, named)` of the tool `tool_choice` forces, if any."""
    tools = [tool["function"] for tool in body.get("tools") or () if tool.get("type") == "function"]
    choice = body.get("tool_choice")
    if not tools or choice is None or choice in ("auto", "none"):
        return None
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = choice["function"]["name"]
        schema: Mapping[str, Any] = next(
            (t.get("parameters", {}) for t in tools if t["name"] == name), {}
        )
        return name, schema, True
    if choice == "required" or (
        isinstance(choice, dict) and choice.get("allowed_tools", {}).get("mode") == "required"
    ):
        return tools[0]["name"], tools[0].get("parameters", {}), False
    return None


def _example(schema: Mapping[str, Any]) -> Any:
    """The smallest value satisfying a simple JSON schema: required properties only."""
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = kind[0] if kind else None
    if kind == "object" or (kind is None and "properties" in schema):
        properties = schema.get("properties", {})
        return {key: _example(properties.get(key, {})) for key in schema.get("required", [])}
    defaults: dict[str | None, Any] = {"string": "fake", "integer": 0, "number": 0,
                                       "boolean": False, "array": []}  # fmt: skip
    return defaults.get(kind)


def _call_id_maker(body: Mapping[str, Any]) -> Callable[[int], str]:
    seed = _ENCODER.encode(body.get("messages", []))

    def call_id(index: int) -> str:
        return "call_" + hashlib.sha256(seed + b"%d" % index).hexdigest()[:24]

    return call_id


def _halves(text: str) -> tuple[str, ...]:
    middle = len(text) // 2
    return tuple(part for part in (text[:middle], text[middle:]) if part)


def _usage(body: Mapping[str, Any], turn: Turn) -> dict[str, Any]:
    prompt = max(1, len(_ENCODER.encode(body.get("messages", []))) // 4)
    said = (turn.content or "") + "".join(args for _, _, args in turn.tool_calls)
    completion_tokens = max(1, len(said) // 4)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                      "accepted_prediction_tokens": 0,
                                      "rejected_prediction_tokens": 0},
    }  # fmt: skip
