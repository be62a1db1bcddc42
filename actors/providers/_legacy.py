"""The deprecated `functions` API, rewritten as tools for providers that only take tools.

OpenAI still takes `functions`, `function_call`, an assistant's `function_call` and
`role: "function"` results; most other providers know only tools. The rewrite is
exact: each function becomes a function tool, `function_call` the `tool_choice`,
and each legacy call gets a deterministic id (`call_fn<message index>`) that its
result, the next `function` message with the same name, answers. The legacy API
makes one call per turn, so `parallel_tool_calls` is set to false when the
request says nothing about it. The answer then carries `tool_calls`, as OpenAI's
current API does.
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import UNSET

from .._chat import (
    AssistantMessage,
    ChatRequest,
    FunctionCall,
    FunctionChoice,
    FunctionDefinition,
    FunctionMessage,
    Message,
    NamedToolChoice,
    Tool,
    ToolCall,
    ToolChoiceFunction,
    ToolMessage,
)
from .._exceptions import Unsupported


def uses_functions(request: ChatRequest) -> bool:
    """True when `request` uses any part of the deprecated functions API."""
    return (
        request.functions is not UNSET
        or request.function_call is not UNSET
        or any(
            isinstance(message, FunctionMessage)
            or (isinstance(message, AssistantMessage) and _legacy_call(message) is not None)
            for message in request.messages
        )
    )


def functions_as_tools(request: ChatRequest) -> tuple[ChatRequest, tuple[str, ...]]:
    """`request` with the functions API rewritten as tools, and what could not go.

    `function_call` is dropped (and named) only when the request also sets
    `tool_choice`, which wins. A `function` message that answers no earlier call is
    left as it is: the adapter refuses it when it translates the messages
    (`refuse_function_message`), so this never raises and may run while planning.
    """
    if not uses_functions(request):
        return request, ()
    changes: dict[str, Any] = {"functions": UNSET, "function_call": UNSET}
    dropped: tuple[str, ...] = ()
    if request.functions:
        declared = {tool.function.name for tool in request.tools or () if isinstance(tool, Tool)}
        added = tuple(
            Tool(function=FunctionDefinition(
                name=function.name, description=function.description,
                parameters=function.parameters,
            ))
            for function in request.functions
            if function.name not in declared
        )  # fmt: skip
        changes["tools"] = (*(request.tools or ()), *added)
        if not request.tools and request.parallel_tool_calls is UNSET:
            changes["parallel_tool_calls"] = False
    if request.function_call is not UNSET:
        if request.tool_choice is not UNSET:
            dropped = ("function_call",)
        elif isinstance(request.function_call, FunctionChoice):
            name = ToolChoiceFunction(name=request.function_call.name)
            changes["tool_choice"] = NamedToolChoice(function=name)
        else:
            changes["tool_choice"] = request.function_call
    changes["messages"] = _messages(request.messages)
    return msgspec.structs.replace(request, **changes), dropped


def _messages(messages: tuple[Message, ...]) -> tuple[Message, ...]:
    out: list[Message] = []
    pending: dict[str, str] = {}  # function name -> id of its latest unanswered call
    for index, message in enumerate(messages):
        legacy = _legacy_call(message) if isinstance(message, AssistantMessage) else None
        if isinstance(message, AssistantMessage) and legacy is not None:
            call = ToolCall(id=f"call_fn{index}", function=legacy)
            pending[call.function.name] = call.id
            calls = (*(message.tool_calls or ()), call)
            out.append(msgspec.structs.replace(message, tool_calls=calls, function_call=UNSET))
        elif isinstance(message, FunctionMessage):
            call_id = pending.pop(message.name, None)
            if call_id is None:
                out.append(message)  # answers no call: the adapter refuses it
                continue
            out.append(ToolMessage(tool_call_id=call_id, content=message.content or ""))
        else:
            out.append(message)
    return tuple(out)


def _legacy_call(message: AssistantMessage) -> FunctionCall | None:
    call = message.function_call
    return call if isinstance(call, FunctionCall) else None


def refuse_function_message(message: FunctionMessage, *, provider: str, deployment: str) -> None:
    """Raise the `Unsupported` of a function message `functions_as_tools` could not pair."""
    raise Unsupported(
        deployment,
        f"{provider}: the role 'function' message of {message.name!r} answers no earlier"
        f" function_call; {provider} pairs each result with its call",
    )
