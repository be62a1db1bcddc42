"""Anthropic's streamed message (PROVIDERS.md §3.7) as OpenAI chunks.

    Anthropic event                           OpenAI chunk
    message_start (id, model, input usage) -> delta {role: "assistant", content: ""}
    content_block_start text               -> delta.content (when the block starts with text)
    content_block_start tool_use           -> delta.tool_calls [{index n, id, type, name, ""}]
    content_block_delta text_delta         -> delta.content
    content_block_delta input_json_delta   -> delta.tool_calls [{index n, arguments fragment}]
                                              (a server tool's input, e.g. web search: nothing)
    content_block_stop of a call with no arguments -> arguments "{}"
    content_block_delta thinking_delta     -> delta.reasoning_content
    content_block_stop of a thinking / redacted_thinking block -> delta.thinking_blocks
                                              [the whole signed block, to send back]
    message_delta (stop_reason, usage)     -> finish_reason chunk, then a usage chunk
                                              (`choices: []`)
    message_stop                           -> the end (nothing after it is read)
    ping, unknown events and delta types   -> nothing (so do a `data: [DONE]` that
                                              proxies add, and unknown keys and nulls)
    error                                  -> ProviderError, classified like the same
                                              error answered with a status

Tool-call indexes count tool_use blocks only, in order of appearance. Chunks carry the
message's id and model from message_start. A body that ends before message_stop is a
cut stream (`server_error`) unless the message already ended with its stop_reason.
"""

from __future__ import annotations

import time
import uuid
from typing import Final

import msgspec
from msgspec import UNSET, Struct, UnsetType

from .._chat import (
    ChatCompletionChunk,
    ChunkChoice,
    ChunkDelta,
    FunctionDelta,
    ToolCallDelta,
    Usage,
)
from .._exceptions import ErrorClass, ProviderError
from ._anthropic_reply import (
    FINISH_REASONS,
    AnthropicUsage,
    CacheCreation,
    classify_anthropic_event,
    openai_usage,
    thinking_block,
)
from ._base import decode_tolerant
from ._sse import ServerSentEvent, SSEStreamParser


class _Message(Struct, frozen=True):
    id: str = ""
    model: str = ""
    usage: AnthropicUsage | None = None


class _Block(Struct, frozen=True):
    type: str = ""
    text: str | None = None
    id: str | None = None
    name: str | None = None
    thinking: str | None = None
    signature: str | None = None
    data: str | None = None


class _Delta(Struct, frozen=True):
    # One struct for content_block_delta's and message_delta's `delta`.
    type: str = ""
    text: str | None = None
    partial_json: str | None = None
    stop_reason: str | None = None
    thinking: str | None = None
    signature: str | None = None


