"""OpenAI chat messages -> Bedrock Converse `system` and `messages` (PROVIDERS.md §4.2-§4.4).

Bedrock is strict about the shape of a conversation, so the history is normalised
rather than forwarded: system and developer messages become `system` blocks; OpenAI
`tool` messages become `toolResult` blocks of a user turn; consecutive turns of one
role are merged (Bedrock demands strict user/assistant alternation, and several tool
results plus the next user text form one turn); a conversation without a user turn
first gets a placeholder one.

    user text / image / file (data: URL)  ->  text / image / document blocks
    assistant thinking_blocks (Claude)    ->  reasoningContent blocks, first in the turn
    assistant tool_calls                  ->  toolUse blocks
    a part's cache_control / breakpoint   ->  a cachePoint block right after its block
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Final

import msgspec
from msgspec import UNSET

from .._chat import (
    AssistantMessage,
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
)
from .._exceptions import Unsupported
from ._chat_parts import function_calls, split_data_url
from ._legacy import refuse_function_message

PLACEHOLDER_USER_TEXT: Final = "(continue)"
"""Sent as the first user turn when a conversation has none: Bedrock requires one."""
DOCUMENT_FORMATS: Final = {
    "application/pdf": "pdf",
    "text/csv": "csv",
    "application/msword": "doc",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.ms-excel": "xls",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "text/html": "html",
    "text/plain": "txt",
    "text/markdown": "md",
}
"""Media type of a file part's data: URL -> Converse `DocumentFormat`."""

_IMAGE_FORMATS: Final = {"png": "png", "jpeg": "jpeg", "jpg": "jpeg", "gif": "gif", "webp": "webp"}
_DATA_URL: Final = re.compile(r"data:image/([a-z]+);base64,(.+)", re.DOTALL)
_CACHE_TTLS: Final = frozenset({"5m", "1h"})
# A document name: alphanumerics, single spaces, hyphens, parentheses, square brackets.
_NAME_JUNK: Final = re.compile(r"[^A-Za-z0-9\s()\[\]-]+")

Block = dict[str, Any]


class _Context:
    """Per-request translation state: whether to keep Claude-only blocks, document names."""

    __slots__ = ("claude", "deployment", "names")

    def __init__(self, deployment: str, *, claude: bool) -> None:
        self.deployment = deployment
        self.claude = claude
        self.names: set[str] = set()


def converse_messages(
    messages: Iterable[Message], deployment: str, *, claude: bool = False
) -> tuple[list[Block], list[dict[str, Any]]]:
    """`(system blocks, alternating user/assistant turns)` for an OpenAI message list.

    With `claude`, thinking blocks go back as reasoningContent and cache markers become
    cachePoint blocks; other models get neither (the adapter names them as dropped).
    """
    context = _Context(deployment, claude=claude)
    system: list[Block] = []
    turns: list[dict[str, Any]] = []
    for message in messages:
        match message:
            case SystemMessage() | DeveloperMessage():
                system += _text_blocks(message.content, context)
            case UserMessage():
                _append(turns, "user", _user_blocks(message, context))
            case AssistantMessage():
                _append(turns, "assistant", _assistant_blocks(message, context))
            case ToolMessage():
                _append(turns, "user", _tool_result(message, context))
            case FunctionMessage():
                refuse_function_message(message, provider="bedrock", deployment=deployment)
    if not turns or turns[0]["role"] != "user":
        turns.insert(0, {"role": "user", "content": [{"text": PLACEHOLDER_USER_TEXT}]})
    return system, turns


def cache_point(part: object, where: str, deployment: str) -> Block | None:
    """The cachePoint block that follows a part with a cache marker, else None."""
    marker = getattr(part, "cache_control", UNSET)
    breakpoint_ = getattr(part, "prompt_cache_breakpoint", UNSET)
    if isinstance(marker, dict):
        if (
            marker.get("type") != "ephemeral"
            or not set(marker) <= {"type", "ttl"}
            or ("ttl" in marker and marker["ttl"] not in _CACHE_TTLS)
        ):
            raise Unsupported(
                deployment,
                f"bedrock: {where}.cache_control {marker!r} is not {{'type': 'ephemeral'}}"
                " with an optional ttl of '5m' or '1h'",
            )
        point: Block = {"type": "default"}
        if "ttl" in marker:
            point["ttl"] = marker["ttl"]
        return {"cachePoint": point}
    if isinstance(breakpoint_, dict):  # OpenAI's minimum lifetimes (30m, 12h): the longer TTL
        return {"cachePoint": {"type": "default", "ttl": "1h"} if "ttl" in breakpoint_ else
                {"type": "default"}}  # fmt: skip
    return None


def _append(turns: list[dict[str, Any]], role: str, blocks: list[Block]) -> None:
    if not blocks:
        return  # an empty message adds nothing, and Bedrock refuses empty or blank content
    if turns and turns[-1]["role"] == role:
        turns[-1]["content"].extend(blocks)
    else:
        turns.append({"role": role, "content": blocks})


def _marked(blocks: list[Block], block: Block, part: object, where: str, ctx: _Context) -> None:
    blocks.append(block)
    point = cache_point(part, where, ctx.deployment) if ctx.claude else None
    if point is not None:
        blocks.append(point)


