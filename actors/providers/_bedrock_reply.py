"""Bedrock's answers: a Converse response (§4.6) or an error (§4.5), classified.

reasoningContent blocks become `reasoning_content` (their text) and `thinking_blocks`
(signed or redacted, to send back next turn); cached input is `cached_tokens`.

Shared by Converse and ConverseStream: the stream translator maps stop reasons,
usage and in-stream exception frames with the same functions.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from typing import Any, Final

import msgspec
from msgspec import UNSET, Struct, UnsetType

from .._chat import (
    ChatCompletion,
    Choice,
    ResponseFunctionCall,
    ResponseMessage,
    ResponseToolCall,
    Usage,
    encoder,
)
from .._exceptions import ErrorClass, ProviderError
from ._base import decode_tolerant, excerpt, retry_after

_FINISH: Final[Mapping[str, str]] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}
# The model produced something unusable: a provider failure worth a fallback (§4.6).
_MALFORMED: Final = frozenset({"malformed_model_output", "malformed_tool_use"})


# -- the response ------------------------------------------------------------------


class _ToolUse(Struct, rename="camel"):
    tool_use_id: str
    name: str
    input: Any = None


class _Generated(Struct):
    text: str | None = None


class _Citations(Struct):
    """A `citationsContent` block: the answer's text, with the sources it cites."""

    content: list[_Generated] = []


class ReasoningText(Struct):
    text: str = ""
    signature: str | None = None


class _Reasoning(Struct, rename="camel"):
    reasoning_text: ReasoningText | None = None
    redacted_content: str | None = None
    """Base64 in JSON (a blob): kept as it is, to go back as it came."""


class _Block(Struct, rename="camel"):
    # A union in the API: other members (reasoningContent, cachePoint, guardContent...)
    # have no OpenAI field and are skipped.
    text: str | None = None
    tool_use: _ToolUse | None = None
    citations_content: _Citations | None = None
    reasoning_content: _Reasoning | None = None

    def answer_text(self) -> str | None:
        if self.text is not None:
            return self.text
        if self.citations_content is not None:
            texts = [part.text for part in self.citations_content.content if part.text]
            return "".join(texts) if texts else None
        return None


class _OutputMessage(Struct):
    content: list[_Block] = []
    role: str = "assistant"


class _Output(Struct):
    message: _OutputMessage


class TokenUsage(Struct, rename="camel"):
    """Converse's `usage` (also the `metadata` event of a stream); read tolerantly."""

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_write_input_tokens: int = 0


class _ConverseResponse(Struct, rename="camel"):
    output: _Output
    stop_reason: str = "end_turn"
    usage: TokenUsage | None = None


_response_decoder: Final = msgspec.json.Decoder(_ConverseResponse)


def finish_reason(stop_reason: str) -> str:
    """OpenAI's finish_reason for a Converse `stopReason` (malformed output raises)."""
    if stop_reason in _MALFORMED:
        raise ProviderError(
            ErrorClass.SERVER_ERROR, f"bedrock: model stopped with {stop_reason}", status=200
        )
    return _FINISH.get(stop_reason, "stop")


def parse_converse(
    body: bytes, *, model: str, request_id: str | None = None, created: int | None = None
) -> ChatCompletion:
    """A `chat.completion` from a Converse answer; garbage is a `server_error` with an excerpt."""
    decoded = decode_tolerant(_response_decoder, body, "Converse response")
    blocks = decoded.output.message.content
    texts = [text for block in blocks if (text := block.answer_text()) is not None]
    reasoning = [b.reasoning_content for b in blocks if b.reasoning_content]
    thoughts = "".join(r.reasoning_text.text for r in reasoning if r.reasoning_text)
    signed = tuple(
        block
        for r in reasoning
        if (block := thinking_block(r.reasoning_text, r.redacted_content)) is not None
    )
    calls = tuple(
        ResponseToolCall(
            id=block.tool_use.tool_use_id,
            function=ResponseFunctionCall(
                name=block.tool_use.name,
                arguments=encoder.encode(
                    block.tool_use.input if block.tool_use.input is not None else {}
                ).decode(),
            ),
        )
        for block in decoded.output.message.content
        if block.tool_use is not None
    )
    digest = request_id or hashlib.blake2b(body, digest_size=12).hexdigest()
    return ChatCompletion(
        id=f"chatcmpl-{digest}",
        created=int(time.time()) if created is None else created,
        model=model,
        choices=(
            Choice(
                index=0,
                message=ResponseMessage(
                    content="".join(texts) if texts else None,
                    tool_calls=calls if calls else UNSET,
                    reasoning_content=thoughts or UNSET,
                    thinking_blocks=signed or UNSET,
                ),
                finish_reason=finish_reason(decoded.stop_reason),
            ),
        ),
        usage=openai_usage(decoded.usage) if decoded.usage is not None else UNSET,
    )


