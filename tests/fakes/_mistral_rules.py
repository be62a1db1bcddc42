"""What Mistral's chat completions reject (PROVIDERS.md §5.2-§5.4).

Two layers, as the service applies them:

- the closed pydantic schema: an unknown field at any depth, a missing required one
  or a wrong type is a **422** whose `message.detail` lists pydantic errors with a
  `loc` such as `["body", "messages", 0, "user", "name"]` (§5.4);
- mistral-common's request validator (serving mode, v13 tokenizer): message order,
  the last role, tool calls answered by tool results (count, ids, no duplicates),
  tool-call ids of exactly nine alphanumerics, function names: a **400**
  `{"object": "error", "message", "type", "param", "code"}` (§5.3).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

MISTRAL_PARAMS: Final = frozenset({
    "model", "messages", "temperature", "top_p", "max_tokens", "stream", "stop", "random_seed",
    "metadata", "response_format", "tools", "tool_choice", "presence_penalty",
    "frequency_penalty", "n", "prediction", "parallel_tool_calls", "reasoning_effort",
    "prompt_mode", "guardrails", "prompt_cache_key", "safe_prompt",
})  # fmt: skip
"""Top-level fields of the SDK's `ChatCompletionRequest` (§5.2; mistralai client-python
`src/mistralai/client/models/chatcompletionrequest.py`, 2026-06)."""
_ENUMS: Final[Mapping[str, tuple[str, ...]]] = {
    "reasoning_effort": ("none", "minimal", "low", "medium", "high", "xhigh"),
    "prompt_mode": ("reasoning",),
}
"""`ReasoningEffort` and `MistralPromptMode` of the SDK (closed on the server)."""
_IMAGE_DETAILS: Final = ("low", "auto", "high")

_ID: Final = re.compile(r"[a-zA-Z0-9]{9}")
_NAME: Final = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_MESSAGE_KEYS: Final[Mapping[str, frozenset[str]]] = {
    "system": frozenset({"role", "content"}),
    "user": frozenset({"role", "content"}),
    "assistant": frozenset({"role", "content", "tool_calls", "prefix"}),
    "tool": frozenset({"role", "content", "tool_call_id", "name"}),
}
_CHUNK_KEYS: Final[Mapping[str, frozenset[str]]] = {
    "text": frozenset({"type", "text"}),
    "image_url": frozenset({"type", "image_url"}),
    "document_url": frozenset({"type", "document_url", "document_name"}),
    "reference": frozenset({"type", "reference_ids"}),
    "file": frozenset({"type", "file_id"}),
    "thinking": frozenset({"type", "thinking", "closed", "signature"}),
    "input_audio": frozenset({"type", "input_audio"}),
}
_SCALARS: Final[Mapping[str, tuple[type | tuple[type, ...], str]]] = {
    "model": (str, "string"), "temperature": ((int, float), "number"),
    "top_p": ((int, float), "number"), "max_tokens": (int, "int"), "stream": (bool, "bool"),
    "random_seed": (int, "int"), "presence_penalty": ((int, float), "number"),
    "frequency_penalty": ((int, float), "number"), "n": (int, "int"),
    "parallel_tool_calls": (bool, "bool"), "safe_prompt": (bool, "bool"),
    "prompt_cache_key": (str, "string"), "metadata": (dict, "dict"),
}  # fmt: skip
_TOOL_CHOICES: Final = ("auto", "none", "any", "required")
_ORDER: Final[Mapping[str, frozenset[str]]] = {  # mistral-common `_validate_message_order`
    "system": frozenset({"user", "assistant", "system"}),
    "user": frozenset({"assistant", "system", "user"}),
    "assistant": frozenset({"assistant", "user", "tool"}),
    "tool": frozenset({"assistant", "tool"}),
}
_PYDANTIC: Final = "https://errors.pydantic.dev/2.6/v/"


@dataclass(frozen=True)
class MistralRejection:
    """A Mistral error answer: its status and JSON body."""

    status: int
    body: dict[str, Any]


def check_mistral_request(
    body: Any, *, accepted: Iterable[str] = MISTRAL_PARAMS
) -> MistralRejection | None:
    """Why Mistral would answer 422 or 400 to `body`, or None when it is accepted."""
    detail: list[dict[str, Any]] = []
    _check_schema(body, frozenset(accepted), detail)
    if detail:
        return MistralRejection(
            422, _error(message={"detail": detail}, kind="invalid_request_error")
        )
    try:
        _check_conversation(body["messages"])
        for tool in body.get("tools") or ():
            _check_name(tool["function"]["name"])
    except _Invalid as invalid:
        return MistralRejection(400, _error(invalid.message, invalid.kind, invalid.code))
    return None


def _error(message: Any, kind: str, code: str | None = None) -> dict[str, Any]:
    return {"object": "error", "message": message, "type": kind, "param": None, "code": code}


# -- 422: the pydantic schema ------------------------------------------------------


def _problem(kind: str, loc: list[Any], msg: str, value: Any) -> dict[str, Any]:
    return {"type": kind, "loc": loc, "msg": msg, "input": value, "url": _PYDANTIC + kind}


def _keys(
    value: Any, allowed: frozenset[str], loc: list[Any], detail: list[dict[str, Any]]
) -> bool:
    if not isinstance(value, dict):
        detail.append(_problem("dict_type", loc, "Input should be a valid dictionary", value))
        return False
    for key in value:
        if key not in allowed:
            detail.append(
                _problem(
                    "extra_forbidden", [*loc, key], "Extra inputs are not permitted", value[key]
                )
            )
    return True


def _required(
    value: dict[str, Any], keys: Iterable[str], loc: list[Any], detail: list[Any]
) -> None:
    for key in keys:
        if key not in value:
            detail.append(_problem("missing", [*loc, key], "Field required", value))


def _check_schema(body: Any, accepted: frozenset[str], detail: list[dict[str, Any]]) -> None:
    if not _keys(body, accepted, ["body"], detail):
        return
    _required(body, ("model", "messages"), ["body"], detail)
    for key, (kind, label) in _SCALARS.items():
        value = body.get(key)
        if value is not None and (
            not isinstance(value, kind) or (isinstance(value, bool) and label != "bool")
        ):
            detail.append(
                _problem(f"{label}_type", ["body", key], f"Input should be a valid {label}", value)
            )
    messages = body.get("messages")
    if messages is not None and not isinstance(messages, list):
        detail.append(
            _problem("list_type", ["body", "messages"], "Input should be a valid list", messages)
        )
    for index, message in enumerate(messages if isinstance(messages, list) else ()):
        _check_message(message, ["body", "messages", index], detail)
    for index, tool in enumerate(body.get("tools") or ()):
        loc = ["body", "tools", index]
        if _keys(tool, frozenset({"type", "function"}), loc, detail):
            _required(tool, ("function",), loc, detail)
            function = tool.get("function")
            allowed = frozenset({"name", "description", "parameters", "strict"})
            if function is not None and _keys(function, allowed, [*loc, "function"], detail):
                _required(function, ("name", "parameters"), [*loc, "function"], detail)
    choice = body.get("tool_choice")
    if isinstance(choice, str) and choice not in _TOOL_CHOICES:
        listed = ", ".join(f"'{c}'" for c in _TOOL_CHOICES)
        detail.append(
            _problem("enum", ["body", "tool_choice"], f"Input should be {listed}", choice)
        )
    elif choice is not None and not isinstance(choice, str):
        if _keys(choice, frozenset({"type", "function"}), ["body", "tool_choice"], detail):
            function = choice.get("function")
            loc = ["body", "tool_choice", "function"]
            if function is not None and _keys(function, frozenset({"name"}), loc, detail):
                _required(function, ("name",), loc, detail)
    fmt = body.get("response_format")
    if fmt is not None and _keys(
        fmt, frozenset({"type", "json_schema"}), ["body", "response_format"], detail
    ):
        _enum(fmt.get("type"), ("text", "json_object", "json_schema"),
              ["body", "response_format", "type"], detail)  # fmt: skip
        schema = fmt.get("json_schema")
        allowed = frozenset({"name", "schema", "description", "strict"})
        loc = ["body", "response_format", "json_schema"]
        if schema is not None and _keys(schema, allowed, loc, detail):
            _required(schema, ("name", "schema"), loc, detail)
    for key, values in _ENUMS.items():
        _enum(body.get(key), values, ["body", key], detail)
    prediction = body.get("prediction")
    if prediction is not None and _keys(
        prediction, frozenset({"type", "content"}), ["body", "prediction"], detail
    ):
        _enum(prediction.get("type"), ("content",), ["body", "prediction", "type"], detail)
        content = prediction.get("content")
        if content is not None and not isinstance(content, str):
            detail.append(_problem("string_type", ["body", "prediction", "content"],
                                   "Input should be a valid string", content))  # fmt: skip
    stop = body.get("stop")
    if (
        stop is not None
        and not isinstance(stop, str)
        and not (isinstance(stop, list) and all(isinstance(item, str) for item in stop))
    ):
        detail.append(_problem("string_type", ["body", "stop"], "Input should be a valid string",
                               stop))  # fmt: skip


def _enum(value: Any, values: tuple[str, ...], loc: list[Any], detail: list[Any]) -> None:
    if value is not None and value not in values:
        listed = ", ".join(f"'{v}'" for v in values)
        detail.append(_problem("enum", loc, f"Input should be {listed}", value))


def _check_message(message: Any, loc: list[Any], detail: list[dict[str, Any]]) -> None:
    if not isinstance(message, dict):
        detail.append(_problem("dict_type", loc, "Input should be a valid dictionary", message))
        return
    role = message.get("role")
    if role not in _MESSAGE_KEYS:
        tags = "'assistant', 'system', 'tool', 'user'"
        message_text = f"Input tag '{role}' found using 'role' does not match any of the expected"
        detail.append(_problem("union_tag_invalid", loc, f"{message_text} tags: {tags}", message))
        return
    loc = [*loc, role]
    _keys(message, _MESSAGE_KEYS[str(role)], loc, detail)
    if role != "assistant":
        _required(message, ("content",), loc, detail)
    content = message.get("content")
    if isinstance(content, list):
        for index, chunk in enumerate(content):
            kind = chunk.get("type") if isinstance(chunk, dict) else None
            allowed = _CHUNK_KEYS.get(kind) if isinstance(kind, str) else None
            if allowed is None:
                text = f"Input tag '{kind}' found using 'type' does not match any expected tag"
                detail.append(_problem("union_tag_invalid", [*loc, "content", index], text, chunk))
                continue
            _keys(chunk, allowed, [*loc, "content", index, kind], detail)
            if kind == "image_url" and isinstance(chunk.get("image_url"), dict):
                image_loc = [*loc, "content", index, kind, "image_url"]
                _keys(chunk["image_url"], frozenset({"url", "detail"}), image_loc, detail)
                _enum(chunk["image_url"].get("detail"), _IMAGE_DETAILS, [*image_loc, "detail"],
                      detail)  # fmt: skip
    elif content is not None and not isinstance(content, str):
        detail.append(
            _problem("string_type", [*loc, "content"], "Input should be a valid string", content)
        )
    for index, call in enumerate(message.get("tool_calls") or ()):
        call_loc = [*loc, "tool_calls", index]
        if _keys(call, frozenset({"id", "type", "function", "index"}), call_loc, detail):
            _required(call, ("function",), call_loc, detail)
            function = call.get("function")
            if function is not None and _keys(function, frozenset({"name", "arguments"}),
                                              [*call_loc, "function"], detail):  # fmt: skip
                _required(function, ("name", "arguments"), [*call_loc, "function"], detail)


# -- 400: mistral-common's validator -----------------------------------------------


class _Invalid(Exception):
    def __init__(
        self, message: str, kind: str = "invalid_request_message_order", code: str = "3230"
    ):
        self.message, self.kind, self.code = message, kind, code


def _check_conversation(messages: list[dict[str, Any]]) -> None:
    if not messages:
        raise _Invalid("Conversation must have at least one message")
    if len(messages) == 1 and messages[0]["role"] not in ("user", "system"):
        raise _Invalid("Conversation must start with a user message or system message")
    last = messages[-1]
    if len(messages) > 1 and last["role"] == "assistant" and not last.get("prefix"):
        raise _Invalid(  # [OBS]
            "Expected last role User or Tool (or Assistant with prefix True) for serving but got"
            " assistant"
        )
    for previous, message in itertools.pairwise(messages):
        if message["role"] not in _ORDER[previous["role"]]:
            raise _Invalid(f"Unexpected role '{message['role']}' after role '{previous['role']}'")
    _check_tool_turns(messages)
    for index, message in enumerate(messages):
        if message.get("prefix") and index != len(messages) - 1:
            raise _Invalid(
                "Assistant message with prefix True must be last message",
                "invalid_assistant_message",
                "3240",
            )  # [UNVERIFIED code]
        for call in message.get("tool_calls") or ():
            _check_id(call.get("id", "null"))
            _check_name(call["function"]["name"])
        if message["role"] == "tool":
            if message.get("tool_call_id") is None:
                raise _Invalid("Tool call id has to be defined.", "invalid_request_error", "3051")
            _check_id(message["tool_call_id"])
            if message.get("name") is not None:
                _check_name(message["name"])


def _check_tool_turns(messages: list[dict[str, Any]]) -> None:
    """mistral-common v13: results answer the last assistant's calls, once each, all of them."""
    expected: set[str] = set()
    observed: set[str] = set()
    for message in messages[1:]:
        if message["role"] == "tool":
            tool_call_id = message.get("tool_call_id")
            if tool_call_id in observed:
                raise _Invalid(f"Duplicate tool call id {tool_call_id} in tool results")
            if tool_call_id not in expected:
                raise _Invalid(f"Unexpected tool call id {tool_call_id} in tool results")
            observed.add(tool_call_id)
        elif message["role"] == "assistant":
            if len(expected) != len(observed):
                raise _Invalid("Not the same number of function calls and responses")
            expected, observed = set(), set()
            for call in message.get("tool_calls") or ():
                if call.get("id") in expected:
                    raise _Invalid(f"Duplicate tool call id {call.get('id')} in assistant message")
                expected.add(call.get("id"))
    if len(expected) != len(observed):
        raise _Invalid("Not the same number of function calls and responses")


def _check_id(tool_call_id: str) -> None:
    if _ID.fullmatch(tool_call_id) is None:
        raise _Invalid(  # [OBS]
            f"Tool call id was {tool_call_id} but must be a-z, A-Z, 0-9, with a length of 9.",
            "invalid_function_call",
            "3280",
        )


def _check_name(name: str) -> None:
    if _NAME.fullmatch(name) is None:
        raise _Invalid(  # [SDK mistral-common]
            f"Function name was {name} but must be a-z, A-Z, 0-9, or contain underscores and"
            " dashes, with a maximum length of 64.",
            "invalid_function_call",
            "3280",
        )
