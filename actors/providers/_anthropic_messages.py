"""OpenAI chat messages -> Anthropic's `system` and alternating `messages` (PROVIDERS.md §3.2).

    system / developer messages       ->  top-level `system` (text blocks)
    user text, image, PDF file parts  ->  text / image / document blocks
    assistant thinking_blocks         ->  thinking / redacted_thinking blocks, first in the turn
    assistant text, refusal           ->  text blocks
    assistant tool_calls              ->  tool_use blocks (arguments -> `input` object)
    tool messages (consecutive)       ->  tool_result blocks of ONE user turn
    consecutive same-role turns       ->  one turn (Anthropic alternates user/assistant)
    cache_control on a part / tool    ->  cache_control on its block
    prompt_cache_breakpoint on a part ->  cache_control {"type": "ephemeral"} on its block

Blank text is left out (Anthropic rejects empty text blocks). Audio parts, OpenAI
file ids and role "function" messages that answer no call are refused.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from msgspec import UNSET, UnsetType

from .._chat import (
    AssistantMessage,
    AudioPart,
    DeveloperMessage,
    FilePart,
    FunctionMessage,
    ImagePart,
    Message,
    RefusalPart,
    SystemMessage,
    TextPart,
    ToolMessage,
    UserMessage,
    UserPart,
)
from .._exceptions import Unsupported
from ._chat_parts import call_arguments, function_calls, split_data_url
from ._legacy import refuse_function_message

_PROVIDER: Final = "anthropic"
_IMAGE_TYPES: Final = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
_DOCUMENT_TYPES: Final = frozenset({"application/pdf"})
_CACHE_TTLS: Final = frozenset({"5m", "1h"})

Block = dict[str, Any]


def translate_messages(
    messages: Iterable[Message], deployment: str
) -> tuple[str | list[Block], list[dict[str, Any]]]:
    """`(system, messages)`: system text hoisted out, turns merged so roles alternate."""
    system: list[Block] = []
    turns: list[dict[str, Any]] = []
    for message in messages:
        match message:
            case SystemMessage(content=content) | DeveloperMessage(content=content):
                system.extend(_text_blocks(content, deployment))
            case UserMessage(content=content):
                _add_turn(turns, "user", _user_blocks(content, deployment))
            case AssistantMessage():
                _add_turn(turns, "assistant", _assistant_blocks(message, deployment))
            case ToolMessage(tool_call_id=call_id, content=content):
                _add_turn(turns, "user", [_tool_result(call_id, content, deployment)])
            case FunctionMessage():
                refuse_function_message(message, provider=_PROVIDER, deployment=deployment)
    if len(system) == 1 and set(system[0]) == {"type", "text"}:
        return system[0]["text"], turns  # the plain form, when no block carries a marker
    return system, turns


def cache_control(
    marker: dict[str, Any] | UnsetType,
    breakpoint_: dict[str, Any] | UnsetType,
    where: str,
    deployment: str,
) -> dict[str, Any] | None:
    """Anthropic's `cache_control` for a part's marker or OpenAI breakpoint, else None.

    `{"type": "ephemeral"}` with an optional `ttl` of "5m" or "1h" is all Anthropic
    takes; an OpenAI breakpoint with a ttl ("30m", "12h": a minimum lifetime) gets "1h".
    """
    if isinstance(marker, dict):
        if (
            marker.get("type") != "ephemeral"
            or not set(marker) <= {"type", "ttl"}
            or ("ttl" in marker and marker["ttl"] not in _CACHE_TTLS)
        ):
            raise Unsupported(
                deployment,
                f"{_PROVIDER}: {where}.cache_control {marker!r} is not"
                " {'type': 'ephemeral'} with an optional ttl of '5m' or '1h'",
            )
        return dict(marker)
    if isinstance(breakpoint_, dict):
        return {"type": "ephemeral", "ttl": "1h"} if "ttl" in breakpoint_ else {"type": "ephemeral"}
    return None


def _marked(block: Block, part: object, where: str, deployment: str) -> Block:
    control = cache_control(
        getattr(part, "cache_control", UNSET),
        getattr(part, "prompt_cache_breakpoint", UNSET),
        where,
        deployment,
    )
    if control is not None:
        block["cache_control"] = control
    return block


def _add_turn(turns: list[dict[str, Any]], role: str, blocks: list[Block]) -> None:
    if not blocks:
        return  # an empty turn is rejected; its neighbours merge instead
    if turns and turns[-1]["role"] == role:
        blocks = [*turns[-1]["content"], *blocks]
        turns.pop()
    if role == "user":
        # tool_result blocks lead their user turn, answering the assistant turn before it.
        blocks.sort(key=lambda block: block["type"] != "tool_result")
    turns.append({"role": role, "content": blocks})


def _text_blocks(content: str | tuple[TextPart, ...], deployment: str) -> list[Block]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content.strip() else []
    # Blank text blocks are rejected ("text content blocks must be non-empty").
    return [
        _marked({"type": "text", "text": part.text}, part, f"content[{index}]", deployment)
        for index, part in enumerate(content)
        if part.text.strip()
    ]


def _user_blocks(content: str | tuple[UserPart, ...], deployment: str) -> list[Block]:
    if isinstance(content, str):
        return _text_blocks(content, deployment)
    blocks: list[Block] = []
    for index, part in enumerate(content):
        where = f"content[{index}]"
        match part:
            case TextPart(text=text):
                if text.strip():
                    blocks.append(_marked({"type": "text", "text": text}, part, where, deployment))
            case ImagePart(image_url=image):
                block = _image_block(image.url, where, deployment)
                blocks.append(_marked(block, part, where, deployment))
            case FilePart(file=file) if isinstance(file.file_data, str):
                block = _document_block(file.file_data, where, deployment)
                if isinstance(file.filename, str) and file.filename:
                    block["title"] = file.filename
                blocks.append(_marked(block, part, where, deployment))
            case FilePart():
                raise Unsupported(
                    deployment,
                    f"{_PROVIDER}: {where} file parts need file_data"
                    " (an OpenAI file_id means nothing to Anthropic)",
                )
            case AudioPart():
                raise Unsupported(
                    deployment, f"{_PROVIDER}: {where} input_audio has no Anthropic form"
                )
    return blocks


def _image_block(url: str, where: str, deployment: str) -> Block:
    if url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    data = split_data_url(url)
    if data is None or data[0] not in _IMAGE_TYPES:
        raise Unsupported(
            deployment,
            f"{_PROVIDER}: {where}.image_url must be an http(s) URL or a base64"
            f" data: URL of {', '.join(sorted(_IMAGE_TYPES))}",
        )
    media_type, payload = data
    return {
        "type": "image",
        "source": {"type": "base64", "media_type": media_type, "data": payload},
    }


def _document_block(file_data: str, where: str, deployment: str) -> Block:
    data = split_data_url(file_data)
    if data is None or data[0] not in _DOCUMENT_TYPES:
        raise Unsupported(
            deployment,
            f"{_PROVIDER}: {where}.file.file_data must be a base64 data: URL of application/pdf",
        )
    media_type, payload = data
    source = {"type": "base64", "media_type": media_type, "data": payload}
    return {"type": "document", "source": source}


def _tool_result(call_id: str, content: str | tuple[TextPart, ...], deployment: str) -> Block:
    result: Block = {"type": "tool_result", "tool_use_id": call_id}
    parts = (content,) if isinstance(content, str) else content
    text = "".join(part if isinstance(part, str) else part.text for part in parts)
    if text.strip():  # blank text is rejected; `content` is optional
        result["content"] = text
    for index, part in enumerate(parts):  # a marker on any part marks the whole result
        if not isinstance(part, str):
            _marked(result, part, f"tool content[{index}]", deployment)
    return result


def _assistant_blocks(message: AssistantMessage, deployment: str) -> list[Block]:
    blocks: list[Block] = [
        thinking_block(block, index, deployment)
        for index, block in enumerate(message.thinking_blocks or ())
    ]
    content = message.content
    if isinstance(content, str):
        blocks.extend(_text_blocks(content, deployment))
    elif content is not None:
        for index, part in enumerate(content):
            text = part.refusal if isinstance(part, RefusalPart) else part.text
            if text.strip():
                block = {"type": "text", "text": text}
                blocks.append(_marked(block, part, f"content[{index}]", deployment))
    elif isinstance(message.refusal, str):
        blocks.extend(_text_blocks(message.refusal, deployment))
    for call in function_calls(message):
        arguments = call_arguments(call, provider=_PROVIDER, deployment=deployment)
        blocks.append(
            {"type": "tool_use", "id": call.id, "name": call.function.name, "input": arguments}
        )
    return blocks


def thinking_block(block: dict[str, Any], index: int, deployment: str) -> Block:
    """A thinking block of an earlier answer, as Anthropic takes it back (exactly its fields)."""
    kind = block.get("type")
    if kind == "thinking":
        thinking, signature = block.get("thinking"), block.get("signature")
        if isinstance(thinking, str) and isinstance(signature, str) and signature:
            return {"type": "thinking", "thinking": thinking, "signature": signature}
    elif kind == "redacted_thinking" and isinstance(block.get("data"), str):
        return {"type": "redacted_thinking", "data": block["data"]}
    raise Unsupported(
        deployment,
        f"{_PROVIDER}: thinking_blocks[{index}] is not a signed thinking block"
        " ({'type': 'thinking', 'thinking', 'signature'}) nor a redacted one"
        " ({'type': 'redacted_thinking', 'data'})",
    )
