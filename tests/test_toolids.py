"""Tool-call ids: rewritten deterministically, only when the provider would reject them."""

from __future__ import annotations

import msgspec
import pytest

from actors import AssistantMessage, ToolMessage, request_decoder
from actors.providers import UNIVERSAL_ID, conform_tool_ids, pattern_rule, universal_id

MISTRAL = pattern_rule(r"[A-Za-z0-9]{9}")
OPENAI = pattern_rule(r".+", max_length=40)


def history(call_id: str) -> bytes:
    return msgspec.json.encode(
        {
            "model": "g",
            "messages": [
                {"role": "user", "content": "weather?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": call_id,
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": "{}"},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": call_id, "content": "18C"},
            ],
        }
    )


def ids(raw: bytes, rule: object) -> tuple[str, str]:
    request = conform_tool_ids(request_decoder.decode(raw), rule)  # type: ignore[arg-type]
    assistant, tool = request.messages[1], request.messages[2]
    assert isinstance(assistant, AssistantMessage) and isinstance(tool, ToolMessage)
    assert assistant.tool_calls
    return assistant.tool_calls[0].id, tool.tool_call_id


def test_universal_id_is_stable_and_accepted_everywhere() -> None:
    """The same original always gives the same nine alphanumerics; others differ."""
    a = universal_id("call_function_jlv0n7uyomle_1")
    assert a == universal_id("call_function_jlv0n7uyomle_1")
    assert UNIVERSAL_ID.fullmatch(a)
    assert a != universal_id("call_function_jlv0n7uyomle_2")


@pytest.mark.parametrize(
    ("original", "rule", "rewritten"),
    [
        pytest.param("call_function_jlv0n7uyomle_1", MISTRAL, True, id="mistral-rejects-long"),
        pytest.param("Ab3dE6gH9", MISTRAL, False, id="mistral-accepts-nine"),
        pytest.param("call_" + "x" * 36, OPENAI, True, id="openai-rejects-41"),
        pytest.param("call_" + "x" * 35, OPENAI, False, id="openai-accepts-40"),
    ],
)
def test_rewrite_only_rejected_ids_and_keep_pairs(
    original: str, rule: object, rewritten: bool
) -> None:
    """A rejected id is replaced in the call and its result alike; an accepted one is kept."""
    call_id, result_id = ids(history(original), rule)
    assert call_id == result_id
    assert (call_id != original) is rewritten
    if rewritten:
        assert call_id == universal_id(original)


def test_accepted_history_is_returned_untouched() -> None:
    """No copy is made when nothing needs rewriting."""
    request = request_decoder.decode(history("Ab3dE6gH9"))
    assert conform_tool_ids(request, MISTRAL) is request
