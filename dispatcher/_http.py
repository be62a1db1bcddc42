"""The HTTP toolbox every route uses: ASGI types, the router, body reading and decoding,
JSON answers and error answers.

Every POST body passes these, in this order, once:

1. its content type must be `application/json` (`require_json`, checked before the body is
   read): a browser's "simple request" (`text/plain`, forms) cannot reach the API, so a web
   page cannot spend the provider keys through a loopback listener (415 otherwise);
2. its size must stay within the limit (`read_body`: 413, from Content-Length when it says
   so, else as the bytes arrive);
3. nesting deeper than `MAX_JSON_DEPTH` is refused (400 `nesting_too_deep`) by a linear
   scan of the brackets outside strings, before any decoder recurses;
4. msgspec decodes the bytes straight into the typed Struct, whose integer fields all
   carry ranges (a 400, never an overflow further in);
5. its errors become `InvalidRequest` (400) naming the parameter's path, the one translation
   of validation errors for every endpoint (`decode_body`): malformed JSON and invalid
   UTF-8 are `invalid_json`, unknown and missing fields name the field, and what the
   client sent is quoted back clipped (`_exceptions.clip`). A job's chat request is
   translated by the very same code, its path prefixed with `request.`.

Routes are tables of handlers (`Routes`); the daemon composes every table into one `App`,
so no route module knows another.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from itertools import accumulate
from typing import Any, Final, TypeVar
from urllib.parse import parse_qs

import msgspec

from ._errors import error_answer, simple_error
from ._exceptions import BodyTooLarge, DispatchError, InvalidRequest, UnsupportedMediaType, clip

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Handler = Callable[[Scope, Receive, Send], Awaitable[None]]
Routes = Mapping[tuple[str, str], Handler]
"""(method, path) -> handler; a path may end in `/{id}`: one more segment, any but empty,
found in `scope["path_params"]["id"]`."""

MAX_JSON_DEPTH: Final = 64
"""Deepest nesting of arrays and objects a chat request may have.

Real requests nest about 6 levels, JSON schemas in `tools` and `response_format` a few
dozen at most; 64 keeps every recursive encoder, decoder and adapter far from Python's
recursion limit (1000 frames) on anything accepted. A job body may nest one level more
(its envelope)."""

_T = TypeVar("_T")
_JSON: Final = (b"content-type", b"application/json")
_PATH: Final = re.compile(r" - at `\$\.?(?P<path>[^`]*)`$")
_BRACKETS: Final = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_NOT_BRACKETS: Final = bytes(sorted(set(range(256)) - set(b"[]{}")))
_FIELD_ERRORS: Final = (
    ("Object contains unknown field", "unknown_parameter", "Unknown parameter"),
    ("Object missing required field", "missing_required_parameter", "Missing parameter"),
)


def require_json(headers: list[tuple[bytes, bytes]]) -> None:
    """Raise `UnsupportedMediaType` unless the content type is application/json (any params)."""
    for name, value in headers:
        if name == b"content-type":
            media_type = value.split(b";", 1)[0].strip().lower()
            if media_type == b"application/json":
                return
            shown = clip(value.decode("latin-1"), 40)
            break
    else:
        shown = "none"
    raise UnsupportedMediaType(f"Content-Type must be application/json (got {shown})")


def nests_deeper_than(body: bytes, limit: int) -> bool:
    """Whether arrays and objects nest more than `limit` levels deep in the JSON `body`.

    Linear and recursion-free: escaped backslashes and quotes are dropped, then the text
    between quotes (the strings), and what remains is reduced to its brackets. Exact for
    valid JSON; for invalid JSON, exact up to the first error, which is as far as any
    decoder gets before refusing it.
    """
    unescaped = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    outside_strings = b"".join(unescaped.split(b'"')[::2])
    steps = outside_strings.translate(_BRACKETS, _NOT_BRACKETS)  # 1 opens, -1 (0xff) closes
    if steps.count(1) <= limit:  # the common case: too few brackets to nest deeper
        return False
    return max(accumulate(memoryview(steps).cast("b"))) > limit


def check_nesting(body: bytes, *, envelope: int = 0) -> None:
    """Refuse `body` (400 `nesting_too_deep`) when it nests deeper than `MAX_JSON_DEPTH`.

    `envelope` is how many levels the caller's own wrapping adds (1 for a job's envelope).
    """
    limit = MAX_JSON_DEPTH + envelope
    if nests_deeper_than(body, limit):
        raise InvalidRequest(
            f"The body nests arrays and objects deeper than {limit} levels.",
            code="nesting_too_deep",
        )


def decode_body(decoder: msgspec.json.Decoder[_T], body: bytes, *, prefix: str = "") -> _T:
    """`body` decoded by `decoder` (after `check_nesting`), or `InvalidRequest` naming the
    parameter; `prefix` names where `body` sits in the client's request (`request` for a
    job's chat request)."""
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise invalid(str(exc), prefix) from None
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"Invalid JSON body: {exc}", code="invalid_json") from None
    except UnicodeDecodeError:
        raise InvalidRequest(
            "Invalid JSON body: a string is not valid UTF-8", code="invalid_json"
        ) from None
    except RecursionError:  # `check_nesting` keeps this from happening; never a 500 if it did
        raise InvalidRequest("The body nests too deeply.", code="nesting_too_deep") from None


