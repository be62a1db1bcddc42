"""OpenAI, Azure OpenAI and any OpenAI-compatible server: one wire format.

The request body is the `ChatRequest` itself with `model` set to the
deployment's model: its Struct is the allow-list, so nothing else can be sent.
What each flavour leaves out of it (an Azure api-version's missing parameters,
message extensions OpenAI refuses) is decided by `_openai_params`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, TypeVar

import httpx
import msgspec
from msgspec import UNSET, Struct

from config import Deployment

from .._chat import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatRequest,
    Choice,
    ChunkChoice,
    ChunkDelta,
    ResponseMessage,
    StreamOptions,
    chunk_decoder,
    completion_decoder,
    encoder,
)
from .._exceptions import ErrorClass, ProviderError
from ._base import (
    FINISH_REASONS,
    Handling,
    HttpRequest,
    ParamTable,
    decode_tolerant,
    drop_params,
    excerpt,
    garbage,
    openai_finish_reason,
    params_to_drop,
    retry_after,
    supported_by,
)
from ._openai_params import (
    COMPATIBLE_TABLE,
    NO_EXTRAS,
    OPENAI_EXTRAS,
    OPENAI_TABLE,
    azure_extras,
    azure_table,
    strip_extras,
)
from ._sse import EventTooLarge, ServerSentEvent, SSEStreamParser
from ._toolids import IdRule, conform_tool_ids, pattern_rule

_C = TypeVar("_C", Choice, ChunkChoice)
_M = TypeVar("_M", ResponseMessage, ChunkDelta)

OPENAI_BASE: Final = "https://api.openai.com/v1"
OPENAI_TOOL_ID: Final[IdRule] = pattern_rule(r".+", max_length=40)
"""OpenAI accepts any tool-call id of at most 40 characters (PROVIDERS.md §1.3)."""
_INCLUDE_USAGE: Final = StreamOptions(include_usage=True)
_CHUNK_OBJECT: Final = "chat.completion.chunk"
_decode_chunk: Final = chunk_decoder.decode


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
        f"{status} {code + ': ' if code else ''}{message}",
        status=status,
        retry_after=retry_after(headers),
        retryable=retryable,
    )


def parse_openai_completion(body: bytes) -> ChatCompletion:
    """Decode a `chat.completion` as OpenAI-compatible servers really send it.

    Read tolerantly (`decode_tolerant`, `_repair`): nulls, unknown keys, a content list,
    an arguments object. Normalized to what an OpenAI client accepts: finish reasons in
    OpenAI's words, `reasoning` under its `reasoning_content` name. A body with no
    choice is garbage (`server_error`): there is no answer in it to serve.
    """
    completion = decode_tolerant(completion_decoder, body, "chat.completion", repair=_repair)
    if not completion.choices:
        raise garbage("chat.completion", body, "no choices")
    for choice in completion.choices:  # a loop, not any(...): this runs per answer
        if _needs_normalizing(choice):
            choices = tuple(_normalized(choice) for choice in completion.choices)
            completion = msgspec.structs.replace(completion, choices=choices)
            break
    if completion.object != "chat.completion":
        completion = msgspec.structs.replace(completion, object="chat.completion")
    return completion


def parse_openai_chunk(raw: bytes) -> ChatCompletionChunk:
    """Decode one `chat.completion.chunk`, as tolerantly as `parse_openai_completion`."""
    chunk = decode_tolerant(chunk_decoder, raw, "chat.completion.chunk", repair=_repair)
    for choice in chunk.choices:
        reason = choice.finish_reason
        if (
            reason is not None and reason not in FINISH_REASONS
        ) or choice.delta.reasoning is not UNSET:
            chunk = _chunk_normalized(chunk)
            break
    if chunk.object != _CHUNK_OBJECT:  # Azure's filter chunk says "" (and others)
        chunk = msgspec.structs.replace(chunk, object=_CHUNK_OBJECT)
    if chunk.error is not UNSET:  # no error object (the stream parser raises those)
        chunk = msgspec.structs.replace(chunk, error=UNSET)
    return chunk


def _chunk_normalized(chunk: ChatCompletionChunk) -> ChatCompletionChunk:
    choices = tuple(_normalized(choice) for choice in chunk.choices)
    return msgspec.structs.replace(chunk, choices=choices)


def _needs_normalizing(choice: Choice | ChunkChoice) -> bool:
    reason = choice.finish_reason
    if isinstance(choice, ChunkChoice):
        return (reason is not None and reason not in FINISH_REASONS) or (
            choice.delta.reasoning is not UNSET
        )
    message = choice.message
    if reason not in FINISH_REASONS or message.reasoning is not UNSET:
        return True
    calls = message.tool_calls or ()
    return bool(calls) and any(not call.function.arguments for call in calls)


def _normalized(choice: _C) -> _C:
    reason = choice.finish_reason
    if isinstance(choice, ChunkChoice):
        if reason is not None and reason not in FINISH_REASONS:
            choice = msgspec.structs.replace(choice, finish_reason=openai_finish_reason(reason))
        if choice.delta.reasoning is not UNSET:
            choice = msgspec.structs.replace(choice, delta=_reasoning_moved(choice.delta))
        return choice
    message = choice.message
    if reason not in FINISH_REASONS:
        # A whole answer always has a finish reason (the SDK requires one): a server that
        # sends none, or "", finished its answer all the same.
        finish = openai_finish_reason(reason or "") or (
            "tool_calls" if message.tool_calls else "stop"
        )
        choice = msgspec.structs.replace(choice, finish_reason=finish)
    if message.reasoning is not UNSET:
        message = _reasoning_moved(message)
    if message.tool_calls:
        # A whole call's arguments are a JSON document: none at all is OpenAI's "{}".
        calls = tuple(
            call
            if call.function.arguments
            else msgspec.structs.replace(
                call, function=msgspec.structs.replace(call.function, arguments="{}")
            )
            for call in message.tool_calls
        )
        message = msgspec.structs.replace(message, tool_calls=calls)
    return msgspec.structs.replace(choice, message=message)


def _reasoning_moved(said: _M) -> _M:
    """`reasoning` (OpenRouter's, newer vLLM's name) as `reasoning_content`, OpenAI-client style."""
    if said.reasoning_content is UNSET or said.reasoning_content is None:
        return msgspec.structs.replace(said, reasoning_content=said.reasoning, reasoning=UNSET)
    return msgspec.structs.replace(said, reasoning=UNSET)


def _repair(value: Any) -> Any:
    """Reshape what some OpenAI-compatible servers send in another form (`decode_tolerant`).

    A content list (Mistral-style chunks) becomes its text, thinking chunks become
    `reasoning_content`; a tool call's arguments object becomes its JSON text.
    """
    if not isinstance(value, dict):
        return value
    for choice in value.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        for key in ("message", "delta"):
            said = choice.get(key)
            if isinstance(said, dict):
                _repair_message(said)
    return value


def _repair_message(said: dict[str, Any]) -> None:
    content = said.get("content")
    if isinstance(content, list):
        texts, thoughts = _content_texts(content)
        said["content"] = "".join(texts)
        if thoughts and "reasoning_content" not in said:
            said["reasoning_content"] = "".join(thoughts)
    for call in said.get("tool_calls") or ():
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict) and not isinstance(function.get("arguments", ""), str):
            function["arguments"] = encoder.encode(function["arguments"]).decode()


def _content_texts(content: list[Any]) -> tuple[list[str], list[str]]:
    texts: list[str] = []
    thoughts: list[str] = []
    for part in content:
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, dict):
            if part.get("type") == "text" and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif part.get("type") == "thinking":
                thinking = part.get("thinking")
                if isinstance(thinking, str):
                    thoughts.append(thinking)
                elif isinstance(thinking, list):
                    thoughts.extend(_content_texts(thinking)[0])
    return texts, thoughts


class OpenAIAdapter:
    """OpenAI, OpenAI-compatible servers, and Azure OpenAI (both URL forms)."""

    __slots__ = (
        "_budget_as_max_tokens",
        "_extras",
        "_headers",
        "_model",
        "_stream_usage",
        "_url",
        "auth",
        "param_table",
        "supported_params",
    )

    def __init__(self, spec: Deployment) -> None:
        self._model = spec.model
        # OpenAI itself always takes stream_options: ask for the usage chunk so streamed
        # tokens are counted; the client sees it only if it asked (ChunkStream filters).
        self._stream_usage = spec.provider == "openai"
        self.auth: httpx.Auth | None = None
        table: ParamTable = OPENAI_TABLE
        self._extras = OPENAI_EXTRAS
        if spec.provider == "azure":
            table = azure_table(spec.api_version or None)
            if spec.api_version:
                self._extras = azure_extras(spec.api_version)
        elif spec.provider == "openai-compatible":
            table, self._extras = COMPATIBLE_TABLE, NO_EXTRAS
        self.param_table = table
        self.supported_params = supported_by(table)
        self._budget_as_max_tokens = table["max_completion_tokens"].handling is Handling.MAPPED
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
        return self.build(request).dropped_params

    def build(self, request: ChatRequest) -> HttpRequest:
        dropped = params_to_drop(request, self.supported_params)
        request = drop_params(request, dropped)
        if self._budget_as_max_tokens and isinstance(request.max_completion_tokens, int):
            # The newer name wins, as on OpenAI; the older api-version knows only max_tokens.
            request = msgspec.structs.replace(
                request, max_tokens=request.max_completion_tokens, max_completion_tokens=UNSET
            )
        request, stripped = strip_extras(request, self._extras)
        if stripped:
            dropped = (*dropped, *stripped)
        request = conform_tool_ids(request, OPENAI_TOOL_ID)
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
_ERROR_KEY: Final = b'"error"'


class OpenAIStreamParser(SSEStreamParser):
    """OpenAI-style SSE: `data: {chunk}` events ending with `data: [DONE]`.

    Also serves Azure (whose first chunk has empty `choices` and its prompt filter
    results: it carries nothing a client can use and is left out) and OpenAI-compatible servers
    (comment keep-alives such as `: OPENROUTER PROCESSING` are skipped by the SSE
    decoder; event names are ignored). Chunks are read as tolerantly as whole
    replies (`parse_openai_chunk`): what a client can use (reasoning, refusal,
    annotations, logprobs, a tool call's `extra_content`) passes through. A data
    object with an `error` key is an in-band error, as the official SDK treats it.
    """

    __slots__ = ("_done", "_finished")

    cut_message = "stream ended before data: [DONE]"

    def __init__(self) -> None:
        super().__init__()
        self._done = False
        self._finished = False

    def feed(self, data: bytes) -> list[ChatCompletionChunk]:
        try:
            datas = self._sse.feed_data(data)  # event names are ignored: data only
        except EventTooLarge as exc:
            exc.partial = tuple(self._chunks(exc.events))  # delivered before the error
            raise
        return self._data_chunks(datas)

    def _complete(self) -> bool:
        return self._done or self._finished

    def ended(self) -> bool:
        return self._done

    def _chunks(self, events: list[ServerSentEvent]) -> list[ChatCompletionChunk]:
        return self._data_chunks([event.data for event in events])

    def _data_chunks(self, datas: list[bytes]) -> list[ChatCompletionChunk]:
        """The chunks of these events' data: `parse_openai_chunk` of each, fused into one
        loop (this runs per chunk): the typed decode first, the tolerant read only for a
        chunk that does not fit, and a copy only to rename something."""
        out: list[ChatCompletionChunk] = []
        if self._done:
            return out  # what follows [DONE] is not read
        for raw in datas:
            if raw == b"[DONE]":
                self._done = True
                break
            if not raw:
                continue
            try:
                chunk = _decode_chunk(raw)
            except (msgspec.ValidationError, msgspec.DecodeError):
                if _ERROR_KEY in raw:
                    _raise_in_band(raw, out)  # an error object first, however malformed
                chunk = parse_openai_chunk(raw)  # the tolerant read (or its error)
            else:
                finished = False
                for choice in chunk.choices:
                    reason = choice.finish_reason
                    if reason is not None:
                        if reason not in FINISH_REASONS:
                            chunk = _chunk_normalized(chunk)
                            break
                        finished = True
                    if choice.delta.reasoning is not UNSET:
                        chunk = _chunk_normalized(chunk)
                        break
                else:
                    if chunk.object == _CHUNK_OBJECT and chunk.error is UNSET:  # the usual
                        if finished:
                            self._finished = True
                        if chunk.choices or chunk.usage:
                            out.append(chunk)
                        continue
                if chunk.error is not UNSET:
                    _raise_in_band(raw, out)  # raises unless it is no error object
                    chunk = msgspec.structs.replace(chunk, error=UNSET)
                if chunk.object != _CHUNK_OBJECT:  # Azure's filter chunk says "" (and others)
                    chunk = msgspec.structs.replace(chunk, object=_CHUNK_OBJECT)
            choices = chunk.choices
            if choices:
                if not self._finished:
                    for choice in choices:
                        if choice.finish_reason:
                            self._finished = True
                out.append(chunk)
            elif chunk.usage:
                out.append(chunk)  # not Azure's prompt-filter chunk: it carries nothing for us
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
    raise ProviderError(error, message, partial=tuple(before))