def thinking_block(text: ReasoningText | None, redacted: str | None) -> dict[str, Any] | None:
    """A reasoningContent block in the `thinking_blocks` shape clients send back next turn
    (the Anthropic one: Claude on Bedrock signs its thinking the same way), else None."""
    if text is not None and text.signature:
        return {"type": "thinking", "thinking": text.text, "signature": text.signature}
    if redacted:
        return {"type": "redacted_thinking", "data": redacted}
    return None


def openai_usage(usage: TokenUsage) -> Usage:
    """OpenAI's usage: its prompt_tokens include the cached ones, Bedrock's inputTokens do not."""
    cached = usage.cache_read_input_tokens
    prompt = usage.input_tokens + cached + usage.cache_write_input_tokens
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=usage.output_tokens,
        total_tokens=prompt + usage.output_tokens,
        prompt_tokens_details=_details(cached, usage.cache_write_input_tokens),
    )


def _details(cached: int, written: int) -> dict[str, int] | UnsetType:
    details = {"cached_tokens": cached} if cached else {}
    if written:
        details["cache_creation_tokens"] = written  # priced apart from plain input
    return details or UNSET


# -- errors ------------------------------------------------------------------------

_BY_TYPE: Final[Mapping[str, ErrorClass]] = {
    "ThrottlingException": ErrorClass.RATE_LIMITED,
    "ServiceQuotaExceededException": ErrorClass.RATE_LIMITED,
    "ModelTimeoutException": ErrorClass.TIMEOUT,
    "ServiceUnavailableException": ErrorClass.OVERLOADED,
    "ModelNotReadyException": ErrorClass.OVERLOADED,
    "ModelErrorException": ErrorClass.OVERLOADED,
    "ModelStreamErrorException": ErrorClass.OVERLOADED,  # 424, as ModelErrorException
    "ValidationException": ErrorClass.BAD_REQUEST,
    "SerializationException": ErrorClass.BAD_REQUEST,
    "AccessDeniedException": ErrorClass.AUTH,
    "UnrecognizedClientException": ErrorClass.AUTH,
    "InvalidSignatureException": ErrorClass.AUTH,
    "IncompleteSignatureException": ErrorClass.AUTH,
    "MissingAuthenticationTokenException": ErrorClass.AUTH,
    "ExpiredTokenException": ErrorClass.AUTH,
    "ResourceNotFoundException": ErrorClass.NOT_FOUND,
    "InternalServerException": ErrorClass.SERVER_ERROR,
}
_BY_STATUS: Final[Mapping[int, ErrorClass]] = {
    400: ErrorClass.BAD_REQUEST,
    401: ErrorClass.AUTH,
    403: ErrorClass.AUTH,
    404: ErrorClass.NOT_FOUND,
    408: ErrorClass.TIMEOUT,
    424: ErrorClass.OVERLOADED,
    429: ErrorClass.RATE_LIMITED,
    500: ErrorClass.SERVER_ERROR,
    503: ErrorClass.OVERLOADED,
    504: ErrorClass.TIMEOUT,
}
_CONTEXT_PHRASES: Final = (
    "input is too long",  # Converse itself [OBS]
    "prompt is too long",  # Anthropic models behind Bedrock
    "too many input tokens",
    "maximum context length",
)
# A quota that waiting does not replenish soon: fall back without retrying (§8.3).
_DAILY_QUOTA: Final = "per day"
STREAM_EXCEPTIONS: Final[Mapping[str, int]] = {
    "internalServerException": 500,
    "modelStreamErrorException": 424,
    "validationException": 400,
    "throttlingException": 429,
    "serviceUnavailableException": 503,
}
"""ConverseStream's in-stream exception members and the HTTP status of each (§4.7)."""


