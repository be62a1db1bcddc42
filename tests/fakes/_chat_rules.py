"""Strict validation of a Chat Completions request body, as OpenAI and Azure apply it.

`check_chat_request(body, accepted=..., require_model=...)` returns `None` for a body the
real service would accept, or an `Invalid` carrying the message, `param` and `code` of the
400 it would answer (PROVIDERS.md §1.2-§1.4).  Wordings marked [OBS] there are copied
verbatim; the others follow OpenAI's usual patterns ("Invalid type for ...",
"Missing required parameter: ...") and tests should match only on `code`/`param`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, NoReturn

from ._chat_errors import (
    Invalid,
    Reject,
    bad_value,
    check_keys,
    empty_array,
    expect,
    fail,
    missing,
    required,
    too_long,
    unknown,
)
from ._chat_params import check_name, check_params

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
_BREAKPOINT: Final = frozenset({"prompt_cache_breakpoint"})
_IMAGE_DETAILS: Final = ("auto", "low", "high", "original")


@dataclass(frozen=True)
class Dialect:
    """What one service version takes beyond the top-level allow-list."""

    developer_role: bool = True
    """Older Azure api-versions know only system, user, assistant, tool and function."""
    prompt_cache_breakpoint: bool = True
    """OpenAI's content-part cache marker, unknown to dated Azure api-versions."""


OPENAI_DIALECT: Final = Dialect()


def check_chat_request(
    body: Mapping[str, Any],
    *,
    accepted: Iterable[str] = OPENAI_PARAMS,
    require_model: bool = True,
    dialect: Dialect = OPENAI_DIALECT,
) -> Invalid | None:
    """Return why OpenAI/Azure would reject `body` with a 400, or `None` if it is valid."""
    try:
        _check(body, frozenset(accepted), require_model, dialect)
    except Reject as reject:
        return reject.invalid
    return None


def _check(
    body: Mapping[str, Any], accepted: frozenset[str], require_model: bool, dialect: Dialect
) -> None:
    for key in body:
        if key not in accepted:
            unknown(key)
    if require_model and "model" not in body:
        missing("model")
    if "model" in body:
        expect(body["model"], str, "model")
    messages = required(body, "messages", "messages")
    expect(messages, list, "messages")
    if not messages:
        empty_array("messages")
    tools = body.get("tools")
    names = _check_tools(tools) if "tools" in body else []
    if "tool_choice" in body:
        if not names:
            fail(
                "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools'"
                " are specified.",
                "tool_choice",
                None,
            )
        _check_tool_choice(body["tool_choice"], names)
    if "parallel_tool_calls" in body:
        if not names:
            fail(
                "Invalid value for 'parallel_tool_calls': 'parallel_tool_calls' is only allowed"
                " when 'tools' are specified.",
                "parallel_tool_calls",
                None,
            )
        expect(body["parallel_tool_calls"], bool, "parallel_tool_calls")
    if "stream" in body and body["stream"] is not None:
        expect(body["stream"], bool, "stream")
    if body.get("stream_options") is not None:
        if body.get("stream") is not True:
            fail(
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                "stream_options",
                None,
            )
        check_keys(body["stream_options"], {"include_usage", "include_obfuscation"},
                    "stream_options")  # fmt: skip
    check_params(body)
    for index, message in enumerate(messages):
        _check_message(message, index, dialect)
    _check_tool_turns(messages)


def _check_tools(tools: Any) -> list[str]:
    expect(tools, list, "tools")
    if not tools:
        empty_array("tools")
    names: list[str] = []
    for index, tool in enumerate(tools):
        path = f"tools[{index}]"
        check_keys(tool, {"type", "function", "custom"}, path)
        kind = required(tool, "type", f"{path}.type")
        if kind == "custom":
            custom = required(tool, "custom", f"{path}.custom")
            check_keys(custom, {"name", "description", "format"}, f"{path}.custom")
            names.append(check_name(required(custom, "name", f"{path}.custom.name"),
                                     f"{path}.custom.name"))  # fmt: skip
            continue
        if kind != "function":
            bad_value(kind, ("function", "custom"), f"{path}.type")
        function = required(tool, "function", f"{path}.function")
        check_keys(function, {"name", "description", "parameters", "strict"}, f"{path}.function")
        name = required(function, "name", f"{path}.function.name")
        names.append(check_name(name, f"{path}.function.name"))
        if "parameters" in function:
            expect(function["parameters"], dict, f"{path}.function.parameters")
    return names


