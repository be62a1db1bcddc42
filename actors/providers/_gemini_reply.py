"""Gemini's answers (PROVIDERS.md §6.4-§6.5): a response as a `ChatCompletion`, or an error.

finishReason                              finish_reason
STOP with functionCall parts         ->   tool_calls
STOP (and OTHER, LANGUAGE, ...)      ->   stop
MAX_TOKENS                           ->   length
SAFETY, RECITATION, BLOCKLIST, PROHIBITED_CONTENT, SPII, IMAGE_*, MODEL_ARMOR
                                     ->   content_filter (a normal 200 answer)
promptFeedback.blockReason, no candidates -> one empty choice, content_filter
MALFORMED_FUNCTION_CALL, UNEXPECTED_TOOL_CALL, TOO_MANY_TOOL_CALLS
                                     ->   ProviderError server_error (status 200)

error.status (HTTP)                       ErrorClass
INVALID_ARGUMENT (400)               ->   bad_request; "API key not valid" -> auth;
                                          "input token count ... exceeds the maximum"
                                          -> context_window_exceeded
UNAUTHENTICATED (401), PERMISSION_DENIED (403) -> auth
NOT_FOUND (404)                      ->   not_found
RESOURCE_EXHAUSTED (429)             ->   rate_limited, retry_after from RetryInfo
                                          `retryDelay`; a per-day quota is not retryable
INTERNAL (500)                       ->   server_error
UNAVAILABLE (503)                    ->   overloaded
DEADLINE_EXCEEDED (504)              ->   timeout

Thought parts come back as `reasoning_content`; a functionCall's `thoughtSignature` and a
candidate's `logprobsResult` as `_gemini_extras` maps them.

`StreamEvent`, `check_finish`, `openai_finish` and `openai_usage` serve `_gemini_stream`,
which maps streamed responses the same way.
"""

from __future__ import annotations

import hashlib
import re
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
from ._gemini_extras import LogprobsResult, openai_logprobs, signature_extra
from ._toolids import universal_id

_FILTERED: Final = frozenset({
    "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY",
    "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION", "IMAGE_OTHER", "MODEL_ARMOR",
})  # fmt: skip
_TOOL_FAILURES: Final = frozenset(
    {"MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL", "TOO_MANY_TOOL_CALLS"}
)


class _Camel(Struct, frozen=True, rename="camel"):
    """Gemini's JSON is lowerCamelCase; what we do not declare is ignored."""


class GeminiCall(_Camel, frozen=True):
    name: str
    args: dict[str, Any] | None = None
    id: str | None = None


class _Part(_Camel, frozen=True):
    text: str | None = None
    thought: bool = False
    function_call: GeminiCall | None = None
    thought_signature: str | None = None


class _Content(_Camel, frozen=True):
    parts: list[_Part] = []


class _Candidate(_Camel, frozen=True):
    content: _Content | None = None
    finish_reason: str | None = None
    finish_message: str | None = None
    index: int | None = None
    logprobs_result: LogprobsResult | None = None


class UsageMetadata(_Camel, frozen=True):
    prompt_token_count: int = 0
    candidates_token_count: int = 0
    thoughts_token_count: int = 0
    total_token_count: int | None = None
    cached_content_token_count: int | None = None


class _PromptFeedback(_Camel, frozen=True):
    block_reason: str | None = None


class _Response(_Camel, frozen=True):
    candidates: list[_Candidate] = []
    prompt_feedback: _PromptFeedback | None = None
    usage_metadata: UsageMetadata | None = None
    model_version: str | None = None
    response_id: str | None = None


_response_decoder: Final = msgspec.json.Decoder(_Response)


def parse_generate_response(
    status: int, headers: Mapping[str, str], body: bytes, *, model: str
) -> ChatCompletion:
    """The `ChatCompletion` of a generateContent answer; garbage is a `server_error`."""
    response = decode_tolerant(_response_decoder, body, "gemini response", status=status)
    blocked = response.prompt_feedback and response.prompt_feedback.block_reason
    if not response.candidates and not blocked:
        raise garbage(
            "gemini response",
            body,
            "no candidates and no promptFeedback.blockReason",
            status=status,
        )
    # Gemini mints no call ids unless it echoes ours: derive stable ones from the answer.
    response_id = response.response_id or hashlib.blake2b(body, digest_size=12).hexdigest()
    choices = tuple(
        _choice(position, candidate, response_id, status, body)
        for position, candidate in enumerate(response.candidates)
    )
    if not choices:
        # The prompt itself was blocked (§6.4): a normal answer, filtered.
        empty = ResponseMessage(content=None)
        choices = (Choice(index=0, message=empty, finish_reason="content_filter"),)
    return ChatCompletion(
        id=response_id,
        created=created_at(headers),
        model=response.model_version or model,
        choices=choices,
        usage=openai_usage(response.usage_metadata) if response.usage_metadata else UNSET,
    )


