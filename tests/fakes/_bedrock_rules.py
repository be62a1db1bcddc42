"""What Bedrock's Converse rejects with a ValidationException (PROVIDERS.md §4.2-§4.4).

Two layers, as the service applies them:

- the shape, checked against botocore's own service model of `bedrock-runtime`
  (unknown members at any depth, required members, unions with exactly one member,
  lengths, ranges, enums and patterns such as `ToolUseId`), worded like AWS's
  `N validation errors detected: Value 'x' at 'messages.1.member...' failed to
  satisfy constraint: ...` [OBS]; a JSON type mismatch is a SerializationException;
- the conversation rules: starts with user, alternates, toolConfig whenever tool
  blocks are present, every toolUse answered by a toolResult in the next turn, no
  blank text [OBS wordings where PROVIDERS.md quotes them, else UNVERIFIED].
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import botocore.session

_TYPE_NAMES: Final[Mapping[str, type | tuple[type, ...]]] = {
    "string": str, "blob": str, "boolean": bool, "integer": int, "long": int,
    "float": (int, float), "double": (int, float), "timestamp": (int, float, str),
    "list": list, "map": dict, "structure": dict,
}  # fmt: skip
_ALTERNATE: Final = "A conversation must alternate between user and assistant roles."
_START_WITH_USER: Final = (
    "A conversation must start with a user message. Try again with a conversation that starts"
    " with a user message."
)
_NEEDS_TOOL_CONFIG: Final = (
    "The toolConfig field must be defined when using toolUse and toolResult content blocks."
)


@dataclass(frozen=True)
class Rejection:
    """A Bedrock 400: the exception type and its message."""

    error_type: str
    message: str

    def body(self) -> dict[str, str]:
        return {"message": self.message}


@functools.cache
def converse_input_shape() -> Any:
    """botocore's `ConverseRequest` shape (the body members; `modelId` is in the URI)."""
    model = botocore.session.get_session().get_service_model("bedrock-runtime")
    return model.operation_model("Converse").input_shape


def check_converse(
    body: Mapping[str, Any], *, tool_choices: Iterable[str] = ("auto", "any", "tool")
) -> Rejection | None:
    """Why Converse would answer 400 to `body`, or None. `tool_choices`: what the model takes."""
    problems: list[str] = []
    try:
        _check_shape(body, converse_input_shape(), "", problems)
    except _WrongType as wrong:
        return Rejection("SerializationException", wrong.message)
    if problems:
        count = len(problems)
        noun = "validation error" if count == 1 else "validation errors"
        return Rejection("ValidationException", f"{count} {noun} detected: {'; '.join(problems)}")
    message = _conversation_problem(body, frozenset(tool_choices))
    return None if message is None else Rejection("ValidationException", message)


# -- the shape ---------------------------------------------------------------------


class _WrongType(Exception):
    def __init__(self, message: str) -> None:
        self.message = message


def _check_shape(value: Any, shape: Any, path: str, problems: list[str]) -> None:
    kind = shape.type_name
    if kind == "structure" and shape.metadata.get("document"):
        return  # a Document: any JSON value
    expected = _TYPE_NAMES.get(kind)
    if expected is not None and (
        not isinstance(value, expected) or (isinstance(value, bool) and kind != "boolean")
    ):
        raise _WrongType(f"Unexpected value type in payload at '{path or 'body'}'")
    meta = shape.metadata
    if kind == "structure":
        members = {
            name: member for name, member in shape.members.items()
            if not member.serialization.get("location")
        }  # fmt: skip
        for key in value:
            if key not in members:
                # [UNVERIFIED wording] PROVIDERS.md §9: reject unknown members with a 400.
                problems.append(f"Unknown member '{key}' at '{path or 'body'}'")
        for name in shape.required_members:
            if name in members and value.get(name) is None:
                problems.append(_value(None, _join(path, name), "Member must not be null"))
        if shape.is_tagged_union and len([k for k in value if k in members]) != 1:
            problems.append(
                f"Value at '{path}' failed to satisfy constraint: Member must have exactly one"
                " field set"
            )  # [UNVERIFIED wording]
        for key, item in value.items():
            if key in members and item is not None:
                _check_shape(item, members[key], _join(path, key), problems)
    elif kind == "list":
        _check_length(value, meta, path, problems)
        for index, item in enumerate(value):
            _check_shape(item, shape.member, f"{path}.{index + 1}.member", problems)
    elif kind == "map":
        for key, item in value.items():
            _check_shape(item, shape.value, f"{path}.{key}", problems)
    elif kind in ("string", "blob"):
        _check_length(value, meta, path, problems)
        enum = getattr(shape, "enum", None)  # blobs have none
        if enum and value not in enum:
            allowed = ", ".join(enum)
            problems.append(_value(value, path, f"Member must satisfy enum value set: [{allowed}]"))
        pattern = meta.get("pattern")
        if pattern and re.fullmatch(pattern, value) is None:
            problems.append(
                _value(value, path, f"Member must satisfy regular expression pattern: {pattern}")
            )
    elif kind in ("integer", "long", "float", "double"):
        if "min" in meta and value < meta["min"]:
            problems.append(
                _value(
                    value, path, f"Member must have value greater than or equal to {meta['min']}"
                )
            )
        if "max" in meta and value > meta["max"]:
            problems.append(
                _value(value, path, f"Member must have value less than or equal to {meta['max']}")
            )


