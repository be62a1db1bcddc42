"""The provider adapter interface: pure functions over data.

An adapter turns a `ChatRequest` into the provider's HTTP request, and the
provider's answer into a `ChatCompletion` or a classified `ProviderError`. It
does no I/O and keeps no state between calls, so it is tested with tables of
inputs and no network.
"""

from __future__ import annotations

import datetime
import email.utils
import enum
import math
import time
from collections.abc import Callable, Mapping
from typing import Any, Final, Protocol, TypeVar

import httpx
import msgspec
from msgspec import UNSET, Struct

from .._chat import ChatCompletion, ChatCompletionChunk, ChatRequest
from .._exceptions import ErrorClass, ProviderError

_T = TypeVar("_T")


class HttpRequest(Struct, frozen=True, kw_only=True):
    """A provider request, ready to send."""

    method: str
    url: str
    headers: Mapping[str, str]
    """Often an `httpx.Headers` built once per deployment (httpx copies it cheaply)."""
    body: bytes
    dropped_params: tuple[str, ...] = ()
    """Optional parameters the provider does not support, left out of `body`."""


class StreamParser(Protocol):
    """Turns a provider's streamed body into OpenAI chunks, piece by piece (pure, no I/O)."""

    def feed(self, data: bytes) -> list[ChatCompletionChunk]:
        """Chunks completed by `data`.

        Raises `ProviderError` on an in-band error or garbage; its `partial` holds the
        chunks `data` completed before it, which are delivered before the error.
        """
        ...

    def close(self) -> list[ChatCompletionChunk]:
        """Chunks left at the end of the body; raises `ProviderError` if the stream was cut."""
        ...

    def ended(self) -> bool:
        """The provider's end marker (OpenAI's `data: [DONE]`) was fed: the answer is whole,
        and nothing after it in the body is part of it. False for a provider without one."""
        ...


class Adapter(Protocol):
    """Translates for one deployment; built once from its frozen config."""

    param_table: ParamTable
    """Every optional parameter -> sent, mapped or dropped (the README renders it)."""

    supported_params: frozenset[str]
    """Optional `ChatRequest` fields the provider can express; others are dropped or refused."""

    def dropped_params(self, request: ChatRequest) -> tuple[str, ...]:
        """What `build(request)` leaves out, sorted: the parameters outside `supported_params`
        and whatever this request's combination rules out (e.g. `top_p` next to `temperature`).

        Named in `x-dispatcher-dropped-params`; with `drop_params = false` a non-empty answer
        makes the deployment no candidate. Must equal `build(request).dropped_params`.
        """
        ...

    auth: httpx.Auth | None
    """Request signing the provider needs at send time (e.g. SigV4), else None."""

    def build(self, request: ChatRequest) -> HttpRequest:
        """The provider request for `request` (raises `Unsupported` if it cannot be expressed)."""
        ...

    def parse(self, status: int, headers: Mapping[str, str], body: bytes) -> ChatCompletion:
        """The normalized response of a 2xx answer (raises `ProviderError` on garbage)."""
        ...

    def classify(self, status: int, headers: Mapping[str, str], body: bytes) -> ProviderError:
        """The classified error of a non-2xx answer."""
        ...

    def stream_parser(self) -> StreamParser:
        """A fresh parser for one streamed answer (parsers hold per-stream state)."""
        ...


OPTIONAL_PARAMS: Final = frozenset(ChatRequest.__struct_fields__) - {"model", "messages"}
"""Every optional request parameter: what an adapter may support."""


class Handling(enum.StrEnum):
    """What an adapter does with one optional request parameter (a row of its table)."""

    SENT = "sent as is"
    MAPPED = "mapped"
    """Translated to the provider's own field (the row's note says which)."""
    DROPPED = "dropped"
    """Left out and named in `x-dispatcher-dropped-params` (or the candidate is skipped
    with `drop_params = false`)."""


class ParamRow(Struct, frozen=True):
    handling: Handling
    note: str = ""
    """Where it goes (for MAPPED), or why it cannot go (for DROPPED); shown in the README."""


ParamTable = Mapping[str, ParamRow]
"""One adapter's table: every optional `ChatRequest` parameter -> how it is handled."""


def param_table(rows: Mapping[str, ParamRow]) -> ParamTable:
    """`rows`, checked to name every optional parameter exactly once (built at import)."""
    missing = OPTIONAL_PARAMS - rows.keys()
    extra = rows.keys() - OPTIONAL_PARAMS
    if missing or extra:
        raise ValueError(f"parameter table: missing {sorted(missing)}, unknown {sorted(extra)}")
    return dict(rows)


def supported_by(table: ParamTable) -> frozenset[str]:
    """The parameters a table sends or maps (an adapter's `supported_params`)."""
    return frozenset(name for name, row in table.items() if row.handling is not Handling.DROPPED)


def unsupported_params(request: ChatRequest, supported: frozenset[str]) -> tuple[str, ...]:
    """The optional parameters `request` sets that are not in `supported`, sorted."""
    if supported is OPTIONAL_PARAMS:  # the OpenAI family: nothing to look for
        return ()
    return tuple(
        sorted(name for name in OPTIONAL_PARAMS - supported if getattr(request, name) is not UNSET)
    )


def inert_params(request: ChatRequest) -> tuple[str, ...]:
    """The parameters `request` sets that mean nothing given the rest of it, sorted.

    `tool_choice` and `parallel_tool_calls` without `tools`, `function_call` without
    `functions`, a `stream_options` object without `stream`: OpenAI answers each with a 400
    ("only allowed when 'tools' are specified"), and no provider could act on them.
    They are dropped and named whatever `drop_params` says: leaving them out changes
    nothing the model does, so it is no reason to skip a deployment.
    """
    names = []
    if not request.tools:
        names += [
            name
            for name in ("parallel_tool_calls", "tool_choice")
            if getattr(request, name) is not UNSET
        ]
    if request.function_call is not UNSET and not request.functions:
        names.append("function_call")
    if request.stream_options not in (UNSET, None) and request.stream is not True:
        names.append("stream_options")
    return tuple(sorted(names))


