"""What the supervisor and the deployment actors say to each other.

An `Attempt` carries the request as encoded bytes: every attempt of a request
carries the *same* bytes, and each actor decodes its own objects from them, so
no attempt can see what another attempt changed. An attempt runs in the task
that asked for it and ends in exactly one `Outcome`, also when the actor is
shutting down (a cancelled attempt ends in the cancellation instead).
"""

from __future__ import annotations

from collections.abc import Sequence

from msgspec import Struct

from ._chat import ChatCompletion, ChatCompletionChunk, Usage
from ._exceptions import ErrorClass


class Success(Struct, frozen=True, kw_only=True):
    """The provider answered; `response` is already in OpenAI's shape.

    A streamed attempt has no `response`: its chunks were read from its `StreamAttempt`.
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
ChunkBatch = Sequence[ChatCompletionChunk]
"""The chunks one upstream read completed, handed on together."""


class Attempt(Struct, frozen=True, kw_only=True):
    """One try of one request on one deployment."""

    payload: bytes
    """The encoded `ChatRequest`: identical bytes for every attempt of a request."""
    deadline: float
    """`time.monotonic()` by which the whole request must finish."""
    tokens: int
    """Tokens reserved against the deployment's tpm: the input estimate (with a margin) and
    the request's output limit; settled on the usage the provider reports."""


def timed_out(latency_s: float) -> Failure:
    """An attempt that got no answer within its deadline (another deployment may)."""
    return Failure(
        error=ErrorClass.TIMEOUT,
        message=f"no answer within {latency_s:.3f}s",
        latency_s=latency_s,
        retryable=True,
    )
