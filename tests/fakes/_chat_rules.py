"""Strict validation of a Chat Completions request body, as OpenAI and Azure apply it.

`check_chat_request(body, accepted=..., require_model=...)` returns `None` for a body the
real service would accept, or an `Invalid` carrying the message, `param` and `code` of the
400 it would answer (PROVIDERS.md §1.2-§1.4).  Wordings marked [OBS] there are copied
verbatim; the others follow OpenAI's usual patterns ("Invalid type for ...",
"Missing required parameter: ...") and tests should match only on `code`/`param`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, NoReturn

OPENAI_PARAMS: Final = frozenset({
    "messages", "model", "audio", "frequency_penalty", "function_call", "functions",
    "logit_bias", "logprobs", "max_completion_tokens", "max_tokens", "metadata", "modalities",
    "moderation", "n", "parallel_tool_calls", "prediction", "presence_penalty",
    "prompt_cache_key", "prompt_cache_options", "prompt_cache_retention", "reasoning_effort",
    "response_format", "safety_identifier", "seed", "service_tier", "stop", "store", "stream",
    "stream_options", "temperature", "tool_choice", "tools", "top_logprobs", "top_p", "user",
    "verbosity", "web_search_options",
})  # fmt: skip
"""Top-level fields of `completion_create_params.py` in the openai SDK."""

MAX_TOOL_CALL_ID: Final = 40
MAX_TOOL_NAME: Final = 64
TOOL_NAME_PATTERN: Final = "^[a-zA-Z0-9_-]+$"
_TOOL_NAME_RE: Final = re.compile(TOOL_NAME_PATTERN)

_ROLES: Final = ("system", "assistant", "user", "function", "tool", "developer")
_MESSAGE_KEYS: Final[Mapping[str, frozenset[str]]] = {
    "system": frozenset({"role", "content", "name"}),
    "developer": frozenset({"role", "content", "name"}),
    "user": frozenset({"role", "content", "name"}),
    "assistant": frozenset(
        {"role", "content", "name", "tool_calls", "refusal", "audio", "function_call"}
    ),
    "tool": frozenset({"role", "content", "tool_call_id"}),
    "function": frozenset({"role", "content", "name"}),
}
_PART_KEYS: Final[Mapping[str, frozenset[str]]] = {
    "text": frozenset({"type", "text", "prompt_cache_breakpoint"}),
    "image_url": frozenset({"type", "image_url", "prompt_cache_breakpoint"}),
    "input_audio": frozenset({"type", "input_audio", "prompt_cache_breakpoint"}),
    "file": frozenset({"type", "file", "prompt_cache_breakpoint"}),
    "refusal": frozenset({"type", "refusal"}),
}
_ROLE_PARTS: Final[Mapping[str, tuple[str, ...]]] = {
    "user": ("text", "image_url", "input_audio", "file"),
    "assistant": ("text", "refusal"),
}
_TOOL_CHOICE_MODES: Final = ("none", "auto", "required")


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


class _Reject(Exception):
    def __init__(self, invalid: Invalid) -> None:
        self.invalid = invalid


def check_chat_request(
    body: Mapping[str, Any], *, accepted: Iterable[str] = OPENAI_PARAMS, require_model: bool = True
) -> Invalid | None:
    """Return why OpenAI/Azure would reject `body` with a 400, or `None` if it is valid."""
    try:
        _check(body, frozenset(accepted), require_model)
    except _Reject as reject:
        return reject.invalid
    return None


def _check(body: Mapping[str, Any], accepted: frozenset[str], require_model: bool) -> None:
    for key in body:
        if key not in accepted:
            _unknown(key)
    if require_model and "model" not in body:
        _missing("model")
    if "model" in body:
        _expect(body["model"], str, "model")
    messages = _required(body, "messages", "messages")
    _expect(messages, list, "messages")
    if not messages:
        _empty_array("messages")
    tools = body.get("tools")
    names = _check_tools(tools) if "tools" in body else []
    if "tool_choice" in body:
        if not names:
            _fail(
                "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools'"
                " are specified.",
                "tool_choice",
                None,
            )
        _check_tool_choice(body["tool_choice"], names)
    if "parallel_tool_calls" in body:
        if not names:
            _fail(
                "Invalid value for 'parallel_tool_calls': 'parallel_tool_calls' is only allowed"
                " when 'tools' are specified.",
                "parallel_tool_calls",
                None,
            )
        _expect(body["parallel_tool_calls"], bool, "parallel_tool_calls")
    if "stream" in body and body["stream"] is not None:
        _expect(body["stream"], bool, "stream")
    if body.get("stream_options") is not None:
        if body.get("stream") is not True:
            _fail(
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                "stream_options",
                None,
            )
        _check_keys(body["stream_options"], {"include_usage", "include_obfuscation"},
                    "stream_options")  # fmt: skip
    for index, message in enumerate(messages):
        _check_message(message, index)
    _check_tool_turns(messages)


def _check_tools(tools: Any) -> list[str]:
    _expect(tools, list, "tools")
    if not tools:
        _empty_array("tools")
    names: list[str] = []
    for index, tool in enumerate(tools):
        path = f"tools[{index}]"
        _check_keys(tool, {"type", "function", "custom"}, path)
        kind = _required(tool, "type", f"{path}.type")
        if kind == "custom":
            custom = _required(tool, "custom", f"{path}.custom")
            _check_keys(custom, {"name", "description", "format"}, f"{path}.custom")
            names.append(_check_name(_required(custom, "name", f"{path}.custom.name"),
                                     f"{path}.custom.name"))  # fmt: skip
            continue
        if kind != "function":
            _bad_value(kind, ("function", "custom"), f"{path}.type")
        function = _required(tool, "function", f"{path}.function")
        _check_keys(function, {"name", "description", "parameters", "strict"}, f"{path}.function")
        name = _required(function, "name", f"{path}.function.name")
        names.append(_check_name(name, f"{path}.function.name"))
        if "parameters" in function:
            _expect(function["parameters"], dict, f"{path}.function.parameters")
    return names


def _check_tool_choice(choice: Any, names: list[str]) -> None:
    if isinstance(choice, str):
        if choice not in _TOOL_CHOICE_MODES:
            _bad_value(choice, _TOOL_CHOICE_MODES, "tool_choice")
        return
    _expect(choice, dict, "tool_choice")
    kind = _required(choice, "type", "tool_choice.type")
    if kind == "allowed_tools":
        _check_keys(choice, {"type", "allowed_tools"}, "tool_choice")
        _check_keys(_required(choice, "allowed_tools", "tool_choice.allowed_tools"),
                    {"mode", "tools"}, "tool_choice.allowed_tools")  # fmt: skip
        return
    if kind != "function":
        _bad_value(kind, ("function", "allowed_tools"), "tool_choice.type")
    _check_keys(choice, {"type", "function"}, "tool_choice")
    function = _required(choice, "function", "tool_choice.function")
    _check_keys(function, {"name"}, "tool_choice.function")
    name = _required(function, "name", "tool_choice.function.name")
    if name not in names:
        # [UNVERIFIED wording] OpenAI rejects a forced function that is not among the tools.
        _fail(f"Invalid value for 'tool_choice': function '{name}' not found in 'tools'.",
              "tool_choice", "invalid_value")  # fmt: skip


def _check_message(message: Any, index: int) -> None:
    path = f"messages[{index}]"
    _expect(message, dict, path)
    role = _required(message, "role", f"{path}.role")
    if role not in _ROLES:
        _bad_value(role, _ROLES, f"{path}.role")
    _check_keys(message, _MESSAGE_KEYS[role], path)
    if role in ("assistant", "function"):
        content = message.get("content")
    else:
        content = _required(message, "content", f"{path}.content")
    if role == "tool":
        _expect(_required(message, "tool_call_id", f"{path}.tool_call_id"), str,
                f"{path}.tool_call_id")  # fmt: skip
    if "name" in message:
        _expect(message["name"], str, f"{path}.name")
    _check_content(content, role, f"{path}.content")
    if role != "assistant":
        return
    calls = message.get("tool_calls")
    if calls is not None:
        _expect(calls, list, f"{path}.tool_calls")
        if not calls:
            _empty_array(f"{path}.tool_calls")
        for index, call in enumerate(calls):
            _check_tool_call(call, f"{path}.tool_calls[{index}]")
    elif content is None and message.get("function_call") is None:
        # Seen in client issue threads, not in PROVIDERS.md; note the "messages.[i]" param.
        _fail(
            "Invalid value for 'content': expected a string, got null.",
            f"messages.[{index}].content",
            None,
        )


def _check_content(content: Any, role: str, path: str) -> None:
    if content is None:
        if role in ("assistant", "function"):
            return
        _expect(content, str, path)
    if isinstance(content, str):
        return
    _expect(content, list, path)
    allowed = _ROLE_PARTS.get(role, ("text",))
    for index, part in enumerate(content):
        part_path = f"{path}[{index}]"
        _expect(part, dict, part_path)
        kind = _required(part, "type", f"{part_path}.type")
        if kind not in allowed:
            _bad_value(kind, allowed, f"{part_path}.type")
        _check_keys(part, _PART_KEYS[kind], part_path)
        _required(part, kind, f"{part_path}.{kind}")
        if kind in ("text", "refusal"):
            _expect(part[kind], str, f"{part_path}.{kind}")


def _check_tool_call(call: Any, path: str) -> None:
    _expect(call, dict, path)
    _check_keys(call, {"id", "type", "function"}, path)
    call_id = _required(call, "id", f"{path}.id")
    _expect(call_id, str, f"{path}.id")
    if len(call_id) > MAX_TOOL_CALL_ID:
        _too_long(f"{path}.id", MAX_TOOL_CALL_ID, len(call_id))
    if _required(call, "type", f"{path}.type") != "function":
        _bad_value(call["type"], ("function",), f"{path}.type")
    function = _required(call, "function", f"{path}.function")
    _check_keys(function, {"name", "arguments"}, f"{path}.function")
    _check_name(_required(function, "name", f"{path}.function.name"), f"{path}.function.name")
    _expect(_required(function, "arguments", f"{path}.function.arguments"), str,
            f"{path}.function.arguments")  # fmt: skip


def _check_tool_turns(messages: list[dict[str, Any]]) -> None:
    """Each assistant `tool_calls` is answered by tool messages, each tool message answers one."""
    pending: list[str] = []
    opened_at = 0
    for index, message in enumerate(messages):
        role = message["role"]
        if role == "tool":
            if message["tool_call_id"] not in pending:
                _fail(
                    "Invalid parameter: messages with role 'tool' must be a response to a"
                    " preceeding message with 'tool_calls'.",
                    f"messages.[{index}].role",
                    None,
                )
            pending.remove(message["tool_call_id"])
            continue
        if pending:
            _unanswered(pending, opened_at)
        if role == "assistant" and message.get("tool_calls"):
            pending = [call["id"] for call in message["tool_calls"]]
            opened_at = index
    if pending:
        _unanswered(pending, opened_at)


def _unanswered(pending: list[str], index: int) -> NoReturn:
    _fail(
        "An assistant message with 'tool_calls' must be followed by tool messages responding to"
        " each 'tool_call_id'. The following tool_call_ids did not have response messages: "
        + ", ".join(pending),
        f"messages.[{index}].role",
        None,
    )


def _check_name(name: Any, path: str) -> str:
    _expect(name, str, path)
    if len(name) > MAX_TOOL_NAME:
        _too_long(path, MAX_TOOL_NAME, len(name))
    if not _TOOL_NAME_RE.match(name):
        _fail(
            f"Invalid '{path}': string does not match pattern. Expected a string that matches"
            f" the pattern '{TOOL_NAME_PATTERN}'.",
            path,
            "invalid_value",
        )
    return str(name)


# The failure helpers below raise `_Reject`; `check_chat_request` turns it into `Invalid`.


def _fail(message: str, param: str | None, code: str | None) -> NoReturn:
    raise _Reject(Invalid(message, param, code))


def _unknown(path: str) -> NoReturn:
    _fail(f"Unknown parameter: '{path}'.", path, "unknown_parameter")


def _missing(path: str) -> NoReturn:
    _fail(f"Missing required parameter: '{path}'.", path, "missing_required_parameter")


def _empty_array(path: str) -> NoReturn:
    _fail(
        f"Invalid '{path}': empty array. Expected an array with minimum length 1, but got an"
        " empty array instead.",
        path,
        "empty_array",
    )


def _too_long(path: str, limit: int, length: int) -> NoReturn:
    _fail(
        f"Invalid '{path}': string too long. Expected a string with maximum length {limit},"
        f" but got a string with length {length} instead.",
        path,
        "string_above_max_length",
    )


def _bad_value(value: Any, supported: Iterable[str], path: str) -> NoReturn:
    quoted = [f"'{item}'" for item in supported]
    listed = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + ", and " + quoted[-1]
    _fail(f"Invalid value: '{value}'. Supported values are: {listed}.", path, "invalid_value")


def _required(mapping: Mapping[str, Any], key: str, path: str) -> Any:
    if key not in mapping:
        _missing(path)
    return mapping[key]


def _check_keys(value: Any, allowed: Iterable[str], path: str) -> None:
    _expect(value, dict, path)
    for key in value:
        if key not in allowed:
            _unknown(f"{path}.{key}")


_JSON_TYPES: Final[Mapping[type, str]] = {
    str: "a string", bool: "a boolean", int: "an integer", float: "a number",
    list: "an array", dict: "an object", type(None): "null",
}  # fmt: skip


def _expect(value: Any, expected: type, path: str) -> None:
    if isinstance(value, expected) and not (expected is int and isinstance(value, bool)):
        return
    got = _JSON_TYPES.get(type(value), type(value).__name__)
    _fail(
        f"Invalid type for '{path}': expected {_JSON_TYPES[expected]}, but got {got} instead.",
        path,
        "invalid_type",
    )
