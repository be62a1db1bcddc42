"""The OpenAI family's parameters: tables per flavour, inert options, message extensions."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from actors import ChatRequest, request_decoder
from actors.providers import (
    OPTIONAL_PARAMS,
    Handling,
    OpenAIAdapter,
    supported_by,
    table_of,
)
from config import parse_config

from .fakes import OPENAI_PARAMS, azure_dialect, azure_params, check_chat_request

USER = {"role": "user", "content": "hi"}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]


def adapter(provider: str, api_version: str | None = None) -> OpenAIAdapter:
    lines = ["[[deployment]]", 'name = "d"', 'group = "g"', f'provider = "{provider}"',
             'model = "dep"', 'api_key = "k"']  # fmt: skip
    if provider in ("azure", "openai-compatible"):
        lines.append('api_base = "https://r.example"')
    if api_version is not None:
        lines.append(f'api_version = "{api_version}"')
    return OpenAIAdapter(parse_config("\n".join(lines)).deployment[0])


def request(**body: Any) -> ChatRequest:
    return request_decoder.decode(msgspec.json.encode({"model": "g", "messages": [USER], **body}))


def built(flavour: tuple[str, str | None], **body: Any) -> tuple[dict[str, Any], tuple[str, ...]]:
    http = adapter(*flavour).build(request(**body))
    sent: dict[str, Any] = msgspec.json.decode(http.body)
    return sent, http.dropped_params


def accepted_by(flavour: tuple[str, str | None], body: dict[str, Any]) -> bool:
    """What the strict fake of that flavour (and version) would answer: True for a 200."""
    provider, version = flavour
    if provider == "azure":
        invalid = check_chat_request(
            body, accepted=azure_params(version), dialect=azure_dialect(version)
        )
    else:
        invalid = check_chat_request(body, accepted=OPENAI_PARAMS)
    return invalid is None


FLAVOURS = [
    pytest.param(("openai", None), id="openai"),
    pytest.param(("openai-compatible", None), id="compatible"),
    pytest.param(("azure", None), id="azure-v1"),
    pytest.param(("azure", "2024-10-21"), id="azure-2024-10-21"),
]


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize(
    ("options", "dropped"),
    [
        pytest.param({"tool_choice": "required", "parallel_tool_calls": False},
                     ("parallel_tool_calls", "tool_choice"), id="tool-options-without-tools"),
        pytest.param({"tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
                     ("tool_choice",), id="named-tool-choice-without-tools"),
        pytest.param({"function_call": "auto"}, ("function_call",),
                     id="function-call-without-functions"),
        pytest.param({"stream_options": {"include_usage": True}}, ("stream_options",),
                     id="stream-options-without-stream"),
    ],
)  # fmt: skip
def test_options_that_mean_nothing_are_dropped_and_named(
    flavour: tuple[str, str | None], options: dict[str, Any], dropped: tuple[str, ...]
) -> None:
    """OpenAI answers these with a 400: they are left out and named (item 5, seed 000)."""
    sent, named = built(flavour, **options)
    assert named == dropped
    assert not set(dropped) & set(sent)
    assert accepted_by(flavour, sent)


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_tool_options_with_tools_are_sent(flavour: tuple[str, str | None]) -> None:
    """With tools, `tool_choice` and `parallel_tool_calls` go as they are."""
    sent, named = built(flavour, tools=TOOLS, tool_choice="required", parallel_tool_calls=False)
    assert named == ()
    assert (sent["tool_choice"], sent["parallel_tool_calls"]) == ("required", False)
    assert accepted_by(flavour, sent)


CACHE = {"type": "ephemeral"}
EXTENDED: dict[str, Any] = {
    "messages": [
        {"role": "system",
         "content": [{"type": "text", "text": "Be brief.", "cache_control": CACHE}]},
        USER,
        {"role": "assistant", "content": None, "reasoning_content": "thinking...",
         "thinking_blocks": [{"type": "thinking", "thinking": "t", "signature": "s"}],
         "tool_calls": [{"id": "call_1", "type": "function",
                         "function": {"name": "get_weather", "arguments": "{}"},
                         "extra_content": {"google": {"thought_signature": "sig"}}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
    ],
    "tools": [{**TOOLS[0], "cache_control": CACHE}],
}  # fmt: skip
EXTENSION_PATHS = (
    "messages[].content[].cache_control",
    "messages[].reasoning_content",
    "messages[].thinking_blocks",
    "messages[].tool_calls[].extra_content",
    "tools[].cache_control",
)


@pytest.mark.parametrize(
    "flavour",
    [pytest.param(("openai", None), id="openai"), pytest.param(("azure", None), id="azure-v1"),
     pytest.param(("azure", "2024-12-01-preview"), id="azure-dated")],
)  # fmt: skip
def test_message_extensions_openai_refuses_are_left_out_and_named(
    flavour: tuple[str, str | None],
) -> None:
    """`cache_control`, replayed reasoning and `extra_content` are 400s on OpenAI and Azure."""
    sent, named = built(flavour, **EXTENDED)
    assert named == EXTENSION_PATHS
    text = msgspec.json.encode(sent)
    for key in (b"cache_control", b"reasoning_content", b"thinking_blocks", b"extra_content"):
        assert key not in text
    assert sent["messages"][2]["tool_calls"][0]["id"] == "call_1"
    assert accepted_by(flavour, sent)


def test_a_compatible_server_gets_the_extensions() -> None:
    """LiteLLM routes `cache_control` on; Gemini's endpoint needs `extra_content` back."""
    sent, named = built(("openai-compatible", None), **EXTENDED)
    assert named == ()
    call = sent["messages"][2]["tool_calls"][0]
    assert call["extra_content"] == {"google": {"thought_signature": "sig"}}
    assert sent["messages"][0]["content"][0]["cache_control"] == CACHE
    assert sent["messages"][2]["reasoning_content"] == "thinking..."