def _check_length(value: Any, meta: Mapping[str, Any], path: str, problems: list[str]) -> None:
    if "min" in meta and len(value) < meta["min"]:
        problems.append(
            _value(value, path, f"Member must have length greater than or equal to {meta['min']}")
        )
    if "max" in meta and len(value) > meta["max"]:
        problems.append(
            _value(value, path, f"Member must have length less than or equal to {meta['max']}")
        )


def _value(value: Any, path: str, constraint: str) -> str:
    shown = (
        "null" if value is None else f"'{value}'" if isinstance(value, (str, int, float)) else ""
    )
    where = f"{shown} at '{path}'" if shown else f"at '{path}'"
    return f"Value {where} failed to satisfy constraint: {constraint}"


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


# -- the conversation --------------------------------------------------------------


def _conversation_problem(body: Mapping[str, Any], tool_choices: frozenset[str]) -> str | None:
    messages: list[dict[str, Any]] = body.get("messages") or []
    if not messages or messages[0]["role"] != "user":
        return _START_WITH_USER  # [UNVERIFIED exact wording]
    for index, message in enumerate(messages):
        if message["role"] not in ("user", "assistant"):
            return f"Invalid role '{message['role']}' at messages.{index}.role"  # [UNVERIFIED]
        if index and message["role"] == messages[index - 1]["role"]:
            return _ALTERNATE
        for position, block in enumerate(message["content"]):
            if "text" in block and not block["text"].strip():
                return (  # [OBS, outside PROVIDERS.md]
                    f"The text field in the ContentBlock object at messages.{index}.content."
                    f"{position} is blank. Add text to the text field, and try again."
                )
    has_tool_blocks = any(
        "toolUse" in block or "toolResult" in block
        for message in messages
        for block in message["content"]
    )
    config = body.get("toolConfig")
    if has_tool_blocks and config is None:
        return _NEEDS_TOOL_CONFIG
    if config is not None:
        problem = _tool_config_problem(config, tool_choices)
        if problem is not None:
            return problem
    return _pairing_problem(messages)


def _tool_config_problem(config: Mapping[str, Any], tool_choices: frozenset[str]) -> str | None:
    names = [tool["toolSpec"]["name"] for tool in config["tools"] if "toolSpec" in tool]
    choice = config.get("toolChoice") or {}
    for kind in choice:
        if kind not in tool_choices:
            return (  # [OBS] per-model limit
                f"This model doesn't support the toolConfig.toolChoice.{kind} field. Remove"
                f" toolConfig.toolChoice.{kind} and try again."
            )
    forced = choice.get("tool", {}).get("name")
    if forced is not None and forced not in names:
        # [UNVERIFIED wording]
        return f"The tool {forced} in toolConfig.toolChoice is not in toolConfig.tools."
    return None


def _pairing_problem(messages: list[dict[str, Any]]) -> str | None:
    """Each assistant toolUse is answered in the next (user) turn, and only those."""
    for index, message in enumerate(messages):
        results = [b["toolResult"]["toolUseId"] for b in message["content"] if "toolResult" in b]
        uses = [b["toolUse"]["toolUseId"] for b in message["content"] if "toolUse" in b]
        if message["role"] == "user" and results:
            previous = messages[index - 1]["content"] if index else []
            asked = [b["toolUse"]["toolUseId"] for b in previous if "toolUse" in b]
            if len(results) > len(asked):
                return (  # [UNVERIFIED exact wording]
                    f"The number of toolResult blocks at messages.{index}.content exceeds the"
                    " number of toolUse blocks of previous turn."
                )
            stray = [tool_id for tool_id in results if tool_id not in asked]
            if stray:
                return (  # [UNVERIFIED wording]
                    f"The toolUseId {stray[0]} at messages.{index}.content does not match any"
                    " toolUse block of the previous turn."
                )
        if message["role"] == "assistant" and uses and index + 1 < len(messages):
            answered = {
                b["toolResult"]["toolUseId"]
                for b in messages[index + 1]["content"]
                if "toolResult" in b
            }
            missing = [tool_id for tool_id in uses if tool_id not in answered]
            if missing:
                return (  # [OBS]
                    f"Expected toolResult blocks at messages.{index + 1}.content for the"
                    f" following Ids: {', '.join(missing)}"
                )
    return None
