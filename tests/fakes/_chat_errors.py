"""OpenAI's 400 for an invalid Chat Completions body: the error object and its builders.

Each builder raises `Reject` carrying the `Invalid` OpenAI would answer; the rule
modules (`_chat_rules`, `_chat_params`) call them and `check_chat_request` catches.
Wordings follow OpenAI's patterns ("Invalid type for ...", "Unknown parameter: ...");
tests should match on `code` and `param` first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, NoReturn


@dataclass(frozen=True)
class Invalid:
    """Why the request is rejected: the fields of OpenAI's 400 error object."""

    message: str
    param: str | None
    code: str | None

    def body(self) -> dict[str, Any]:
        """The 400 body: `{"error": {"message", "type", "param", "code"}}`."""
        return {
            "error": {
                "message": self.message,
                "type": "invalid_request_error",
                "param": self.param,
                "code": self.code,
            }
        }


class Reject(Exception):
    def __init__(self, invalid: Invalid) -> None:
        self.invalid = invalid


def fail(message: str, param: str | None, code: str | None) -> NoReturn:
    raise Reject(Invalid(message, param, code))


def unknown(path: str) -> NoReturn:
    fail(f"Unknown parameter: '{path}'.", path, "unknown_parameter")


def missing(path: str) -> NoReturn:
    fail(f"Missing required parameter: '{path}'.", path, "missing_required_parameter")


def empty_array(path: str) -> NoReturn:
    fail(
        f"Invalid '{path}': empty array. Expected an array with minimum length 1, but got an"
        " empty array instead.",
        path,
        "empty_array",
    )


def too_long(path: str, limit: int, length: int) -> NoReturn:
    fail(
        f"Invalid '{path}': string too long. Expected a string with maximum length {limit},"
        f" but got a string with length {length} instead.",
        path,
        "string_above_max_length",
    )


def too_many(path: str, limit: int, length: int) -> NoReturn:
    fail(
        f"Invalid '{path}': array too long. Expected an array with maximum length {limit},"
        f" but got an array with length {length} instead.",
        path,
        "array_above_max_length",
    )


def bad_value(value: Any, supported: Iterable[str], path: str) -> NoReturn:
    quoted = [f"'{item}'" for item in supported]
    listed = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + ", and " + quoted[-1]
    fail(f"Invalid value: '{value}'. Supported values are: {listed}.", path, "invalid_value")


def required(mapping: Mapping[str, Any], key: str, path: str) -> Any:
    if key not in mapping:
        missing(path)
    return mapping[key]


def check_keys(value: Any, allowed: Iterable[str], path: str) -> None:
    expect(value, dict, path)
    for key in value:
        if key not in allowed:
            unknown(f"{path}.{key}")


_JSON_TYPES: Final[Mapping[type, str]] = {
    str: "a string", bool: "a boolean", int: "an integer", float: "a number",
    list: "an array", dict: "an object", type(None): "null",
}  # fmt: skip


def expect(value: Any, expected: type, path: str) -> None:
    """`value` is of the JSON type `expected` (`float` also takes integers; bools are not ints)."""
    if isinstance(value, bool) and expected is not bool:
        pass
    elif isinstance(value, expected) or (expected is float and isinstance(value, int)):
        return
    got = _JSON_TYPES.get(type(value), type(value).__name__)
    fail(
        f"Invalid type for '{path}': expected {_JSON_TYPES[expected]}, but got {got} instead.",
        path,
        "invalid_type",
    )


def in_range(value: Any, path: str, low: float | None, high: float | None) -> None:
    """A number within [low, high], with OpenAI's `decimal_above_max_value`-style codes."""
    kind = "integer" if isinstance(value, int) else "decimal"
    if high is not None and value > high:
        fail(
            f"Invalid '{path}': {kind} above maximum value. Expected a value <= {high:g}, but"
            f" got {value} instead.",
            path,
            f"{kind}_above_max_value",
        )
    if low is not None and value < low:
        fail(
            f"Invalid '{path}': {kind} below minimum value. Expected a value >= {low:g}, but"
            f" got {value} instead.",
            path,
            f"{kind}_below_min_value",
        )