def test_a_null_extension_is_left_out_without_being_named() -> None:
    """`reasoning_content: null` carries nothing: out of the body, not in the header."""
    assistant = {"role": "assistant", "content": "hello", "reasoning_content": None}
    sent, named = built(("openai", None), messages=[USER, assistant, USER])
    assert named == ()
    assert sent["messages"][1] == {"role": "assistant", "content": "hello"}


def test_openai_breakpoints_go_to_openai_but_not_to_dated_azure() -> None:
    """OpenAI's own `prompt_cache_breakpoint` is unknown to Azure's dated api-versions."""
    part = {"type": "text", "text": "long prefix", "prompt_cache_breakpoint": {"mode": "explicit"}}
    body = {"messages": [{"role": "user", "content": [part]}]}
    sent, named = built(("openai", None), **body)
    assert (named, sent["messages"][0]["content"][0]) == ((), part)
    sent, named = built(("azure", "2025-01-01-preview"), **body)
    assert named == ("messages[].content[].prompt_cache_breakpoint",)
    assert sent["messages"][0]["content"][0] == {"type": "text", "text": "long prefix"}
    assert accepted_by(("azure", "2025-01-01-preview"), sent)


GATED: dict[str, Any] = {
    "parallel_tool_calls": True, "tools": TOOLS, "stream": True,
    "stream_options": {"include_usage": True}, "max_completion_tokens": 50, "store": True,
    "metadata": {"k": "v"}, "reasoning_effort": "low", "modalities": ["text", "audio"],
    "audio": {"format": "wav", "voice": "alloy"},
    "prediction": {"type": "content", "content": "x"}, "verbosity": "low",
    "service_tier": "auto", "prompt_cache_key": "k", "safety_identifier": "s",
    "web_search_options": {}, "prompt_cache_retention": "24h",
    "prompt_cache_options": {"mode": "implicit"}, "moderation": {"model": "m"},
}  # fmt: skip
V1_ONLY = ("moderation", "prompt_cache_key", "prompt_cache_options", "prompt_cache_retention",
           "safety_identifier", "service_tier", "verbosity", "web_search_options")  # fmt: skip


@pytest.mark.parametrize(
    ("version", "dropped"),
    [
        pytest.param("2024-06-01", ("audio", "metadata", "modalities", "parallel_tool_calls",
                     "prediction", "reasoning_effort", "store", "stream_options", *V1_ONLY),
                     id="2024-06-01"),
        pytest.param("2024-10-21", ("audio", "metadata", "modalities", "prediction",
                     "reasoning_effort", "store", *V1_ONLY), id="2024-10-21"),
        pytest.param("2024-12-01-preview", ("audio", "modalities", "prediction", *V1_ONLY),
                     id="2024-12-01-preview"),
        pytest.param("2025-04-01-preview", V1_ONLY, id="2025-04-01-preview"),
        pytest.param(None, (), id="v1"),
    ],
)  # fmt: skip
def test_azure_sends_what_its_api_version_takes(
    version: str | None, dropped: tuple[str, ...]
) -> None:
    """Each dated api-version gets only its parameters; the v1 API gets OpenAI's."""
    sent, named = built(("azure", version), **GATED)
    assert named == tuple(sorted(dropped))
    assert accepted_by(("azure", version), sent)
    expected = {"model", "messages", *GATED} - set(dropped)
    if version == "2024-06-01":  # mapped, not dropped
        expected = expected - {"max_completion_tokens"} | {"max_tokens"}
    assert set(sent) == expected


def test_old_azure_takes_max_completion_tokens_as_max_tokens() -> None:
    """Before 2024-09-01-preview the output budget still arrives, under its old name."""
    sent, named = built(("azure", "2024-06-01"), max_completion_tokens=50, max_tokens=10)
    assert (named, sent["max_tokens"], "max_completion_tokens" in sent) == ((), 50, False)
    assert table_of(adapter("azure", "2024-06-01"))["max_completion_tokens"].handling is (
        Handling.MAPPED
    )


def test_old_azure_gets_developer_messages_as_system() -> None:
    """The `developer` role is new in 2024-12-01-preview; older versions get `system`."""
    developer = {"role": "developer", "content": "Be brief.", "name": "ops"}
    sent, named = built(("azure", "2024-10-21"), messages=[developer, USER])
    assert named == ()
    assert sent["messages"][0] == {"role": "system", "content": "Be brief.", "name": "ops"}
    assert accepted_by(("azure", "2024-10-21"), sent)
    sent, _ = built(("azure", "2024-12-01-preview"), messages=[developer, USER])
    assert sent["messages"][0]["role"] == "developer"


@pytest.mark.parametrize(
    ("provider", "version"),
    [("openai", None), ("openai-compatible", None), ("azure", None), ("azure", "2024-06-01"),
     ("azure", "2024-10-21"), ("azure", "2025-04-01-preview")],
)  # fmt: skip
def test_each_flavour_has_a_complete_table(provider: str, version: str | None) -> None:
    """Every optional parameter has a row; `supported_params` is what the table sends/maps."""
    built_adapter = adapter(provider, version)
    table = table_of(built_adapter)
    assert set(table) == OPTIONAL_PARAMS
    assert built_adapter.supported_params == supported_by(table)
    assert set(OPENAI_PARAMS) - {"model", "messages"} == OPTIONAL_PARAMS


def test_a_null_stream_options_is_sent_as_is() -> None:
    """OpenAI takes `stream_options: null` without `stream`: nothing to drop or name."""
    sent, named = built(("openai", None), stream_options=None)
    assert (named, sent["stream_options"]) == ((), None)
    assert accepted_by(("openai", None), sent)
