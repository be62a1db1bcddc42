"""Tool-call ids every provider accepts, derived deterministically.

Providers disagree on what a tool-call id may look like (Mistral: exactly nine
alphanumerics; OpenAI: at most 40 characters; Anthropic and Bedrock: a
pattern). An adapter rewrites only the ids its provider would reject, to nine
alphanumerics derived from a hash of the original, so the same original id
maps to the same new id in the assistant's `tool_calls[].id` and in the
matching tool message's `tool_call_id`, across turns and restarts.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import Final

import msgspec

from .._chat import AssistantMessage, ChatRequest, Message, ToolMessage

_ALPHABET: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
UNIVERSAL_ID: Final = re.compile(r"^[A-Za-z0-9]{9}$")
"""An id every provider accepts."""

IdRule = Callable[[str], bool]


def pattern_rule(pattern: str, max_length: int | None = None) -> IdRule:
    """A rule accepting ids that fully match `pattern` (and fit `max_length`)."""
    compiled = re.compile(pattern)

    def accepts(tool_call_id: str) -> bool:
        if max_length is not None and len(tool_call_id) > max_length:
            return False
        return compiled.fullmatch(tool_call_id) is not None

    return accepts


def universal_id(original: str) -> str:
    """Nine alphanumerics derived from `original` (stable across processes)."""
    number = int.from_bytes(hashlib.blake2b(original.encode(), digest_size=8).digest(), "big")
    out = []
    for _ in range(9):
        number, digit = divmod(number, 62)
        out.append(_ALPHABET[digit])
    return "".join(out)


def conform_tool_ids(request: ChatRequest, accepts: IdRule) -> ChatRequest:
    """`request` with every id `accepts` rejects rewritten (the same way in calls and results)."""
    for message in request.messages:  # a loop, not any(...): this runs per attempt
        if _has_rejected_id(message, accepts):
            break
    else:
        return request

    def fix(tool_call_id: str) -> str:
        return tool_call_id if accepts(tool_call_id) else universal_id(tool_call_id)

    messages: list[Message] = []
    for message in request.messages:
        if isinstance(message, AssistantMessage) and message.tool_calls:
            calls = tuple(msgspec.structs.replace(c, id=fix(c.id)) for c in message.tool_calls)
            message = msgspec.structs.replace(message, tool_calls=calls)
        elif isinstance(message, ToolMessage):
            message = msgspec.structs.replace(message, tool_call_id=fix(message.tool_call_id))
        messages.append(message)
    return msgspec.structs.replace(request, messages=tuple(messages))


def _has_rejected_id(message: Message, accepts: IdRule) -> bool:
    if isinstance(message, ToolMessage):
        return not accepts(message.tool_call_id)
    if isinstance(message, AssistantMessage) and message.tool_calls:
        return any(not accepts(call.id) for call in message.tool_calls)
    return False
