"""The provider adapter interface: pure functions over data.

An adapter turns a `ChatRequest` into the provider's HTTP request, and the
provider's answer into a `ChatCompletion` or a classified `ProviderError`. It
does no I/O and keeps no state between calls, so it is tested with tables of
inputs and no network.
"""

from __future__ import annotations

import email.utils
import enum
import time
from collections.abc import Mapping
from typing import Final, Protocol, TypeVar

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


class Adapter(Protocol):
    """Translates for one deployment; built once from its frozen config."""

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


def drop_params(request: ChatRequest, names: tuple[str, ...]) -> ChatRequest:
    """`request` without the parameters `names` (for `HttpRequest.dropped_params`)."""
    if not names:
        return request
    return msgspec.structs.replace(request, **dict.fromkeys(names, UNSET))


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the provider asked us to wait: ``retry-after-ms``, then ``retry-after``."""
    value = headers.get("retry-after-ms")
    if value is not None:
        try:
            return max(float(value) / 1000.0, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


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


def excerpt(body: bytes, limit: int = 200) -> str:
    """A short, printable piece of a provider body for error messages."""
    text = body[: limit * 2].decode("utf-8", "replace").strip()
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
