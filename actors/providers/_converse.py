"""OpenAI chat request -> Bedrock Converse request body (PROVIDERS.md §4.2-§4.4).

The messages are translated by `_converse_messages`; this module adds the rest:

    max_completion_tokens, temperature,  ->  inferenceConfig (maxTokens is sent when set,
    top_p, stop                              and whenever a thinking budget needs it)
    tools, tool_choice                   ->  toolConfig (sent whenever the history holds tool
                                             blocks, even without tools: Bedrock refuses such
                                             a history without it)
    tools[].function.strict              ->  toolSpec.strict (structured-output models)
    tools[].cache_control                ->  a cachePoint after the tool's spec
    reasoning_effort (Claude models)     ->  additionalModelRequestFields.thinking, and
                                             outputConfig.effort for adaptive models
    response_format json_schema          ->  outputConfig.textFormat (the schema as a string)
    service_tier priority/default/flex   ->  serviceTier.type
    metadata                             ->  requestMetadata (invocation-log filters)

Pure functions over data, shared by Converse and ConverseStream (the same body).
"""

from __future__ import annotations

import re
from typing import Any, Final

import msgspec
from msgspec import UNSET

from .._chat import (
    AssistantMessage,
    ChatRequest,
    FunctionDefinition,
    NamedToolChoice,
)
from .._exceptions import Unsupported
from ._chat_parts import function_calls, function_tools
from ._converse_messages import cache_point, converse_messages
from ._sampling import Generation
from ._toolids import IdRule, pattern_rule

BEDROCK_TOOL_ID: Final[IdRule] = pattern_rule(r"[a-zA-Z0-9_.:-]+", max_length=64)
"""`ToolUseId`: 1..64 characters of `[a-zA-Z0-9_.:-]` (PROVIDERS.md §4.3)."""
BEDROCK_TOOL_NAME: Final = re.compile(r"[a-zA-Z0-9_-]{1,64}")
"""`ToolName`: 1..64 characters of `[a-zA-Z0-9_-]` (PROVIDERS.md §4.3)."""
SERVICE_TIERS: Final = frozenset({"priority", "default", "flex"})
"""OpenAI service tiers Converse has (`ServiceTierType`); "auto" is Bedrock's default."""
_METADATA: Final = re.compile(r"[a-zA-Z0-9\s:_@$#=/+,-.]{0,256}")
"""`requestMetadata` keys (1..256) and values (0..256): botocore's service model patterns."""


def converse_body(
    request: ChatRequest, generation: Generation, *, claude: bool, send_max_tokens: bool,
    deployment: str,
) -> dict[str, Any]:  # fmt: skip
    """The Converse request body for `request` (ids conformed, drops planned).

    `claude`: the model takes Claude's thinking fields and blocks. `send_max_tokens`:
    send maxTokens even when the request sets none (a deployment's max_output_tokens).
    """
    system, turns = converse_messages(request.messages, deployment, claude=claude)
    body: dict[str, Any] = {"messages": turns}
    if system:
        body["system"] = system
    inference = inference_config(request, generation, send_max_tokens=send_max_tokens)
    if inference:
        body["inferenceConfig"] = inference
    tools = tool_config(request, turns, generation, deployment, cache_points=claude)
    if tools is not None:
        body["toolConfig"] = tools
    if generation.thinking is not None:
        body["additionalModelRequestFields"] = {"thinking": generation.thinking}
    output = output_config(request, generation)
    if output:
        body["outputConfig"] = output
    tier = request.service_tier
    if isinstance(tier, str) and tier in SERVICE_TIERS:
        body["serviceTier"] = {"type": tier}
    if isinstance(request.metadata, dict) and request.metadata:
        body["requestMetadata"] = dict(request.metadata)
    return body


def metadata_fits(metadata: object) -> bool:
    """True when `metadata` is valid `requestMetadata` (botocore's key/value patterns)."""
    if not isinstance(metadata, dict):
        return True
    return all(
        0 < len(key) <= 256 and _METADATA.fullmatch(key) and _METADATA.fullmatch(value)
        for key, value in metadata.items()
    )


def inference_config(
    request: ChatRequest, generation: Generation, *, send_max_tokens: bool
) -> dict[str, Any]:
    """`inferenceConfig`: maxTokens, temperature, topP and stopSequences that are set."""
    config: dict[str, Any] = {}
    asked = _given(request.max_completion_tokens) or _given(request.max_tokens)
    if asked is not None or send_max_tokens or generation.thinking is not None:
        config["maxTokens"] = generation.max_tokens  # a budget must stay below it
    if generation.temperature is not None:
        config["temperature"] = generation.temperature
    if generation.top_p is not None:
        config["topP"] = generation.top_p
    stop = _given(request.stop)
    if stop is not None:
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    return config


def output_config(request: ChatRequest, generation: Generation) -> dict[str, Any]:
    """`outputConfig`: the effort of an adaptive-thinking model, a JSON-schema text format."""
    config: dict[str, Any] = {}
    if generation.effort is not None:
        config["effort"] = generation.effort
    if generation.json_schema is not None:
        spec = request.response_format.json_schema if request.response_format else UNSET
        definition: dict[str, Any] = {
            "schema": msgspec.json.encode(generation.json_schema).decode()
        }
        if isinstance(spec, dict):
            for key in ("name", "description"):
                if isinstance(spec.get(key), str) and spec[key]:
                    definition[key] = spec[key]
        config["textFormat"] = {"type": "json_schema", "structure": {"jsonSchema": definition}}
    return config


def tool_config(
    request: ChatRequest,
    turns: list[dict[str, Any]],
    generation: Generation,
    deployment: str,
    *,
    cache_points: bool = False,
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
    specs: list[dict[str, Any]] = []
    for index, tool in enumerate(tools):
        specs.append(_tool_spec(tool.function, generation.strict_tools))
        point = cache_point(tool, f"tools[{index}]", deployment) if cache_points else None
        if point is not None:
            specs.append(point)
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


def _tool_spec(function: FunctionDefinition, strict: bool) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": function.name}
    if function.description:  # a NonEmptyString: an empty description is refused
        spec["description"] = function.description
    schema = function.parameters if function.parameters is not UNSET else None
    spec["inputSchema"] = {"json": schema or {"type": "object", "properties": {}}}
    if strict and function.strict is True:
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