class _UsageDelta(Struct, frozen=True):
    """`message_delta.usage`: cumulative counts; any of them may be present."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    cache_creation: CacheCreation | None = None


class _Event(Struct, frozen=True):
    type: str = ""
    message: _Message | None = None
    index: int = 0
    content_block: _Block | None = None
    delta: _Delta | None = None
    usage: _UsageDelta | None = None


_event_decoder: Final = msgspec.json.Decoder(_Event)


class AnthropicStreamParser(SSEStreamParser):
    """One Anthropic message stream; build a fresh parser per attempt."""

    __slots__ = (
        "_calls",
        "_created",
        "_finished",
        "_id",
        "_model",
        "_role_sent",
        "_stopped",
        "_text_blocks",
        "_thinking",
        "_usage",
        "_with_arguments",
    )

    cut_message = "anthropic stream ended before message_stop"

    def __init__(self, *, model: str, created: int | None = None) -> None:
        super().__init__()
        self._id = f"msg_{uuid.uuid4().hex[:24]}"  # replaced by message_start's id
        self._model = model
        self._created = int(time.time()) if created is None else created
        self._usage: AnthropicUsage | None = None
        """Counts reported so far (message_start, then message_delta); None if none came."""
        self._calls: dict[int, int] = {}
        """Content block index -> OpenAI tool-call index."""
        self._with_arguments: set[int] = set()
        """Tool-call indexes that received a non-empty arguments fragment."""
        self._text_blocks: set[int] = set()
        """Content block indexes of text blocks (which never take arguments)."""
        self._thinking: dict[int, _Thinking] = {}
        """Content block index -> the thinking block being streamed there."""
        self._role_sent = False
        self._finished = False
        self._stopped = False

    def __repr__(self) -> str:
        state = "stopped" if self._stopped else "finished" if self._finished else "streaming"
        return f"<AnthropicStreamParser {self._id} {state} [tool calls {len(self._calls)}]>"

    def _complete(self) -> bool:
        return self._stopped or self._finished

    def _chunks(self, events: list[ServerSentEvent]) -> list[ChatCompletionChunk]:
        out: list[ChatCompletionChunk] = []
        try:
            for event in events:
                if not self._stopped:
                    self._event(event, out)
        except ProviderError as exc:
            exc.partial = tuple(out)  # delivered before the error
            raise
        return out

    def _event(self, sse: ServerSentEvent, out: list[ChatCompletionChunk]) -> None:
        raw = sse.data
        if not raw.strip() or raw == b"[DONE]":
            return  # proxies (OpenRouter) end Anthropic streams with OpenAI's [DONE] too
        event = decode_tolerant(_event_decoder, raw, "anthropic stream event")
        match event.type or sse.event:
            case "message_start":
                message = event.message or _Message()
                self._id = message.id or self._id
                self._model = message.model or self._model
                self._usage = message.usage or self._usage
                out.append(self._chunk(ChunkDelta(content="")))
            case "content_block_start":
                self._block_start(event.index, event.content_block or _Block(), out)
            case "content_block_delta":
                self._block_delta(event.index, event.delta or _Delta(), out)
            case "content_block_stop":
                thought = self._thinking.pop(event.index, None)
                if thought is not None:
                    block = thought.block()
                    if block is not None:
                        out.append(self._chunk(ChunkDelta(thinking_blocks=(block,))))
                call = self._calls.get(event.index)
                if call is not None and call not in self._with_arguments:
                    # A call without input streams no fragment; OpenAI's form is "{}".
                    out.append(self._call_chunk(ToolCallDelta(index=call, function=_args("{}"))))
            case "message_delta":
                self._message_delta(event, out)
            case "message_stop":
                self._stopped = True
            case "error":
                raise classify_anthropic_event(raw)
            case _:
                pass  # ping, and event types added after this was written

    def _block_start(self, index: int, block: _Block, out: list[ChatCompletionChunk]) -> None:
        if block.type == "text":
            self._text_blocks.add(index)
            if block.text:
                out.append(self._chunk(ChunkDelta(content=block.text)))
        elif block.type in ("thinking", "redacted_thinking"):
            thought = self._thinking[index] = _Thinking(block)
            if block.thinking:
                out.append(self._chunk(ChunkDelta(reasoning_content=block.thinking)))
                thought.parts.append(block.thinking)
        elif block.type == "tool_use":
            if not block.id or not block.name:
                raise ProviderError(
                    ErrorClass.SERVER_ERROR,
                    f"anthropic stream: tool_use block {index} without id or name",
                    status=200,
                )
            call = self._calls[index] = len(self._calls)
            head = ToolCallDelta(
                index=call,
                id=block.id,
                type="function",
                function=FunctionDelta(name=block.name, arguments=""),
            )
            out.append(self._call_chunk(head))

    def _block_delta(self, index: int, delta: _Delta, out: list[ChatCompletionChunk]) -> None:
        if delta.type == "text_delta" and delta.text:
            out.append(self._chunk(ChunkDelta(content=delta.text)))
        elif delta.type == "input_json_delta" and delta.partial_json:
            call = self._calls.get(index)
            if call is None:
                if index in self._text_blocks:
                    raise ProviderError(
                        ErrorClass.SERVER_ERROR,
                        f"anthropic stream: input_json_delta for block {index}, not a tool_use",
                        status=200,
                    )
                return  # the input of a server tool (web search...): Anthropic runs it, not us
            self._with_arguments.add(call)
            fragment = ToolCallDelta(index=call, function=_args(delta.partial_json))
            out.append(self._call_chunk(fragment))
        elif delta.type in ("thinking_delta", "signature_delta"):
            thought = self._thinking.get(index)
            if delta.thinking:
                out.append(self._chunk(ChunkDelta(reasoning_content=delta.thinking)))
                if thought is not None:
                    thought.parts.append(delta.thinking)
            if delta.signature and thought is not None:
                thought.signature = delta.signature
        # citations_delta and delta types added later: not part of the answer

    def _message_delta(self, event: _Event, out: list[ChatCompletionChunk]) -> None:
        if event.usage is not None:
            counts = {
                name: value
                for name in _UsageDelta.__struct_fields__
                if (value := getattr(event.usage, name)) is not None
            }
            self._usage = msgspec.structs.replace(self._usage or AnthropicUsage(), **counts)
        reason = event.delta.stop_reason if event.delta is not None else None
        if reason is not None and not self._finished:
            self._finished = True
            out.append(self._chunk(ChunkDelta(), FINISH_REASONS.get(reason, "stop")))
            if self._usage is not None:  # no usage chunk made of zeros when none was reported
                out.append(self._make((), openai_usage(self._usage)))

    def _call_chunk(self, call: ToolCallDelta) -> ChatCompletionChunk:
        return self._chunk(ChunkDelta(tool_calls=(call,)))

    def _chunk(self, delta: ChunkDelta, finish: str | None = None) -> ChatCompletionChunk:
        if not self._role_sent:  # the first chunk says who speaks, as OpenAI's does
            self._role_sent = True
            delta = msgspec.structs.replace(delta, role="assistant")
        return self._make((ChunkChoice(delta=delta, finish_reason=finish),))

    def _make(
        self, choices: tuple[ChunkChoice, ...], usage: Usage | UnsetType = UNSET
    ) -> ChatCompletionChunk:
        return ChatCompletionChunk(
            id=self._id, created=self._created, model=self._model, choices=choices, usage=usage
        )


class _Thinking:
    """A thinking block in the making: its text so far and its signature, once sent."""

    __slots__ = ("data", "kind", "parts", "signature")

    def __init__(self, start: _Block) -> None:
        self.kind = start.type
        self.parts: list[str] = []
        self.signature = start.signature or ""
        self.data = start.data

    def block(self) -> dict[str, object] | None:
        return thinking_block(self.kind, "".join(self.parts), self.signature, self.data)


def _args(fragment: str) -> FunctionDelta:
    return FunctionDelta(arguments=fragment)
