"""Provider adapters: pure translation between OpenAI's chat format and each provider's."""

from collections.abc import Callable, Mapping
from typing import Final

from msgspec.structs import replace

from config import Deployment

from ._anthropic import ANTHROPIC_TABLE, AnthropicAdapter
from ._base import (
    OPTIONAL_PARAMS,
    Adapter,
    Handling,
    HttpRequest,
    ParamRow,
    ParamTable,
    StreamParser,
    drop_params,
    excerpt,
    inert_params,
    param_table,
    params_to_drop,
    retry_after,
    supported_by,
    unsupported_params,
)
from ._bedrock import BEDROCK_TABLE, BedrockAdapter
from ._gemini import GeminiAdapter
from ._gemini_params import GEMINI_TABLE
from ._mistral import MistralAdapter
from ._mock import MOCK_BASE, MockUpstream
from ._openai import OpenAIAdapter, classify_openai_error, parse_openai_completion
from ._tables import render_param_tables, table_of
from ._toolids import UNIVERSAL_ID, IdRule, conform_tool_ids, pattern_rule, universal_id


def _mock(spec: Deployment) -> Adapter:
    return OpenAIAdapter(replace(spec, api_base=MOCK_BASE))


# provider name (config `provider`) -> adapter factory; one line per provider family.
_ADAPTERS: Final[Mapping[str, Callable[[Deployment], Adapter]]] = {
    "openai": OpenAIAdapter,
    "azure": OpenAIAdapter,
    "openai-compatible": OpenAIAdapter,
    "mock": _mock,
    "anthropic": AnthropicAdapter,
    "gemini": GeminiAdapter,
    "bedrock": BedrockAdapter,
    "mistral": MistralAdapter,
}


def adapter_for(spec: Deployment) -> Adapter:
    """The adapter of a deployment's provider."""
    factory = _ADAPTERS.get(spec.provider)
    if factory is None:
        raise NotImplementedError(f"provider {spec.provider!r} has no adapter yet")
    return factory(spec)


def supported_providers() -> frozenset[str]:
    """Providers this build can dispatch to."""
    return frozenset(_ADAPTERS)


def param_tables() -> str:
    """The README's parameter tables (Markdown), one per provider, read from the adapters."""
    return render_param_tables(_ADAPTERS)


__all__ = [
    "ANTHROPIC_TABLE",
    "BEDROCK_TABLE",
    "GEMINI_TABLE",
    "OPTIONAL_PARAMS",
    "UNIVERSAL_ID",
    "Adapter",
    "AnthropicAdapter",
    "BedrockAdapter",
    "GeminiAdapter",
    "Handling",
    "HttpRequest",
    "IdRule",
    "MistralAdapter",
    "MockUpstream",
    "OpenAIAdapter",
    "ParamRow",
    "ParamTable",
    "StreamParser",
    "adapter_for",
    "classify_openai_error",
    "conform_tool_ids",
    "drop_params",
    "excerpt",
    "inert_params",
    "param_table",
    "param_tables",
    "params_to_drop",
    "parse_openai_completion",
    "pattern_rule",
    "retry_after",
    "supported_by",
    "supported_providers",
    "table_of",
    "universal_id",
    "unsupported_params",
]