def _choice(
    position: int, candidate: _Candidate, response_id: str, status: int, body: bytes
) -> Choice:
    check_finish(candidate, status)
    index = position if candidate.index is None else candidate.index
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[ResponseToolCall] = []
    parts = candidate.content.parts if candidate.content is not None else []
    for part in parts:
        if part.function_call is not None:
            call = part.function_call
            call_id = call.id or call_id_for(response_id, index, len(calls), call.name)
            arguments = msgspec.json.encode(call.args or {}).decode()
            calls.append(
                ResponseToolCall(
                    id=call_id,
                    function=ResponseFunctionCall(name=call.name, arguments=arguments),
                    # Gemini 3 rejects the next turn unless this comes back (§6.3).
                    extra_content=signature_extra(part.thought_signature) or UNSET,
                )
            )
        elif part.text is not None:  # thought summaries are reasoning, not the answer
            (thoughts if part.thought else texts).append(part.text)
    finish = openai_finish(candidate.finish_reason or "STOP", calls=bool(calls))
    message = ResponseMessage(
        content="".join(texts) if texts else None,
        tool_calls=tuple(calls) if calls else UNSET,
        reasoning_content="".join(thoughts) if thoughts else UNSET,
    )
    logprobs = candidate.logprobs_result
    return Choice(
        index=index,
        message=message,
        finish_reason=finish,
        logprobs=openai_logprobs(logprobs) if logprobs is not None else UNSET,
    )


def call_id_for(response_id: str, candidate: int, number: int, name: str) -> str:
    """The id of a call Gemini sent without one: the same in a whole and a streamed answer.

    Derived from the response, the candidate and the call's number among the candidate's
    function calls (not among its parts: a stream splits parts across events).
    """
    return universal_id(f"{response_id}:{candidate}:{number}:{name}")


def check_finish(candidate: _Candidate, status: int | None) -> None:
    """Raise `server_error` for a candidate that ended in a broken tool call."""
    reason = candidate.finish_reason
    if reason in _TOOL_FAILURES:
        detail = f": {candidate.finish_message}" if candidate.finish_message else ""
        raise ProviderError(
            ErrorClass.SERVER_ERROR,
            f"gemini finishReason {reason}{detail}",
            status=status,
        )


def openai_finish(reason: str, *, calls: bool) -> str:
    """OpenAI's finish_reason for a (not broken) `finishReason`; `calls`: any functionCall."""
    if reason in _FILTERED:
        return "content_filter"
    if reason == "MAX_TOKENS":
        return "length"
    return "tool_calls" if calls else "stop"


def openai_usage(meta: UsageMetadata) -> Usage:
    """OpenAI's usage for `usageMetadata`."""
    # Thoughts are billed as output but not counted in candidatesTokenCount (§6.5).
    completion = meta.candidates_token_count + meta.thoughts_token_count
    total = meta.total_token_count
    return Usage(
        prompt_tokens=meta.prompt_token_count,
        completion_tokens=completion,
        total_tokens=total if total is not None else meta.prompt_token_count + completion,
        prompt_tokens_details=(
            {"cached_tokens": meta.cached_content_token_count}
            if meta.cached_content_token_count is not None
            else UNSET
        ),
        completion_tokens_details=(
            {"reasoning_tokens": meta.thoughts_token_count} if meta.thoughts_token_count else UNSET
        ),
    )


# -- errors ------------------------------------------------------------------


class _Status(Struct, frozen=True):
    code: int = 0
    message: str = ""
    status: str = ""
    details: list[dict[str, Any]] = []


class _ErrorBody(Struct, frozen=True):
    error: _Status | None = None


class StreamEvent(_Response, frozen=True):
    """One `data:` event of streamGenerateContent: a response, or an error object (§6.6)."""

    error: _Status | None = None


