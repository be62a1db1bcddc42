"""Anthropic Messages API (PROVIDERS.md §3): OpenAI chat in, Anthropic message out.

    OpenAI chat                          Anthropic Messages
    messages                        ->   `system` + alternating turns (`_anthropic_messages`)
    tool_choice auto/required/none  ->   {"type": "auto" / "any" / "none"}
    tool_choice {"function": X}     ->   {"type": "tool", "name": X}
    parallel_tool_calls = false     ->   disable_parallel_tool_use = true
    tools[].function.strict         ->   tools[].strict (structured-output models)
    tools[].cache_control           ->   tools[].cache_control
    functions / function_call       ->   tools / tool_choice (`_legacy`)
    max_completion_tokens           ->   max_tokens (required: the model table's maximum
                                         output, or the deployment's max_output_tokens, if unset)
    reasoning_effort                ->   thinking (+ output_config.effort) (`_sampling`)
    response_format json_schema     ->   output_config.format {"type": "json_schema", "schema"}
    stop                            ->   stop_sequences
    safety_identifier, else user    ->   metadata.user_id
    service_tier auto / priority    ->   service_tier "auto"; "default" -> "standard_only"
    stream = true                   ->   "stream": true (SSE with named events)

`ANTHROPIC_TABLE` says what happens to every other parameter. The answer side
(`parse_message`, `classify_anthropic_error`) is in `_anthropic_reply`, the streamed
answer (`AnthropicStreamParser`) in `_anthropic_stream`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

import httpx
from msgspec import UNSET, Struct
from msgspec.structs import replace

from config import Deployment, model_info

from .._chat import ChatCompletion, ChatRequest, NamedToolChoice, Tool, encoder
from .._exceptions import ProviderError, Unsupported
from ._anthropic_messages import Block, cache_control, translate_messages
from ._anthropic_reply import classify_anthropic_error, parse_message
from ._anthropic_stream import AnthropicStreamParser
from ._base import (
    OPTIONAL_PARAMS,
    Handling,
    HttpRequest,
    ParamRow,
    ParamTable,
    drop_params,
    param_table,
    supported_by,
    unsupported_params,
)
from ._chat_parts import check_tool_names, function_tools, refuse_custom_tools, stop_sequences
from ._legacy import functions_as_tools
from ._parts_dropped import (
    CACHE_BREAKPOINT,
    CACHE_CONTROL,
    THINKING,
    TOOL_CACHE_CONTROL,
    parts_dropped,
)
from ._sampling import Generation, check_ranges, plan_generation
from ._toolids import IdRule, conform_tool_ids, pattern_rule

ANTHROPIC_BASE: Final = "https://api.anthropic.com"
ANTHROPIC_VERSION: Final = "2023-06-01"
"""The `anthropic-version` header; a deployment's `api_version` overrides it."""
ANTHROPIC_TOOL_ID: Final[IdRule] = pattern_rule(r"[a-zA-Z0-9_-]+")
"""`tool_use.id` must match ``^[a-zA-Z0-9_-]+$`` (PROVIDERS.md §3.3)."""
ANTHROPIC_TOOL_NAME: Final = re.compile(r"[a-zA-Z0-9_-]{1,128}")
"""`tools[].name` must match ``^[a-zA-Z0-9_-]{1,128}$``: no dots, colons or slashes."""

