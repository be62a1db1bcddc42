"""The deprecated functions API, restated in the tools API (for adapters that translate).

    functions [{name, description, parameters}]   ->  tools [{"type": "function", ...}]
    function_call "none" / "auto" / {"name": X}    ->  tool_choice "none" / "auto" / {function X}
    assistant function_call {name, arguments}      ->  tool_calls [{id, function}]
    role "function" {name, content}                ->  role "tool" {tool_call_id, content}

Legacy calls carry no id: each gets ``legacy<n>`` (n counts legacy calls in the
conversation), and a function message answers the oldest unanswered legacy call of
its name. A function message that answers none is left as it is: a provider that
pairs results with calls refuses it when it translates the messages.
"""

from __future__ import annotations

from msgspec import UNSET
from msgspec.structs import replace

from .._chat import (
    AssistantMessage,
    ChatRequest,
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


def uses_legacy_functions(request: ChatRequest) -> bool:
    """True when `request` uses any part of the functions API."""
    return (
        request.functions is not UNSET
        or request.function_call is not UNSET
        or any(
            isinstance(message, FunctionMessage)
            or (isinstance(message, AssistantMessage) and message.function_call)
            for message in request.messages
        )
    )


def modernize(request: ChatRequest) -> ChatRequest:
    """`request` with its functions-API parts restated as tools (see the module docstring).

    `tool_choice` wins over `function_call` when both are set (the caller names the
    loser as dropped: `legacy_conflicts`).
    """
    if not uses_legacy_functions(request):
        return request
    tools = tuple(request.tools or ()) + tuple(
        Tool(
            function=FunctionDefinition(
                name=function.name,
                description=function.description,
                parameters=function.parameters,
            )
        )
        for function in request.functions or ()
    )
    choice = request.tool_choice
    legacy_choice = request.function_call
    if choice is UNSET and legacy_choice is not UNSET:
        choice = (
            NamedToolChoice(function=ToolChoiceFunction(name=legacy_choice.name))
            if isinstance(legacy_choice, FunctionChoice)
            else legacy_choice
        )
    return replace(
        request,
        tools=tools or UNSET,
        tool_choice=choice,
        functions=UNSET,
        function_call=UNSET,
        messages=_messages(request.messages),
    )


def legacy_conflicts(request: ChatRequest) -> tuple[str, ...]:
    """`("function_call",)` when `tool_choice` overrides it (both set), else ()."""
    both = request.function_call is not UNSET and request.tool_choice is not UNSET
    return ("function_call",) if both else ()


def _messages(messages: tuple[Message, ...]) -> tuple[Message, ...]:
    out: list[Message] = []
    pending: list[tuple[str, str]] = []  # (name, id) of legacy calls not yet answered
    count = 0
    for message in messages:
        if isinstance(message, AssistantMessage) and message.function_call:
            call_id = f"legacy{count}"
            count += 1
            legacy = message.function_call
            pending.append((legacy.name, call_id))
            calls = (*(message.tool_calls or ()), ToolCall(id=call_id, function=legacy))
            out.append(replace(message, function_call=UNSET, tool_calls=calls))
        elif isinstance(message, FunctionMessage):
            match = next((item for item in pending if item[0] == message.name), None)
            if match is None:
                out.append(message)  # answers no call: the adapter refuses it
                continue
            pending.remove(match)
            out.append(ToolMessage(tool_call_id=match[1], content=message.content or ""))
        else:
            out.append(message)
    return tuple(out)


def refuse_function_message(message: FunctionMessage, *, provider: str, deployment: str) -> None:
    """Raise the `Unsupported` of a function message `modernize` could not pair with a call."""
    raise Unsupported(
        deployment,
        f"{provider}: the role 'function' message of {message.name!r} answers no assistant"
        " function_call before it (a result must follow its call)",
    )
