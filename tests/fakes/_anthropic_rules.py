"""Strict validation of an Anthropic Messages request body (PROVIDERS.md §3.2-§3.4).

`check_messages_request(body)` returns `None` for a body the real API would accept, or
the message of the 400 `invalid_request_error` it would answer.  Wordings marked [OBS] in
PROVIDERS.md are copied verbatim (unknown fields, system role, tool_use/tool_result
pairing, id pattern, tool name pattern, empty text); the others follow the API's
pydantic style (`<path>: Field required`) and tests should match only a stable piece.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Final, NoReturn

from ._anthropic_models import model_problem

ANTHROPIC_PARAMS: Final = frozenset({
    "model", "messages", "max_tokens", "cache_control", "container", "inference_geo",
    "metadata", "output_config", "service_tier", "stop_sequences", "stream", "system",
    "temperature", "thinking", "tool_choice", "tools", "top_k", "top_p",
})  # fmt: skip
"""Top-level fields of `MessageCreateParams` in the anthropic SDK (no beta fields)."""

ID_PATTERN: Final = "^[a-zA-Z0-9_-]+$"
NAME_PATTERN: Final = "^[a-zA-Z0-9_-]{1,128}$"
_ID_RE: Final = re.compile(ID_PATTERN)
_NAME_RE: Final = re.compile(NAME_PATTERN)

_CACHE = "cache_control"
_BLOCK_KEYS: Final[Mapping[str, frozenset[str]]] = {
    "text": frozenset({"type", "text", _CACHE, "citations"}),
    "image": frozenset({"type", "source", _CACHE}),
    "document": frozenset({"type", "source", "title", "context", "citations", _CACHE}),
    "tool_use": frozenset({"type", "id", "name", "input", _CACHE}),
    "tool_result": frozenset({"type", "tool_use_id", "content", "is_error", _CACHE}),
    "thinking": frozenset({"type", "thinking", "signature"}),
    "redacted_thinking": frozenset({"type", "data"}),
}
_SOURCE_KEYS: Final[Mapping[str, frozenset[str]]] = {
    "base64": frozenset({"type", "media_type", "data"}),
    "url": frozenset({"type", "url"}),
    "text": frozenset({"type", "media_type", "data"}),
}
_IMAGE_TYPES: Final = ("image/jpeg", "image/png", "image/gif", "image/webp")
_TOOL_KEYS: Final = frozenset({"name", "input_schema", "description", "strict", _CACHE, "type"})
_CHOICE_KEYS: Final[Mapping[str, frozenset[str]]] = {
    "auto": frozenset({"type", "disable_parallel_tool_use"}),
    "any": frozenset({"type", "disable_parallel_tool_use"}),
    "tool": frozenset({"type", "name", "disable_parallel_tool_use"}),
    "none": frozenset({"type"}),
}
_THINKING_KEYS: Final[Mapping[str, frozenset[str]]] = {
    "enabled": frozenset({"type", "budget_tokens", "display"}),
    "adaptive": frozenset({"type", "display"}),
    "disabled": frozenset({"type"}),
}
_EFFORTS: Final = ("low", "medium", "high", "xhigh", "max")
_MAX_CACHE_BLOCKS: Final = 4
_SYSTEM_ROLE: Final = (
    'messages: Unexpected role "system". The Messages API accepts a top-level `system`'
    ' parameter, not "system" as an input message role.'
)


class _Reject(Exception):
    def __init__(self, message: str) -> None:
        self.message = message


def _fail(message: str) -> NoReturn:
    raise _Reject(message)


def check_messages_request(body: Mapping[str, Any], *, alternation: bool = True) -> str | None:
    """Why Anthropic would answer 400 `invalid_request_error` to `body`, or None if valid.

    `alternation` also rejects consecutive turns of one role (the API used to; the SDK
    now documents that they are combined, so a fake may relax this).
    """
    try:
        _check(body, alternation)
    except _Reject as reject:
        return reject.message
    return None


def _check(body: Mapping[str, Any], alternation: bool) -> None:
    _shape(body, alternation)
    problem = model_problem(body)
    if problem is not None:
        _fail(problem)
    _cache_blocks(body)


def _shape(body: Mapping[str, Any], alternation: bool) -> None:
    _extra(body, ANTHROPIC_PARAMS, "")
    for key in ("model", "max_tokens", "messages"):
        if key not in body:
            _fail(f"{key}: Field required")
    if not isinstance(body["model"], str):
        _fail("model: Input should be a valid string")
    _integer(body["max_tokens"], "max_tokens", minimum=0)
    for key in ("temperature", "top_p"):
        if key in body:
            _number(body[key], key, 0.0, 1.0)
    if "top_k" in body:
        _integer(body["top_k"], "top_k", minimum=0)
    if "stop_sequences" in body:
        stops = body["stop_sequences"]
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            _fail("stop_sequences: Input should be a valid list of strings")
    if "metadata" in body:
        _mapping(body["metadata"], "metadata")
        _extra(body["metadata"], frozenset({"user_id"}), "metadata.")
    if "stream" in body and not isinstance(body["stream"], bool):
        _fail("stream: Input should be a valid boolean")
    if "service_tier" in body and body["service_tier"] not in ("auto", "standard_only"):
        _fail("service_tier: Input should be 'auto' or 'standard_only'")
    if "thinking" in body:
        _thinking(body["thinking"])
    if "output_config" in body:
        _output_config(body["output_config"])
    if "system" in body:
        _system(body["system"])
    names = _tools(body["tools"]) if "tools" in body else []
    if "tool_choice" in body:
        _tool_choice(body["tool_choice"], names)
    _messages(body["messages"], alternation)


def _system(system: Any) -> None:
    if isinstance(system, str):
        return
    if not isinstance(system, list):
        _fail("system: Input should be a valid string or a list of text blocks")
    for index, block in enumerate(system):
        _mapping(block, f"system.{index}")
        if block.get("type") != "text":
            _fail(f"system.{index}.type: Input should be 'text'")
        _block(block, f"system.{index}")


def _messages(messages: Any, alternation: bool) -> None:
    if not isinstance(messages, list):
        _fail("messages: Input should be a valid list")
    if not messages:
        _fail("messages: at least one message is required")
    for index, message in enumerate(messages):
        where = f"messages.{index}"
        _mapping(message, where)
        _extra(message, frozenset({"role", "content"}), f"{where}.")
        for key in ("role", "content"):
            if key not in message:
                _fail(f"{where}.{key}: Field required")
        role = message["role"]
        if role == "system":
            _fail(_SYSTEM_ROLE)
        if role not in ("user", "assistant"):
            _fail(f"{where}.role: Input should be 'user' or 'assistant'")
        content = message["content"]
        if not isinstance(content, str | list):
            _fail(f"{where}.content: Input should be a valid string or list")
        last_assistant = index == len(messages) - 1 and role == "assistant"
        if not content and not last_assistant:
            _fail(
                f"{where}: all messages must have non-empty content except for the optional"
                " final assistant message"
            )
        if isinstance(content, list):
            for position, block in enumerate(content):
                _mapping(block, f"{where}.content.{position}")
                _block(block, f"{where}.content.{position}")
        if alternation and index and messages[index - 1].get("role") == role:
            _fail(
                f'messages: roles must alternate between "user" and "assistant", but found'
                f' multiple "{role}" roles in a row'
            )
    _pairing(messages)


def _block(block: Mapping[str, Any], where: str) -> None:
    kind = str(block.get("type"))
    if kind not in _BLOCK_KEYS:
        tags = ", ".join(f"'{tag}'" for tag in _BLOCK_KEYS)
        _fail(
            f"{where}: Input tag '{kind}' found using 'type' does not match any of the"
            f" expected tags: {tags}"
        )
    _extra(block, _BLOCK_KEYS[kind], f"{where}.{kind}.")
    if _CACHE in block:
        _cache_control(block[_CACHE], f"{where}.{kind}.cache_control")
    if kind == "document" and "title" in block and not isinstance(block["title"], str):
        _fail(f"{where}.document.title: Input should be a valid string")
    if kind == "thinking":
        for key in ("thinking", "signature"):
            if not isinstance(block.get(key), str):
                _fail(f"{where}.thinking.{key}: Field required")
    if kind == "redacted_thinking" and not isinstance(block.get("data"), str):
        _fail(f"{where}.redacted_thinking.data: Field required")
    if kind == "text":
        if not isinstance(block.get("text"), str):
            _fail(f"{where}.text.text: Field required")
        if not block["text"]:
            _fail("messages: text content blocks must be non-empty")
    elif kind in ("image", "document"):
        _source(block.get("source"), f"{where}.{kind}.source", kind)
    elif kind == "tool_use":
        for key in ("id", "name", "input"):
            if key not in block:
                _fail(f"{where}.tool_use.{key}: Field required")
        _pattern(block["id"], f"{where}.tool_use.id", _ID_RE, ID_PATTERN)
        if not isinstance(block["input"], dict):
            _fail(f"{where}.tool_use.input: Input should be a valid dictionary")
    elif kind == "tool_result":
        if "tool_use_id" not in block:
            _fail(f"{where}.tool_result.tool_use_id: Field required")
        _pattern(block["tool_use_id"], f"{where}.tool_result.tool_use_id", _ID_RE, ID_PATTERN)
        content = block.get("content", "")
        if isinstance(content, list):
            for position, inner in enumerate(content):
                _mapping(inner, f"{where}.tool_result.content.{position}")
                _block(inner, f"{where}.tool_result.content.{position}")
        elif not isinstance(content, str):
            _fail(f"{where}.tool_result.content: Input should be a valid string or list")


def _source(source: Any, where: str, kind: str) -> None:
    _mapping(source, where)
    source_type = source.get("type")
    if source_type not in _SOURCE_KEYS:
        _fail(f"{where}: Input tag '{source_type}' found using 'type' does not match")
    _extra(source, _SOURCE_KEYS[source_type], f"{where}.{source_type}.")
    if source_type == "url":
        if not isinstance(source.get("url"), str):
            _fail(f"{where}.url.url: Field required")
        return
    allowed = _IMAGE_TYPES if kind == "image" else ("application/pdf", "text/plain")
    if source.get("media_type") not in allowed:
        expected = " or ".join(f"'{media}'" for media in allowed)
        _fail(f"{where}.{source_type}.media_type: Input should be {expected}")
    if not isinstance(source.get("data"), str):
        _fail(f"{where}.{source_type}.data: Field required")


def _pairing(messages: Sequence[Mapping[str, Any]]) -> None:
    """Every tool_use answered in the next message; every tool_result answers the last one."""
    seen: set[str] = set()
    for index, message in enumerate(messages):
        blocks = message["content"] if isinstance(message["content"], list) else []
        uses = [b["id"] for b in blocks if b.get("type") == "tool_use"]
        for position, block in enumerate(blocks):
            if block.get("type") == "tool_use":
                if block["id"] in seen:
                    _fail(f"messages.{index}.content.{position}: `tool_use` ids must be unique")
                seen.add(block["id"])
        previous = messages[index - 1] if index else None
        offered = (
            [b["id"] for b in previous["content"] if b.get("type") == "tool_use"]
            if previous is not None
            and previous["role"] == "assistant"
            and isinstance(previous["content"], list)
            else []
        )
        for position, block in enumerate(blocks):
            if block.get("type") == "tool_result" and block["tool_use_id"] not in offered:
                _fail(
                    f"messages.{index}.content.{position}: unexpected `tool_use_id` found in"
                    f" `tool_result` blocks: {block['tool_use_id']}. Each `tool_result` block"
                    " must have a corresponding `tool_use` block in the previous message."
                )
        if not uses or index == len(messages) - 1:
            continue  # a final assistant turn is a prefill: nothing to answer yet
        following = messages[index + 1]
        answered = {
            b.get("tool_use_id")
            for b in (following["content"] if isinstance(following["content"], list) else [])
            if b.get("type") == "tool_result"
        }
        missing = [use for use in uses if use not in answered]
        if missing:
            _fail(
                f"messages.{index}: `tool_use` ids were found without `tool_result` blocks"
                f" immediately after: {', '.join(missing)}. Each `tool_use` block must have a"
                " corresponding `tool_result` block in the next message."
            )


def _tools(tools: Any) -> list[str]:
    if not isinstance(tools, list):
        _fail("tools: Input should be a valid list")
    names: list[str] = []
    for index, tool in enumerate(tools):
        where = f"tools.{index}.custom"
        _mapping(tool, f"tools.{index}")
        _extra(tool, _TOOL_KEYS, f"{where}.")
        for key in ("name", "input_schema"):
            if key not in tool:
                _fail(f"{where}.{key}: Field required")
        _pattern(tool["name"], f"{where}.name", _NAME_RE, NAME_PATTERN)
        if "strict" in tool and not isinstance(tool["strict"], bool):
            _fail(f"{where}.strict: Input should be a valid boolean")
        if _CACHE in tool:
            _cache_control(tool[_CACHE], f"{where}.cache_control")
        schema = tool["input_schema"]
        _mapping(schema, f"{where}.input_schema")
        if schema.get("type") != "object":
            _fail(f"{where}.input_schema.type: Input should be 'object'")
        if tool["name"] in names:
            _fail("tools: Tool names must be unique.")
        names.append(tool["name"])
    return names


def _tool_choice(choice: Any, names: Sequence[str]) -> None:
    _mapping(choice, "tool_choice")
    kind = choice.get("type")
    if kind not in _CHOICE_KEYS:
        _fail(
            f"tool_choice: Input tag '{kind}' found using 'type' does not match any of the"
            " expected tags: 'auto', 'any', 'tool', 'none'"
        )
    _extra(choice, _CHOICE_KEYS[kind], f"tool_choice.{kind}.")
    if "disable_parallel_tool_use" in choice and not isinstance(
        choice["disable_parallel_tool_use"], bool
    ):
        _fail(f"tool_choice.{kind}.disable_parallel_tool_use: Input should be a valid boolean")
    if kind == "tool":
        if "name" not in choice:
            _fail("tool_choice.tool.name: Field required")
        if choice["name"] not in names:
            _fail(f"tool_choice: Tool '{choice['name']}' not found in `tools`")


def _thinking(thinking: Any) -> None:
    _mapping(thinking, "thinking")
    kind = thinking.get("type")
    if kind not in _THINKING_KEYS:
        _fail(
            f"thinking: Input tag '{kind}' found using 'type' does not match any of the expected"
            " tags: 'enabled', 'disabled', 'adaptive'"
        )
    _extra(thinking, _THINKING_KEYS[kind], f"thinking.{kind}.")
    if "display" in thinking and thinking["display"] not in ("summarized", "omitted", None):
        _fail(f"thinking.{kind}.display: Input should be 'summarized' or 'omitted'")


def _output_config(config: Any) -> None:
    _mapping(config, "output_config")
    _extra(config, frozenset({"effort", "format"}), "output_config.")
    effort = config.get("effort")
    if effort is not None and effort not in _EFFORTS:
        _fail("output_config.effort: Input should be 'low', 'medium', 'high', 'xhigh' or 'max'")
    fmt = config.get("format")
    if fmt is not None:
        _mapping(fmt, "output_config.format")
        _extra(fmt, frozenset({"type", "schema"}), "output_config.format.")
        if fmt.get("type") != "json_schema":
            _fail("output_config.format.type: Input should be 'json_schema'")
        _mapping(fmt.get("schema"), "output_config.format.schema")


def _cache_control(control: Any, where: str) -> None:
    if control is None:
        return
    _mapping(control, where)
    _extra(control, frozenset({"type", "ttl"}), f"{where}.")
    if control.get("type") != "ephemeral":
        _fail(f"{where}.type: Input should be 'ephemeral'")
    if "ttl" in control and control["ttl"] not in ("5m", "1h"):
        _fail(f"{where}.ttl: Input should be '5m' or '1h'")


def _cache_blocks(body: Mapping[str, Any]) -> None:
    """At most four cache breakpoints in a request (tools, system and messages together)."""
    found = sum(1 for tool in body.get("tools") or () if tool.get(_CACHE))
    system = body.get("system")
    found += sum(1 for b in system if b.get(_CACHE)) if isinstance(system, list) else 0
    for message in body["messages"]:
        content = message["content"]
        found += sum(1 for b in content if b.get(_CACHE)) if isinstance(content, list) else 0
    if found > _MAX_CACHE_BLOCKS:
        _fail(  # [OBS]
            f"A maximum of {_MAX_CACHE_BLOCKS} blocks with cache_control may be provided."
            f" Found {found}."
        )


def _extra(obj: Mapping[str, Any], allowed: frozenset[str], prefix: str) -> None:
    for key in obj:
        if key not in allowed:
            _fail(f"{prefix}{key}: Extra inputs are not permitted")


def _mapping(value: Any, where: str) -> None:
    if not isinstance(value, dict):
        _fail(f"{where}: Input should be a valid dictionary or object")


def _pattern(value: Any, where: str, rule: re.Pattern[str], shown: str) -> None:
    if not isinstance(value, str) or rule.fullmatch(value) is None:
        _fail(f"{where}: String should match pattern '{shown}'")


def _integer(value: Any, where: str, *, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        _fail(f"{where}: Input should be a valid integer")
    if value < minimum:
        _fail(f"{where}: Input should be greater than or equal to {minimum}")


def _number(value: Any, where: str, low: float, high: float) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        _fail(f"{where}: Input should be a valid number")
    if value < low:
        _fail(f"{where}: Input should be greater than or equal to {low:g}")
    if value > high:
        _fail(f"{where}: Input should be less than or equal to {high:g}")
