"""Client request bodies: the bounds checked before decoding, and one mapping of their errors.

Every POST body passes these, in this order, once:

1. its content type must be `application/json` (`require_json`, checked before the body is
   read): a browser's "simple request" (`text/plain`, forms) cannot reach the API, so a web
   page cannot spend the provider keys through a loopback listener (415 otherwise);
2. nesting deeper than `MAX_JSON_DEPTH` is refused (400 `nesting_too_deep`) by a linear
   scan of the brackets outside strings, before any decoder recurses;
3. msgspec decodes the bytes straight into the typed Struct, whose integer fields all
   carry ranges (a 400, never an overflow further in);
4. its errors become `InvalidRequest` (400) naming the parameter's path: malformed JSON
   and invalid UTF-8 are `invalid_json`, unknown and missing fields name the field, and
   what the client sent is quoted back clipped (`_exceptions.clip`).
"""

from __future__ import annotations

import re
from itertools import accumulate
from typing import Final, TypeVar

import msgspec

from ._exceptions import InvalidRequest, UnsupportedMediaType, clip

MAX_JSON_DEPTH: Final = 64
"""Deepest nesting of arrays and objects a chat request may have.

Real requests nest about 6 levels, JSON schemas in `tools` and `response_format` a few
dozen at most; 64 keeps every recursive encoder, decoder and adapter far from Python's
recursion limit (1000 frames) on anything accepted. A job body may nest one level more
(its envelope)."""

_T = TypeVar("_T")
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
