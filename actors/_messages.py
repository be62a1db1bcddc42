"""What the supervisor and the deployment actors say to each other.

An `Attempt` carries the request as encoded bytes: every attempt of a request
carries the *same* bytes, and each actor decodes its own objects from them, so
no attempt can see what another attempt changed. Each attempt gets exactly one
`Outcome` through its `Reply`, also when the actor is shutting down.
"""

from __future__ import annotations

import anyio
from anyio.streams.memory import MemoryObjectSendStream
from msgspec import Struct

from ._chat import ChatCompletion, ChatCompletionChunk, Usage
from ._exceptions import ErrorClass


class Success(Struct, frozen=True, kw_only=True):
    """The provider answered; `response` is already in OpenAI's shape.

    A streamed attempt has no `response`: its chunks went through `Attempt.chunks`.
    """

    response: ChatCompletion | None
    latency_s: float
    usage: Usage | None = None
    dropped_params: tuple[str, ...] = ()
    cost_usd: float | None = None
    """What the answer cost, from `usage` and the deployment's price; None: unknown."""


class Failure(Struct, frozen=True, kw_only=True):
    """The attempt failed; `error` decides what the supervisor does next."""

    error: ErrorClass
    message: str
    latency_s: float
    status: int | None = None
    retry_after: float | None = None
    retryable: bool = False


Outcome = Success | Failure
ChunkBatch = tuple[ChatCompletionChunk, ...]
"""The chunks one upstream read completed, sent to the supervisor as one message."""


class Reply:
    """A one-shot reply slot: the actor sets it once, the supervisor awaits it.

    The supervisor may `abandon` it (deadline passed, client gone): an attempt
    still queued is then skipped, and one in flight is cancelled.
    """

    __slots__ = ("_event", "_outcome", "_scope", "abandoned", "dropped_params")

    def __init__(self) -> None:
        self._event = anyio.Event()
        self._outcome: Outcome | None = None
        self._scope: anyio.CancelScope | None = None
        self.abandoned = False
        self.dropped_params: tuple[str, ...] = ()
        """Set by the actor once it built the provider request of a streamed attempt, so
        the headers sent before the stream ends name what that very body left out."""

    def set(self, outcome: Outcome) -> None:
        if self._outcome is None:
            self._outcome = outcome
            self._event.set()

    async def wait(self) -> Outcome:
        await self._event.wait()
        assert self._outcome is not None
        return self._outcome

    def bind(self, scope: anyio.CancelScope) -> None:
        """Called by the actor when work starts, so `abandon` can cancel it."""
        self._scope = scope

    def abandon(self) -> None:
        self.abandoned = True
        if self._outcome is None and self._scope is not None:
            self._scope.cancel()


class Attempt(Struct, frozen=True, kw_only=True):
    """One try of one request on one deployment."""

    payload: bytes
    """The encoded `ChatRequest`: identical bytes for every attempt of a request."""
    deadline: float
    """`time.monotonic()` by which the whole request must finish."""
    tokens: int
    """Tokens reserved against the deployment's tpm: the input estimate (with a margin) and
    the request's output limit; settled on the usage the provider reports."""
    reply: Reply
    chunks: MemoryObjectSendStream[ChunkBatch] | None = None
    """For a streamed request: where the actor sends chunks, a batch per upstream read
    (bounded, so a slow client
    slows the upstream read instead of growing a buffer). Closed when the attempt ends."""