_SENT, _MAPPED, _DROPPED = Handling.SENT, Handling.MAPPED, Handling.DROPPED
ANTHROPIC_TABLE: Final = param_table({
    "frequency_penalty": ParamRow(_DROPPED, "no Anthropic equivalent"),
    "logit_bias": ParamRow(_DROPPED, "no Anthropic equivalent"),
    "logprobs": ParamRow(_DROPPED, "Anthropic returns no log probabilities"),
    "top_logprobs": ParamRow(_DROPPED, "Anthropic returns no log probabilities"),
    "max_tokens": ParamRow(_MAPPED, "max_tokens"),
    "max_completion_tokens": ParamRow(_MAPPED, "max_tokens"),
    "n": ParamRow(_DROPPED, "one answer per request"),
    "presence_penalty": ParamRow(_DROPPED, "no Anthropic equivalent"),
    "reasoning_effort": ParamRow(
        _MAPPED,
        "thinking (budget_tokens by effort, or adaptive + output_config.effort); dropped"
        " for models without thinking, with a forced tool_choice, an assistant prefill,"
        " or a tool call sent back without its thinking_blocks",
    ),
    "response_format": ParamRow(
        _MAPPED,
        "json_schema -> output_config.format (structured-output models); json_object dropped",
    ),
    "seed": ParamRow(_DROPPED, "no Anthropic equivalent"),
    "stop": ParamRow(_MAPPED, "stop_sequences"),
    "stream": ParamRow(_SENT, "SSE with named events"),
    "stream_options": ParamRow(_MAPPED, "include_usage: the usage of message_delta"),
    "temperature": ParamRow(
        _SENT, "dropped with thinking, and on models that take no sampling parameters"
    ),
    "top_p": ParamRow(
        _SENT,
        "dropped next to temperature on models that take only one, with thinking (unless"
        " 0.95..1), and on models that take no sampling parameters",
    ),
    "tools": ParamRow(_MAPPED, "tools (input_schema, strict, cache_control)"),
    "tool_choice": ParamRow(_MAPPED, "tool_choice auto / any / tool / none"),
    "parallel_tool_calls": ParamRow(_MAPPED, "tool_choice.disable_parallel_tool_use"),
    "user": ParamRow(_MAPPED, "metadata.user_id (unless safety_identifier is set)"),
    "store": ParamRow(_DROPPED, "OpenAI's stored completions"),
    "metadata": ParamRow(_DROPPED, "Anthropic's metadata takes only user_id"),
    "modalities": ParamRow(_DROPPED, "text output only"),
    "audio": ParamRow(_DROPPED, "text output only"),
    "service_tier": ParamRow(
        _MAPPED, "service_tier: auto / priority -> auto, default -> standard_only; flex dropped"
    ),
    "prediction": ParamRow(_DROPPED, "no predicted outputs"),
    "verbosity": ParamRow(_DROPPED, "no Anthropic equivalent"),
    "prompt_cache_key": ParamRow(_DROPPED, "caching is by cache_control markers"),
    "prompt_cache_retention": ParamRow(_DROPPED, "caching is by cache_control markers"),
    "prompt_cache_options": ParamRow(_DROPPED, "caching is by cache_control markers"),
    "safety_identifier": ParamRow(_MAPPED, "metadata.user_id"),
    "web_search_options": ParamRow(_DROPPED, "Anthropic's web search is a server tool"),
    "moderation": ParamRow(_DROPPED, "OpenAI's moderation"),
    "functions": ParamRow(_MAPPED, "tools"),
    "function_call": ParamRow(_MAPPED, "tool_choice"),
})  # fmt: skip
"""Every optional `ChatRequest` parameter -> what the Anthropic adapter does with it."""
ANTHROPIC_PARAMS: Final = supported_by(ANTHROPIC_TABLE)
"""The optional `ChatRequest` fields Anthropic can express; the others are dropped."""

_PROVIDER: Final = "anthropic"
_KEPT_PARTS: Final = frozenset({THINKING, CACHE_CONTROL, CACHE_BREAKPOINT, TOOL_CACHE_CONTROL})
_SERVICE_TIERS: Final = {"auto": "auto", "priority": "auto", "default": "standard_only"}


class _Plan(Struct, frozen=True):
    request: ChatRequest
    """Without the dropped parameters, the legacy functions API restated as tools."""
    generation: Generation
    dropped: tuple[str, ...]


