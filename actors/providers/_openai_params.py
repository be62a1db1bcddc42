"""What the OpenAI family takes: one parameter table per flavour, and the body's extras.

OpenAI itself takes every parameter of its current API. Azure's dated api-versions
take a growing subset (Azure's published specs, `inference.json` of each version):
a parameter newer than the deployment's api-version is dropped and named, and
`max_completion_tokens` goes as `max_tokens` where it is unknown. Azure's v1 API
(no `api_version`) follows OpenAI's, so everything is sent. An OpenAI-compatible
server (vLLM, LiteLLM, Ollama, SGLang...) takes OpenAI's body: everything is sent,
and a server that knows a parameter acts on it while the others ignore it (vLLM
and LiteLLM log and ignore unknown fields) or answer a 400 the client sees.

Inside the messages, clients add extensions other providers need: Anthropic's
`cache_control`, replayed `reasoning_content` / `thinking_blocks`, Gemini's tool
call `extra_content`. OpenAI and Azure answer `Unknown parameter` for each, so
they are left out and named (`messages[].reasoning_content`...); a compatible
server gets them as they are (LiteLLM routes `cache_control` to Anthropic, Gemini's
compatible endpoint needs `extra_content` back).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import msgspec
from msgspec import UNSET

from .._chat import (
    AssistantMessage,
    ChatRequest,
    DeveloperMessage,
    FilePart,
    ImagePart,
    Message,
    SystemMessage,
    TextPart,
    Tool,
    ToolCall,
    ToolMessage,
    UserMessage,
)
from ._base import OPTIONAL_PARAMS, Handling, ParamRow, ParamTable, param_table

SENT: Final = ParamRow(Handling.SENT)

_OPENAI_NOTES: Final[Mapping[str, str]] = {
    "metadata": "OpenAI's stored-completion tags; never the job envelope's `metadata`",
    "stream_options": "`include_usage` is added to streams so usage is counted; the client"
    " sees the usage chunk only if it asked",
}

OPENAI_TABLE: Final = param_table(
    {name: ParamRow(Handling.SENT, _OPENAI_NOTES.get(name, "")) for name in OPTIONAL_PARAMS}
)
"""`openai` (and `mock`): the current API, every parameter sent as the client gave it."""

COMPATIBLE_TABLE: Final = param_table(
    {
        name: ParamRow(Handling.SENT, "the server's own `metadata`" if name == "metadata" else "")
        for name in OPTIONAL_PARAMS
    }
)
"""`openai-compatible`: OpenAI's body; the server acts on what it knows."""

AZURE_SINCE: Final[Mapping[str, str]] = {
    # 2024-06-01 (GA) has none of these; 2024-10-21 (GA) has the first three.
    "parallel_tool_calls": "2024-07-01-preview",
    "stream_options": "2024-08-01-preview",
    "max_completion_tokens": "2024-09-01-preview",
    "store": "2024-12-01-preview",
    "metadata": "2024-12-01-preview",
    "reasoning_effort": "2024-12-01-preview",
    "modalities": "2025-01-01-preview",
    "audio": "2025-01-01-preview",
    "prediction": "2025-01-01-preview",
}
"""The first dated api-version that takes each parameter (older ones answer 400)."""

AZURE_V1_ONLY: Final = frozenset(
    {
        "moderation",
        "prompt_cache_key",
        "prompt_cache_options",
        "prompt_cache_retention",
        "safety_identifier",
        "service_tier",
        "verbosity",
        "web_search_options",
    }
)
"""Parameters no dated api-version declares: only the v1 API (no `api_version`) takes them."""

AZURE_DEVELOPER_SINCE: Final = "2024-12-01-preview"
"""Older api-versions know no `developer` role: its messages go as `system` ones."""


def azure_table(api_version: str | None) -> ParamTable:
    """Azure's table for a deployment's `api_version` (None: the v1 API)."""
    rows: dict[str, ParamRow] = {}
    for name in OPTIONAL_PARAMS:
        since = AZURE_SINCE.get(name)
        if api_version is None:
            if name in AZURE_V1_ONLY:
                note = "v1 API only: dropped with a dated `api_version`"
            elif name == "max_completion_tokens":
                note = f"as `max_tokens` with an `api_version` before {since}"
            elif since is not None:
                note = f"dropped with an `api_version` before {since}"
            else:
                note = ""
            rows[name] = ParamRow(Handling.SENT, note)
        elif name in AZURE_V1_ONLY:
            rows[name] = ParamRow(Handling.DROPPED, "v1 API only")
        elif since is not None and api_version < since:
            if name == "max_completion_tokens":
                rows[name] = ParamRow(Handling.MAPPED, f"`max_tokens` (new in {since})")
            else:
                rows[name] = ParamRow(Handling.DROPPED, f"new in api-version {since}")
        else:
            rows[name] = SENT
    return param_table(rows)


