"""Anthropic's answers (PROVIDERS.md §3.5-§3.6): a message as a `ChatCompletion`, or an error.

thinking / redacted_thinking blocks  ->    message.reasoning_content (the thinking text) and
                                          message.thinking_blocks (to send back next turn)

stop_reason                               finish_reason
end_turn, stop_sequence, pause_turn  ->   stop
max_tokens, model_context_window_exceeded -> length
tool_use                             ->   tool_calls
refusal                              ->   content_filter (a normal 200 answer)

error.type (HTTP)                         ErrorClass
invalid_request_error (400)          ->   bad_request; "prompt is too long" ->
                                          context_window_exceeded; "credit balance" ->
                                          rate_limited, not retryable
authentication_error (401), permission_error (403) -> auth
billing_error (402)                  ->   rate_limited, not retryable (quota)
not_found_error (404)                ->   not_found
request_too_large (413)              ->   context_window_exceeded
rate_limit_error (429)               ->   rate_limited (+ retry-after)
api_error (500)                      ->   server_error
timeout_error (504)                  ->   timeout
overloaded_error (529)               ->   overloaded

An in-stream `error` event (`classify_anthropic_event`) is classified by the same
table; an unknown type there is a server_error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import msgspec
from msgspec import UNSET, Struct

from .._chat import (
    ChatCompletion,
    Choice,
    ResponseFunctionCall,
    ResponseMessage,
    ResponseToolCall,
    Usage,
)
from .._exceptions import ErrorClass, ProviderError
from ._base import decode_tolerant, excerpt, garbage, retry_after
from ._chat_parts import created_at

FINISH_REASONS: Final[Mapping[str, str]] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


class _Block(Struct, frozen=True):
    # One struct for every block type: unknown types (server tools, web search results...)
    # are skipped; what the provider adds to a block is ignored.
    type: str = ""
    text: str | None = None
    id: str | None = None
    name: str | None = None
    input: Any = None
    thinking: str | None = None
    signature: str | None = None
    data: str | None = None


class CacheCreation(Struct, frozen=True):
    """`usage.cache_creation`: the cache writes by lifetime (they are priced apart)."""

    ephemeral_5m_input_tokens: int = 0
    ephemeral_1h_input_tokens: int = 0


class AnthropicUsage(Struct, frozen=True):
    """`usage` (read with `decode_tolerant`: a `null` count is a missing one, 0)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    cache_creation: CacheCreation | None = None


class _Message(Struct, frozen=True):
    # Only `content` is required: a proxy (OpenRouter) or a future API version that leaves
    # anything else out still delivers the answer. `content: []` is a valid empty answer.
    content: list[_Block]
    id: str = ""
    type: str = "message"
    model: str = ""
    stop_reason: str | None = None
    usage: AnthropicUsage | None = None


_message_decoder: Final = msgspec.json.Decoder(_Message)


def parse_message(
    status: int, headers: Mapping[str, str], body: bytes, *, model: str = ""
) -> ChatCompletion:
    """The `ChatCompletion` of an Anthropic message; garbage is a `server_error`."""
    message = decode_tolerant(_message_decoder, body, "anthropic response", status=status)
    if message.type != "message":  # e.g. an error object answered with a 200
        raise garbage("anthropic response", body, f"type {message.type!r}", status=status)
    texts: list[str] = []
    calls: list[ResponseToolCall] = []
    thoughts: list[str] = []
    signed: list[dict[str, Any]] = []
    for block in message.content:
        if block.type == "text" and block.text is not None:
            texts.append(block.text)
        elif block.type in ("thinking", "redacted_thinking"):
            kept = thinking_block(block.type, block.thinking, block.signature, block.data)
            if kept is not None:
                signed.append(kept)
            if block.thinking:
                thoughts.append(block.thinking)
        elif block.type == "tool_use":
            # A call without input (left out or null) takes no arguments: OpenAI's "{}".
            given = block.input if block.input is not None else {}
            if not block.id or not block.name or not isinstance(given, dict):
                raise garbage(
                    "anthropic response", body, "tool_use without id, name or input", status=status
                )
            arguments = msgspec.json.encode(given).decode()
            calls.append(
                ResponseToolCall(
                    id=block.id, function=ResponseFunctionCall(name=block.name, arguments=arguments)
                )
            )
    finish = FINISH_REASONS.get(message.stop_reason or "", "stop")
    return ChatCompletion(
        id=message.id,
        created=created_at(headers),
        model=message.model or model,
        choices=(
            Choice(
                index=0,
                message=ResponseMessage(
                    content="".join(texts) if texts else None,
                    tool_calls=tuple(calls) if calls else UNSET,
                    reasoning_content="".join(thoughts) if thoughts else UNSET,
                    thinking_blocks=tuple(signed) if signed else UNSET,
                ),
                finish_reason=finish,
            ),
        ),
        usage=openai_usage(message.usage) if message.usage is not None else UNSET,
    )


def thinking_block(
    kind: str, thinking: str | None, signature: str | None, data: str | None
) -> dict[str, Any] | None:
    """A thinking block as the client sends it back next turn (`thinking_blocks`), else None.

    `{"type": "thinking", "thinking", "signature"}` or `{"type": "redacted_thinking", "data"}`:
    Anthropic rejects a block changed in any way, so both are kept whole.
    """
    if kind == "thinking" and signature:
        return {"type": "thinking", "thinking": thinking or "", "signature": signature}
    if kind == "redacted_thinking" and data:
        return {"type": "redacted_thinking", "data": data}
    return None