_BY_RPC: Final[Mapping[str, ErrorClass]] = {
    "INVALID_ARGUMENT": ErrorClass.BAD_REQUEST,
    "FAILED_PRECONDITION": ErrorClass.BAD_REQUEST,
    "OUT_OF_RANGE": ErrorClass.BAD_REQUEST,
    "UNAUTHENTICATED": ErrorClass.AUTH,
    "PERMISSION_DENIED": ErrorClass.AUTH,
    "NOT_FOUND": ErrorClass.NOT_FOUND,
    "RESOURCE_EXHAUSTED": ErrorClass.RATE_LIMITED,
    "INTERNAL": ErrorClass.SERVER_ERROR,
    "UNKNOWN": ErrorClass.SERVER_ERROR,
    "ABORTED": ErrorClass.SERVER_ERROR,
    "UNAVAILABLE": ErrorClass.OVERLOADED,
    "DEADLINE_EXCEEDED": ErrorClass.TIMEOUT,
}
_BY_STATUS: Final[Mapping[int, ErrorClass]] = {
    400: ErrorClass.BAD_REQUEST,
    401: ErrorClass.AUTH,
    403: ErrorClass.AUTH,
    404: ErrorClass.NOT_FOUND,
    408: ErrorClass.TIMEOUT,
    413: ErrorClass.CONTEXT_WINDOW_EXCEEDED,
    429: ErrorClass.RATE_LIMITED,
    500: ErrorClass.SERVER_ERROR,
    502: ErrorClass.SERVER_ERROR,
    503: ErrorClass.OVERLOADED,
    504: ErrorClass.TIMEOUT,
}
_CONTEXT: Final = re.compile(r"input token count.*exceeds the maximum", re.I | re.S)
_DURATION: Final = re.compile(r"(\d+(?:\.\d*)?)s")
_KEY_REASONS: Final = frozenset({"API_KEY_INVALID", "API_KEY_EXPIRED"})


def classify_gemini_error(status: int, headers: Mapping[str, str], body: bytes) -> ProviderError:
    """Classify a Google RPC error answer by `error.status`, its details, then the status."""
    rpc = _decode_status(body)
    error = _BY_RPC.get(rpc.status) or _BY_STATUS.get(status)
    if error is None:
        error = ErrorClass.SERVER_ERROR if status >= 500 else ErrorClass.BAD_REQUEST
    reasons = {str(detail.get("reason", "")) for detail in rpc.details}
    # A bad key is a 400 INVALID_ARGUMENT (§6.1), yet no other deployment-wide fix applies.
    if reasons & _KEY_REASONS or "api key not valid" in rpc.message.lower():
        error = ErrorClass.AUTH
    elif error is ErrorClass.BAD_REQUEST and _CONTEXT.search(rpc.message):
        error = ErrorClass.CONTEXT_WINDOW_EXCEEDED
    wait = retry_after(headers)
    retryable: bool | None = None
    if error is ErrorClass.RATE_LIMITED:
        delay = _retry_delay(rpc.details)
        if delay is not None:
            wait = delay
        if _daily_quota(rpc.details):
            retryable = False  # waiting seconds does not refill a per-day quota
    message = rpc.message or excerpt(body) or f"HTTP {status}"
    kind = f"{rpc.status}: " if rpc.status else ""
    return ProviderError(
        error,
        f"{status} {kind}{message}",
        status=status,
        retry_after=wait,
        retryable=retryable,
    )


def _decode_status(body: bytes) -> _Status:
    try:
        value = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return _Status()
    if isinstance(value, list) and value:  # the streaming endpoint wraps errors in a list
        value = value[0]
    try:
        decoded = msgspec.convert(value, _ErrorBody)
    except msgspec.ValidationError:
        return _Status()
    return decoded.error or _Status()


def _retry_delay(details: list[dict[str, Any]]) -> float | None:
    """`RetryInfo.retryDelay` ("37s", "1.5s"): the wait is in the body, not a header (§6.4)."""
    for detail in details:
        if str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            match = _DURATION.fullmatch(str(detail.get("retryDelay", "")))
            if match:
                return float(match[1])
    return None


def _daily_quota(details: list[dict[str, Any]]) -> bool:
    for detail in details:
        if str(detail.get("@type", "")).endswith("google.rpc.QuotaFailure"):
            for violation in detail.get("violations") or ():
                if isinstance(violation, dict) and "PerDay" in str(violation.get("quotaId", "")):
                    return True
    return False
