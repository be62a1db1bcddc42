"""Mistral's answers: a `chat.completion` (§5.6) or an error (§5.4, §5.5), classified."""

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
    encoder,
)
from .._exceptions import ErrorClass, ProviderError
from ._base import decode_tolerant, excerpt, openai_finish_reason, retry_after


def mistral_finish(reason: str | None) -> str | None:
    """OpenAI's finish_reason for Mistral's (`model_length` is `length`, `""` is none yet).

    `error` is not mapped: the parsers raise it as a provider error.
    """
    return None if reason is None else openai_finish_reason(reason)


class _Function(Struct):
    name: str
    arguments: str | dict[str, Any] = ""  # Mistral may send an object (§5.2)


class _ToolCall(Struct):
    function: _Function
    id: str = "null"


class _Message(Struct):
    content: str | list[dict[str, Any]] | None = None
    tool_calls: list[_ToolCall] | None = None


class _Choice(Struct):
    message: _Message = msgspec.field(default_factory=_Message)
    index: int = 0
    finish_reason: str | None = None


class _Usage(Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class _Completion(Struct):
    id: str = ""
    choices: list[_Choice] = []
    created: int = 0
    model: str = ""
    usage: _Usage | None = None


_completion_decoder: Final = msgspec.json.Decoder(_Completion)


def parse_mistral(body: bytes) -> ChatCompletion:
    """A `chat.completion` from Mistral's; garbage or `finish_reason: error` raise."""
    decoded = decode_tolerant(_completion_decoder, body, "mistral chat.completion")
    if not decoded.choices:
        raise ProviderError(
            ErrorClass.SERVER_ERROR, f"mistral: no choices: {excerpt(body)}", status=200
        )
    choices = []
    for choice in decoded.choices:
        if choice.finish_reason == "error":
            raise ProviderError(
                ErrorClass.SERVER_ERROR, "mistral: generation ended with an error", status=200
            )
        calls = tuple(_tool_call(call) for call in choice.message.tool_calls or ())
        text = response_text(choice.message.content)
        if calls and not text:
            text = None  # Mistral sends "" beside tool calls; OpenAI sends null
        message = ResponseMessage(content=text, tool_calls=calls or UNSET)
        finish = mistral_finish(choice.finish_reason)
        choices.append(Choice(index=choice.index, message=message, finish_reason=finish))
    usage = decoded.usage
    return ChatCompletion(
        id=decoded.id,
        created=decoded.created,
        model=decoded.model,
        choices=tuple(choices),
        usage=None if usage is None else Usage(
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            total_tokens=usage.total_tokens,
        ),
    )  # fmt: skip


# -- errors ------------------------------------------------------------------------

_BY_STATUS: Final[Mapping[int, ErrorClass]] = {
    400: ErrorClass.BAD_REQUEST,
    401: ErrorClass.AUTH,
    403: ErrorClass.AUTH,
    404: ErrorClass.NOT_FOUND,
    408: ErrorClass.TIMEOUT,
    422: ErrorClass.BAD_REQUEST,
    429: ErrorClass.RATE_LIMITED,
    500: ErrorClass.SERVER_ERROR,
    502: ErrorClass.SERVER_ERROR,
    503: ErrorClass.OVERLOADED,
    504: ErrorClass.TIMEOUT,
}


def classify_mistral_error(status: int, headers: Mapping[str, str], body: bytes) -> ProviderError:
    """Classify a Mistral error answer by status and message (§5.4, §5.5)."""
    try:
        decoded: Any = msgspec.json.decode(body)
    except msgspec.DecodeError:
        decoded = None
    fields: Mapping[str, Any] = decoded if isinstance(decoded, dict) else {}
    raw = fields.get("message", fields.get("detail"))
    if raw is None or raw == "":
        message = excerpt(body) or f"HTTP {status}"
    else:
        # A 422's message is pydantic's detail list; keep it readable and short.
        message = raw if isinstance(raw, str) else encoder.encode(raw).decode()
    lowered = message.lower()
    error = _BY_STATUS.get(status)
    if error is None:
        error = ErrorClass.SERVER_ERROR if status >= 500 else ErrorClass.BAD_REQUEST
    if "capacity exceeded" in lowered:
        error = ErrorClass.OVERLOADED  # "Service tier capacity exceeded": not our rate limit
    elif status == 400 and ("too large for model" in lowered or "context length" in lowered):
        error = ErrorClass.CONTEXT_WINDOW_EXCEEDED
    code = fields.get("code")
    label = f"{code}: " if code not in (None, "") else ""
    return ProviderError(
        error,
        f"{status} {label}{excerpt(message.encode())}",
        status=status,
        retry_after=retry_after(headers),
    )


def _tool_call(call: _ToolCall) -> ResponseToolCall:
    arguments = call.function.arguments
    if not isinstance(arguments, str):
        arguments = encoder.encode(arguments).decode()
    return ResponseToolCall(
        id=call.id, function=ResponseFunctionCall(name=call.function.name, arguments=arguments)
    )


def response_text(content: str | list[dict[str, Any]] | None) -> str | None:
    """The text of a content string or content chunks (thinking chunks left out)."""
    if content is None or isinstance(content, str):
        return content
    # Reasoning models answer with chunks: keep the text, not the thinking.
    texts = [
        c["text"] for c in content if c.get("type") == "text" and isinstance(c.get("text"), str)
    ]
    return "".join(texts)
