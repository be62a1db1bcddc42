"""Message- and tool-level fields of a request that an adapter may have to leave out.

Top-level parameters are named by each adapter's table. Fields inside messages,
content parts and tools are named here, with a path-like name, so that nothing a
translating adapter leaves out goes unnamed in `x-dispatcher-dropped-params`:

    messages[].name                          a participant name (no provider but OpenAI)
    messages[].audio                         an assistant's reference to an audio answer
    messages[].reasoning_content             reasoning text without its signed thinking blocks
    messages[].thinking_blocks               signed thinking blocks (Claude's own)
    messages[].tool_calls[].extra_content    provider data of a tool call (Gemini's signature)
    messages[].content[].image_url.detail    OpenAI's image resolution hint
    messages[].content[].cache_control       prompt-cache marker on a content part
    messages[].content[].prompt_cache_breakpoint  OpenAI's explicit cache breakpoint
    tools[].cache_control                    prompt-cache marker on a tool
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from msgspec import UNSET

from .._chat import (
    AssistantMessage,
    ChatRequest,
    DeveloperMessage,
    ImagePart,
    SystemMessage,
    Tool,
    ToolCall,
    UserMessage,
)

NAME: Final = "messages[].name"
AUDIO: Final = "messages[].audio"
REASONING: Final = "messages[].reasoning_content"
THINKING: Final = "messages[].thinking_blocks"
EXTRA_CONTENT: Final = "messages[].tool_calls[].extra_content"
IMAGE_DETAIL: Final = "messages[].content[].image_url.detail"
CACHE_CONTROL: Final = "messages[].content[].cache_control"
CACHE_BREAKPOINT: Final = "messages[].content[].prompt_cache_breakpoint"
TOOL_CACHE_CONTROL: Final = "tools[].cache_control"
ALL: Final = frozenset({
    NAME, AUDIO, REASONING, THINKING, EXTRA_CONTENT, IMAGE_DETAIL, CACHE_CONTROL,
    CACHE_BREAKPOINT, TOOL_CACHE_CONTROL,
})  # fmt: skip


def parts_dropped(request: ChatRequest, *, kept: frozenset[str]) -> tuple[str, ...]:
    """The names above that `request` uses and the adapter does not keep, sorted."""
    if kept >= ALL:
        return ()
    return tuple(sorted(set(_used(request)) - kept))


def _used(request: ChatRequest) -> Iterator[str]:
    for tool in request.tools or ():
        if isinstance(tool, Tool) and tool.cache_control is not UNSET:
            yield TOOL_CACHE_CONTROL
    for message in request.messages:
        if isinstance(message, SystemMessage | DeveloperMessage | UserMessage | AssistantMessage):
            if message.name is not UNSET:
                yield NAME
        if isinstance(message, AssistantMessage):
            if message.audio:
                yield AUDIO
            if message.thinking_blocks:
                yield THINKING
            elif message.reasoning_content:
                yield REASONING
            for call in message.tool_calls or ():
                if isinstance(call, ToolCall) and call.extra_content is not UNSET:
                    yield EXTRA_CONTENT
        content = getattr(message, "content", None)
        if isinstance(content, tuple):
            yield from _part_fields(content)


def _part_fields(parts: tuple[object, ...]) -> Iterator[str]:
    for part in parts:
        if getattr(part, "cache_control", UNSET) is not UNSET:
            yield CACHE_CONTROL
        if getattr(part, "prompt_cache_breakpoint", UNSET) is not UNSET:
            yield CACHE_BREAKPOINT
        if isinstance(part, ImagePart) and part.image_url.detail is not UNSET:
            yield IMAGE_DETAIL
