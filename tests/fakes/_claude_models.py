"""What each Claude model accepts, as Anthropic's API and Bedrock enforce it (for the fakes).

Written apart from the daemon's model table (`config/models.toml`) on purpose: a wrong
row there must fail against these rules, not agree with itself.  Sources: Anthropic's
model pages and migration guides, the Bedrock Claude docs and model cards (read
2026-11-29); error wordings are [OBS] where issues quote them, else [UNVERIFIED].

    sampling  "both": temperature and top_p together | "one": never both (4.1, the 4.5s,
              the 4.6s) | "none": neither (Opus 4.7 and later)
    thinking  "none" | "budget" (enabled + budget_tokens) | "adaptive" (both forms) |
              "adaptive-only" ("enabled" and "disabled" are 400s)

`sign_thinking` is the fakes' thinking-block signature: a block sent back changed in
any way fails `thinking_signature_ok`, as Anthropic's does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Final

_KEY: Final = b"fake-claude-thinking-signature"


@dataclass(frozen=True)
class ClaudeModel:
    max_output: int
    sampling: str
    thinking: str
    effort: frozenset[str]
    structured: bool


_E4: Final = frozenset({"low", "medium", "high", "max"})
_E5: Final = frozenset({"low", "medium", "high", "xhigh", "max"})
_NONE: Final = frozenset[str]()
# First match wins, over the id without Bedrock's region / provider prefix and version suffix.
_MODELS: Final[tuple[tuple[re.Pattern[str], ClaudeModel], ...]] = tuple(
    (re.compile(pattern), model)
    for pattern, model in (
        (r"claude-3-(haiku|sonnet|opus)", ClaudeModel(4096, "both", "none", _NONE, False)),
        (r"claude-3-5-", ClaudeModel(8192, "both", "none", _NONE, False)),
        (r"claude-3-7-", ClaudeModel(64000, "both", "budget", _NONE, False)),
        (r"claude-(sonnet-4|4-sonnet)(-0|-2025|$)", ClaudeModel(64000, "both", "budget", _NONE,
                                                                 False)),
        (r"claude-(opus-4|4-opus)(-0|-2025|$)", ClaudeModel(32000, "both", "budget", _NONE, False)),
        (r"claude-opus-4-1", ClaudeModel(32000, "one", "budget", _NONE, False)),
        (r"claude-(sonnet|haiku|opus)-4-5", ClaudeModel(64000, "one", "budget", _NONE, True)),
        (r"claude-(sonnet|opus)-4-6", ClaudeModel(128000, "one", "adaptive", _E4, True)),
        (r"claude-(opus-4-[78]|mythos|(opus|sonnet|haiku|fable)-5)",
         ClaudeModel(128000, "none", "adaptive-only", _E5, True)),
    )
)  # fmt: skip


def claude_model(model_id: str) -> ClaudeModel | None:
    """The rules of a Claude model id (Anthropic or Bedrock form), or None for other models."""
    name = re.sub(r"^(?:.*/)?(?:[a-z-]+\.)?anthropic\.", "", model_id.lower())
    name = re.sub(r"(-v\d+(:\d+)?|@.*)$", "", name)
    for pattern, model in _MODELS:
        if pattern.match(name):
            return model
    return None


def sign_thinking(thinking: str) -> str:
    """The signature the fakes give a thinking block with this text."""
    digest = hmac.new(_KEY, thinking.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def thinking_signature_ok(thinking: object, signature: object) -> bool:
    """True when `signature` is the fakes' signature of `thinking`."""
    if not isinstance(thinking, str) or not isinstance(signature, str):
        return False
    return hmac.compare_digest(sign_thinking(thinking), signature)


def sampling_problem(model: ClaudeModel, temperature: object, top_p: object) -> str | None:
    """The 400 message for the sampling parameters a model refuses, else None."""
    if model.sampling == "none":
        for name, value in (("temperature", temperature), ("top_p", top_p)):
            if value is not None:
                return f"`{name}` is deprecated for this model."  # [OBS] for temperature
    if model.sampling == "one" and temperature is not None and top_p is not None:
        return (  # [OBS]
            "`temperature` and `top_p` cannot both be specified for this model."
            " Please use only one."
        )
    return None


def thinking_on(thinking: object) -> bool:
    """True when a `thinking` config turns thinking on (enabled or adaptive)."""
    return isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")


def thinking_problem(
    model: ClaudeModel, thinking: dict[str, object], max_tokens: int, where: str
) -> str | None:
    """The 400 message for a thinking config the model refuses, else None."""
    kind = thinking.get("type")
    if model.thinking == "none" and kind != "disabled":
        return f"{where}: thinking is not supported by this model."  # [UNVERIFIED]
    if kind == "enabled" and model.thinking == "adaptive-only":
        return (  # [OBS]
            '"thinking.type.enabled" is not supported for this model. Use'
            ' "thinking.type.adaptive" and "output_config.effort" to control thinking behavior.'
        )
    if kind == "disabled" and model.thinking == "adaptive-only":
        return f'"{where}.type.disabled" is not supported for this model.'  # [UNVERIFIED]
    if kind == "adaptive" and model.thinking in ("none", "budget"):
        return f"{where}.type: adaptive thinking is not supported by this model."  # [UNVERIFIED]
    if kind == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or isinstance(budget, bool):
            return f"{where}.enabled.budget_tokens: Field required"
        if budget < 1024:
            return f"{where}.enabled.budget_tokens: Input should be greater than or equal to 1024"
        if budget >= max_tokens:
            return (  # [OBS]
                "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult"
                " our documentation at https://docs.claude.com/en/docs/build-with-claude/"
                "extended-thinking#max-tokens-and-context-window-size"
            )
    return None


TEMPERATURE_WITH_THINKING: Final = (  # [OBS]
    "`temperature` may only be set to 1 when thinking is enabled. Please consult our"
    " documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking"
    "#important-considerations-when-using-extended-thinking"
)
TOP_P_WITH_THINKING: Final = (  # [UNVERIFIED wording]
    "`top_p` must be greater than or equal to 0.95 or unset when thinking is enabled."
)
FORCED_TOOL_WITH_THINKING: Final = (  # [OBS]
    "Thinking may not be enabled when tool_choice forces tool use."
)
FINAL_ASSISTANT_WITHOUT_THINKING: Final = (  # [OBS]
    "Expected `thinking` or `redacted_thinking`, but found `{found}`. When `thinking` is"
    " enabled, a final `assistant` message must start with a thinking block (preceeding the"
    " lastmost set of `tool_use` and `tool_result` blocks). We recommend you include thinking"
    " blocks from previous turns. To avoid this requirement, disable `thinking`."
)
