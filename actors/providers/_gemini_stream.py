"""Gemini's streamGenerateContent?alt=sse (PROVIDERS.md §6.6) as OpenAI chunks.

Each `data:` event is a whole GenerateContentResponse holding the next parts:

    Gemini                                    OpenAI chunk
    candidates[i] text parts             ->   choices[i].delta.content
    candidates[i] thought parts          ->   choices[i].delta.reasoning_content
    candidates[i] functionCall part      ->   choices[i].delta.tool_calls: ONE fragment with
                                              id, type, name, the JSON-encoded args and the
                                              part's thoughtSignature as `extra_content`
    candidates[i] logprobsResult         ->   choices[i].logprobs (this response's tokens)
    finishReason (last event)            ->   a chunk with finish_reason, mapped as for
                                              whole answers (STOP + calls -> tool_calls)
    MALFORMED_FUNCTION_CALL, ...         ->   ProviderError server_error
    promptFeedback.blockReason           ->   finish_reason content_filter
    usageMetadata (cumulative)           ->   a usage chunk (`choices: []`) at the end
    {"error": {...}}                     ->   ProviderError, classified like the same
                                              error answered with its status

There is no [DONE]: the body's end is the stream's end, and a body that ends before
every candidate has its finishReason was cut (`server_error`). Chunks carry the
`responseId` as their id (or a digest of the first event, stable per stream) and
`modelVersion` as their model. Gemini mints no call ids: missing ones are derived from
the response id and the call's number (`call_id_for`), so they are stable too, and the
same as those of the same answer received whole.
"""

from __future__ import annotations

import hashlib
import time
from typing import Final

import msgspec
from msgspec import UNSET, UnsetType

from .._chat import (
    ChatCompletionChunk,
    ChunkChoice,
    ChunkDelta,
    FunctionDelta,
    ToolCallDelta,
    Usage,
)
from .._exceptions import ProviderError
from ._base import decode_tolerant
from ._gemini_extras import openai_logprobs, signature_extra
from ._gemini_reply import (
    GeminiCall,
    StreamEvent,
    UsageMetadata,
    call_id_for,
    check_finish,
    classify_gemini_error,
    openai_finish,
    openai_usage,
)
from ._sse import ServerSentEvent, SSEStreamParser

_event_decoder: Final = msgspec.json.Decoder(StreamEvent)


class GeminiStreamParser(SSEStreamParser):
    """One streamGenerateContent answer; build a fresh parser per attempt."""

    __slots__ = (
        "_calls",
        "_created",
        "_finished",
        "_id",
        "_model",
        "_started",
        "_usage",
    )

    cut_message = "gemini stream ended before its finishReason"

    def __init__(self, *, model: str, created: int | None = None) -> None:
        super().__init__()
        self._id: str | None = None
        self._model = model
        self._created = int(time.time()) if created is None else created
        self._usage: UsageMetadata | None = None
        self._calls: dict[int, int] = {}
        """Candidate index -> tool calls streamed so far."""
        self._started: set[int] = set()
        """Candidates that have streamed a chunk (their first one carried the role)."""
        self._finished: set[int] = set()

    def __repr__(self) -> str:
        return (
            f"<GeminiStreamParser {self._id or '?'} [candidates {len(self._started)} |"
            f" finished {len(self._finished)} | tool calls {sum(self._calls.values())}]>"
        )

    def _complete(self) -> bool:
        return bool(self._finished) and not (self._started - self._finished)

    def _tail(self) -> list[ChatCompletionChunk]:
        if self._usage is None:
            return []
        return [self._make((), openai_usage(self._usage))]

    def _chunks(self, events: list[ServerSentEvent]) -> list[ChatCompletionChunk]:
        out: list[ChatCompletionChunk] = []
        try:
            for event in events:
                self._event(event.data, out)
        except ProviderError as exc:
            exc.partial = tuple(out)  # delivered before the error
            raise
        return out

    def _event(self, raw: bytes, out: list[ChatCompletionChunk]) -> None:
        if not raw.strip() or raw == b"[DONE]":
            return  # Gemini sends no [DONE]; a proxy in front of it may
        event = decode_tolerant(_event_decoder, raw, "gemini stream event")
        if event.error is not None:
            found = classify_gemini_error(event.error.code or 500, {}, raw)
            raise ProviderError(
                found.error,
                f"in-stream error {found.message}",
                retry_after=found.retry_after,
                retryable=found.retryable,
            )
        if self._id is None:
            self._id = event.response_id or hashlib.blake2b(raw, digest_size=12).hexdigest()
            self._model = event.model_version or self._model
        if event.usage_metadata is not None:
            self._usage = event.usage_metadata
        content: list[ChunkChoice] = []
        finishes: list[ChunkChoice] = []
        for position, candidate in enumerate(event.candidates):
            index = position if candidate.index is None else candidate.index
            if index in self._finished:
                continue
            check_finish(candidate, 200)
            texts: list[str] = []
            thoughts: list[str] = []
            calls: list[ToolCallDelta] = []
            for part in candidate.content.parts if candidate.content is not None else ():
                if part.function_call is not None:
                    calls.append(self._call(index, part.function_call, part.thought_signature))
                elif part.text:  # thought summaries are reasoning, not the answer
                    (thoughts if part.thought else texts).append(part.text)
            logprobs = candidate.logprobs_result
            if texts or calls or thoughts:
                delta = ChunkDelta(
                    content="".join(texts) if texts else UNSET,
                    tool_calls=tuple(calls) if calls else UNSET,
                    reasoning_content="".join(thoughts) if thoughts else UNSET,
                )
                choice = self._choice(index, delta)
                if logprobs is not None:
                    choice = msgspec.structs.replace(choice, logprobs=openai_logprobs(logprobs))
                content.append(choice)
            if candidate.finish_reason:
                finish = openai_finish(candidate.finish_reason, calls=index in self._calls)
                finishes.append(self._choice(index, ChunkDelta(), finish))
                self._finished.add(index)
        blocked = event.prompt_feedback and event.prompt_feedback.block_reason
        if blocked and not event.candidates and not self._started:
            # The prompt itself was blocked (§6.4): a normal answer, filtered.
            finishes.append(self._choice(0, ChunkDelta(), "content_filter"))
            self._finished.add(0)
        for choices in (content, finishes):
            if choices:
                out.append(self._make(tuple(choices)))

    def _call(self, index: int, call: GeminiCall, signature: str | None) -> ToolCallDelta:
        number = self._calls.get(index, 0)
        self._calls[index] = number + 1
        call_id = call.id or call_id_for(self._id or "", index, number, call.name)
        arguments = msgspec.json.encode(call.args or {}).decode()
        return ToolCallDelta(
            index=number,
            id=call_id,
            type="function",
            function=FunctionDelta(name=call.name, arguments=arguments),
            # Gemini 3 rejects the next turn unless this comes back (§6.3).
            extra_content=signature_extra(signature) or UNSET,
        )

    def _choice(self, index: int, delta: ChunkDelta, finish: str | None = None) -> ChunkChoice:
        if index not in self._started:  # each choice's first delta says who speaks
            self._started.add(index)
            delta = msgspec.structs.replace(delta, role="assistant")
        return ChunkChoice(index=index, delta=delta, finish_reason=finish)

    def _make(
        self, choices: tuple[ChunkChoice, ...], usage: Usage | UnsetType = UNSET
    ) -> ChatCompletionChunk:
        return ChatCompletionChunk(
            id=self._id or "",
            created=self._created,
            model=self._model,
            choices=choices,
            usage=usage,
        )
