"""ConverseStream (PROVIDERS.md §4.7): AWS event-stream frames to OpenAI chunks.

The body is binary AWS event-stream framing, never SSE. botocore's
`EventStreamBuffer` cuts it into messages and checks both CRCs (the framing is
never decoded by hand); botocore is the optional `bedrock` extra, imported when
the first parser is made. Each event frame's JSON payload maps to chunks:

    messageStart               a chunk with delta.role "assistant"
    contentBlockStart toolUse  a tool call's first fragment: index, id, type, name
    contentBlockDelta text     delta.content
    contentBlockDelta toolUse  the next fragment of that call's arguments
    contentBlockStop toolUse   arguments "{}" if the call streamed none (as `parse_converse`
                               gives a call without input), also at messageStop if it is cut
    messageStop                finish_reason, mapped as Converse's stopReason (§8.2)
    metadata                   a usage chunk with `choices: []`

    contentBlockDelta reasoningContent  delta.reasoning_content; at contentBlockStop the
                               whole signed block as delta.thinking_blocks

Tool calls are numbered 0..n-1 in order of appearance, whatever their
contentBlockIndex. Citation and other blocks have no OpenAI field and are left
out, as in `parse_converse`; unknown events, unknown payload keys (the `p`
padding Bedrock adds) and nulls are ignored. An exception frame
(`throttlingException`, `modelStreamErrorException`...) raises the
`ProviderError` the HTTP error of the same exception would; a protocol error
frame, a bad frame or payload, a frame longer than `MAX_EVENT_BYTES` (1 MiB, as
for SSE events: botocore would buffer up to 24 MiB, re-copying it on every read)
and a body that ends before `messageStop` raise `server_error`.
"""

from __future__ import annotations

import functools
import secrets
import struct
import time
from collections.abc import Iterable
from typing import Any, Final, TypeVar

import msgspec
from msgspec import Struct

from .._chat import ChatCompletionChunk, ChunkChoice, ChunkDelta, FunctionDelta, ToolCallDelta
from .._exceptions import ErrorClass, ProviderError
from ._base import decode_tolerant
from ._bedrock_reply import (
    ReasoningText,
    TokenUsage,
    classify_stream_exception,
    finish_reason,
    openai_usage,
    stream_error,
    thinking_block,
)
from ._sse import MAX_EVENT_BYTES


class _ToolUseStart(Struct, rename="camel"):
    tool_use_id: str
    name: str


class _Start(Struct, rename="camel"):
    tool_use: _ToolUseStart | None = None


class _BlockStart(Struct, rename="camel"):
    start: _Start = msgspec.field(default_factory=_Start)
    content_block_index: int = 0


class _ToolUseDelta(Struct):
    input: str = ""


class _ReasoningDelta(Struct, rename="camel"):
    text: str | None = None
    signature: str | None = None
    redacted_content: str | None = None


class _Delta(Struct, rename="camel"):
    text: str | None = None
    tool_use: _ToolUseDelta | None = None
    reasoning_content: _ReasoningDelta | None = None


class _BlockStop(Struct, rename="camel"):
    content_block_index: int = 0


class _BlockDelta(Struct, rename="camel"):
    delta: _Delta = msgspec.field(default_factory=_Delta)
    content_block_index: int = 0


class _MessageStop(Struct, rename="camel"):
    stop_reason: str = "end_turn"


class _Metadata(Struct):
    usage: TokenUsage | None = None


_T = TypeVar("_T")
_block_start: Final = msgspec.json.Decoder(_BlockStart)
_block_delta: Final = msgspec.json.Decoder(_BlockDelta)
_block_stop: Final = msgspec.json.Decoder(_BlockStop)
_message_stop: Final = msgspec.json.Decoder(_MessageStop)
_metadata: Final = msgspec.json.Decoder(_Metadata)


