"""What `dispatcher import-litellm` knows of LiteLLM's names: prefixes, strategies, keys."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

# LiteLLM's prefix -> (our provider, the variable LiteLLM reads the key from when none is set)
NATIVE: Final[Mapping[str, tuple[str, str | None]]] = {
    "openai": ("openai", "OPENAI_API_KEY"),
    "azure": ("azure", "AZURE_API_KEY"),
    "anthropic": ("anthropic", "ANTHROPIC_API_KEY"),
    "bedrock": ("bedrock", None),
    "mistral": ("mistral", "MISTRAL_API_KEY"),
    "gemini": ("gemini", "GEMINI_API_KEY"),
}
COMPATIBLE: Final[Mapping[str, tuple[str | None, str]]] = {
    # OpenAI-compatible services LiteLLM names by prefix: (their /v1 base, key variable)
    "openrouter": ("https://openrouter.ai/api/v1", "OPENROUTER_API_KEY"),
    "groq": ("https://api.groq.com/openai/v1", "GROQ_API_KEY"),
    "deepseek": ("https://api.deepseek.com/v1", "DEEPSEEK_API_KEY"),
    "together_ai": ("https://api.together.xyz/v1", "TOGETHERAI_API_KEY"),
    "fireworks_ai": ("https://api.fireworks.ai/inference/v1", "FIREWORKS_AI_API_KEY"),
    "xai": ("https://api.x.ai/v1", "XAI_API_KEY"),
    "hosted_vllm": (None, "HOSTED_VLLM_API_KEY"),
    "vllm": (None, "HOSTED_VLLM_API_KEY"),
    "lm_studio": (None, "LM_STUDIO_API_KEY"),
    "azure_ai": (None, "AZURE_AI_API_KEY"),
}
BARE: Final = (
    (re.compile(r"^(gpt-|o\d|chatgpt-)"), "openai"),
    (re.compile(r"^claude-"), "anthropic"),
    (re.compile(r"^(mistral-|open-mistral|codestral|magistral|ministral)"), "mistral"),
)
STRATEGIES: Final = {
    "simple-shuffle": "simple-shuffle",
    "least-busy": "least-busy",
    "latency-based-routing": "latency",
    "usage-based-routing": "usage",
    "usage-based-routing-v2": "usage",
}
PRICES: Final = {
    "input_cost_per_token": "input_cost_per_mtok",
    "output_cost_per_token": "output_cost_per_mtok",
    "cache_read_input_token_cost": "cached_input_cost_per_mtok",
    "cache_creation_input_token_cost": "cache_write_cost_per_mtok",
}
REQUEST_DEFAULTS: Final = frozenset(
    {
        "temperature", "max_tokens", "max_completion_tokens", "top_p", "stop", "seed",
        "frequency_penalty", "presence_penalty", "response_format", "tools", "tool_choice",
        "reasoning_effort", "thinking", "extra_body", "extra_headers", "user", "n",
    }
)  # fmt: skip
AWS_CREDENTIALS: Final = frozenset(
    {
        "aws_access_key_id", "aws_secret_access_key", "aws_session_token", "aws_profile_name",
        "aws_role_name", "aws_session_name", "aws_web_identity_token", "aws_sts_endpoint",
    }
)  # fmt: skip
ROUTER_KEYS: Final = (
    "routing_strategy",
    "num_retries",
    "timeout",
    "request_timeout",
    "allowed_fails",
    "cooldown_time",
    "fallbacks",
    "context_window_fallbacks",
    "content_policy_fallbacks",
    "default_fallbacks",
)


def router_reason(key: str) -> str:
    if key.startswith("redis_") or key in ("cache", "cache_params", "cache_responses"):
        return "no shared state or response cache: each daemon keeps its own limits and breakers"
    if key in ("retry_policy", "allowed_fails_policy"):
        return "retries and the breaker are decided by error class, not per-error counts"
    if key in ("callbacks", "success_callback", "failure_callback", "set_verbose", "json_logs"):
        return "logging and callbacks: see /metrics and the daemon's log"
    if key == "model_group_alias":
        return "no aliases: name the group as clients call it"
    return "no equivalent"
