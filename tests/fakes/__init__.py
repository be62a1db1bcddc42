"""Strict fake providers for tests, served on real loopback sockets.

    fake = OpenAIFake(api_key="sk-test")
    fake.script(openai_rate_limited(retry_after=1), success(content="second try"))
    async with serve_app(fake) as url:
        ...  # point the code under test at url + "/v1"
        first, second = await fake.wait_for_requests(2)

- `serve_app(app)` serves any ASGI app on 127.0.0.1 and yields its base URL.
- `OpenAIFake`, `AzureFake`, `AnthropicFake`, `BedrockFake`, `MistralFake`, `GeminiFake`
  reject what the real services reject (PROVIDERS.md §1-§6), with their status and error
  body, and otherwise answer a deterministic completion.
- `fake.script(...)` queues directives (`success`, `error`, `garbage`, `hang`, `wait`,
  `close`, `stream`, `flood`); each request that passes the fake's checks consumes one.
- Answers are compressed (br or gzip) whenever the client's `accept-encoding` allows it,
  as real providers behind CDNs do.
- `fake.requests` records every request (`RecordedRequest`); `wait_for_requests(n)` awaits
  arrivals so tests never poll or sleep.
"""

from ._anthropic import (
    AnthropicFake,
    anthropic_credit_balance_low,
    anthropic_error,
    anthropic_overloaded,
    anthropic_prompt_too_long,
    anthropic_rate_limited,
)
from ._anthropic_rules import ANTHROPIC_PARAMS, check_messages_request
from ._anthropic_stream import (
    anthropic_message_events,
    anthropic_sse,
    anthropic_stream_error,
    anthropic_text_events,
)
from ._asgi import ABORT_EXTENSION
from ._azure import (
    AZURE_PARAMS,
    AzureFake,
    azure_content_filter,
    azure_dialect,
    azure_params,
    azure_rate_limited,
)
from ._base import FakeProvider, FakeStatistics
from ._bedrock import BedrockFake, bedrock_error, bedrock_input_too_long, bedrock_throttled
from ._bedrock_rules import check_converse
from ._bedrock_stream import (
    bedrock_stream,
    bedrock_text_delta,
    encode_frame,
    error_frame,
    event_frame,
    exception_frame,
)
from ._chat_rules import OPENAI_PARAMS, Dialect, Invalid, check_chat_request
from ._gemini import (
    GeminiFake,
    gemini_context_exceeded,
    gemini_error,
    gemini_prompt_blocked,
    gemini_rate_limited,
    gemini_unavailable,
)
from ._gemini_rules import GeminiInvalid, check_generate_request, thought_signature
from ._gemini_stream import (
    gemini_logprobs,
    gemini_response_chunks,
    gemini_stream_error,
    gemini_text_chunks,
)
from ._mistral import (
    MistralFake,
    mistral_capacity_exceeded,
    mistral_context_too_large,
    mistral_rate_limited,
    mistral_stream_events,
)
from ._mistral_rules import MISTRAL_PARAMS, check_mistral_request
from ._openai import (
    OpenAIFake,
    openai_context_length_exceeded,
    openai_insufficient_quota,
    openai_rate_limited,
)
from ._recording import RecordedRequest
from ._script import (
    Close,
    ConnectionDropped,
    Directive,
    Error,
    Flood,
    Garbage,
    Hang,
    Stream,
    Success,
    Wait,
    close,
    error,
    flood,
    garbage,
    hang,
    sse,
    stream,
    success,
    wait,
)
from ._server import serve_app

__all__ = [
    "ABORT_EXTENSION",
    "ANTHROPIC_PARAMS",
    "AZURE_PARAMS",
    "MISTRAL_PARAMS",
    "OPENAI_PARAMS",
    "AnthropicFake",
    "AzureFake",
    "BedrockFake",
    "Close",
    "ConnectionDropped",
    "Dialect",
    "Directive",
    "Error",
    "FakeProvider",
    "FakeStatistics",
    "Flood",
    "Garbage",
    "GeminiFake",
    "GeminiInvalid",
    "Hang",
    "Invalid",
    "MistralFake",
    "OpenAIFake",
    "RecordedRequest",
    "Stream",
    "Success",
    "Wait",
    "anthropic_credit_balance_low",
    "anthropic_error",
    "anthropic_message_events",
    "anthropic_overloaded",
    "anthropic_prompt_too_long",
    "anthropic_rate_limited",
    "anthropic_sse",
    "anthropic_stream_error",
    "anthropic_text_events",
    "azure_content_filter",
    "azure_dialect",
    "azure_params",
    "azure_rate_limited",
    "bedrock_error",
    "bedrock_input_too_long",
    "bedrock_stream",
    "bedrock_text_delta",
    "bedrock_throttled",
    "check_chat_request",
    "check_converse",
    "check_generate_request",
    "check_messages_request",
    "check_mistral_request",
    "close",
    "encode_frame",
    "error",
    "error_frame",
    "event_frame",
    "exception_frame",
    "flood",
    "garbage",
    "gemini_context_exceeded",
    "gemini_error",
    "gemini_logprobs",
    "gemini_prompt_blocked",
    "gemini_rate_limited",
    "gemini_response_chunks",
    "gemini_stream_error",
    "gemini_text_chunks",
    "gemini_unavailable",
    "hang",
    "mistral_capacity_exceeded",
    "mistral_context_too_large",
    "mistral_rate_limited",
    "mistral_stream_events",
    "openai_context_length_exceeded",
    "openai_insufficient_quota",
    "openai_rate_limited",
    "serve_app",
    "sse",
    "stream",
    "success",
    "thought_signature",
    "wait",
]
