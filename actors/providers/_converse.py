"""OpenAI chat request -> Bedrock Converse request body (PROVIDERS.md §4.2-§4.4).

Bedrock is strict about the shape of a conversation, so `converse_body` normalises
the history rather than forwarding it: system and developer messages become
`system` blocks; OpenAI `tool` messages become `toolResult` blocks of a user turn;
consecutive turns of one role are merged (Bedrock demands strict user/assistant
alternation, and several tool results plus the next user text form one turn); and
`toolConfig` is sent whenever the history holds tool blocks, even when the request
has no tools, because Bedrock refuses such a history without it.

Pure functions over data, shared by Converse and ConverseStream (the same body).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Final

import msgspec
from msgspec import UNSET

from .._chat import (
    AssistantMessage,
    ChatRequest,
    DeveloperMessage,
    FunctionDefinition,
    ImagePart,
    Message,
    NamedToolChoice,
    SystemMessage,
    TextPart,
    ToolMessage,
    UserMessage,
)
from .._exceptions import Unsupported
from ._chat_parts import function_calls, function_tools
from ._toolids import IdRule, pattern_rule

BEDROCK_TOOL_ID: Final[IdRule] = pattern_rule(r"[a-zA-Z0-9_.:-]+", max_length=64)
"""`ToolUseId`: 1..64 characters of `[a-zA-Z0-9_.:-]` (PROVIDERS.md §4.3)."""
BEDROCK_TOOL_NAME: Final = re.compile(r"[a-zA-Z0-9_-]{1,64}")
"""`ToolName`: 1..64 characters of `[a-zA-Z0-9_-]` (PROVIDERS.md §4.3)."""
PLACEHOLDER_USER_TEXT: Final = "(continue)"
"""Sent as the first user turn when a conversation has none: Bedrock requires one."""

_IMAGE_FORMATS: Final = {"png": "png", "jpeg": "jpeg", "jpg": "jpeg", "gif": "gif", "webp": "webp"}
_DATA_URL: Final = re.compile(r"data:image/([a-z]+);base64,(.+)", re.DOTALL)


def converse_body(request: ChatRequest, deployment: str) -> dict[str, Any]:
    """The Converse request body for `request` (ids already conformed); raises `Unsupported`."""
    system, turns = converse_messages(request.messages, deployment)
    body: dict[str, Any] = {"messages": turns}
    if system:
        body["system"] = system
    inference = inference_config(request, deployment)
    if inference:
        body["inferenceConfig"] = inference
    tools = tool_config(request, turns, deployment)
    if tools is not None:
        body["toolConfig"] = tools
    return body


def converse_messages(
    messages: Iterable[Message], deployment: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """`(system blocks, alternating user/assistant turns)` for an OpenAI message list."""
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for message in messages:
        match message:
            case SystemMessage() | DeveloperMessage():
                system += [{"text": text} for text in _texts(message.content)]
            case UserMessage():
                _append(turns, "user", _user_blocks(message, deployment))
            case AssistantMessage():
                _append(turns, "assistant", _assistant_blocks(message, deployment))
            case ToolMessage():
                text = "".join(_all_texts(message.content))
                result = {"toolUseId": message.tool_call_id, "content": [{"text": text}]}
                _append(turns, "user", [{"toolResult": {**result, "status": "success"}}])
    if not turns or turns[0]["role"] != "user":
        turns.insert(0, {"role": "user", "content": [{"text": PLACEHOLDER_USER_TEXT}]})
    return system, turns


def inference_config(request: ChatRequest, deployment: str) -> dict[str, Any]:
    """`inferenceConfig`: maxTokens, temperature, topP and stopSequences that are set."""
    config: dict[str, Any] = {}
    max_tokens = _given(request.max_completion_tokens)
    if max_tokens is None:
        max_tokens = _given(request.max_tokens)
    if max_tokens is not None:
        config["maxTokens"] = max_tokens
    temperature = _given(request.temperature)
    if temperature is not None:
        if not 0.0 <= temperature <= 1.0:
            # OpenAI allows up to 2; rescaling would silently change the sampling asked for.
            raise Unsupported(
                deployment, f"bedrock: temperature {temperature} is outside Converse's [0, 1]"
            )
        config["temperature"] = temperature
    top_p = _given(request.top_p)
    if top_p is not None:
        config["topP"] = top_p
    stop = _given(request.stop)
    if stop is not None:
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    return config


def tool_config(
    request: ChatRequest, turns: list[dict[str, Any]], deployment: str
) -> dict[str, Any] | None:
    """`toolConfig`, or None; present whenever the history has toolUse/toolResult blocks."""
    history = _history_tool_names(turns)
    has_tool_blocks = history is not None
    tools = function_tools(request)
    choice = request.tool_choice
    if tools and choice == "none":
        if has_tool_blocks:
            # Bedrock has no "none" and refuses tool history without toolConfig (§4.4).
            raise Unsupported(
                deployment,
                'bedrock: tool_choice "none" cannot be expressed by Converse when the history'
                " has tool calls (toolConfig is then required and has no none choice)",
            )
        return None  # no toolConfig: the model cannot call a tool, which is "none" (§4.2)
    specs = [_tool_spec(tool.function) for tool in tools]
    if not specs and has_tool_blocks:
        # Reconstruct minimal specs so the history is accepted; no tool is offered anew.
        specs = [
            {"toolSpec": {"name": name, "inputSchema": {"json": {"type": "object"}}}}
            for name in history or ()
        ]
    if not specs:
        return None
    config: dict[str, Any] = {"tools": specs}
    if tools and choice is not UNSET:
        if isinstance(choice, NamedToolChoice):
            config["toolChoice"] = {"tool": {"name": choice.function.name}}
        elif choice == "required":
            config["toolChoice"] = {"any": {}}
        elif choice == "auto":
            config["toolChoice"] = {"auto": {}}
    return config


def check_tool_names(request: ChatRequest, deployment: str) -> None:
    """Raise `Unsupported` when Bedrock's `ToolName` rule rejects a name the request sends."""
    for name in tool_names(request):
        check_tool_name(name, deployment)


