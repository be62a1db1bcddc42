"""OpenAI, Azure OpenAI and any OpenAI-compatible server: one wire format.

The request body is the `ChatRequest` itself with `model` set to the
deployment's model: its Struct is the allow-list, so nothing else can be sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import httpx
import msgspec
from msgspec import Struct

from config import Deployment

from .._chat import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatRequest,
    StreamOptions,
    chunk_decoder,
    completion_decoder,
    encoder,
)
from .._exceptions import ErrorClass, ProviderError
from ._base import (
    OPTIONAL_PARAMS,
    HttpRequest,
    decode_or_garbage,
    drop_params,
    excerpt,
    retry_after,
    unsupported_params,
)
from ._sse import ServerSentEvent, SSEStreamParser
from ._toolids import IdRule, conform_tool_ids, pattern_rule

OPENAI_BASE: Final = "https://api.openai.com/v1"
OPENAI_TOOL_ID: Final[IdRule] = pattern_rule(r".+", max_length=40)
"""OpenAI accepts any tool-call id of at most 40 characters (PROVIDERS.md §1.3)."""
_INCLUDE_USAGE: Final = StreamOptions(include_usage=True)
AZURE_REASONING_SINCE: Final = "2024-12-01-preview"
"""Older Azure api-versions answer `Unknown parameter: 'reasoning_effort'`."""


class _ErrorDetail(Struct):
    message: str = ""
    type: str | None = None
    code: str | int | None = None
    param: str | None = None


class _ErrorBody(Struct):
    error: _ErrorDetail | str | None = None


_error_decoder: Final = msgspec.json.Decoder(_ErrorBody)

_BY_STATUS: Final[Mapping[int, ErrorClass]] = {
    400: ErrorClass.BAD_REQUEST,
    401: ErrorClass.AUTH,
    402: ErrorClass.AUTH,
    403: ErrorClass.AUTH,
    404: ErrorClass.NOT_FOUND,
    408: ErrorClass.TIMEOUT,
    409: ErrorClass.SERVER_ERROR,
    413: ErrorClass.CONTEXT_WINDOW_EXCEEDED,
    422: ErrorClass.BAD_REQUEST,
    429: ErrorClass.RATE_LIMITED,
    500: ErrorClass.SERVER_ERROR,
    502: ErrorClass.SERVER_ERROR,
    503: ErrorClass.OVERLOADED,
    504: ErrorClass.TIMEOUT,
    529: ErrorClass.OVERLOADED,
}
_BY_CODE: Final[Mapping[str, ErrorClass]] = {
    "context_length_exceeded": ErrorClass.CONTEXT_WINDOW_EXCEEDED,
    "content_filter": ErrorClass.CONTENT_POLICY,
    "content_policy_violation": ErrorClass.CONTENT_POLICY,
    "rate_limit_exceeded": ErrorClass.RATE_LIMITED,
    "insufficient_quota": ErrorClass.RATE_LIMITED,
    "invalid_api_key": ErrorClass.AUTH,
    "model_not_found": ErrorClass.NOT_FOUND,
    "DeploymentNotFound": ErrorClass.NOT_FOUND,
}
# Quota exhaustion is a 429 that waiting does not fix: fall back without retrying.
_NOT_RETRYABLE_CODES: Final = frozenset({"insufficient_quota"})


def classify_openai_error(status: int, headers: Mapping[str, str], body: bytes) -> ProviderError:
    """Classify an OpenAI-shaped error answer by status and `error.code`."""
    detail = _ErrorDetail()
    try:
        decoded = _error_decoder.decode(body)
    except msgspec.DecodeError:
        decoded = None
    if decoded is not None and isinstance(decoded.error, _ErrorDetail):
        detail = decoded.error
    elif decoded is not None and isinstance(decoded.error, str):
        detail = _ErrorDetail(message=decoded.error)
    code = str(detail.code) if detail.code is not None else ""
    error = _BY_CODE.get(code) if 400 <= status < 500 else None
    if error is None:
        error = _BY_STATUS.get(status)
    if error is None:
        error = ErrorClass.SERVER_ERROR if status >= 500 else ErrorClass.BAD_REQUEST
    message = detail.message or excerpt(body) or f"HTTP {status}"
    retryable: bool | None = None
    if code in _NOT_RETRYABLE_CODES or headers.get("x-should-retry") == "false":
        retryable = False
    return ProviderError(
        error,
        f"{status} {code + ': ' if code else ''}{message}"[:500],
        status=status,
        retry_after=retry_after(headers),
        retryable=retryable,
    )


def parse_openai_completion(body: bytes) -> ChatCompletion:
    """Decode a `chat.completion`; garbage is a `server_error` with an excerpt."""
    return decode_or_garbage(completion_decoder, body, "chat.completion")


class OpenAIAdapter:
    """OpenAI, OpenAI-compatible servers, and Azure OpenAI (both URL forms)."""

    __slots__ = ("_headers", "_model", "_stream_usage", "_url", "auth", "supported_params")

    def __init__(self, spec: Deployment) -> None:
        self._model = spec.model
        # OpenAI itself always takes stream_options: ask for the usage chunk so streamed
        # tokens are counted; the client sees it only if it asked (ChunkStream filters).
        self._stream_usage = spec.provider == "openai"
        self.auth: httpx.Auth | None = None
        self.supported_params = OPTIONAL_PARAMS
        if (
            spec.provider == "azure"
            and spec.api_version
            and spec.api_version < AZURE_REASONING_SINCE
        ):
            self.supported_params = OPTIONAL_PARAMS - {"reasoning_effort"}
        headers = {"content-type": "application/json", "accept": "application/json"}
        key = spec.api_key.reveal() if spec.api_key is not None else None
        if spec.provider == "azure":
            base = (spec.api_base or "").rstrip("/")
            if spec.api_version:
                self._url = (
                    f"{base}/openai/deployments/{spec.model}/chat/completions"
                    f"?api-version={spec.api_version}"
                )
            else:
                self._url = f"{base}/openai/v1/chat/completions"
            if key:
                headers["api-key"] = key
        else:
            base = (spec.api_base or OPENAI_BASE).rstrip("/")
            self._url = f"{base}/chat/completions"
            if key:
                headers["authorization"] = f"Bearer {key}"
        headers.update({name.lower(): value for name, value in spec.headers.items()})
        self._headers = httpx.Headers(headers)

    def dropped_params(self, request: ChatRequest) -> tuple[str, ...]:
        return unsupported_params(request, self.supported_params)

    def build(self, request: ChatRequest) -> HttpRequest:
        dropped = unsupported_params(request, self.supported_params)
        request = conform_tool_ids(drop_params(request, dropped), OPENAI_TOOL_ID)
        body = msgspec.structs.replace(request, model=self._model)
        if (
            self._stream_usage
            and request.stream
            and not (request.stream_options and request.stream_options.include_usage)
        ):
            body = msgspec.structs.replace(body, stream_options=_INCLUDE_USAGE)
        return HttpRequest(
            method="POST",
            url=self._url,
            headers=self._headers,
            body=encoder.encode(body),
            dropped_params=dropped,
        )

    def parse(self, status: int, headers: Mapping[str, str], body: bytes) -> ChatCompletion:
        return parse_openai_completion(body)

    def classify(self, status: int, headers: Mapping[str, str], body: bytes) -> ProviderError:
        return classify_openai_error(status, headers, body)

    def stream_parser(self) -> OpenAIStreamParser:
        return OpenAIStreamParser()


class _InBandError(Struct):
    error: _ErrorDetail | str


_in_band_decoder: Final = msgspec.json.Decoder(_InBandError)


class OpenAIStreamParser(SSEStreamParser):
    """OpenAI-style SSE: `data: {chunk}` events ending with `data: [DONE]`.

    Also serves Azure (whose first chunk has empty `choices`: it is passed on and
    carries no content) and OpenAI-compatible servers (comment keep-alives are
    skipped by the SSE decoder). A data object with an `error` key is an in-band
    error, as the official SDK treats it.
    """

    __slots__ = ("_done", "_finished")

    cut_message = "stream ended before data: [DONE]"

    def __init__(self) -> None:
        super().__init__()
        self._done = False
        self._finished = False

    def _complete(self) -> bool:
        return self._done or self._finished

    def _chunks(self, events: list[ServerSentEvent]) -> list[ChatCompletionChunk]:
        out: list[ChatCompletionChunk] = []
        for event in events:
            raw = event.data
            if raw == b"[DONE]":
                self._done = True
                continue
            if not raw or self._done:
                continue
            if b'"error"' in raw:
                _raise_in_band(raw, out)
            chunk = decode_or_garbage(chunk_decoder, raw, "chat.completion.chunk")
            if any(choice.finish_reason for choice in chunk.choices):
                self._finished = True
            out.append(chunk)
        return out


def _raise_in_band(raw: bytes, before: list[ChatCompletionChunk]) -> None:
    try:
        found = _in_band_decoder.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return  # an "error" string inside content, not an error object
    detail = found.error if isinstance(found.error, _ErrorDetail) else _ErrorDetail(found.error)
    code = str(detail.code) if detail.code is not None else ""
    error = _BY_CODE.get(code, ErrorClass.SERVER_ERROR)
    message = f"in-stream error {code + ': ' if code else ''}{detail.message}"
    raise ProviderError(error, message[:500], partial=tuple(before))
