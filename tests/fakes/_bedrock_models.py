"""What a Bedrock model refuses in a Converse body that botocore's shapes accept.

Applied by `BedrockFake` after `check_converse`, with the model id of the URL. Claude
models (`_claude_models`) take their own rules through Converse: the output limit,
sampling, thinking in `additionalModelRequestFields`, `outputConfig.effort` and
`textFormat`, strict tools, and signed `reasoningContent` coming back unchanged.
Other models take none of the Claude-only fields. Bedrock relays a model's own
refusal as "The model returned the following errors: ..." [OBS].
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from ._claude_models import (
    FINAL_ASSISTANT_WITHOUT_THINKING,
    FORCED_TOOL_WITH_THINKING,
    TEMPERATURE_WITH_THINKING,
    TOP_P_WITH_THINKING,
    ClaudeModel,
    claude_model,
    sampling_problem,
    thinking_on,
    thinking_problem,
    thinking_signature_ok,
)

_RELAYED: Final = "The model returned the following errors: "
_CLAUDE_FIELDS: Final = frozenset({"thinking", "top_k", "anthropic_beta"})


def converse_model_problem(model_id: str, body: Mapping[str, Any]) -> str | None:
    """Why the model `model_id` refuses `body` (already valid for the service model), or None."""
    model = claude_model(model_id)
    extra = body.get("additionalModelRequestFields") or {}
    if model is None:
        if extra:
            return f"{_RELAYED}extraneous key [{next(iter(extra))}] is not permitted"  # [OBS]
        if _uses_claude_blocks(body):
            return "This model doesn't support the reasoningContent or cachePoint field."
        if body.get("outputConfig"):
            return "This model doesn't support the outputConfig field."  # [UNVERIFIED]
        return None
    return _claude_problem(model, body, extra)


def _claude_problem(
    model: ClaudeModel, body: Mapping[str, Any], extra: Mapping[str, Any]
) -> str | None:
    for key in extra:
        if key not in _CLAUDE_FIELDS:
            return f"{_RELAYED}extraneous key [{key}] is not permitted"  # [OBS]
    inference = body.get("inferenceConfig") or {}
    max_tokens = inference.get("maxTokens", model.max_output)
    if max_tokens > model.max_output:
        return (  # [OBS shape]
            f"The maximum tokens you requested exceeds the model limit of {model.max_output}."
            f" Try again with a maximum tokens value that is lower than {model.max_output}."
        )
    thinking = extra.get("thinking")
    on = thinking_on(thinking)
    if on and "temperature" in inference and inference["temperature"] != 1:
        return _RELAYED + TEMPERATURE_WITH_THINKING
    if on and "topP" in inference and not 0.95 <= inference["topP"] <= 1:
        return _RELAYED + TOP_P_WITH_THINKING
    problem = sampling_problem(model, inference.get("temperature"), inference.get("topP"))
    if problem is not None:
        return _RELAYED + problem
    if isinstance(thinking, dict):
        problem = thinking_problem(model, thinking, max_tokens, "thinking")
        if problem is not None:
            return _RELAYED + problem
    choice = (body.get("toolConfig") or {}).get("toolChoice") or {}
    if on and ("any" in choice or "tool" in choice):
        return _RELAYED + FORCED_TOOL_WITH_THINKING
    output = body.get("outputConfig") or {}
    if "effort" in output and output["effort"] not in model.effort:
        return f"{_RELAYED}output_config.effort: {output['effort']!r} is not supported."
    if "textFormat" in output:
        if not model.structured:
            return "This model doesn't support the outputConfig.textFormat field."  # [UNVERIFIED]
        schema = output["textFormat"]["structure"].get("jsonSchema", {}).get("schema", "")
        try:
            parsed = json.loads(schema)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            return "The JSON schema in outputConfig.textFormat is not a valid JSON object."
    specs = [
        t["toolSpec"] for t in (body.get("toolConfig") or {}).get("tools", ()) if "toolSpec" in t
    ]
    if not model.structured and any(spec.get("strict") for spec in specs):
        return "This model doesn't support the toolSpec.strict field."  # [UNVERIFIED]
    return _reasoning_history(body["messages"], on)


def _reasoning_history(messages: list[dict[str, Any]], on: bool) -> str | None:
    for index, message in enumerate(messages):
        for position, block in enumerate(message["content"]):
            text = (block.get("reasoningContent") or {}).get("reasoningText")
            if text is not None and not thinking_signature_ok(
                text.get("text"), text.get("signature")
            ):
                return (
                    f"{_RELAYED}messages.{index}.content.{position}: Invalid `signature` in"
                    " `thinking` block"
                )
    if not on:
        return None
    last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=None)
    if last is None:
        return None
    blocks = messages[last]["content"]
    final = last == len(messages) - 1
    if (final or any("toolUse" in b for b in blocks)) and "reasoningContent" not in blocks[0]:
        found = "tool_use" if "toolUse" in blocks[0] else "text"
        found_text = FINAL_ASSISTANT_WITHOUT_THINKING.format(found=found)
        return f"{_RELAYED}messages.{last}.content.0.type: {found_text}"
    return None


def _uses_claude_blocks(body: Mapping[str, Any]) -> bool:
    blocks = [b for m in body["messages"] for b in m["content"]]
    blocks += list(body.get("system") or ()) + list((body.get("toolConfig") or {}).get("tools", ()))
    return any("reasoningContent" in b or "cachePoint" in b for b in blocks)
