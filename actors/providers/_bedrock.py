"""AWS Bedrock Runtime Converse and ConverseStream (PROVIDERS.md §4): the adapter.

The request translation lives in `_converse` (and `_converse_messages`), request
signing in `_bedrock_sigv4`, the answers and error classes in `_bedrock_reply`, and
the stream translation (AWS event-stream frames to OpenAI chunks) in `_bedrock_stream`.
`BEDROCK_TABLE` says what happens to each optional parameter. Claude model ids
(`anthropic.claude-...`, `us.anthropic.claude-...`) resolve through the model table to
the same rules as on Anthropic's own API (thinking, sampling, structured outputs).
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from typing import Final

import httpx
from msgspec import Struct

from config import Deployment, model_info

from .._chat import ChatCompletion, ChatRequest, encoder
from .._exceptions import ProviderError
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
from ._bedrock_reply import classify_bedrock_error, parse_converse
from ._bedrock_sigv4 import BedrockSigV4
from ._bedrock_stream import ConverseStreamParser
from ._chat_parts import refuse_custom_tools
from ._converse import (
    BEDROCK_TOOL_ID,
    SERVICE_TIERS,
    check_tool_names,
    converse_body,
    metadata_fits,
)
from ._legacy import functions_as_tools
from ._parts_dropped import (
    CACHE_BREAKPOINT,
    CACHE_CONTROL,
    THINKING,
    TOOL_CACHE_CONTROL,
    parts_dropped,
)
from ._sampling import Generation, check_ranges, plan_generation
from ._toolids import conform_tool_ids

_SENT, _MAPPED, _DROPPED = Handling.SENT, Handling.MAPPED, Handling.DROPPED
BEDROCK_TABLE: Final = param_table({
    "frequency_penalty": ParamRow(_DROPPED, "not in Converse"),
    "logit_bias": ParamRow(_DROPPED, "not in Converse"),
    "logprobs": ParamRow(_DROPPED, "not in Converse"),
    "top_logprobs": ParamRow(_DROPPED, "not in Converse"),
    "max_tokens": ParamRow(_MAPPED, "inferenceConfig.maxTokens"),
    "max_completion_tokens": ParamRow(_MAPPED, "inferenceConfig.maxTokens"),
    "n": ParamRow(_DROPPED, "one answer per request"),
    "presence_penalty": ParamRow(_DROPPED, "not in Converse"),
    "reasoning_effort": ParamRow(
        _MAPPED,
        "Claude models: additionalModelRequestFields.thinking (budget_tokens by effort, or"
        " adaptive + outputConfig.effort); dropped for other models and where Claude"
        " refuses thinking (forced tool_choice, prefill, tool call without thinking_blocks)",
    ),
    "response_format": ParamRow(
        _MAPPED,
        "json_schema -> outputConfig.textFormat (structured-output models); json_object dropped",
    ),
    "seed": ParamRow(_DROPPED, "not in Converse"),
    "stop": ParamRow(_MAPPED, "inferenceConfig.stopSequences"),
    "stream": ParamRow(_MAPPED, "the ConverseStream operation"),
    "stream_options": ParamRow(_MAPPED, "include_usage: the usage of the metadata event"),
    "temperature": ParamRow(
        _MAPPED, "inferenceConfig.temperature; dropped with thinking and where Claude takes none"
    ),
    "top_p": ParamRow(
        _MAPPED,
        "inferenceConfig.topP; dropped next to temperature on Claude models that take only"
        " one, with thinking (unless 0.95..1), and where Claude takes none",
    ),
    "tools": ParamRow(_MAPPED, "toolConfig.tools (toolSpec, strict, cachePoint)"),
    "tool_choice": ParamRow(_MAPPED, "toolConfig.toolChoice auto / any / tool; none: no tools"),
    "parallel_tool_calls": ParamRow(_DROPPED, "not in Converse"),
    "user": ParamRow(_DROPPED, "not in Converse"),
    "store": ParamRow(_DROPPED, "OpenAI's stored completions"),
    "metadata": ParamRow(
        _MAPPED, "requestMetadata (invocation-log filters); dropped if a key or value does not fit"
    ),
    "modalities": ParamRow(_DROPPED, "text output only"),
    "audio": ParamRow(_DROPPED, "text output only"),
    "service_tier": ParamRow(
        _MAPPED, "serviceTier.type priority / default / flex; auto left out; scale dropped"
    ),
    "prediction": ParamRow(_DROPPED, "not in Converse"),
    "verbosity": ParamRow(_DROPPED, "not in Converse"),
    "prompt_cache_key": ParamRow(_DROPPED, "caching is by cachePoint blocks"),
    "prompt_cache_retention": ParamRow(_DROPPED, "caching is by cachePoint blocks"),
    "prompt_cache_options": ParamRow(_DROPPED, "caching is by cachePoint blocks"),
    "safety_identifier": ParamRow(_DROPPED, "not in Converse"),
    "web_search_options": ParamRow(_DROPPED, "not in Converse"),
    "moderation": ParamRow(_DROPPED, "Bedrock guardrails are configured on the deployment"),
    "functions": ParamRow(_MAPPED, "toolConfig.tools"),
    "function_call": ParamRow(_MAPPED, "toolConfig.toolChoice"),
})  # fmt: skip
"""Every optional `ChatRequest` parameter -> what the Bedrock adapter does with it."""
BEDROCK_PARAMS: Final = supported_by(BEDROCK_TABLE)
"""Optional request fields Converse can express (`stream` picks ConverseStream)."""
_CLAUDE_PARTS: Final = frozenset({THINKING, CACHE_CONTROL, CACHE_BREAKPOINT, TOOL_CACHE_CONTROL})
"""Message-level fields kept for Claude models: reasoningContent and cachePoint blocks."""
EVENT_STREAM: Final = "application/vnd.amazon.eventstream"
"""The media type of a ConverseStream answer (§4.1)."""


def converse_url(base: str, model_id: str, operation: str = "converse") -> str:
    """The Converse (or `converse-stream`) URL; `model_id` is one percent-encoded path segment,
    as botocore sends it."""
    return f"{base.rstrip('/')}/model/{urllib.parse.quote(model_id, safe='')}/{operation}"


def region_of(spec: Deployment) -> str:
    """The signing region: `region`, else the one in a `bedrock-runtime.{region}` api_base."""
    if spec.region:
        return spec.region
    host = urllib.parse.urlsplit(spec.api_base or "").hostname or ""
    match = re.match(r"bedrock-runtime(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com", host)
    # A custom endpoint that names no region (a proxy, a fake) signs for us-east-1.
    return match.group(1) if match else "us-east-1"


class BedrockAdapter:
    """Bedrock Runtime Converse, signed with SigV4 or sent with a Bedrock API key."""

    __slots__ = (
        "_claude",
        "_headers",
        "_info",
        "_max_output",
        "_model",
        "_name",
        "_stream_headers",
        "_stream_url",
        "_url",
        "auth",
        "param_table",
        "supported_params",
    )

    def __init__(self, spec: Deployment) -> None:
        region = region_of(spec)
        base = spec.api_base or f"https://bedrock-runtime.{region}.amazonaws.com"
        self._name = spec.name
        self._model = spec.model
        self._url = converse_url(base, spec.model)
        self._stream_url = converse_url(base, spec.model, "converse-stream")
        self.param_table: ParamTable = BEDROCK_TABLE
        self.supported_params = BEDROCK_PARAMS
        self._info = model_info(spec.model)
        self._claude = self._info.family == "claude"
        # Converse defaults maxTokens to the model's maximum: send it only when asked for,
        # configured, or needed above a thinking budget.
        self._max_output = spec.max_output_tokens
        headers = {"content-type": "application/json", "accept": "application/json"}
        key = spec.api_key.reveal() if spec.api_key is not None else None
        self.auth: httpx.Auth | None = None
        if key:
            headers["authorization"] = f"Bearer {key}"  # a Bedrock API key
        else:
            self.auth = BedrockSigV4(region)
        headers.update({name.lower(): value for name, value in spec.headers.items()})
        self._headers = headers
        self._stream_headers = {**headers, "accept": EVENT_STREAM}

    def dropped_params(self, request: ChatRequest) -> tuple[str, ...]:
        return self._plan(request).dropped

    def build(self, request: ChatRequest) -> HttpRequest:
        plan = self._plan(request)
        request = conform_tool_ids(plan.request, BEDROCK_TOOL_ID)
        refuse_custom_tools(request, provider="bedrock", deployment=self._name)
        check_tool_names(request, self._name)
        check_ranges(plan.generation, provider="bedrock", deployment=self._name)
        streaming = request.stream is True
        body = converse_body(
            request,
            plan.generation,
            claude=self._claude,
            send_max_tokens=self._max_output is not None,
            deployment=self._name,
        )
        return HttpRequest(
            method="POST",
            url=self._stream_url if streaming else self._url,
            headers=self._stream_headers if streaming else self._headers,
            body=encoder.encode(body),
            dropped_params=plan.dropped,
        )

    def parse(self, status: int, headers: Mapping[str, str], body: bytes) -> ChatCompletion:
        return parse_converse(body, model=self._model, request_id=headers.get("x-amzn-requestid"))

    def classify(self, status: int, headers: Mapping[str, str], body: bytes) -> ProviderError:
        return classify_bedrock_error(status, headers, body)

    def stream_parser(self) -> ConverseStreamParser:
        """A fresh ConverseStream translator (botocore decodes the frames)."""
        return ConverseStreamParser(model=self._model)

    def _plan(self, request: ChatRequest) -> _Plan:
        """What to send and what to name as dropped; pure, and it never raises."""
        dropped = [*unsupported_params(request, self.supported_params)]
        dropped += parts_dropped(request, kept=_CLAUDE_PARTS if self._claude else frozenset())
        tier = request.service_tier
        if isinstance(tier, str) and tier != "auto" and tier not in SERVICE_TIERS:
            dropped.append("service_tier")  # scale: no Bedrock tier like it
        if not metadata_fits(request.metadata):
            dropped.append("metadata")
        request, superseded = functions_as_tools(
            drop_params(request, tuple(set(dropped) & OPTIONAL_PARAMS))
        )
        dropped += superseded
        default = self._max_output or self._info.default_output(streaming=request.stream is True)
        generation = plan_generation(request, self._info, default_max_tokens=default)
        dropped += generation.dropped
        return _Plan(request, generation, tuple(sorted(set(dropped))))


class _Plan(Struct, frozen=True):
    request: ChatRequest
    """Without the dropped parameters, the legacy functions API restated as tools."""
    generation: Generation
    dropped: tuple[str, ...]