def _text_blocks(content: str | tuple[Any, ...] | None, ctx: _Context) -> list[Block]:
    """Text blocks of a content, blank ones left out (Bedrock rejects them [OBS])."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content.strip() else []
    blocks: list[Block] = []
    for index, part in enumerate(content):
        text = part.refusal if isinstance(part, RefusalPart) else part.text
        if text.strip():
            _marked(blocks, {"text": text}, part, f"content[{index}]", ctx)
    return blocks


def _user_blocks(message: UserMessage, ctx: _Context) -> list[Block]:
    if isinstance(message.content, str):
        return _text_blocks(message.content, ctx)
    blocks: list[Block] = []
    for index, part in enumerate(message.content):
        where = f"content[{index}]"
        if isinstance(part, TextPart):
            if part.text.strip():
                _marked(blocks, {"text": part.text}, part, where, ctx)
        elif isinstance(part, ImagePart):
            _marked(blocks, _image_block(part.image_url.url, ctx.deployment), part, where, ctx)
        elif isinstance(part, FilePart):
            _marked(blocks, _document_block(part, where, ctx), part, where, ctx)
        else:
            kind = type(part).__struct_config__.tag
            raise Unsupported(
                ctx.deployment, f"bedrock: content parts of type {kind!r} are not sent"
            )
    return blocks


def _image_block(url: str, deployment: str) -> Block:
    match = _DATA_URL.fullmatch(url)
    if match is None or match.group(1) not in _IMAGE_FORMATS:
        raise Unsupported(
            deployment,
            "bedrock: image_url must be a base64 data: URL of a png, jpeg, gif or webp image"
            " (Converse cannot fetch URLs)",
        )
    source = {"bytes": match.group(2)}
    return {"image": {"format": _IMAGE_FORMATS[match.group(1)], "source": source}}


def _document_block(part: FilePart, where: str, ctx: _Context) -> Block:
    data = split_data_url(part.file.file_data) if isinstance(part.file.file_data, str) else None
    if data is None or data[0] not in DOCUMENT_FORMATS:
        raise Unsupported(
            ctx.deployment,
            f"bedrock: {where}.file needs file_data, a base64 data: URL of one of"
            f" {', '.join(DOCUMENT_FORMATS)} (an OpenAI file_id means nothing to Bedrock)",
        )
    media_type, payload = data
    name = _document_name(part.file.filename, ctx)
    return {"document": {"format": DOCUMENT_FORMATS[media_type], "name": name,
                         "source": {"bytes": payload}}}  # fmt: skip


def _document_name(filename: object, ctx: _Context) -> str:
    """A name Bedrock takes (see `_NAME_JUNK`), unique in the request, from the filename."""
    stem = filename.rsplit(".", 1)[0] if isinstance(filename, str) else ""
    base = " ".join(_NAME_JUNK.sub(" ", stem).split())[:180] or "document"
    name, count = base, 1
    while name in ctx.names:
        count += 1
        name = f"{base} ({count})"
    ctx.names.add(name)
    return name


def _tool_result(message: ToolMessage, ctx: _Context) -> list[Block]:
    parts = (message.content,) if isinstance(message.content, str) else message.content
    text = "".join(part if isinstance(part, str) else part.text for part in parts)
    result = {"toolUseId": message.tool_call_id, "content": [{"text": text}], "status": "success"}
    blocks: list[Block] = [{"toolResult": result}]
    points = [
        cache_point(part, f"tool content[{index}]", ctx.deployment)
        for index, part in enumerate(parts)
        if ctx.claude and not isinstance(part, str)
    ]
    point = next((p for p in reversed(points) if p is not None), None)
    if point is not None:  # a marker on any part marks the whole result
        blocks.append(point)
    return blocks


def _assistant_blocks(message: AssistantMessage, ctx: _Context) -> list[Block]:
    blocks: list[Block] = []
    if ctx.claude:
        blocks += [reasoning_block(b, i, ctx.deployment) for i, b in
                   enumerate(message.thinking_blocks or ())]  # fmt: skip
    content = message.content
    if content is None and isinstance(message.refusal, str):
        content = message.refusal
    blocks += _text_blocks(content, ctx)
    for call in function_calls(message):
        try:
            arguments = msgspec.json.decode(call.function.arguments or "{}")
        except msgspec.DecodeError:
            raise Unsupported(
                ctx.deployment,
                f"bedrock: arguments of tool call {call.id!r} are not JSON (toolUse.input"
                " must be a JSON document)",
            ) from None
        tool_use = {"toolUseId": call.id, "name": call.function.name, "input": arguments}
        blocks.append({"toolUse": tool_use})
    return blocks


def reasoning_block(block: dict[str, Any], index: int, deployment: str) -> Block:
    """A signed thinking block of an earlier answer as a Converse reasoningContent block."""
    kind = block.get("type")
    if kind == "thinking":
        thinking, signature = block.get("thinking"), block.get("signature")
        if isinstance(thinking, str) and isinstance(signature, str) and signature:
            text = {"text": thinking, "signature": signature}
            return {"reasoningContent": {"reasoningText": text}}
    elif kind == "redacted_thinking" and isinstance(block.get("data"), str):
        return {"reasoningContent": {"redactedContent": block["data"]}}
    raise Unsupported(
        deployment,
        f"bedrock: thinking_blocks[{index}] is not a signed thinking block"
        " ({'type': 'thinking', 'thinking', 'signature'}) nor a redacted one"
        " ({'type': 'redacted_thinking', 'data'})",
    )