class AnthropicAdapter:
    """The Anthropic Messages API, for one deployment."""

    __slots__ = (
        "_headers", "_info", "_max_output", "_model", "_name", "_stream_headers", "_url",
        "auth", "param_table", "supported_params",
    )  # fmt: skip

    def __init__(self, spec: Deployment) -> None:
        self._model = spec.model
        self._name = spec.name
        info = model_info(spec.model)
        if info.family != "claude":
            # An id the table does not know (a proxy's alias...) is still a Claude model here:
            # never send temperature and top_p together, as no current Claude takes both.
            info = replace(info, family="claude", sampling="one")
        self._info = info
        override = spec.max_output_tokens
        # The output budget of a request that sets none: (non-streamed, streamed).
        self._max_output = (
            override or self._info.default_output(streaming=False),
            override or self._info.default_output(streaming=True),
        )
        self.auth: httpx.Auth | None = None
        self.param_table: ParamTable = ANTHROPIC_TABLE
        self.supported_params = ANTHROPIC_PARAMS
        base = (spec.api_base or ANTHROPIC_BASE).rstrip("/")
        # Accept an api_base given with or without the version segment.
        self._url = f"{base}/messages" if base.endswith("/v1") else f"{base}/v1/messages"
        headers = {
            "content-type": "application/json",
            "accept": "application/json",
            "anthropic-version": spec.api_version or ANTHROPIC_VERSION,
        }
        if spec.api_key is not None:
            headers["x-api-key"] = spec.api_key.reveal()
        headers.update({name.lower(): value for name, value in spec.headers.items()})
        self._headers = headers
        self._stream_headers = {**headers, "accept": "text/event-stream"}

    def dropped_params(self, request: ChatRequest) -> tuple[str, ...]:
        return self._plan(request).dropped

    def build(self, request: ChatRequest) -> HttpRequest:
        plan = self._plan(request)
        request = conform_tool_ids(plan.request, ANTHROPIC_TOOL_ID)
        refuse_custom_tools(request, provider=_PROVIDER, deployment=self._name)
        check_ranges(plan.generation, provider=_PROVIDER, deployment=self._name)
        body = messages_body(request, plan.generation, model=self._model, deployment=self._name)
        streaming = request.stream is True
        if streaming:
            body["stream"] = True
        return HttpRequest(
            method="POST",
            url=self._url,
            headers=self._stream_headers if streaming else self._headers,
            body=encoder.encode(body),
            dropped_params=plan.dropped,
        )

    def parse(self, status: int, headers: Mapping[str, str], body: bytes) -> ChatCompletion:
        return parse_message(status, headers, body, model=self._model)

    def classify(self, status: int, headers: Mapping[str, str], body: bytes) -> ProviderError:
        return classify_anthropic_error(status, headers, body)

    def stream_parser(self) -> AnthropicStreamParser:
        """A fresh parser for one streamed attempt."""
        return AnthropicStreamParser(model=self._model)

    def _plan(self, request: ChatRequest) -> _Plan:
        """What to send and what to name as dropped; pure, and it never raises."""
        dropped = [*unsupported_params(request, self.supported_params)]
        dropped += parts_dropped(request, kept=_KEPT_PARTS)
        tier = request.service_tier
        if isinstance(tier, str) and tier not in _SERVICE_TIERS:
            dropped.append("service_tier")  # flex, scale: no Anthropic tier like them
        if isinstance(request.user, str) and isinstance(request.safety_identifier, str):
            dropped.append("user")  # one metadata.user_id: safety_identifier is the newer
        request, superseded = functions_as_tools(
            drop_params(request, tuple(set(dropped) & OPTIONAL_PARAMS))
        )
        dropped += superseded
        default = self._max_output[request.stream is True]
        generation = plan_generation(request, self._info, default_max_tokens=default)
        dropped += generation.dropped
        return _Plan(request, generation, tuple(sorted(set(dropped))))


