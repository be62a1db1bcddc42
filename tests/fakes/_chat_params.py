"""OpenAI's rules for the optional Chat Completions parameters, one checker per name.

Types, ranges and enums follow the openai SDK's `completion_create_params.py` (the
reference for "current"); `check_params` raises `Reject` with the 400 OpenAI answers.
`tools`, `tool_choice`, `parallel_tool_calls` and the stream fields are checked with
the messages in `_chat_rules`, which know the tools.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Final

from ._chat_errors import (
    bad_value,
    check_keys,
    empty_array,
    expect,
    fail,
    in_range,
    missing,
    required,
    too_long,
    too_many,
)

MAX_TOOL_NAME: Final = 64
TOOL_NAME_PATTERN: Final = "^[a-zA-Z0-9_-]+$"
_TOOL_NAME_RE: Final = re.compile(TOOL_NAME_PATTERN)
REASONING_EFFORTS: Final = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
SERVICE_TIERS: Final = ("auto", "default", "flex", "scale", "priority", "fast")
AUDIO_FORMATS: Final = ("wav", "aac", "mp3", "flac", "opus", "pcm16")
_LEVELS: Final = ("low", "medium", "high")
MAX_METADATA_PAIRS: Final = 16
MAX_METADATA_KEY: Final = 64
MAX_METADATA_VALUE: Final = 512


def check_name(name: Any, path: str) -> str:
    """A function or tool name: at most 64 of `[a-zA-Z0-9_-]`."""
    expect(name, str, path)
    if len(name) > MAX_TOOL_NAME:
        too_long(path, MAX_TOOL_NAME, len(name))
    if not _TOOL_NAME_RE.match(name):
        fail(
            f"Invalid '{path}': string does not match pattern. Expected a string that matches"
            f" the pattern '{TOOL_NAME_PATTERN}'.",
            path,
            "invalid_value",
        )
    return str(name)


def check_params(body: Mapping[str, Any]) -> None:
    """Every optional parameter `body` sets has the type and value OpenAI takes."""
    for name, value in body.items():
        checker = _CHECKERS.get(name)
        if checker is not None and not (value is None and name in _NULLABLE):
            checker(value, name)
    modalities = body.get("modalities") or ()
    if "audio" in modalities and body.get("audio") is None:
        missing("audio")
    if "function_call" in body and not body.get("functions"):
        fail(
            "Invalid value for 'function_call': 'function_call' is only allowed when"
            " 'functions' are specified.",
            "function_call",
            None,
        )


def _number(low: float | None, high: float | None) -> Callable[[Any, str], None]:
    def check(value: Any, path: str) -> None:
        expect(value, float, path)
        in_range(value, path, low, high)

    return check


def _integer(low: int | None, high: int | None) -> Callable[[Any, str], None]:
    def check(value: Any, path: str) -> None:
        expect(value, int, path)
        in_range(value, path, low, high)

    return check


def _kind(kind: type) -> Callable[[Any, str], None]:
    def check(value: Any, path: str) -> None:
        expect(value, kind, path)

    return check


def _enum(values: tuple[str, ...]) -> Callable[[Any, str], None]:
    def check(value: Any, path: str) -> None:
        expect(value, str, path)
        if value not in values:
            bad_value(value, values, path)

    return check


def _stop(value: Any, path: str) -> None:
    if isinstance(value, str):
        return
    expect(value, list, path)
    if len(value) > 4:
        too_many(path, 4, len(value))
    for index, item in enumerate(value):
        expect(item, str, f"{path}[{index}]")


def _logit_bias(value: Any, path: str) -> None:
    expect(value, dict, path)
    for token, bias in value.items():
        expect(bias, float, f"{path}.{token}")
        in_range(bias, f"{path}.{token}", -100, 100)


def _metadata(value: Any, path: str) -> None:
    expect(value, dict, path)
    if len(value) > MAX_METADATA_PAIRS:
        fail(f"Invalid '{path}': too many properties. Expected an object with at most"
             f" {MAX_METADATA_PAIRS} properties, but got an object with {len(value)}"
             " properties instead.", path, "object_above_max_properties")  # fmt: skip
    for key, item in value.items():
        if len(key) > MAX_METADATA_KEY:
            too_long(f"{path}.{key}", MAX_METADATA_KEY, len(key))
        expect(item, str, f"{path}.{key}")
        if len(item) > MAX_METADATA_VALUE:
            too_long(f"{path}.{key}", MAX_METADATA_VALUE, len(item))


def _modalities(value: Any, path: str) -> None:
    expect(value, list, path)
    for index, item in enumerate(value):
        _enum(("text", "audio"))(item, f"{path}[{index}]")


def _audio(value: Any, path: str) -> None:
    check_keys(value, {"format", "voice"}, path)
    _enum(AUDIO_FORMATS)(required(value, "format", f"{path}.format"), f"{path}.format")
    voice = required(value, "voice", f"{path}.voice")
    if not isinstance(voice, str):
        check_keys(voice, {"id"}, f"{path}.voice")
        expect(required(voice, "id", f"{path}.voice.id"), str, f"{path}.voice.id")


def _prediction(value: Any, path: str) -> None:
    check_keys(value, {"type", "content"}, path)
    _enum(("content",))(required(value, "type", f"{path}.type"), f"{path}.type")
    content = required(value, "content", f"{path}.content")
    if isinstance(content, str):
        return
    expect(content, list, f"{path}.content")
    for index, part in enumerate(content):
        part_path = f"{path}.content[{index}]"
        check_keys(part, {"type", "text"}, part_path)
        _enum(("text",))(required(part, "type", f"{part_path}.type"), f"{part_path}.type")
        expect(required(part, "text", f"{part_path}.text"), str, f"{part_path}.text")


def _prompt_cache_options(value: Any, path: str) -> None:
    check_keys(value, {"mode", "ttl"}, path)
    if "mode" in value:
        _enum(("implicit", "explicit"))(value["mode"], f"{path}.mode")
    if "ttl" in value:
        _enum(("30m",))(value["ttl"], f"{path}.ttl")


def _web_search_options(value: Any, path: str) -> None:
    check_keys(value, {"search_context_size", "user_location"}, path)
    if "search_context_size" in value:
        _enum(_LEVELS)(value["search_context_size"], f"{path}.search_context_size")
    location = value.get("user_location")
    if location is None:
        return
    where = f"{path}.user_location"
    check_keys(location, {"type", "approximate"}, where)
    _enum(("approximate",))(required(location, "type", f"{where}.type"), f"{where}.type")
    approximate = required(location, "approximate", f"{where}.approximate")
    check_keys(approximate, {"city", "country", "region", "timezone"}, f"{where}.approximate")
    for key, item in approximate.items():
        expect(item, str, f"{where}.approximate.{key}")


def _moderation(value: Any, path: str) -> None:
    check_keys(value, {"model", "policy"}, path)
    expect(required(value, "model", f"{path}.model"), str, f"{path}.model")
    policy = value.get("policy")
    if policy is None:
        return
    check_keys(policy, {"input", "output"}, f"{path}.policy")
    for side in ("input", "output"):
        if policy.get(side) is not None:
            where = f"{path}.policy.{side}"
            check_keys(policy[side], {"mode"}, where)
            _enum(("score", "block"))(required(policy[side], "mode", f"{where}.mode"),
                                      f"{where}.mode")  # fmt: skip


def _response_format(value: Any, path: str) -> None:
    expect(value, dict, path)
    kind = required(value, "type", f"{path}.type")
    _enum(("text", "json_object", "json_schema"))(kind, f"{path}.type")
    if kind != "json_schema":
        check_keys(value, {"type"}, path)
        return
    check_keys(value, {"type", "json_schema"}, path)
    schema = required(value, "json_schema", f"{path}.json_schema")
    where = f"{path}.json_schema"
    check_keys(schema, {"name", "description", "schema", "strict"}, where)
    check_name(required(schema, "name", f"{where}.name"), f"{where}.name")
    if "schema" in schema:
        expect(schema["schema"], dict, f"{where}.schema")
    if schema.get("strict") is not None:
        expect(schema["strict"], bool, f"{where}.strict")


def _functions(value: Any, path: str) -> None:
    expect(value, list, path)
    if not value:
        empty_array(path)
    if len(value) > 128:
        too_many(path, 128, len(value))
    for index, function in enumerate(value):
        where = f"{path}[{index}]"
        check_keys(function, {"name", "description", "parameters"}, where)
        check_name(required(function, "name", f"{where}.name"), f"{where}.name")
        if "parameters" in function:
            expect(function["parameters"], dict, f"{where}.parameters")


def _function_call(value: Any, path: str) -> None:
    if isinstance(value, str):
        _enum(("none", "auto"))(value, path)
        return
    check_keys(value, {"name"}, path)
    expect(required(value, "name", f"{path}.name"), str, f"{path}.name")


_CHECKERS: Final[Mapping[str, Callable[[Any, str], None]]] = {
    "frequency_penalty": _number(-2, 2),
    "presence_penalty": _number(-2, 2),
    "temperature": _number(0, 2),
    "top_p": _number(0, 1),
    "logit_bias": _logit_bias,
    "logprobs": _kind(bool),
    "top_logprobs": _integer(0, 20),
    "max_tokens": _integer(1, None),
    "max_completion_tokens": _integer(1, None),
    "n": _integer(1, 128),
    "seed": _integer(None, None),
    "stop": _stop,
    "user": _kind(str),
    "reasoning_effort": _enum(REASONING_EFFORTS),
    "response_format": _response_format,
    "store": _kind(bool),
    "metadata": _metadata,
    "modalities": _modalities,
    "audio": _audio,
    "service_tier": _enum(SERVICE_TIERS),
    "prediction": _prediction,
    "verbosity": _enum(_LEVELS),
    "prompt_cache_key": _kind(str),
    "prompt_cache_retention": _enum(("in_memory", "24h")),
    "prompt_cache_options": _prompt_cache_options,
    "safety_identifier": _kind(str),
    "web_search_options": _web_search_options,
    "moderation": _moderation,
    "functions": _functions,
    "function_call": _function_call,
}
_NULLABLE: Final = frozenset({
    "frequency_penalty", "presence_penalty", "temperature", "top_p", "logit_bias", "logprobs",
    "top_logprobs", "max_tokens", "max_completion_tokens", "n", "seed", "stop",
    "reasoning_effort", "store", "metadata", "modalities", "audio", "service_tier",
    "prediction", "verbosity", "prompt_cache_key", "prompt_cache_retention",
    "safety_identifier", "moderation",
})  # fmt: skip
"""`Optional[...]` in the SDK: `null` is taken and means "not set"."""
