"""Thinking in answers: Anthropic's thinking blocks and Bedrock's reasoningContent become
`reasoning_content` and `thinking_blocks` (whole and streamed), in shapes the OpenAI SDK reads."""

from __future__ import annotations

import json
from typing import Any

import msgspec
from openai.types.chat import ChatCompletion as SDKCompletion
from openai.types.chat import ChatCompletionChunk as SDKChunk

from actors import ChatCompletionChunk
from actors.providers._anthropic_reply import parse_message
from actors.providers._anthropic_stream import AnthropicStreamParser
from actors.providers._bedrock_reply import parse_converse
from actors.providers._bedrock_stream import ConverseStreamParser

from .fakes import anthropic_message_events, anthropic_sse
from .fakes._bedrock_stream import converse_stream_frames
from .fakes._chat_reply import Turn
from .fakes._claude_models import sign_thinking
from .provider_streams import assert_split_invariant, run

THOUGHT = "The user wants a number."
SIGNED = {"type": "thinking", "thinking": THOUGHT, "signature": sign_thinking(THOUGHT)}
REDACTED = {"type": "redacted_thinking", "data": "RW5jcnlwdGVk"}


def anthropic_message(*content: dict[str, Any], **usage: int) -> dict[str, Any]:
    return {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
            "content": list(content), "stop_reason": "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": 10, "output_tokens": 5, **usage}}  # fmt: skip


def wire(value: Any) -> Any:
    """`value` as the client receives it: encoded to JSON and decoded."""
    return msgspec.json.decode(msgspec.json.encode(value))


def sdk_completion(completion: Any) -> Any:
    return SDKCompletion.model_validate(wire(completion))


def streamed(chunks: tuple[ChatCompletionChunk, ...]) -> dict[str, Any]:
    """What a client accumulates: reasoning text, whole thinking blocks, answer text."""
    reasoning, blocks, text = "", [], ""
    for chunk in chunks:
        SDKChunk.model_validate(wire(chunk))  # every chunk is one the SDK reads
        for choice in chunk.choices:
            reasoning += choice.delta.reasoning_content or ""
            blocks += list(choice.delta.thinking_blocks or ())
            text += choice.delta.content or ""
    return {"reasoning": reasoning, "blocks": blocks, "text": text}


def test_anthropic_thinking_blocks_become_reasoning_and_thinking_blocks() -> None:
    """The thinking text is reasoning_content; signed and redacted blocks come back whole."""
    body = json.dumps(anthropic_message(SIGNED, REDACTED, {"type": "text", "text": "42"})).encode()
    completion = parse_message(200, {}, body)
    message = sdk_completion(completion).choices[0].message
    assert message.content == "42"
    assert message.model_extra == {"reasoning_content": THOUGHT,
                                   "thinking_blocks": [SIGNED, REDACTED]}  # fmt: skip


def test_anthropic_cached_input_is_cached_tokens() -> None:
    """cache_read_input_tokens is prompt_tokens_details.cached_tokens, within prompt_tokens."""
    body = json.dumps(anthropic_message({"type": "text", "text": "hi"}, cache_read_input_tokens=90,
                                        cache_creation_input_tokens=20)).encode()  # fmt: skip
    usage = sdk_completion(parse_message(200, {}, body)).usage
    assert usage.prompt_tokens == 120
    assert usage.prompt_tokens_details.cached_tokens == 90


def test_anthropic_streamed_thinking() -> None:
    """thinking_delta is reasoning_content as it comes; the signed block follows its stop;
    every split of the body delivers the same chunks."""
    message = anthropic_message(SIGNED, REDACTED, {"type": "text", "text": "42"})
    body = anthropic_sse(*anthropic_message_events(message))
    got = streamed(run(AnthropicStreamParser(model="m", created=1), [body]).chunks)
    assert got == {"reasoning": THOUGHT, "blocks": [SIGNED, REDACTED], "text": "42"}
    assert_split_invariant(lambda: AnthropicStreamParser(model="m", created=1), body)


def test_reasoning_commits_the_stream() -> None:
    """A chunk of reasoning counts as content: the client sees a long think as it happens."""
    body = anthropic_sse(*anthropic_message_events(anthropic_message(SIGNED)))
    chunks = run(AnthropicStreamParser(model="m", created=1), [body]).chunks
    thinking = [c for c in chunks if c.choices and c.choices[0].delta.reasoning_content]
    assert thinking and all(c.has_content() for c in thinking)


def converse_answer(*content: dict[str, Any], **usage: int) -> bytes:
    return json.dumps({
        "output": {"message": {"role": "assistant", "content": list(content)}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 10, "outputTokens": 5, "totalTokens": 15, **usage},
    }).encode()  # fmt: skip


def test_bedrock_reasoning_content_becomes_reasoning_and_thinking_blocks() -> None:
    """Converse reasoningContent: its text is reasoning_content, signed / redacted blocks
    are thinking_blocks in the Anthropic shape (they go back as reasoningContent)."""
    body = converse_answer(
        {"reasoningContent": {"reasoningText": {"text": THOUGHT,
                                                "signature": sign_thinking(THOUGHT)}}},
        {"reasoningContent": {"redactedContent": "RW5jcnlwdGVk"}},
        {"text": "42"},
    )  # fmt: skip
    message = sdk_completion(parse_converse(body, model="m")).choices[0].message
    assert message.content == "42"
    assert message.model_extra == {"reasoning_content": THOUGHT,
                                   "thinking_blocks": [SIGNED, REDACTED]}  # fmt: skip


def test_bedrock_streamed_reasoning() -> None:
    """reasoningContent deltas are reasoning_content; the signed block follows contentBlockStop."""
    turn = Turn(content="42", tool_calls=(), finish_reason="stop")
    usage = {"inputTokens": 10, "outputTokens": 5, "totalTokens": 15}
    body = b"".join(converse_stream_frames(turn, "end_turn", usage, thought=THOUGHT))
    got = streamed(run(ConverseStreamParser(model="m", stream_id="s", created=1), [body]).chunks)
    assert got == {"reasoning": THOUGHT, "blocks": [SIGNED], "text": "42"}
    assert_split_invariant(lambda: ConverseStreamParser(model="m", stream_id="s", created=1), body)