def openai_usage(usage: AnthropicUsage) -> Usage:
    """OpenAI's usage for Anthropic's (cached input counted in `prompt_tokens`)."""
    # input_tokens excludes cached input; OpenAI's prompt_tokens counts all of it (§3.6).
    prompt = (
        usage.input_tokens
        + (usage.cache_creation_input_tokens or 0)
        + (usage.cache_read_input_tokens or 0)
    )
    details: dict[str, Any] = {}
    if usage.cache_read_input_tokens is not None:
        details["cached_tokens"] = usage.cache_read_input_tokens
    if usage.cache_creation_input_tokens:
        # LiteLLM's and OpenRouter's names: cache writes cost more than plain input.
        details["cache_creation_tokens"] = usage.cache_creation_input_tokens
        if usage.cache_creation is not None:
            details["cache_creation_token_details"] = msgspec.structs.asdict(usage.cache_creation)
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=usage.output_tokens,
        total_tokens=prompt + usage.output_tokens,
        prompt_tokens_details=details or UNSET,
    )


# -- errors ------------------------------------------------------------------


class _ErrorDetail(Struct, frozen=True):
    type: str = ""
    message: str = ""


class _ErrorBody(Struct, frozen=True):
    error: _ErrorDetail | None = None


_error_decoder: Final = msgspec.json.Decoder(_ErrorBody)

_BY_TYPE: Final[Mapping[str, ErrorClass]] = {
    "invalid_request_error": ErrorClass.BAD_REQUEST,
    "authentication_error": ErrorClass.AUTH,
    "permission_error": ErrorClass.AUTH,
    "billing_error": ErrorClass.RATE_LIMITED,
    "not_found_error": ErrorClass.NOT_FOUND,
    "request_too_large": ErrorClass.CONTEXT_WINDOW_EXCEEDED,
    "rate_limit_error": ErrorClass.RATE_LIMITED,
    "api_error": ErrorClass.SERVER_ERROR,
    "timeout_error": ErrorClass.TIMEOUT,
    "overloaded_error": ErrorClass.OVERLOADED,
}
_BY_STATUS: Final[Mapping[int, ErrorClass]] = {
    400: ErrorClass.BAD_REQUEST,
    401: ErrorClass.AUTH,
    402: ErrorClass.RATE_LIMITED,
    403: ErrorClass.AUTH,
    404: ErrorClass.NOT_FOUND,
    408: ErrorClass.TIMEOUT,
    409: ErrorClass.SERVER_ERROR,  # the SDK retries 409 like a 5xx
    413: ErrorClass.CONTEXT_WINDOW_EXCEEDED,
    429: ErrorClass.RATE_LIMITED,
    500: ErrorClass.SERVER_ERROR,
    502: ErrorClass.SERVER_ERROR,
    503: ErrorClass.OVERLOADED,
    504: ErrorClass.TIMEOUT,
    529: ErrorClass.OVERLOADED,
}
# There is no code for these: only the message tells them apart from other 400s (§3.4, §8.3).
_CONTEXT_WORDS: Final = ("prompt is too long", "exceed context limit")
_QUOTA_WORDS: Final = ("credit balance",)


def classify_anthropic_error(status: int, headers: Mapping[str, str], body: bytes) -> ProviderError:
    """Classify an Anthropic error answer by `error.type`, its message, then the status."""
    detail = _error_detail(body)
    fallback = _BY_STATUS.get(status)
    if fallback is None:
        fallback = ErrorClass.SERVER_ERROR if status >= 500 else ErrorClass.BAD_REQUEST
    error, retryable = _refine(detail, fallback, quota=status == 402)
    if headers.get("x-should-retry") == "false":
        retryable = False
    message = detail.message or excerpt(body) or f"HTTP {status}"
    kind = f"{detail.type}: " if detail.type else ""
    return ProviderError(
        error,
        f"{status} {kind}{message}",
        status=status,
        retry_after=retry_after(headers),
        retryable=retryable,
    )


def classify_anthropic_event(data: bytes) -> ProviderError:
    """Classify an in-stream `error` event (HTTP 200) as the same error answered with a status."""
    detail = _error_detail(data)
    error, retryable = _refine(detail, ErrorClass.SERVER_ERROR, quota=False)
    message = detail.message or excerpt(data)
    kind = f"{detail.type}: " if detail.type else ""
    return ProviderError(error, f"in-stream error {kind}{message}", retryable=retryable)


def _error_detail(body: bytes) -> _ErrorDetail:
    try:
        decoded = _error_decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return _ErrorDetail()
    return decoded.error or _ErrorDetail()


def _refine(
    detail: _ErrorDetail, fallback: ErrorClass, *, quota: bool
) -> tuple[ErrorClass, bool | None]:
    """The class of `detail` (`fallback` for an unknown type), and False if not retryable."""
    error = _BY_TYPE.get(detail.type) or fallback
    quota = quota or detail.type == "billing_error"
    if error in (ErrorClass.BAD_REQUEST, ErrorClass.CONTEXT_WINDOW_EXCEEDED):
        text = detail.message.lower()
        if any(words in text for words in _CONTEXT_WORDS):
            error = ErrorClass.CONTEXT_WINDOW_EXCEEDED
        elif any(words in text for words in _QUOTA_WORDS):
            error, quota = ErrorClass.RATE_LIMITED, True
    # Quota and billing problems are not cured by waiting: fall back without retrying.
    return error, (False if quota else None)