def invalid(message: str, prefix: str = "") -> InvalidRequest:
    """A 400 for msgspec's validation `message`, naming the full path (`request.messages[0]`)."""
    match = _PATH.search(message)
    param = _join(prefix, match["path"] if match else "")
    for start, code, text in _FIELD_ERRORS:
        if message.startswith(start):
            param = clip(_join(param, message.split("`")[1]))
            return InvalidRequest(f"{text}: '{param}'.", param=param, code=code)
    param = clip(param)
    detail = clip(_PATH.sub("", message))
    where = f"'{param}'" if param else "request"
    return InvalidRequest(f"Invalid {where}: {detail}", param=param or None)


def _join(path: str, name: str) -> str:
    if not path or not name or name.startswith("["):
        return path + name
    return f"{path}.{name}"


class ClientGone(Exception):
    """The client disconnected before its request was read."""


class App:
    """An ASGI app over route tables: 404 for an unknown path, 405 for a known path's
    unknown method."""

    def __init__(self, *tables: Routes) -> None:
        self._exact: dict[tuple[str, str], Handler] = {}
        self._items: dict[tuple[str, str], Handler] = {}  # (method, prefix ending in "/")
        # "/{path}": the rest of the path, '/' included (a model id such as "org/model").
        self._rests: dict[tuple[str, str], Handler] = {}
        for table in tables:
            for (method, path), handler in table.items():
                if path.endswith("/{id}"):
                    self._items[(method, path.removesuffix("{id}"))] = handler
                elif path.endswith("/{path}"):
                    self._rests[(method, path.removesuffix("{path}"))] = handler
                else:
                    self._exact[(method, path)] = handler
        self._paths = {path for _, path in self._exact}
        self._prefixes = {prefix for _, prefix in self._items}
        self._rest_prefixes = {prefix for _, prefix in self._rests}

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        """The route's own coroutine, for the caller to await: no frame of this layer stays
        on the request's stack (every resumption of the request task walks each one)."""
        if scope["type"] != "http":
            return _nothing()
        method, path = scope["method"], scope["path"]
        handler = self._exact.get((method, path))
        known = path in self._paths
        if handler is None:
            prefix, _, item = path.rpartition("/")
            if item and prefix + "/" in self._prefixes:
                known = True
                handler = self._items.get((method, prefix + "/"))
                scope["path_params"] = {"id": item}
        if handler is None and not known:
            for rest_prefix in self._rest_prefixes:
                if path.startswith(rest_prefix) and len(path) > len(rest_prefix):
                    known = True
                    handler = self._rests.get((method, rest_prefix))
                    scope["path_params"] = {"path": path[len(rest_prefix) :]}
                    break
        if handler is not None:
            return handler(scope, receive, send)
        if known:
            body = simple_error(
                405, "Method not allowed", "invalid_request_error", "method_not_allowed"
            )
            return respond(send, 405, body)
        body = simple_error(404, f"No route {clip(path)}", "invalid_request_error", "not_found")
        return respond(send, 404, body)


async def _nothing() -> None:
    return None


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The whole body of a JSON request (415 for another content type, 413 over `limit`);
    `ClientGone` when the client leaves first."""
    require_json(scope["headers"])
    for name, value in scope["headers"]:
        # Digits only, and few of them: int() of a 5,000-digit string raises ValueError.
        if (
            name == b"content-length"
            and value.isdigit()
            and (len(value) > 18 or int(value) > limit)
        ):
            shown = clip(value.decode(), 20)
            raise BodyTooLarge(f"Request body of {shown} bytes is over the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"Request body is over the {limit}-byte limit")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def respond(
    send: Send,
    status: int,
    body: bytes,
    headers: list[tuple[str, str]] | tuple[tuple[str, str], ...] = (),
    *,
    content_type: str | None = None,
) -> None:
    """Send a whole answer (JSON unless `content_type` says otherwise)."""
    raw = [
        (b"content-type", content_type.encode()) if content_type else _JSON,
        (b"content-length", str(len(body)).encode()),
    ]
    raw.extend((name.encode(), value.encode("latin-1")) for name, value in headers)
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def respond_error(send: Send, exc: DispatchError) -> None:
    """Answer `exc` as the error table says (status, OpenAI-shaped body, headers)."""
    answer = error_answer(exc)
    await respond(send, answer.status, answer.body, answer.headers)


def query(scope: Scope) -> dict[str, list[str]]:
    """The query string's parameters (each name's values in order)."""
    return parse_qs(scope.get("query_string", b"").decode("latin-1"))


def query_one(params: dict[str, list[str]], name: str) -> str | None:
    """The last value of `name`, or None."""
    values = params.get(name)
    return values[-1] if values else None
