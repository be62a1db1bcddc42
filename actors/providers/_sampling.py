"""Sampling, thinking and output-format rules of a model, decided from the model table.

Shared by the Anthropic and Bedrock adapters: both send Claude models the same
choices, in their own wire shapes. `plan_generation` reads the request and the
model's `ModelInfo` row and decides, in this order:

    reasoning_effort  ->  thinking {"type": "enabled", "budget_tokens": B} (budget models)
                          or {"type": "adaptive"} + effort (adaptive models);
                          dropped when the model cannot think, when tool_choice forces a
                          tool, when the last turn is an assistant prefill, or when the last
                          assistant tool call lacks its thinking blocks (all 400s with thinking)
    temperature       ->  dropped with thinking (only 1 is allowed then)
    top_p             ->  dropped with thinking unless within 0.95..1
    sampling rule     ->  "none": temperature and top_p dropped; "one": top_p dropped when
                          temperature is also sent ("cannot both be specified")
    response_format   ->  json_schema -> a JSON-schema output format (structured-output models);
                          json_object (no schema to give) and unsupported models: dropped
    tools[].strict    ->  kept on structured-output models, else dropped

Every drop is named, for `x-dispatcher-dropped-params`.
"""

from __future__ import annotations

from typing import Any, Final

from msgspec import UNSET, Struct

from config import ModelInfo

from .._chat import AssistantMessage, ChatRequest, NamedToolChoice
from .._exceptions import Unsupported
from ._chat_parts import function_tools, output_budget

BUDGETS: Final = {"minimal": 1024, "low": 4096, "medium": 8192, "high": 16384}
"""Thinking budget (tokens) per OpenAI effort, for budget-thinking models; higher efforts
get `MAX_BUDGET`. Anthropic's minimum is 1024, and the budget must stay below max_tokens."""
MAX_BUDGET: Final = 32000
"""Anthropic suggests batch processing above 32K thinking tokens."""
MIN_BUDGET: Final = 1024
_LADDER: Final = ("low", "medium", "high", "xhigh", "max")
_EFFORT_RANK: Final = {"minimal": 0, "low": 0, "medium": 1, "high": 2, "xhigh": 3, "max": 4}
STRICT_TOOLS: Final = "tools[].function.strict"
"""The dropped-parameter name of `strict` on function tools."""


class Generation(Struct, frozen=True, kw_only=True):
    """What to send for sampling, thinking and output format (None: leave it out)."""

    max_tokens: int
    temperature: float | None = None
    top_p: float | None = None
    thinking: dict[str, Any] | None = None
    effort: str | None = None
    json_schema: dict[str, Any] | None = None
    """The schema of a json_schema response_format, to send as the output format."""
    strict_tools: bool = False
    """Send `strict` on tools that ask for it."""
    dropped: tuple[str, ...] = ()


def plan_generation(
    request: ChatRequest, info: ModelInfo, *, default_max_tokens: int
) -> Generation:
    """The sampling/thinking/format choices for `request` on the model `info` describes.

    Pure and total (it never raises): adapters also call it to name the dropped
    parameters before sending. `check_ranges` refuses what cannot be sent.
    """
    dropped: list[str] = []
    max_tokens = output_budget(request) or default_max_tokens
    thinking, effort = _thinking(request, info, max_tokens, dropped)
    temperature = _number(request.temperature)
    top_p = _number(request.top_p)
    if thinking is not None and thinking.get("type") != "disabled":
        if temperature is not None and temperature != 1.0:
            temperature = None
            dropped.append("temperature")
        if top_p is not None and not 0.95 <= top_p <= 1.0:
            top_p = None
            dropped.append("top_p")
    if info.sampling == "none":
        dropped += [name for name, value in (("temperature", temperature), ("top_p", top_p)) if
                    value is not None]  # fmt: skip
        temperature = top_p = None
    elif info.sampling == "one" and temperature is not None and top_p is not None:
        top_p = None
        dropped.append("top_p")
    json_schema = _json_schema(request, info, dropped)
    wants_strict = any(tool.function.strict is True for tool in function_tools(request))
    if wants_strict and not info.structured_outputs:
        dropped.append(STRICT_TOOLS)
    return Generation(
        max_tokens=max_tokens,
        temperature=temperature,
        top_p=top_p,
        thinking=thinking,
        effort=effort,
        json_schema=json_schema,
        strict_tools=wants_strict and info.structured_outputs,
        dropped=tuple(dropped),
    )


def _thinking(
    request: ChatRequest, info: ModelInfo, max_tokens: int, dropped: list[str]
) -> tuple[dict[str, Any] | None, str | None]:
    level = request.reasoning_effort
    if level is UNSET or level is None:
        return None, None
    if level == "none":
        if info.thinking == "adaptive-only":  # thinks whatever we send: cannot honour "none"
            dropped.append("reasoning_effort")
        return None, None
    if info.thinking == "none" or level not in _EFFORT_RANK or _blocks_thinking(request):
        dropped.append("reasoning_effort")
        return None, None
    if info.thinking == "budget":
        if max_tokens <= MIN_BUDGET:
            dropped.append("reasoning_effort")  # no room for the minimum budget
            return None, None
        budget = min(BUDGETS.get(level, MAX_BUDGET), max(MIN_BUDGET, max_tokens // 2))
        return {"type": "enabled", "budget_tokens": budget}, None
    return {"type": "adaptive"}, _effort(level, info)


def _effort(level: str, info: ModelInfo) -> str | None:
    """The highest effort the model takes at or below the requested rank (its lowest if none)."""
    if not info.effort:
        return None
    rank = _EFFORT_RANK[level]
    below = [name for name in _LADDER[: rank + 1] if name in info.effort]
    return below[-1] if below else info.effort[0]


def _blocks_thinking(request: ChatRequest) -> bool:
    """True when the API rejects thinking for this request's tool choice or history."""
    if isinstance(request.tool_choice, NamedToolChoice) or request.tool_choice == "required":
        return True  # "Thinking may not be enabled when tool_choice forces tool use."
    last = request.messages[-1]
    if isinstance(last, AssistantMessage):
        return True  # a prefill: thinking cannot continue a partial answer
    assistant = next(
        (m for m in reversed(request.messages) if isinstance(m, AssistantMessage)), None
    )
    # The turn that called the tools being answered must start with its thinking blocks.
    return bool(assistant is not None and assistant.tool_calls and not assistant.thinking_blocks)


def _json_schema(
    request: ChatRequest, info: ModelInfo, dropped: list[str]
) -> dict[str, Any] | None:
    response_format = request.response_format
    if response_format is UNSET or response_format.type == "text":
        return None
    spec = response_format.json_schema
    schema = spec.get("schema") if isinstance(spec, dict) else None
    if response_format.type != "json_schema" or not isinstance(schema, dict):
        dropped.append("response_format")  # json_object: no schema to constrain the output to
        return None
    if not info.structured_outputs:
        dropped.append("response_format")
        return None
    return schema


def check_ranges(generation: Generation, *, provider: str, deployment: str) -> None:
    """Raise `Unsupported` for a temperature or top_p to send outside 0..1."""
    for name in ("temperature", "top_p"):
        value = getattr(generation, name)
        if value is not None and not 0.0 <= value <= 1.0:
            # OpenAI allows up to 2; rescaling would silently change the sampling asked for.
            raise Unsupported(deployment, f"{provider}: {name} {value:g} is outside the range 0..1")


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None