def messages_body(
    request: ChatRequest, generation: Generation, *, model: str, deployment: str
) -> dict[str, Any]:
    """The Messages API body for `request` (already planned: see `AnthropicAdapter._plan`)."""
    names = check_tool_names(
        request,
        ANTHROPIC_TOOL_NAME,
        provider=_PROVIDER,
        deployment=deployment,
        wording="Anthropic tool names must match ^[a-zA-Z0-9_-]{1,128}$",
    )
    system, messages = translate_messages(request.messages, deployment)
    if not messages:
        raise Unsupported(
            deployment, f"{_PROVIDER}: messages has no user or assistant content to send"
        )
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": generation.max_tokens,
        "messages": messages,
    }
    if system:
        body["system"] = system
    for name in ("temperature", "top_p"):
        value = getattr(generation, name)
        if value is not None:
            body[name] = value
    if generation.thinking is not None:
        body["thinking"] = generation.thinking
    output_config: dict[str, Any] = {}
    if generation.effort is not None:
        output_config["effort"] = generation.effort
    if generation.json_schema is not None:
        output_config["format"] = {"type": "json_schema", "schema": generation.json_schema}
    if output_config:
        body["output_config"] = output_config
    stop = stop_sequences(request)
    if stop:
        body["stop_sequences"] = stop
    user = request.safety_identifier if isinstance(request.safety_identifier, str) else request.user
    if isinstance(user, str):
        body["metadata"] = {"user_id": user}
    if isinstance(request.service_tier, str) and request.service_tier in _SERVICE_TIERS:
        body["service_tier"] = _SERVICE_TIERS[request.service_tier]
    if request.tools:
        body["tools"] = [
            _tool(tool, generation.strict_tools, deployment) for tool in function_tools(request)
        ]
    choice = tool_choice(request, names, deployment)
    if choice is not None:
        body["tool_choice"] = choice
    return body


def tool_choice(request: ChatRequest, names: frozenset[str], deployment: str) -> Block | None:
    """Anthropic's `tool_choice` for the request's `tool_choice` and `parallel_tool_calls`."""
    choice = request.tool_choice
    if not names:
        if choice is UNSET or choice in ("auto", "none"):
            return None  # nothing to choose among: leaving it out means the same
        raise Unsupported(
            deployment, f"{_PROVIDER}: tool_choice {_choice_text(choice)} needs tools"
        )
    out: Block
    if isinstance(choice, NamedToolChoice):
        if choice.function.name not in names:
            raise Unsupported(
                deployment,
                f"{_PROVIDER}: tool_choice names {choice.function.name!r}, which is not in tools",
            )
        out = {"type": "tool", "name": choice.function.name}
    elif choice == "none":
        return {"type": "none"}  # the only form without disable_parallel_tool_use
    elif choice == "required":
        out = {"type": "any"}
    elif choice == "auto" or request.parallel_tool_calls is False:
        out = {"type": "auto"}
    else:
        return None
    if request.parallel_tool_calls is False:
        out["disable_parallel_tool_use"] = True
    return out


def _choice_text(choice: object) -> str:
    if isinstance(choice, NamedToolChoice):
        return f"{{'function': {choice.function.name!r}}}"
    return repr(choice)


def _tool(spec: Tool, strict: bool, deployment: str) -> dict[str, Any]:
    function = spec.function
    name, description, parameters = function.name, function.description, function.parameters
    schema: dict[str, Any] = dict(parameters) if isinstance(parameters, dict) else {}
    # OpenAI allows omitting `parameters` (no arguments); Anthropic needs an object schema.
    schema.setdefault("type", "object")
    if schema["type"] != "object":
        raise Unsupported(
            deployment,
            f"{_PROVIDER}: tools[{name!r}].parameters has type {schema['type']!r};"
            " Anthropic's input_schema must have type 'object'",
        )
    if schema == {"type": "object"}:
        schema["properties"] = {}
    tool: dict[str, Any] = {"name": name, "input_schema": schema}
    if isinstance(description, str) and description:
        tool["description"] = description
    if strict and function.strict is True:
        tool["strict"] = True
    control = cache_control(spec.cache_control, UNSET, f"tools[{name!r}]", deployment)
    if control is not None:
        tool["cache_control"] = control
    return tool
