"""The Gemini adapter's parameter table, and the `generationConfig` it implies.

`GEMINI_TABLE` says, for every optional OpenAI parameter, what reaches Gemini:

    max_completion_tokens / max_tokens   ->   maxOutputTokens
    temperature, top_p, n, seed, stop, presence / frequency penalty
                                         ->   temperature, topP, candidateCount, seed (int32),
                                              stopSequences, presencePenalty, frequencyPenalty
    response_format json_object          ->   responseMimeType "application/json"
    response_format json_schema          ->   the same + responseJsonSchema (JSON schema as is)
    logprobs, top_logprobs               ->   responseLogprobs, logprobs
    reasoning_effort                     ->   thinkingConfig (`thinking_config`)
    service_tier                         ->   the body's serviceTier (`service_tier`)

and names the parameters it drops. Pure functions over data, like the adapter.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final, Literal

from msgspec import UNSET

from .._chat import ChatRequest
from .._exceptions import Unsupported
from ._base import Handling, ParamRow, param_table, supported_by
from ._chat_parts import function_tools, output_budget, stop_sequences

_MAPPED, _DROPPED = Handling.MAPPED, Handling.DROPPED
_NO_CACHE_KEY = "Gemini caches prompt prefixes implicitly; explicit caches are cachedContent"
GEMINI_TABLE: Final = param_table({
    "frequency_penalty": ParamRow(_MAPPED, "generationConfig.frequencyPenalty"),
    "logit_bias": ParamRow(_DROPPED, "Gemini has no token bias"),
    "logprobs": ParamRow(
        _MAPPED, "generationConfig.responseLogprobs; logprobsResult comes back as logprobs"
    ),
    "top_logprobs": ParamRow(
        _MAPPED, "generationConfig.logprobs (with logprobs: true, as OpenAI requires)"
    ),
    "max_tokens": ParamRow(_MAPPED, "generationConfig.maxOutputTokens"),
    "max_completion_tokens": ParamRow(
        _MAPPED, "generationConfig.maxOutputTokens (wins over max_tokens)"
    ),
    "n": ParamRow(_MAPPED, "generationConfig.candidateCount"),
    "presence_penalty": ParamRow(_MAPPED, "generationConfig.presencePenalty"),
    "reasoning_effort": ParamRow(
        _MAPPED,
        "generationConfig.thinkingConfig: thinkingLevel (Gemini 3 and later) or"
        " thinkingBudget (2.5 and -latest aliases), with includeThoughts (thoughts come back"
        " as reasoning_content); dropped for models that do not think (1.x, 2.0, Gemma)",
    ),
    "response_format": ParamRow(
        _MAPPED,
        "generationConfig.responseMimeType application/json, plus responseJsonSchema for"
        " json_schema",
    ),
    "seed": ParamRow(_MAPPED, "generationConfig.seed (an int32: larger seeds are folded)"),
    "stop": ParamRow(_MAPPED, "generationConfig.stopSequences"),
    "stream": ParamRow(_MAPPED, "POST :streamGenerateContent?alt=sse"),
    "stream_options": ParamRow(
        _MAPPED, "include_usage: the usage chunk from usageMetadata (the dispatcher's own)"
    ),
    "temperature": ParamRow(_MAPPED, "generationConfig.temperature"),
    "top_p": ParamRow(_MAPPED, "generationConfig.topP"),
    "tools": ParamRow(
        _MAPPED, "tools[].functionDeclarations (parametersJsonSchema); custom tools refused"
    ),
    "tool_choice": ParamRow(
        _MAPPED, "toolConfig.functionCallingConfig mode AUTO / ANY / NONE, allowedFunctionNames"
    ),
    "parallel_tool_calls": ParamRow(_DROPPED, "Gemini has no switch for parallel calls"),
    "user": ParamRow(_DROPPED, "generateContent has no end-user field"),
    "store": ParamRow(_DROPPED, "OpenAI's stored completions"),
    "metadata": ParamRow(_DROPPED, "generateContent has no tags (labels are Vertex AI's only)"),
    "modalities": ParamRow(_DROPPED, "text answers only: audio output is not read"),
    "audio": ParamRow(_DROPPED, "text answers only: audio output is not read"),
    "service_tier": ParamRow(
        _MAPPED,
        "serviceTier: flex, priority (fast too), default -> standard; auto and scale leave"
        " Gemini's default (standard)",
    ),
    "prediction": ParamRow(_DROPPED, "Gemini has no predicted outputs"),
    "verbosity": ParamRow(_DROPPED, "Gemini has no verbosity control"),
    "prompt_cache_key": ParamRow(_DROPPED, _NO_CACHE_KEY),
    "prompt_cache_retention": ParamRow(_DROPPED, _NO_CACHE_KEY),
    "prompt_cache_options": ParamRow(_DROPPED, _NO_CACHE_KEY),
    "safety_identifier": ParamRow(_DROPPED, "generateContent has no end-user field"),
    "web_search_options": ParamRow(_DROPPED, "Google Search grounding is not mapped"),
    "moderation": ParamRow(_DROPPED, "Gemini's safetySettings are another thing"),
    "functions": ParamRow(_MAPPED, "as tools: tools[].functionDeclarations"),
    "function_call": ParamRow(_MAPPED, "as tool_choice: toolConfig.functionCallingConfig"),
})  # fmt: skip
"""How each optional request parameter reaches Gemini (the README's table).

Content-part cache hints (`cache_control`, `prompt_cache_breakpoint`) are left out and
named `cache_control` in the dropped parameters: Gemini's caching is implicit.
"""
GEMINI_PARAMS: Final = supported_by(GEMINI_TABLE)
"""The optional `ChatRequest` fields Gemini can express; the others are dropped."""
CACHE_HINTS: Final = "cache_control"
"""The name under which content-part cache hints are reported dropped."""

_PROVIDER: Final = "gemini"
_CONFIG: Final[Mapping[str, str]] = {
    "temperature": "temperature",
    "top_p": "topP",
    "n": "candidateCount",
    "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
}
_VERSION: Final = re.compile(r"gemini-(\d+)(?:\.(\d+))?")
_LEVELS: Final[Mapping[str, str]] = {
    "none": "MINIMAL", "minimal": "MINIMAL", "low": "LOW", "medium": "MEDIUM",
    "high": "HIGH", "xhigh": "HIGH", "max": "HIGH",
}  # fmt: skip
_BUDGETS: Final[Mapping[str, int]] = {
    "none": 0, "minimal": 1024, "low": 1024, "medium": 8192,
    "high": 24576, "xhigh": 24576, "max": 24576,
}  # fmt: skip
"""Gemini 2.5 budgets: Google's own OpenAI endpoint maps low/medium/high to 1K/8K/24K."""
_PRO_MIN_BUDGET: Final = 128
"""Gemini 2.5 Pro cannot stop thinking: its smallest budget."""
_TIERS: Final[Mapping[str, str | None]] = {
    "flex": "flex", "priority": "priority", "fast": "priority", "default": "standard",
    "auto": None, "scale": None,
}  # fmt: skip
_INT32: Final = 2**31

Thinking = Literal["level", "budget"]


def generation_config(
    request: ChatRequest, model: str, thinking: Thinking | None, deployment: str
) -> dict[str, Any]:
    """`generationConfig` from the sampling, output and reasoning parameters the request sets."""
    config: dict[str, Any] = {}
    budget = output_budget(request)
    if budget is not None:
        config["maxOutputTokens"] = budget
    for name, key in _CONFIG.items():
        value = getattr(request, name)
        if value is not UNSET and value is not None:
            config[key] = value
    if isinstance(request.seed, int):
        # Gemini's seed is an int32 (a larger one is a 400); fold so equal seeds stay equal.
        config["seed"] = (request.seed + _INT32) % (2 * _INT32) - _INT32
    stop = stop_sequences(request)
    if stop:
        config["stopSequences"] = stop
    config.update(_logprobs(request, deployment))
    effort = request.reasoning_effort
    if isinstance(effort, str) and thinking is not None:
        config["thinkingConfig"] = thinking_config(effort, model, thinking, deployment)
    response_format = request.response_format
    if response_format is not UNSET and response_format.type != "text":
        config["responseMimeType"] = "application/json"
        schema = (
            response_format.json_schema.get("schema")
            if isinstance(response_format.json_schema, dict)
            else None
        )
        if response_format.type == "json_schema" and isinstance(schema, dict):
            config["responseJsonSchema"] = schema
    return config


def thinking_style(model: str) -> Thinking | None:
    """How `model` takes a reasoning effort: a level, a token budget, or not at all.

    Gemini 3 and later take `thinkingLevel` (a budget still works but is discouraged);
    2.5 takes only `thinkingBudget` (a level is a 400). An alias such as
    `gemini-flash-latest` may be either, so it gets a budget, which both accept. Gemini
    1.x, 2.0 and other families (Gemma) do not think.
    """
    match = _VERSION.match(model)
    if match is None:
        return "budget" if model.startswith("gemini-") else None
    version = (int(match[1]), int(match[2] or 0))
    if version >= (3, 0):
        return "level"
    return "budget" if version >= (2, 5) else None


def thinking_config(effort: str, model: str, thinking: Thinking, deployment: str) -> dict[str, Any]:
    """`thinkingConfig` for OpenAI's `reasoning_effort` on `model`.

    Levels: none/minimal -> MINIMAL, low, medium, high; xhigh/max -> HIGH. Pro models
    have no MINIMAL (-> LOW: Gemini 3 Pro cannot stop thinking) and Gemini 3.0 Pro no
    MEDIUM (-> HIGH, its default). Budgets (2.5): none 0 (Pro: 128, its least),
    minimal/low 1024, medium 8192, high and above 24576. Thoughts are asked for
    (`includeThoughts`) unless the effort is none; they come back as `reasoning_content`.
    """
    if effort not in _LEVELS:
        raise Unsupported(
            deployment,
            f"{_PROVIDER}: reasoning_effort {effort!r} is not one of {', '.join(_LEVELS)}",
        )
    config: dict[str, Any]
    pro = "-pro" in model
    if thinking == "level":
        level = _LEVELS[effort]
        if pro and level == "MINIMAL":
            level = "LOW"
        if pro and level == "MEDIUM" and model.startswith("gemini-3-"):
            level = "HIGH"
        config = {"thinkingLevel": level}
    else:
        budget = _BUDGETS[effort]
        config = {"thinkingBudget": max(budget, _PRO_MIN_BUDGET) if pro else budget}
    if effort != "none":
        config["includeThoughts"] = True
    return config


def _logprobs(request: ChatRequest, deployment: str) -> dict[str, Any]:
    top = request.top_logprobs
    if request.logprobs is not True:
        if isinstance(top, int):
            raise Unsupported(
                deployment, f"{_PROVIDER}: top_logprobs needs logprobs: true (as for OpenAI)"
            )
        return {}
    # `logprobs` (0..20) is the number of top tokens; 0 or unset sends none, like OpenAI's.
    return {"responseLogprobs": True, **({"logprobs": top} if isinstance(top, int) and top else {})}


def has_cache_hints(request: ChatRequest) -> bool:
    """True when a content part or tool carries `cache_control` / `prompt_cache_breakpoint`."""
    for tool in function_tools(request):
        if tool.cache_control is not UNSET:
            return True
    for message in request.messages:
        content = getattr(message, "content", None)
        if isinstance(content, tuple):
            for part in content:
                hint = (
                    getattr(part, "cache_control", UNSET),
                    getattr(part, "prompt_cache_breakpoint", UNSET),
                )
                if hint != (UNSET, UNSET):
                    return True
    return False


def service_tier(request: ChatRequest, deployment: str) -> str | None:
    """Gemini's `serviceTier` for OpenAI's `service_tier` (None: leave Gemini's default)."""
    tier = request.service_tier
    if not isinstance(tier, str):
        return None
    if tier not in _TIERS:
        raise Unsupported(
            deployment, f"{_PROVIDER}: service_tier {tier!r} is not one of {', '.join(_TIERS)}"
        )
    return _TIERS[tier]