class _ErrorBody(Struct):
    message: str | None = None
    Message: str | None = None
    code: str | None = None
    Code: str | None = None
    type_: str | None = msgspec.field(default=None, name="__type")
    # ModelStreamErrorException and ModelErrorException relay the model's own error.
    original_status: int | None = msgspec.field(default=None, name="originalStatusCode")
    original_message: str | None = msgspec.field(default=None, name="originalMessage")


_error_decoder: Final = msgspec.json.Decoder(_ErrorBody)


def bedrock_error_type(headers: Mapping[str, str], body: Mapping[str, Any] | None) -> str:
    """The exception name, as botocore finds it: `x-amzn-errortype`, then `code`, then `__type`."""
    body = body or {}
    raw = headers.get("x-amzn-errortype") or body.get("code") or body.get("Code")
    raw = raw or body.get("__type") or ""
    # "ThrottlingException:http://internal.amazon.com/..." or "com.amazon.coral#Throttling..."
    return str(raw).split(":", 1)[0].rsplit("#", 1)[-1]


def classify_bedrock_error(status: int, headers: Mapping[str, str], body: bytes) -> ProviderError:
    """Classify a Bedrock error answer by its exception type, then by status (§4.5)."""
    decoded = _decode_error(body)
    fields = {"code": decoded.code, "Code": decoded.Code, "__type": decoded.type_}
    kind = bedrock_error_type(headers, {k: v for k, v in fields.items() if v})
    message = decoded.message or decoded.Message or excerpt(body) or f"HTTP {status}"
    error, retryable = _error_class(kind, status, message)
    return ProviderError(
        error,
        f"{status} {kind + ': ' if kind else ''}{message}",
        status=status,
        retry_after=retry_after(headers),
        retryable=retryable,
    )


def classify_stream_exception(
    member: str, payload: bytes, *, partial: tuple[object, ...] = ()
) -> ProviderError:
    """Classify an in-stream exception frame as the HTTP error of that exception would be.

    `member` is the frame's `:exception-type`, the lowerCamel member name
    (`throttlingException`); `payload` its JSON body, `{"message": ...}`.
    """
    decoded = _decode_error(payload)
    message = decoded.message or decoded.Message or excerpt(payload) or "(no message)"
    if decoded.original_message:
        message += f" (model: {decoded.original_status} {decoded.original_message})"
    return stream_error(member, message, STREAM_EXCEPTIONS.get(member, 500), partial=partial)


def stream_error(
    member: str, message: str, status: int, *, partial: tuple[object, ...] = ()
) -> ProviderError:
    """The `ProviderError` of an in-stream exception or error frame named `member`."""
    kind = member[:1].upper() + member[1:]
    error, retryable = _error_class(kind, status, message)
    return ProviderError(
        error, f"in-stream {kind}: {message}", retryable=retryable, partial=partial
    )


def _decode_error(body: bytes) -> _ErrorBody:
    try:
        return _error_decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return _ErrorBody()


def _error_class(kind: str, status: int, message: str) -> tuple[ErrorClass, bool | None]:
    """The class of an exception `kind` (by name, then by status) and whether to retry it."""
    error = _BY_TYPE.get(kind) or _BY_STATUS.get(status)
    if error is None:
        error = ErrorClass.SERVER_ERROR if status >= 500 else ErrorClass.BAD_REQUEST
    if error is ErrorClass.BAD_REQUEST and any(p in message.lower() for p in _CONTEXT_PHRASES):
        error = ErrorClass.CONTEXT_WINDOW_EXCEEDED
    retryable: bool | None = None
    if kind == "ServiceQuotaExceededException" or (
        error is ErrorClass.RATE_LIMITED and _DAILY_QUOTA in message.lower()
    ):
        retryable = False
    return error, retryable