class Extras(msgspec.Struct, frozen=True, kw_only=True):
    """Which message-level extensions a flavour leaves out of the body."""

    cache_control: bool = False
    """Anthropic's marker on content parts and tools."""
    prompt_cache_breakpoint: bool = False
    """OpenAI's own marker, which dated Azure api-versions do not know."""
    replayed_reasoning: bool = False
    """`reasoning_content` and `thinking_blocks` on assistant messages."""
    extra_content: bool = False
    """Gemini's `extra_content` on tool calls."""
    developer_as_system: bool = False
    """Send `developer` messages as `system` ones (older Azure api-versions)."""

    def any(self) -> bool:
        return (
            self.cache_control
            or self.prompt_cache_breakpoint
            or self.replayed_reasoning
            or self.extra_content
            or self.developer_as_system
        )


OPENAI_EXTRAS: Final = Extras(cache_control=True, replayed_reasoning=True, extra_content=True)
AZURE_V1_EXTRAS: Final = OPENAI_EXTRAS
NO_EXTRAS: Final = Extras()


def azure_extras(api_version: str) -> Extras:
    """What a dated Azure api-version cannot take inside the messages."""
    return Extras(
        cache_control=True,
        prompt_cache_breakpoint=True,
        replayed_reasoning=True,
        extra_content=True,
        developer_as_system=api_version < AZURE_DEVELOPER_SINCE,
    )


def strip_extras(request: ChatRequest, extras: Extras) -> tuple[ChatRequest, tuple[str, ...]]:
    """`request` without the extensions `extras` names, and the paths of those it carried.

    A path is named only when the field held something (a `null` carries nothing).
    The request is returned as is (no copy) when there is nothing to take out.
    """
    if not extras.any():
        return request, ()
    named: set[str] = set()
    messages = tuple(_message(message, extras, named) for message in request.messages)
    tools = request.tools
    if extras.cache_control and tools:
        tools = _same_or_new(tools, tuple(_tool(tool, named) for tool in tools))
    messages = _same_or_new(request.messages, messages)
    if messages is request.messages and tools is request.tools:
        return request, ()
    return msgspec.structs.replace(request, messages=messages, tools=tools), tuple(sorted(named))


def _same_or_new(old: tuple[Any, ...], new: tuple[Any, ...]) -> tuple[Any, ...]:
    """`old` itself when `new` holds the very same objects (nothing was taken out)."""
    return old if all(a is b for a, b in zip(new, old, strict=True)) else new


def _message(message: Message, extras: Extras, named: set[str]) -> Message:
    match message:
        case DeveloperMessage() if extras.developer_as_system:
            content = _parts(message.content, extras, named)
            return SystemMessage(content=content, name=message.name)
        case SystemMessage() | DeveloperMessage() | UserMessage() | ToolMessage():
            content = _parts(message.content, extras, named)
            if content is message.content:
                return message
            return msgspec.structs.replace(message, content=content)
        case AssistantMessage():
            return _assistant(message, extras, named)
    return message


def _assistant(message: AssistantMessage, extras: Extras, named: set[str]) -> AssistantMessage:
    changes: dict[str, Any] = {}
    if isinstance(message.content, tuple):
        content = _parts(message.content, extras, named)
        if content is not message.content:
            changes["content"] = content
    if extras.replayed_reasoning:
        for field in ("reasoning_content", "thinking_blocks"):
            value = getattr(message, field)
            if value is not UNSET:
                changes[field] = UNSET
                if value is not None:
                    named.add(f"messages[].{field}")
    if extras.extra_content and message.tool_calls:
        calls = _same_or_new(message.tool_calls, tuple(
            msgspec.structs.replace(call, extra_content=UNSET)
            if isinstance(call, ToolCall) and call.extra_content is not UNSET
            else call
            for call in message.tool_calls
        ))  # fmt: skip
        if calls is not message.tool_calls:
            changes["tool_calls"] = calls
            named.add("messages[].tool_calls[].extra_content")
    return msgspec.structs.replace(message, **changes) if changes else message


def _parts(content: Any, extras: Extras, named: set[str]) -> Any:
    if not isinstance(content, tuple):
        return content
    return _same_or_new(content, tuple(_part(part, extras, named) for part in content))


def _part(part: Any, extras: Extras, named: set[str]) -> Any:
    if not isinstance(part, TextPart | ImagePart | FilePart):
        return part
    changes: dict[str, Any] = {}
    if extras.cache_control and part.cache_control is not UNSET:
        changes["cache_control"] = UNSET
        named.add("messages[].content[].cache_control")
    if extras.prompt_cache_breakpoint and part.prompt_cache_breakpoint is not UNSET:
        changes["prompt_cache_breakpoint"] = UNSET
        named.add("messages[].content[].prompt_cache_breakpoint")
    return msgspec.structs.replace(part, **changes) if changes else part


def _tool(tool: Any, named: set[str]) -> Any:
    if isinstance(tool, Tool) and tool.cache_control is not UNSET:
        named.add("tools[].cache_control")
        return msgspec.structs.replace(tool, cache_control=UNSET)
    return tool