def _check_tool_choice(choice: Any, names: list[str]) -> None:
    if isinstance(choice, str):
        if choice not in _TOOL_CHOICE_MODES:
            bad_value(choice, _TOOL_CHOICE_MODES, "tool_choice")
        return
    expect(choice, dict, "tool_choice")
    kind = required(choice, "type", "tool_choice.type")
    if kind == "allowed_tools":
        check_keys(choice, {"type", "allowed_tools"}, "tool_choice")
        allowed = required(choice, "allowed_tools", "tool_choice.allowed_tools")
        check_keys(allowed, {"mode", "tools"}, "tool_choice.allowed_tools")
        mode = required(allowed, "mode", "tool_choice.allowed_tools.mode")
        if mode not in ("auto", "required"):
            bad_value(mode, ("auto", "required"), "tool_choice.allowed_tools.mode")
        expect(required(allowed, "tools", "tool_choice.allowed_tools.tools"), list,
               "tool_choice.allowed_tools.tools")  # fmt: skip
        return
    if kind not in ("function", "custom"):
        bad_value(kind, ("function", "custom", "allowed_tools"), "tool_choice.type")
    check_keys(choice, {"type", kind}, "tool_choice")
    function = required(choice, kind, f"tool_choice.{kind}")
    check_keys(function, {"name"}, f"tool_choice.{kind}")
    name = required(function, "name", f"tool_choice.{kind}.name")
    if name not in names:
        # [UNVERIFIED wording] OpenAI rejects a forced function that is not among the tools.
        fail(f"Invalid value for 'tool_choice': function '{name}' not found in 'tools'.",
              "tool_choice", "invalid_value")  # fmt: skip


def _check_message(message: Any, index: int, dialect: Dialect) -> None:
    path = f"messages[{index}]"
    expect(message, dict, path)
    role = required(message, "role", f"{path}.role")
    roles = _ROLES if dialect.developer_role else _ROLES[:-1]
    if role not in roles:
        bad_value(role, roles, f"{path}.role")
    check_keys(message, _MESSAGE_KEYS[role], path)
    if role in ("assistant", "function"):
        content = message.get("content")
    else:
        content = required(message, "content", f"{path}.content")
    if role == "tool":
        expect(required(message, "tool_call_id", f"{path}.tool_call_id"), str,
                f"{path}.tool_call_id")  # fmt: skip
    if role == "function":
        required(message, "name", f"{path}.name")
    if "name" in message:
        expect(message["name"], str, f"{path}.name")
    _check_content(content, role, f"{path}.content", dialect)
    if role != "assistant":
        return
    calls = message.get("tool_calls")
    if calls is not None:
        expect(calls, list, f"{path}.tool_calls")
        if not calls:
            empty_array(f"{path}.tool_calls")
        for index, call in enumerate(calls):
            _check_tool_call(call, f"{path}.tool_calls[{index}]")
    elif content is None and message.get("function_call") is None:
        # Seen in client issue threads, not in PROVIDERS.md; note the "messages.[i]" param.
        fail(
            "Invalid value for 'content': expected a string, got null.",
            f"messages.[{index}].content",
            None,
        )


