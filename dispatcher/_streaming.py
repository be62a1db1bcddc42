"""A committed stream: what the client receives after the first token.

The supervisor hands over a `ChunkStream` once an attempt has produced its
first content delta (the commit point). From then on there is no failover:
the stream either ends normally or ends with a final chunk whose
`finish_reason` is `"error"` and which carries an `error` object — never
silently. The stream reads its attempt's upstream response in the task that
relays it (no worker, no buffer in between); closing it early (client gone)
closes the upstream response.
`Drain` ends the committed streams still running when the daemon's
drain_timeout_s expires the same way: an error chunk, then `[DONE]`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio
import msgspec

from actors import ChatCompletionChunk, ChunkBatch, Failure, Outcome, StreamAttempt, Usage


class ErrorChunk(msgspec.Struct, frozen=True, kw_only=True):
    """The last chunk of a stream that failed after its commit point."""

    id: str
    created: int
    model: str
    error: dict[str, Any]
    choices: tuple[dict[str, Any], ...] = ({"index": 0, "delta": {}, "finish_reason": "error"},)
    object: str = "chat.completion.chunk"


class ChunkStream:
    """The rest of a committed attempt's chunks, then its outcome."""

    __slots__ = (
        "_attempt",
        "_finish",
        "_finished",
        "_first",
        "_include_usage",
        "_last",
        "attempts",
        "deployment",
        "dropped_params",
        "ended",
        "group",
        "outcome",
        "usage",
    )

    def __init__(
        self,
        *,
        group: str,
        deployment: str,
        attempts: int,
        first: list[ChatCompletionChunk],
        attempt: StreamAttempt,
        include_usage: bool,
        finish: Callable[[Outcome | None], None],
    ) -> None:
        self.group = group
        self.deployment = deployment
        self.attempts = attempts
        """Attempts made, the committed one included."""
        self.dropped_params = attempt.dropped_params
        """Parameters the serving provider could not take (left out of its request)."""
        self._first = first
        self._attempt = attempt
        self._include_usage = include_usage
        self._finish = finish
        self._finished = False
        self._last: ChatCompletionChunk | None = None
        self.ended = False
        """No chunk is left: `first` or `relay` handed over the last ones."""
        self.outcome: str | None = None
        """How the stream ended: success, an error class, or client_closed (None: running)."""
        self.usage: Usage | None = None
        """The tokens the provider reported for the stream, once it ended."""

    @property
    def whole(self) -> bool:
        """The provider's end marker was read: the client may have its [DONE] now; what is
        left to read (to the end of the upstream body) holds nothing for it."""
        return self._attempt.whole

    def first(self) -> list[ChatCompletionChunk | ErrorChunk]:
        """The chunks read up to the commit point as the client sees them (maybe none);
        with the stream's end (`ended`) if the attempt ended there."""
        visible: list[ChatCompletionChunk | ErrorChunk] = [*self._visible(self._first)]
        self._first = []
        if self._attempt.outcome is not None:
            visible += self._end()
        return visible

    async def relay(
        self,
        emit: Callable[
            [Sequence[ChatCompletionChunk | ErrorChunk], bool], Awaitable[object] | None
        ],
    ) -> None:
        """Hand each batch of chunks to `emit(chunks, last)` as the client sees them (maybe
        none), from the `first` to the last (`ended` is then true); an error chunk ends a
        failure. `last`: the stream ended or is `whole` (what follows holds nothing for the
        client). What `emit` returns is awaited (None: nothing to wait for).

        The reads run in the attempt's own loop (`StreamAttempt.relay`: one cancel scope for
        them all, which the attempt's alarm cancels when a read is late); closing the stream
        (`aclose`, the relay's `finally`) ends it early.
        """
        chunks = self.first()
        if (sent := emit(chunks, self.ended or self.whole)) is not None:
            await sent
        if self.ended:
            return
        attempt = self._attempt

        def visible(batch: ChunkBatch) -> Awaitable[object] | None:
            chunks = self._visible(batch)
            if attempt.outcome is not None:
                return emit([*chunks, *self._end()], True)
            return emit(chunks, attempt.whole)

        await attempt.relay(visible)
        if not self.ended and (sent := emit(self._end(), True)) is not None:
            await sent

    def _end(self) -> list[ChatCompletionChunk | ErrorChunk]:
        self.ended = True
        outcome = self._attempt.outcome
        if outcome is None:  # closed before its end
            return []
        self._close(outcome)
        if isinstance(outcome, Failure):
            return [_error_chunk(outcome, self._last, self.deployment)]
        return []

    def _visible(self, batch: Sequence[ChatCompletionChunk]) -> Sequence[ChatCompletionChunk]:
        """Chunks as the client asked for them: usage only with include_usage. The batch
        itself when it has only chunks with choices and no usage (the usual), no copy."""
        for chunk in batch:  # a plain loop: this runs per read
            if chunk.usage or not chunk.choices:
                break
        else:
            if batch:
                self._last = batch[-1]
            return batch
        visible: list[ChatCompletionChunk]
        if self._include_usage:
            visible = [chunk for chunk in batch if chunk.choices or chunk.usage]
        else:
            visible = [
                msgspec.structs.replace(chunk, usage=msgspec.UNSET) if chunk.usage else chunk
                for chunk in batch
                if chunk.choices
            ]
        if visible:
            self._last = visible[-1]
        return visible

    def stopped_chunk(self) -> ErrorChunk:
        """The last chunk of a stream the daemon ends itself (its drain time ran out)."""
        error = {
            "message": "the dispatcher is stopping: drain_timeout_s ran out before the end",
            "type": "server_error",
            "code": "shutting_down",
        }
        return _chunk_after(self._last, error)

    async def aclose(self) -> None:
        """Stop early (client gone): the upstream response is closed, the deployment's slot
        freed. Idempotent; nothing once the stream ended."""
        await self._attempt.aclose()
        self._close(None)

    def _close(self, outcome: Outcome | None) -> None:
        if not self._finished:
            self._finished = True
            if outcome is None:
                self.outcome = "client_closed"
            elif isinstance(outcome, Failure):
                self.outcome = str(outcome.error)
            else:
                self.outcome, self.usage = "success", outcome.usage
            self._finish(outcome)