def check_tool_name(name: str, deployment: str) -> None:
    """Raise `Unsupported` when Bedrock's `ToolName` rule rejects `name`."""
    if BEDROCK_TOOL_NAME.fullmatch(name) is None:
        raise Unsupported(
            deployment, f"bedrock: tool name {name!r} does not match [a-zA-Z0-9_-]{{1,64}}"
        )


def _given(value: Any) -> Any:
    """`value`, or None when it is UNSET or null (both mean "not set" to Converse)."""
    return None if value is UNSET else value


def _append(turns: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    if not blocks:
        return  # an empty message adds nothing, and Bedrock refuses empty or blank content
    if turns and turns[-1]["role"] == role:
        turns[-1]["content"].extend(blocks)
    else:
        turns.append({"role": role, "content": blocks})


def _texts(content: str | tuple[Any, ...] | None) -> list[str]:
    """Non-blank texts of a content (Bedrock rejects blank text blocks [OBS])."""
    return [text for text in _all_texts(content) if text.strip()]


def _all_texts(content: str | tuple[Any, ...] | None) -> list[str]:
    if content is None:
        return []
    if isinstance(content, str):
        return [content]
    return [part.text if isinstance(part, TextPart) else part.refusal for part in content]


def _user_blocks(message: UserMessage, deployment: str) -> list[dict[str, Any]]:
    if isinstance(message.content, str):
        return [{"text": text} for text in _texts(message.content)]
    blocks: list[dict[str, Any]] = []
    for part in message.content:
        if isinstance(part, TextPart):
            blocks += [{"text": text} for text in _texts(part.text)]
        elif isinstance(part, ImagePart):
            blocks.append(_image_block(part.image_url.url, deployment))
        else:
            kind = type(part).__struct_config__.tag
            raise Unsupported(deployment, f"bedrock: content parts of type {kind!r} are not sent")
    return blocks


def _image_block(url: str, deployment: str) -> dict[str, Any]:
    match = _DATA_URL.fullmatch(url)
    if match is None or match.group(1) not in _IMAGE_FORMATS:
        raise Unsupported(
            deployment,
            "bedrock: image_url must be a base64 data: URL of a png, jpeg, gif or webp image"
            " (Converse cannot fetch URLs)",
        )
    source = {"bytes": match.group(2)}
    return {"image": {"format": _IMAGE_FORMATS[match.group(1)], "source": source}}


def _assistant_blocks(message: AssistantMessage, deployment: str) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = [{"text": text} for text in _texts(message.content)]
    for call in function_calls(message):
        try:
            arguments = msgspec.json.decode(call.function.arguments or "{}")
        except msgspec.DecodeError:
            raise Unsupported(
                deployment,
                f"bedrock: arguments of tool call {call.id!r} are not JSON (toolUse.input"
                " must be a JSON document)",
            ) from None
        tool_use = {"toolUseId": call.id, "name": call.function.name, "input": arguments}
        blocks.append({"toolUse": tool_use})
    return blocks


def _tool_spec(function: FunctionDefinition) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": function.name}
    if function.description:  # a NonEmptyString: an empty description is refused
        spec["description"] = function.description
    schema = function.parameters if function.parameters is not UNSET else None
    spec["inputSchema"] = {"json": schema or {"type": "object", "properties": {}}}
    if function.strict is True:
        spec["strict"] = True
    return {"toolSpec": spec}


def _history_tool_names(turns: list[dict[str, Any]]) -> list[str] | None:
    """Tool names used by toolUse blocks (None when there are no tool blocks at all)."""
    names: list[str] = []
    seen = False
    for turn in turns:
        for block in turn["content"]:
            if "toolUse" in block:
                seen = True
                if block["toolUse"]["name"] not in names:
                    names.append(block["toolUse"]["name"])
            elif "toolResult" in block:
                seen = True
    return names if seen else None


def tool_names(request: ChatRequest) -> list[str]:
    """Every tool name the request sends: its tools and the calls in its history."""
    names = [tool.function.name for tool in function_tools(request)]
    for message in request.messages:
        if isinstance(message, AssistantMessage):
            names += [call.function.name for call in function_calls(message)]
    return names