class ConverseStreamParser:
    """Translates one ConverseStream body; `stream_id` and `created` are minted unless given."""

    __slots__ = (
        "_buffer",
        "_calls",
        "_created",
        "_id",
        "_model",
        "_pending",
        "_reasoning",
        "_role",
        "_stop",
        "_with_arguments",
    )

    def __init__(
        self, *, model: str, stream_id: str | None = None, created: int | None = None
    ) -> None:
        buffer_class, _ = _eventstream()
        self._buffer: Any = buffer_class()
        self._pending = 0  # bytes fed but not yet part of a whole frame
        self._model = model
        self._id = stream_id or f"chatcmpl-{secrets.token_hex(12)}"
        self._created = int(time.time()) if created is None else created
        self._calls: dict[int, int] = {}  # contentBlockIndex -> tool_calls index
        self._with_arguments: set[int] = set()  # tool_calls indexes whose arguments are sent
        self._role = False  # delta.role sent
        self._stop: str | None = None  # the finish_reason, once messageStop came
        # contentBlockIndex -> a reasoning block so far: its text, signature, redacted data
        self._reasoning: dict[int, tuple[list[str], list[str], list[str]]] = {}

    def __repr__(self) -> str:
        state = f"stopped {self._stop}" if self._stop else "open"
        return (
            f"<ConverseStreamParser {self._id} [{state} | tool calls {len(self._calls)}"
            f" | pending {self._pending} bytes]>"
        )

    def feed(self, data: bytes) -> list[ChatCompletionChunk]:
        self._buffer.add_data(data)
        self._pending += len(data)
        out: list[ChatCompletionChunk] = []
        frame_errors = _eventstream()[1]
        while True:
            try:
                message = next(self._buffer, None)
            except frame_errors as exc:
                raise ProviderError(
                    ErrorClass.SERVER_ERROR,
                    f"bedrock: invalid event-stream frame ({type(exc).__name__}: {exc})",
                    status=200,
                    partial=tuple(out),
                ) from None
            if message is None:
                if self._pending > MAX_EVENT_BYTES:
                    raise ProviderError(
                        ErrorClass.SERVER_ERROR,
                        f"bedrock: event-stream frame longer than {MAX_EVENT_BYTES} bytes",
                        status=200,
                        partial=tuple(out),
                    )
                return out
            self._pending -= message.prelude.total_length
            try:
                self._message(message.headers, message.payload, out)
            except ProviderError as exc:
                exc.partial = tuple(out)  # delivered before the error
                raise

    def ended(self) -> bool:
        return False  # messageStop may still be followed by the usage metadata

    def close(self) -> list[ChatCompletionChunk]:
        if self._stop is None:
            cut = f" inside a frame ({self._pending} bytes)" if self._pending else ""
            raise ProviderError(
                ErrorClass.SERVER_ERROR,
                f"bedrock: stream ended before messageStop{cut}",
                status=200,
            )
        return []  # a frame cut after messageStop loses only the usage

    def _message(
        self, headers: dict[str, Any], payload: bytes, out: list[ChatCompletionChunk]
    ) -> None:
        kind = headers.get(":message-type")
        if kind == "exception":
            raise classify_stream_exception(str(headers.get(":exception-type", "")), payload)
        if kind == "error":
            code = str(headers.get(":error-code") or "streamError")
            raise stream_error(code, str(headers.get(":error-message") or ""), 500)
        if kind != "event":
            return  # no other message type is defined; skip rather than guess
        event = headers.get(":event-type")
        if event == "messageStart":
            if not self._role:
                out.append(self._chunk(ChunkDelta(content="")))
        elif event == "contentBlockStart":
            start = _decode(_block_start, payload, event)
            tool = start.start.tool_use
            if tool is not None:
                index = self._calls[start.content_block_index] = len(self._calls)
                head = ToolCallDelta(
                    index=index,
                    id=tool.tool_use_id,
                    type="function",
                    function=FunctionDelta(name=tool.name, arguments=""),
                )
                out.append(self._chunk(ChunkDelta(tool_calls=(head,))))
        elif event == "contentBlockDelta":
            self._delta(_decode(_block_delta, payload, event), out)
        elif event == "contentBlockStop":
            index = _decode(_block_stop, payload, event).content_block_index
            call = self._calls.get(index)
            if call is not None:
                self._no_arguments((call,), out)
            reasoning = self._reasoning.pop(index, None)
            if reasoning is not None:
                texts, signatures, redacted = reasoning
                text = ReasoningText(text="".join(texts), signature="".join(signatures) or None)
                block = thinking_block(text, "".join(redacted) or None)
                if block is not None:
                    out.append(self._chunk(ChunkDelta(thinking_blocks=(block,))))
        elif event == "messageStop":
            stop = _decode(_message_stop, payload, event)
            self._stop = finish_reason(stop.stop_reason)  # malformed output raises
            self._no_arguments(self._calls.values(), out)
            out.append(self._chunk(ChunkDelta(), self._stop))
        elif event == "metadata":
            usage = _decode(_metadata, payload, event).usage
            if usage is not None:
                out.append(self._usage_chunk(usage))
        # Events added to the API later carry nothing to send.

    def _delta(self, event: _BlockDelta, out: list[ChatCompletionChunk]) -> None:
        delta = event.delta
        if delta.reasoning_content is not None:
            part = delta.reasoning_content
            texts, signatures, redacted = self._reasoning.setdefault(
                event.content_block_index, ([], [], [])
            )
            if part.text:
                texts.append(part.text)
                out.append(self._chunk(ChunkDelta(reasoning_content=part.text)))
            signatures += [part.signature] if part.signature else []
            redacted += [part.redacted_content] if part.redacted_content else []
        elif delta.text:
            out.append(self._chunk(ChunkDelta(content=delta.text)))
        elif delta.tool_use is not None and delta.tool_use.input:
            index = self._calls.get(event.content_block_index)
            if index is None:
                raise ProviderError(
                    ErrorClass.SERVER_ERROR,
                    f"bedrock: toolUse delta for block {event.content_block_index}"
                    " without its contentBlockStart",
                    status=200,
                )
            self._with_arguments.add(index)
            fragment = ToolCallDelta(
                index=index, function=FunctionDelta(arguments=delta.tool_use.input)
            )
            out.append(self._chunk(ChunkDelta(tool_calls=(fragment,))))

    def _no_arguments(self, indexes: Iterable[int], out: list[ChatCompletionChunk]) -> None:
        """Close calls that streamed no arguments with "{}", OpenAI's form of none."""
        for index in indexes:
            if index not in self._with_arguments:
                self._with_arguments.add(index)
                fragment = ToolCallDelta(index=index, function=FunctionDelta(arguments="{}"))
                out.append(self._chunk(ChunkDelta(tool_calls=(fragment,))))

    def _chunk(self, delta: ChunkDelta, finish: str | None = None) -> ChatCompletionChunk:
        if not self._role:  # the first chunk says who speaks, even without messageStart
            self._role = True
            delta = msgspec.structs.replace(delta, role="assistant")
        return ChatCompletionChunk(
            id=self._id,
            created=self._created,
            model=self._model,
            choices=(ChunkChoice(index=0, delta=delta, finish_reason=finish),),
        )

    def _usage_chunk(self, usage: TokenUsage) -> ChatCompletionChunk:
        return ChatCompletionChunk(
            id=self._id,
            created=self._created,
            model=self._model,
            choices=(),
            usage=openai_usage(usage),
        )


def _decode(decoder: msgspec.json.Decoder[_T], payload: bytes, event: str) -> _T:
    return decode_tolerant(decoder, payload, f"{event} event")


@functools.cache
def _eventstream() -> tuple[Any, tuple[type[Exception], ...]]:
    """botocore's `EventStreamBuffer`, and the errors a bad frame raises in it."""
    try:
        from botocore.eventstream import (
            EventStreamBuffer,
            ParserError,
        )
    except ImportError:
        raise ProviderError(
            ErrorClass.BAD_REQUEST,
            "bedrock: streaming needs botocore to decode AWS event-stream frames"
            " (pip install 'llm-dispatcher[bedrock]')",
        ) from None
    # Past the CRC checks, a malformed header still fails in botocore's unpacking.
    return EventStreamBuffer, (ParserError, struct.error, KeyError, ValueError)
