"""Anthropic's per-model request rules, on a body whose shape is already valid.

The model comes from `body["model"]` (`_claude_models`): its output limit, which
sampling parameters it takes, how it thinks, its effort levels and structured
outputs; then the thinking history rules (signed blocks come back unchanged; with
thinking on, the last assistant turn that called tools, or a final prefill, starts
with its thinking).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ._claude_models import (
    FINAL_ASSISTANT_WITHOUT_THINKING,
    FORCED_TOOL_WITH_THINKING,
    TEMPERATURE_WITH_THINKING,
    TOP_P_WITH_THINKING,
    claude_model,
    sampling_problem,
    thinking_on,
    thinking_problem,
    thinking_signature_ok,
)


def model_problem(body: Mapping[str, Any]) -> str | None:
    """Why the named Claude model refuses a well-formed `body` (output limit, sampling,
    thinking, effort, formats, thinking history), or None."""
    model = claude_model(body["model"])
    if model is None:
        return None
    if body["max_tokens"] > model.max_output:
        return (  # [OBS shape]
            f"max_tokens: {body['max_tokens']} > {model.max_output}, which is the maximum"
            f" allowed number of output tokens for {body['model']}"
        )
    thinking = body.get("thinking")
    on = thinking_on(thinking)
    if on and "temperature" in body and body["temperature"] != 1:
        return TEMPERATURE_WITH_THINKING
    if on and "top_p" in body and not 0.95 <= body["top_p"] <= 1:
        return TOP_P_WITH_THINKING
    problem = sampling_problem(model, body.get("temperature"), body.get("top_p"))
    if problem is not None:
        return problem
    if thinking is not None:
        problem = thinking_problem(model, thinking, body["max_tokens"], "thinking")
        if problem is not None:
            return problem
    if on and (body.get("tool_choice") or {}).get("type") in ("any", "tool"):
        return FORCED_TOOL_WITH_THINKING
    config = body.get("output_config") or {}
    if config.get("effort") is not None and config["effort"] not in model.effort:
        return f"output_config.effort: effort {config['effort']!r} is not supported by this model."
    if config.get("format") is not None and not model.structured:
        return "output_config.format: structured outputs are not supported by this model."
    if not model.structured and any(tool.get("strict") for tool in body.get("tools") or ()):
        return "tools: strict tool use is not supported by this model."  # [UNVERIFIED]
    return _thinking_history(body["messages"], on)


def _thinking_history(messages: Sequence[Mapping[str, Any]], on: bool) -> str | None:
    """Thinking blocks come back unchanged; with thinking on, the turn that called the tools
    being answered (or a final prefill) starts with its thinking."""
    for index, message in enumerate(messages):
        for position, block in enumerate(_blocks_of(message)):
            if block.get("type") == "thinking" and not thinking_signature_ok(
                block.get("thinking"), block.get("signature")
            ):
                return (
                    f"messages.{index}.content.{position}: Invalid `signature` in `thinking` block"
                )
    if not on:
        return None
    last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=None)
    if last is None:
        return None
    blocks = _blocks_of(messages[last])
    final = last == len(messages) - 1
    if (final or any(b.get("type") == "tool_use" for b in blocks)) and blocks:
        first = blocks[0].get("type")
        if first not in ("thinking", "redacted_thinking"):
            found = FINAL_ASSISTANT_WITHOUT_THINKING.format(found=first)
            return f"messages.{last}.content.0.type: {found}"
    return None


def _blocks_of(message: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    content = message["content"]
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return list(content)
