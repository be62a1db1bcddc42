"""AWS Bedrock Runtime Converse (PROVIDERS.md §4): the adapter, its response, its errors.

The request translation lives in `_converse`, request signing in `_bedrock_sigv4`.
"""

from __future__ import annotations

import hashlib
import re
import time
import urllib.parse
from collections.abc import Mapping
from typing import Any, Final

import httpx
import msgspec
from msgspec import UNSET, Struct

from config import Deployment

from .._chat import (
    ChatCompletion,
    ChatRequest,
    Choice,
    FunctionCall,
    ResponseMessage,
    ToolCall,
    Usage,
    encoder,
)
from .._exceptions import ErrorClass, ProviderError
from ._base import HttpRequest, drop_params, excerpt, retry_after, unsupported_params
from ._bedrock_sigv4 import BedrockSigV4
from ._converse import BEDROCK_TOOL_ID, check_tool_names, converse_body
from ._toolids import conform_tool_ids

BEDROCK_PARAMS: Final = frozenset(
    {"max_completion_tokens", "max_tokens", "stop", "stream", "temperature", "tool_choice"}
    | {"tools", "top_p"}
)
"""Optional request fields Converse can express (`stream` is the API layer's business)."""

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


def converse_url(base: str, model_id: str) -> str:
    """The Converse URL; `model_id` is one percent-encoded path segment, as botocore sends it."""
    return f"{base.rstrip('/')}/model/{urllib.parse.quote(model_id, safe='')}/converse"


def region_of(spec: Deployment) -> str:
    """The signing region: `region`, else the one in a `bedrock-runtime.{region}` api_base."""
    if spec.region:
        return spec.region
    host = urllib.parse.urlsplit(spec.api_base or "").hostname or ""
    match = re.match(r"bedrock-runtime(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com", host)
    # A custom endpoint that names no region (a proxy, a fake) signs for us-east-1.
    return match.group(1) if match else "us-east-1"


class BedrockAdapter:
    """Bedrock Runtime Converse, signed with SigV4 or sent with a Bedrock API key."""

    __slots__ = ("_headers", "_model", "_name", "_url", "auth", "supported_params")

    def __init__(self, spec: Deployment) -> None:
        region = region_of(spec)
        base = spec.api_base or f"https://bedrock-runtime.{region}.amazonaws.com"
        self._name = spec.name
        self._model = spec.model
        self._url = converse_url(base, spec.model)
        self.supported_params = BEDROCK_PARAMS
        headers = {"content-type": "application/json", "accept": "application/json"}
        key = spec.api_key.reveal() if spec.api_key is not None else None
        self.auth: httpx.Auth | None = None
        if key:
            headers["authorization"] = f"Bearer {key}"  # a Bedrock API key
        else:
            self.auth = BedrockSigV4(region)
        headers.update({name.lower(): value for name, value in spec.headers.items()})
        self._headers = headers

    def build(self, request: ChatRequest) -> HttpRequest:
        dropped = unsupported_params(request, self.supported_params)
        request = conform_tool_ids(drop_params(request, dropped), BEDROCK_TOOL_ID)
        check_tool_names(request, self._name)
        return HttpRequest(
            method="POST",
            url=self._url,
            headers=self._headers,
            body=encoder.encode(converse_body(request, self._name)),
            dropped_params=dropped,
        )

    def parse(self, status: int, headers: Mapping[str, str], body: bytes) -> ChatCompletion:
        return parse_converse(body, model=self._model, request_id=headers.get("x-amzn-requestid"))

    def classify(self, status: int, headers: Mapping[str, str], body: bytes) -> ProviderError:
        return classify_bedrock_error(status, headers, body)


# -- the response ------------------------------------------------------------------


class _ToolUse(Struct, rename="camel"):
    tool_use_id: str
    name: str
    input: Any = None


class _Block(Struct, rename="camel"):
    text: str | None = None
    tool_use: _ToolUse | None = None


class _OutputMessage(Struct):
    content: list[_Block]
    role: str = "assistant"


class _Output(Struct):
    message: _OutputMessage


class _TokenUsage(Struct, rename="camel"):
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cache_read_input_tokens: int = 0
    cache_write_input_tokens: int = 0


class _ConverseResponse(Struct, rename="camel"):
    output: _Output
    stop_reason: str
    usage: _TokenUsage


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
    try:
        decoded = _response_decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ProviderError(
            ErrorClass.SERVER_ERROR,
            f"bedrock: invalid Converse response ({exc}): {excerpt(body)}",
            status=200,
        ) from None
    texts = [block.text for block in decoded.output.message.content if block.text is not None]
    calls = tuple(
        ToolCall(
            id=block.tool_use.tool_use_id,
            function=FunctionCall(
                name=block.tool_use.name,
                arguments=encoder.encode(
                    block.tool_use.input if block.tool_use.input is not None else {}
                ).decode(),
            ),
        )
        for block in decoded.output.message.content
        if block.tool_use is not None
    )
    usage = decoded.usage
    cached = usage.cache_read_input_tokens
    prompt = usage.input_tokens + cached + usage.cache_write_input_tokens
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
                ),
                finish_reason=finish_reason(decoded.stop_reason),
            ),
        ),
        usage=Usage(
            prompt_tokens=prompt,
            completion_tokens=usage.output_tokens,
            total_tokens=prompt + usage.output_tokens,
            prompt_tokens_details={"cached_tokens": cached} if cached else UNSET,
        ),
    )


# -- errors ------------------------------------------------------------------------

_BY_TYPE: Final[Mapping[str, ErrorClass]] = {
    "ThrottlingException": ErrorClass.RATE_LIMITED,
    "ServiceQuotaExceededException": ErrorClass.RATE_LIMITED,
    "ModelTimeoutException": ErrorClass.TIMEOUT,
    "ServiceUnavailableException": ErrorClass.OVERLOADED,
    "ModelNotReadyException": ErrorClass.OVERLOADED,
    "ModelErrorException": ErrorClass.OVERLOADED,
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


class _ErrorBody(Struct):
    message: str | None = None
    Message: str | None = None
    code: str | None = None
    Code: str | None = None
    type_: str | None = msgspec.field(default=None, name="__type")


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
    try:
        decoded = _error_decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        decoded = _ErrorBody()
    fields = {"code": decoded.code, "Code": decoded.Code, "__type": decoded.type_}
    kind = bedrock_error_type(headers, {k: v for k, v in fields.items() if v})
    message = decoded.message or decoded.Message or excerpt(body) or f"HTTP {status}"
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
    return ProviderError(
        error,
        f"{status} {kind + ': ' if kind else ''}{message}"[:500],
        status=status,
        retry_after=retry_after(headers),
        retryable=retryable,
    )