class Drain:
    """The deadline by which committed streams end when the daemon stops.

    Each stream relays inside a cancel scope it `watch`es (its disconnect scope: one scope
    for both), which `start` gives the drain deadline; the relay then ends the stream with
    `stopped_chunk()` and `[DONE]` rather than being cut by the server at the transport.
    """

    def __init__(self) -> None:
        self._scopes: set[anyio.CancelScope] = set()
        self._deadline = math.inf

    def start(self, timeout_s: float) -> None:
        """Streams still running `timeout_s` from now are ended then. Only the first call counts."""
        if self._deadline == math.inf:
            self._deadline = anyio.current_time() + timeout_s
            for scope in self._scopes:
                scope.deadline = self._deadline

    def watch(self, scope: anyio.CancelScope) -> None:
        """`scope` expires at the drain deadline (none until `start`) until `unwatch`."""
        if self._deadline != math.inf:
            scope.deadline = self._deadline
        self._scopes.add(scope)

    def unwatch(self, scope: anyio.CancelScope) -> None:
        self._scopes.discard(scope)

    def expired(self) -> bool:
        """The drain deadline has passed (a scope it cancelled was cancelled by it)."""
        return anyio.current_time() >= self._deadline


def _error_chunk(failure: Failure, last: ChatCompletionChunk | None, deployment: str) -> ErrorChunk:
    error = {
        "message": f"{deployment}: {failure.message}",
        "type": "upstream_error",
        "code": str(failure.error),
    }
    return _chunk_after(last, error)


def _chunk_after(last: ChatCompletionChunk | None, error: dict[str, Any]) -> ErrorChunk:
    return ErrorChunk(
        id=last.id if last else "",
        created=last.created if last else int(time.time()),
        model=last.model if last else "",
        error=error,
    )


__all__ = ["ChunkStream", "Drain", "ErrorChunk"]
