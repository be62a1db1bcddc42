"""Mistral's streamed chat completions (PROVIDERS.md §5.6) as OpenAI chunks.

Mistral streams OpenAI-style SSE (`data: {chunk}` ... `data: [DONE]`, decoded by
`SSEDecoder`), but its chunk schema is the Mistral SDK's, not OpenAI's, so the
chunks are decoded here rather than by `OpenAIStreamParser` (which would refuse
them as invalid):

- `delta.content` may be a list of content chunks (reasoning models): the text
  chunks are kept, thinking is left out, as in `parse_mistral`;
- each tool call arrives whole in one chunk (arguments not fragmented, possibly
  an object), its `index` may be missing or repeated, its `type` missing and its
  `id` missing or `"null"`. Calls are renumbered 0..n-1 in order of appearance:
  a fragment with an unseen id, or with a function name, opens a call (with id,
  type and name; an id is minted when Mistral sends none); a fragment with a known
  id, or without a name under an index already open, continues that call;
- usage comes in the last chunk beside `finish_reason`, unasked: it is split into
  a chunk of its own with `choices: []`, as OpenAI sends it;
- `finish_reason` `model_length` is `length`, `""` is no finish yet (sent with every
  chunk by some models); `error` is a `server_error`;
- an error object (`{"object": "error", ...}` or `{"error": {...}}`) is
  classified as the HTTP error of the same kind.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable, Mapping
from typing import Any, Final

import msgspec
from msgspec import UNSET, Struct

from .._chat import (
    ChatCompletionChunk,
    ChunkChoice,
    ChunkDelta,
    FunctionDelta,
    ToolCallDelta,
    Usage,
    encoder,
)
from .._exceptions import ErrorClass, ProviderError
from ._base import decode_tolerant, excerpt
from ._mistral_reply import classify_mistral_error, mistral_finish, response_text
from ._sse import ServerSentEvent, SSEStreamParser
from ._toolids import universal_id

_STATUS_OF_TYPE: Final[Mapping[str, int]] = {"rate_limited": 429, "invalid_request_error": 400}


class _Function(Struct):
    name: str | None = None
    arguments: str | dict[str, Any] | None = None  # an object is allowed (§5.2)


class _ToolCall(Struct):
    function: _Function | None = None
    id: str | None = None
    index: int | None = None
    type: str | None = None


class _Delta(Struct):
    role: str | None = None
    content: str | list[dict[str, Any]] | None = None
    tool_calls: list[_ToolCall] | None = None


class _Choice(Struct):
    delta: _Delta = msgspec.field(default_factory=_Delta)
    index: int = 0
    finish_reason: str | None = None


class _Usage(Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class _Chunk(Struct):
    id: str = ""
    created: int = 0
    model: str = ""
    object: str = "chat.completion.chunk"
    choices: list[_Choice] = msgspec.field(default_factory=list)
    usage: _Usage | None = None
    error: dict[str, Any] | str | None = None  # what OpenAI-compatible servers send
    # Mistral's own error body: {"object": "error", "message", "type", "code"} (§5.5)
    message: Any = None
    type: str | None = None
    code: Any = None
    raw_status_code: int | None = None


_chunk_decoder: Final = msgspec.json.Decoder(_Chunk)


class _Calls:
    """The tool calls of one choice, numbered 0..n-1 in order of appearance."""

    __slots__ = ("by_id", "by_index", "count")

    def __init__(self) -> None:
        self.by_id: dict[str, int] = {}
        self.by_index: dict[int, int] = {}  # Mistral's index -> ours, for fragments with no id
        self.count = 0

    def find(self, call_id: str | None, name: str | None, index: int | None) -> int | None:
        """The open call a fragment continues, or None when it opens a new one.

        A known id continues its call. A fragment with neither id nor name continues the
        call open under its index, or else the last call. Anything else is a new call.
        """
        if call_id is not None:
            return self.by_id.get(call_id)
        if name:
            return None
        if index is not None:
            return self.by_index.get(index)
        return self.count - 1 if self.count else None

    def open(self, call_id: str, index: int | None) -> None:
        """Number a new call (it gets `count`)."""
        self.by_id[call_id] = self.count
        if index is not None:
            self.by_index[index] = self.count
        self.count += 1


class MistralStreamParser(SSEStreamParser):
    """Translates one Mistral SSE body; id, created and model are Mistral's (`model` if none)."""

    __slots__ = ("_calls", "_created", "_done", "_finished", "_id", "_model", "_roles")

    cut_message = "mistral: stream ended before data: [DONE]"

    def __init__(self, *, model: str = "") -> None:
        super().__init__()
        self._done = False  # data: [DONE] seen
        self._finished = False  # a finish_reason seen
        self._id = ""
        self._created = 0
        self._model = model
        self._roles: set[int] = set()  # choices whose delta.role was sent
        self._calls: dict[int, _Calls] = {}

    def __repr__(self) -> str:
        state = "done" if self._done else "finished" if self._finished else "open"
        calls = sum(c.count for c in self._calls.values())
        return f"<MistralStreamParser {self._id or '-'} [{state} | tool calls {calls}]>"

    def _complete(self) -> bool:
        return self._done or self._finished

    def _chunks(self, events: list[ServerSentEvent]) -> list[ChatCompletionChunk]:
        out: list[ChatCompletionChunk] = []
        for event in events:
            if event.data == b"[DONE]":
                self._done = True
            elif event.data and not self._done:
                try:
                    self._translate(event.data, out)
                except ProviderError as exc:
                    exc.partial = tuple(out)  # delivered before the error
                    raise
        return out

    def _translate(self, raw: bytes, out: list[ChatCompletionChunk]) -> None:
        chunk = decode_tolerant(_chunk_decoder, raw, "mistral chat.completion.chunk")
        if chunk.error is not None or chunk.object == "error":
            raise _in_band_error(chunk)
        if not self._id:
            self._id = chunk.id or f"chatcmpl-{secrets.token_hex(12)}"
            self._created = chunk.created or int(time.time())
            self._model = chunk.model or self._model
        for choice in chunk.choices:
            out.extend(self._wrap((translated,)) for translated in self._choice(choice))
            if choice.finish_reason == "error":
                raise ProviderError(
                    ErrorClass.SERVER_ERROR, "mistral: generation ended with an error", status=200
                )
        if chunk.usage is not None:
            usage = chunk.usage
            out.append(
                self._wrap(
                    (),
                    Usage(
                        prompt_tokens=usage.prompt_tokens,
                        completion_tokens=usage.completion_tokens,
                        total_tokens=usage.total_tokens,
                    ),
                )
            )

    def _choice(self, choice: _Choice) -> tuple[ChunkChoice, ...]:
        """OpenAI's choices for one of Mistral's: the delta, then the finish on its own."""
        delta = choice.delta
        text = response_text(delta.content)
        calls = self._tool_calls(choice.index, delta.tool_calls or ())
        finish = choice.finish_reason
        if finish == "error":
            finish = None  # raised once what came with it is delivered
        else:
            finish = mistral_finish(finish)
            self._finished = self._finished or finish is not None
        out: list[ChunkChoice] = []
        first = choice.index not in self._roles
        if text or calls or first:
            self._roles.add(choice.index)
            said = ChunkDelta(
                role="assistant" if first else UNSET,
                content=text if text else ("" if first and not calls else UNSET),
                tool_calls=calls if calls else UNSET,
            )
            out.append(ChunkChoice(index=choice.index, delta=said))
        if finish is not None:
            if out and not (text or calls):
                out[-1] = msgspec.structs.replace(out[-1], finish_reason=finish)
            else:
                out.append(ChunkChoice(index=choice.index, finish_reason=finish))
        return tuple(out)  # empty for a thinking-only or empty delta: nothing to send

    def _tool_calls(self, choice: int, calls: Iterable[_ToolCall]) -> tuple[ToolCallDelta, ...]:
        state = self._calls.setdefault(choice, _Calls())
        out: list[ToolCallDelta] = []
        for call in calls:
            function = call.function or _Function()
            arguments = function.arguments
            if arguments is not None and not isinstance(arguments, str):
                arguments = encoder.encode(arguments).decode()
            call_id = call.id if call.id not in (None, "", "null") else None
            ours = state.find(call_id, function.name, call.index)
            if ours is not None:
                if arguments:
                    out.append(
                        ToolCallDelta(index=ours, function=FunctionDelta(arguments=arguments))
                    )
                continue
            if not function.name:
                raise ProviderError(
                    ErrorClass.SERVER_ERROR,
                    f"mistral: a tool call without a name: {excerpt(encoder.encode(call))}",
                    status=200,
                )
            ours = state.count
            call_id = call_id or universal_id(f"{self._id}:{choice}:{ours}")
            state.open(call_id, call.index)
            head = FunctionDelta(name=function.name, arguments=arguments or "")
            out.append(ToolCallDelta(index=ours, id=call_id, type="function", function=head))
        return tuple(out)

    def _wrap(
        self, choices: tuple[ChunkChoice, ...], usage: Usage | None = None
    ) -> ChatCompletionChunk:
        return ChatCompletionChunk(
            id=self._id,
            created=self._created,
            model=self._model,
            choices=choices,
            usage=usage if usage is not None else UNSET,
        )


def _in_band_error(chunk: _Chunk) -> ProviderError:
    """An error object in the stream, classified as the HTTP error of the same kind."""
    fields: dict[str, Any]
    if isinstance(chunk.error, dict):
        fields = chunk.error
    elif chunk.error is not None:
        fields = {"message": chunk.error}
    else:
        fields = {"message": chunk.message, "type": chunk.type, "code": chunk.code}
        if chunk.raw_status_code is not None:
            fields["raw_status_code"] = chunk.raw_status_code
    status = fields.get("raw_status_code")
    if not isinstance(status, int):
        status = _STATUS_OF_TYPE.get(str(fields.get("type")), 500)
    found = classify_mistral_error(status, {}, encoder.encode(fields))
    return ProviderError(
        found.error, f"mistral: in-stream error {found.message}", retryable=found.retryable
    )
