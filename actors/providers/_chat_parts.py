"""Reading an OpenAI chat request and a provider answer, for adapters that translate.

The Anthropic and Gemini adapters rebuild the request in another wire format.
What they read the same way lives here: message text, ``data:`` URLs, tool-call
arguments as JSON objects, the output-token budget, stop sequences, the
``created`` time of an answer, and the `server_error` raised for a garbage body.
Every refusal is an `Unsupported` that names the provider and the parameter.
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Mapping
from typing import Any, Final

import msgspec
from msgspec import UNSET

from .._chat import (
    AllowedToolsChoice,
    AssistantMessage,
    ChatRequest,
    CustomTool,
    CustomToolCall,
    NamedCustomToolChoice,
    TextPart,
    Tool,
    ToolCall,
)
from .._exceptions import Unsupported

_DATA_URL: Final = re.compile(
    r"data:(?P<type>[\w.+-]+/[\w.+-]+)(?:;[^,;]*)*;base64,(?P<data>.*)", re.S
)


def text_of(content: str | tuple[TextPart, ...]) -> str:
    """The text of a string or text-parts content (parts joined without separator)."""
    return content if isinstance(content, str) else "".join(part.text for part in content)


def split_data_url(url: str) -> tuple[str, str] | None:
    """`(media_type, base64_data)` of a base64 ``data:`` URL, else None."""
    match = _DATA_URL.fullmatch(url)
    return None if match is None else (match["type"].lower(), match["data"])


def refuse_custom_tools(request: ChatRequest, *, provider: str, deployment: str) -> None:
    """Raise `Unsupported` when `request` uses custom tools (only the OpenAI family has them).

    After this, `function_tools` and `function_calls` see every tool and call there is.
    """
    where = None
    if any(isinstance(tool, CustomTool) for tool in request.tools or ()):
        where = "tools[].custom"
    elif isinstance(request.tool_choice, NamedCustomToolChoice | AllowedToolsChoice):
        where = f"tool_choice {{'type': {request.tool_choice.__struct_config__.tag!r}}}"
    elif any(
        isinstance(call, CustomToolCall)
        for message in request.messages
        if isinstance(message, AssistantMessage)
        for call in message.tool_calls or ()
    ):
        where = "tool_calls[].custom"
    if where is not None:
        raise Unsupported(deployment, f"{provider}: {where} cannot be expressed (custom tools)")


def function_tools(request: ChatRequest) -> tuple[Tool, ...]:
    """The request's function tools (after `refuse_custom_tools`, all of its tools)."""
    return tuple(tool for tool in request.tools or () if isinstance(tool, Tool))


def function_calls(message: AssistantMessage) -> tuple[ToolCall, ...]:
    """An assistant message's function tool calls (after `refuse_custom_tools`, all)."""
    return tuple(call for call in message.tool_calls or () if isinstance(call, ToolCall))


def call_arguments(call: ToolCall, *, provider: str, deployment: str) -> dict[str, Any]:
    """The arguments of an assistant tool call as a JSON object (providers want objects).

    OpenAI sends arguments as a JSON string; an empty string means "no arguments".
    """
    text = call.function.arguments
    if not text.strip():
        return {}
    try:
        value = msgspec.json.decode(text)
    except msgspec.DecodeError:
        raise Unsupported(
            deployment,
            f"{provider}: tool_calls[id={call.id!r}].function.arguments is not valid JSON"
            f" ({text[:60]!r}); {provider} needs the arguments as a JSON object",
        ) from None
    if not isinstance(value, dict):
        raise Unsupported(
            deployment,
            f"{provider}: tool_calls[id={call.id!r}].function.arguments is a JSON"
            f" {type(value).__name__}, not an object; {provider} needs a JSON object",
        )
    return value


def json_object_or_none(text: str) -> dict[str, Any] | None:
    """`text` parsed as a JSON object, or None when it is not one."""
    try:
        value = msgspec.json.decode(text)
    except msgspec.DecodeError:
        return None
    return value if isinstance(value, dict) else None


def output_budget(request: ChatRequest) -> int | None:
    """`max_completion_tokens`, else the legacy `max_tokens`, else None."""
    for value in (request.max_completion_tokens, request.max_tokens):
        if isinstance(value, int):
            return value
    return None


def stop_sequences(request: ChatRequest) -> list[str] | None:
    """`stop` as a list (OpenAI also takes one bare string), or None when unset."""
    stop = request.stop
    if stop is UNSET or stop is None:
        return None
    return [stop] if isinstance(stop, str) else list(stop)


def check_tool_names(
    request: ChatRequest, rule: re.Pattern[str], *, provider: str, deployment: str, wording: str
) -> frozenset[str]:
    """The declared tool names, after checking them and every called name against `rule`."""
    declared = [tool.function.name for tool in function_tools(request)]
    called = [
        call.function.name
        for message in request.messages
        if isinstance(message, AssistantMessage)
        for call in function_calls(message)
    ]
    for where, names in (
        ("tools[].function.name", declared),
        ("tool_calls[].function.name", called),
    ):
        for name in names:
            if rule.fullmatch(name) is None:
                raise Unsupported(
                    deployment, f"{provider}: {where} {name!r} cannot be sent: {wording}"
                )
    return frozenset(declared)


def created_at(headers: Mapping[str, str]) -> int:
    """The answer's time from its ``date`` header (providers without ``created``), else now."""
    value = headers.get("date")
    if value:
        try:
            return int(email.utils.parsedate_to_datetime(value).timestamp())
        except (TypeError, ValueError):
            pass
    return int(time.time())