def _check_content(content: Any, role: str, path: str, dialect: Dialect) -> None:
    if content is None:
        if role in ("assistant", "function"):
            return
        expect(content, str, path)
    if isinstance(content, str):
        return
    expect(content, list, path)
    allowed = _ROLE_PARTS.get(role, ("text",))
    for index, part in enumerate(content):
        part_path = f"{path}[{index}]"
        expect(part, dict, part_path)
        kind = required(part, "type", f"{part_path}.type")
        if kind not in allowed:
            bad_value(kind, allowed, f"{part_path}.type")
        keys = _PART_KEYS[kind]
        check_keys(part, keys if dialect.prompt_cache_breakpoint else keys - _BREAKPOINT, part_path)
        inner = required(part, kind, f"{part_path}.{kind}")
        if kind in ("text", "refusal"):
            expect(inner, str, f"{part_path}.{kind}")
        else:
            _check_part_body(kind, inner, f"{part_path}.{kind}")
        if "prompt_cache_breakpoint" in part:
            breakpoint_ = part["prompt_cache_breakpoint"]
            check_keys(breakpoint_, {"mode", "ttl"}, f"{part_path}.prompt_cache_breakpoint")
            if required(breakpoint_, "mode", f"{part_path}.prompt_cache_breakpoint.mode") != (
                "explicit"
            ):
                bad_value(breakpoint_["mode"], ("explicit",),
                          f"{part_path}.prompt_cache_breakpoint.mode")  # fmt: skip


def _check_part_body(kind: str, inner: Any, path: str) -> None:
    """The object inside an image, audio or file part (SDK `chat_completion_content_part_*`)."""
    if kind == "image_url":
        check_keys(inner, {"url", "detail"}, path)
        expect(required(inner, "url", f"{path}.url"), str, f"{path}.url")
        if "detail" in inner and inner["detail"] not in _IMAGE_DETAILS:
            bad_value(inner["detail"], _IMAGE_DETAILS, f"{path}.detail")
    elif kind == "input_audio":
        check_keys(inner, {"data", "format"}, path)
        expect(required(inner, "data", f"{path}.data"), str, f"{path}.data")
        if required(inner, "format", f"{path}.format") not in ("wav", "mp3"):
            bad_value(inner["format"], ("wav", "mp3"), f"{path}.format")
    else:
        check_keys(inner, {"file_data", "file_id", "filename"}, path)


def _check_tool_call(call: Any, path: str) -> None:
    expect(call, dict, path)
    kind = call.get("type")
    check_keys(call, {"id", "type", "custom" if kind == "custom" else "function"}, path)
    call_id = required(call, "id", f"{path}.id")
    expect(call_id, str, f"{path}.id")
    if len(call_id) > MAX_TOOL_CALL_ID:
        too_long(f"{path}.id", MAX_TOOL_CALL_ID, len(call_id))
    if required(call, "type", f"{path}.type") == "custom":
        custom = required(call, "custom", f"{path}.custom")
        check_keys(custom, {"name", "input"}, f"{path}.custom")
        check_name(required(custom, "name", f"{path}.custom.name"), f"{path}.custom.name")
        expect(required(custom, "input", f"{path}.custom.input"), str, f"{path}.custom.input")
        return
    if call["type"] != "function":
        bad_value(call["type"], ("function", "custom"), f"{path}.type")
    function = required(call, "function", f"{path}.function")
    check_keys(function, {"name", "arguments"}, f"{path}.function")
    check_name(required(function, "name", f"{path}.function.name"), f"{path}.function.name")
    expect(required(function, "arguments", f"{path}.function.arguments"), str,
            f"{path}.function.arguments")  # fmt: skip


def _check_tool_turns(messages: list[dict[str, Any]]) -> None:
    """Each assistant `tool_calls` is answered by tool messages, each tool message answers one."""
    pending: list[str] = []
    opened_at = 0
    for index, message in enumerate(messages):
        role = message["role"]
        if role == "tool":
            if message["tool_call_id"] not in pending:
                fail(
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
    fail(
        "An assistant message with 'tool_calls' must be followed by tool messages responding to"
        " each 'tool_call_id'. The following tool_call_ids did not have response messages: "
        + ", ".join(pending),
        f"messages.[{index}].role",
        None,
    )