def params_to_drop(request: ChatRequest, supported: frozenset[str]) -> tuple[str, ...]:
    """What an adapter leaves out of `request`: unsupported and inert parameters, sorted."""
    unsupported = unsupported_params(request, supported)
    inert = inert_params(request)
    if not inert:
        return unsupported
    return tuple(sorted(set(unsupported) | set(inert)))


def drop_params(request: ChatRequest, names: tuple[str, ...]) -> ChatRequest:
    """`request` without the parameters `names` (for `HttpRequest.dropped_params`)."""
    if not names:
        return request
    return msgspec.structs.replace(request, **dict.fromkeys(names, UNSET))


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the provider asked us to wait: ``retry-after-ms``, then ``retry-after``.

    ``retry-after`` is delay-seconds or an HTTP date (a past date is 0.0). Anything that is
    not a finite, non-negative wait (``inf``, ``nan``, ``-5``, garbage, an unparsable date)
    is ignored: None. How long a wait may hold a deployment is the breaker's to cap.
    """
    value = headers.get("retry-after-ms")
    if value is not None:
        millis = _finite_seconds(value)
        if millis is not None:
            return millis / 1000.0
    value = headers.get("retry-after")
    if value is None:
        return None
    seconds = _finite_seconds(value)
    if seconds is not None:
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(value)
        if when.tzinfo is None:  # "-0000" means UTC with no zone information
            when = when.replace(tzinfo=datetime.UTC)
        wait = when.timestamp() - time.time()
    except (TypeError, ValueError, IndexError, OverflowError, OSError):
        return None
    return max(wait, 0.0) if math.isfinite(wait) else None


def _finite_seconds(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    # float() takes "inf", "nan" and "1e999" (inf): none of them is a wait.
    return number if math.isfinite(number) and number >= 0.0 else None


def garbage(what: str, body: bytes, problem: object, *, status: int = 200) -> ProviderError:
    """The `server_error` for an answer that is not what the provider promised."""
    return ProviderError(
        ErrorClass.SERVER_ERROR, f"invalid {what} ({problem}): {excerpt(body)}", status=status
    )


def decode_or_garbage(
    decoder: msgspec.json.Decoder[_T], body: bytes, what: str, *, status: int = 200
) -> _T:
    """`body` decoded; invalid JSON or the wrong shape is a `server_error` naming `what`."""
    try:
        return decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise garbage(what, body, exc, status=status) from None


def decode_tolerant(
    decoder: msgspec.json.Decoder[_T],
    body: bytes,
    what: str,
    *,
    status: int = 200,
    repair: Callable[[Any], Any] | None = None,
) -> _T:
    """`body` decoded as `decoder` does, tolerating what real providers send beside it.

    The typed decode runs first (the hot path). Only when a body does not fit is it
    read again as plain JSON: nulls are dropped (every reply field has a default, so a
    `null` is read as "absent"), integral floats and numeric strings are coerced, and
    `repair` may reshape what a provider sends in another form (a content list, an
    arguments object). A body that still does not fit, or is not JSON, is a
    `server_error` naming `what`.
    """
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        problem = exc
    except msgspec.DecodeError as exc:
        raise garbage(what, body, exc, status=status) from None
    try:
        value = without_nulls(msgspec.json.decode(body))
        if repair is not None:
            value = repair(value)
        repaired: _T = msgspec.convert(value, decoder.type, strict=False)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        raise garbage(what, body, problem, status=status) from None
    return repaired


def without_nulls(value: Any) -> Any:
    """`value` with every `null` object member and array element left out."""
    if isinstance(value, dict):
        return {key: without_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [without_nulls(item) for item in value if item is not None]
    return value


FINISH_REASONS: Final = frozenset(
    {"stop", "length", "tool_calls", "content_filter", "function_call"}
)
"""OpenAI's finish reasons: the only values a client's SDK accepts."""
_FINISH_ALIASES: Final[Mapping[str, str]] = {
    "eos": "stop",
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_length": "length",
    "tool_use": "tool_calls",
    "tool_call": "tool_calls",
    "safety": "content_filter",
    "content_filtered": "content_filter",
    "guardrail_intervened": "content_filter",
    "refusal": "content_filter",
}


def openai_finish_reason(reason: str) -> str | None:
    """OpenAI's finish reason for one an OpenAI-style server sent in its own words.

    `""` is no finish at all; aliases map to their OpenAI name; any other new value
    ends the answer as `stop` (the answer is there, only the reason is unknown).
    """
    if reason in FINISH_REASONS:
        return reason
    if not reason:
        return None
    lowered = reason.lower()
    if lowered in FINISH_REASONS:
        return lowered
    return _FINISH_ALIASES.get(lowered, "stop")


EXCERPT_BYTES: Final = 4096
"""How much of a body an error message quotes. The actor redacts the deployment's secrets
from the whole message and then cuts it to its final length (500 characters)."""


def excerpt(body: bytes) -> str:
    """A printable, whitespace-collapsed piece of a provider body for an error message.

    Adapters never cut provider text to its final length themselves: a key the upstream
    reflected across that cut would leave its prefix behind. ``…`` marks where this cut
    the body (the actor's redactor also redacts a piece of a secret ending there).
    """
    text = " ".join(body[:EXCERPT_BYTES].decode("utf-8", "replace").split())
    return text + "…" if len(body) > EXCERPT_BYTES else text
