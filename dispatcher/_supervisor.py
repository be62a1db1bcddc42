"""The supervisor: one request, many attempts, the same bytes every time.

`Supervisor.complete` encodes the request once, then walks the router's chain:
each candidate gets an `Attempt` carrying those bytes, which the deployment's
actor admits and the request's own task then runs (no hop to another task);
retries and fallbacks are decided by the failure's error class only. The request's routing data
(group, fallbacks, attempt count) stays here and never enters the payload.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Coroutine
from time import monotonic
from typing import Any, Final, cast

import anyio
import msgspec
from msgspec import UNSET

from actors import (
    Attempt,
    ChatCall,
    ChatCompletion,
    ChatCompletionChunk,
    DeploymentActor,
    ErrorClass,
    Failure,
    Outcome,
    RateLimited,
    StreamAttempt,
    Success,
    TooLong,
    Turn,
    Unavailable,
    Unsupported,
    encoder,
    estimate_tokens,
)
from config import RouterConfig

from ._exceptions import (
    AllAttemptsFailed,
    AttemptRecord,
    DeadlineExceeded,
    InvalidRequest,
    NoCapacity,
    UnknownGroup,
)
from ._metrics import Metrics
from ._router import Router
from ._streaming import ChunkStream

REFILL_WAIT_S: Final = 1.0
"""Longest wait for budget leased from the cluster (Redis's own timeout is as long)."""

logger = logging.getLogger("dispatcher.supervisor")

MAX_INLINE_RETRY_WAIT_S: Final = 5.0
"""A longer Retry-After sends the request to the next candidate instead of waiting."""


class _StreamContext(msgspec.Struct, frozen=True):
    """What a streamed attempt needs to know about its request."""

    call: ChatCall
    group: str
    attempts_before: int
    started: float


class Dispatched(msgspec.Struct, frozen=True, kw_only=True):
    """A served request."""

    response: ChatCompletion
    group: str
    deployment: str
    attempts: tuple[AttemptRecord, ...]
    waited_s: float
    """Time spent waiting on providers and retry backoff (the rest is our own overhead)."""
    dropped_params: tuple[str, ...] = ()
    cost_usd: float | None = None
    """What the answer cost (None: unknown, the deployment has no price)."""


def jittered_backoff(base_s: float, cap_s: float) -> Callable[[int], float]:
    """Full-jitter exponential backoff: retry n waits uniform(0, min(cap, base * 2**n))."""

    def delay(retry: int) -> float:
        return random.uniform(0.0, min(cap_s, base_s * (2**retry)))

    return delay


class Supervisor:
    """Serves chat requests across the router's candidates."""

    def __init__(
        self,
        config: RouterConfig,
        router: Router,
        metrics: Metrics,
        *,
        backoff: Callable[[int], float] | None = None,
        admit: Callable[[DeploymentActor], bool] | None = None,
    ) -> None:
        self.config = config
        self.router = router
        self.metrics = metrics
        self._backoff = backoff or jittered_backoff(0.25, 4.0)
        self._admit = admit

    def with_admission(self, admit: Callable[[DeploymentActor], bool]) -> Supervisor:
        """This supervisor, over the same deployments, sending only where `admit` allows.

        A refused deployment counts as full (the request may get `NoCapacity`). Jobs use
        it to leave part of every deployment to live requests.
        """
        return Supervisor(
            self.config, self.router, self.metrics, backoff=self._backoff, admit=admit
        )

    def groups(self) -> tuple[str, ...]:
        return tuple(self.router.groups)

    def complete(
        self, call: ChatCall, *, timeout_s: float | None = None
    ) -> Coroutine[Any, Any, Dispatched]:
        """Serve `call`, or raise a `DispatchError` saying why not.

        (The dispatch's own coroutine, awaited by the caller: no frame of its own on the
        request's stack, which every resumption of the request task walks.)
        """
        return cast(
            "Coroutine[Any, Any, Dispatched]", self._dispatch(call, timeout_s, stream=False)
        )

    def open_stream(
        self, call: ChatCall, *, timeout_s: float | None = None
    ) -> Coroutine[Any, Any, ChunkStream]:
        """Serve a streamed `call` up to its commit point (the first content delta).

        Failures before it fail over like any request (and raise `DispatchError` when
        nothing is left); the returned stream carries the rest, and the client's
        connection owns it: `aclose()` cancels the upstream call. (The dispatch's own
        coroutine, as `complete`'s.)
        """
        return cast(
            "Coroutine[Any, Any, ChunkStream]", self._dispatch(call, timeout_s, stream=True)
        )

    async def _dispatch(
        self, call: ChatCall, timeout_s: float | None, *, stream: bool
    ) -> Dispatched | ChunkStream:
        group = call.model
        if group not in self.router.groups:
            self.metrics.rejected("unknown_model")
            raise UnknownGroup(group, self.groups())
        started = monotonic()
        timeout = timeout_s if timeout_s is not None else self.config.timeout_s
        deadline = started + timeout
        # Encoded once; every attempt sends these very bytes.
        payload = encoder.encode(msgspec.structs.replace(call, fallbacks=UNSET))
        # Once per request: input for max_input_tokens, input + output limit for tpm.
        estimate = estimate_tokens(call, default_output=self.config.default_output_tokens)
        tokens = estimate.input
        records: list[AttemptRecord] = []
        waited = 0.0
        skipped: dict[str, float] = {}
        last: Failure | None = None
        chain = self.router.chain(group, call.fallbacks or ())
        previous_group = group
        outcome_label = "success"
        try:
            expired = False
            too_long: TooLong | None = None
            for actor in chain:
                if monotonic() >= deadline:
                    expired = True
                    break
                try:
                    actor.check(call, tokens=tokens)
                except Unsupported as exc:
                    skipped.setdefault("unsupported", monotonic())
                    logger.debug("skipping %s: %s", actor.name, exc.message)
                    if isinstance(exc, TooLong):
                        # Known too long before any call: the context-window chain only.
                        too_long = exc
                        chain.divert(
                            self.router.special_fallbacks(
                                chain.group, ErrorClass.CONTEXT_WINDOW_EXCEEDED
                            )
                            or ()
                        )
                    continue
                if self._admit is not None and not self._admit(actor):
                    skipped.setdefault("inbox_full", monotonic() + 1.0)
                    continue
                if chain.group != previous_group:
                    self.metrics.fallback(previous_group, chain.group)
                    previous_group = chain.group
                retry = 0
                while True:
                    attempt = Attempt(payload=payload, deadline=deadline, tokens=estimate.reserve)
                    # Admitted here for both kinds; the attempt runs in this very task
                    # (inline, not in a helper coroutine: every resumption of the request
                    # task walks each frame).
                    result: Outcome | ChunkStream | Unavailable | Turn | None
                    result = _admission(actor, attempt)
                    if isinstance(result, RateLimited) and result.refill is not None:
                        result = await _admission_after(result.refill, actor, attempt)
                    if stream and not isinstance(result, Unavailable):
                        context = _StreamContext(call, chain.group, len(records), started)
                        result = await self._try_stream(actor, attempt, result, context)
                    elif not isinstance(result, Unavailable):
                        result = await actor.call(attempt, result)
                    if isinstance(result, Unavailable):  # full, cooling, out of budget
                        retry_at = result.retry_at or monotonic() + 1.0
                        reason = result.reason
                        skipped[reason] = min(skipped.get(reason, retry_at), retry_at)
                        break
                    if isinstance(result, ChunkStream):
                        outcome_label = "streaming"
                        return result
                    outcome = result
                    waited += outcome.latency_s
                    records.append(_record(actor, outcome))
                    self.metrics.attempt(chain.group, actor.name, outcome)
                    if isinstance(outcome, Success):
                        assert outcome.response is not None
                        return Dispatched(
                            response=outcome.response,
                            group=chain.group,
                            deployment=actor.name,
                            attempts=tuple(records),
                            waited_s=waited,
                            dropped_params=outcome.dropped_params,
                            cost_usd=outcome.cost_usd,
                        )
                    last = outcome
                    # Fields, not text: JSON logs get them as keys, text logs as key=value.
                    fields = {
                        "group": chain.group,
                        "deployment": actor.name,
                        "error": str(outcome.error),
                        "upstream_status": outcome.status,
                    }
                    logger.info("attempt failed", extra=fields)
                    special = self.router.special_fallbacks(chain.group, outcome.error)
                    if special is not None:
                        chain.divert(special)
                        break
                    delay = self._retry_delay(outcome, retry, deadline)
                    if delay is None:
                        break
                    retry += 1
                    self.metrics.retry(actor.name)
                    await anyio.sleep(delay)
                    waited += delay
            if expired or (
                last is not None and last.error is ErrorClass.TIMEOUT and monotonic() >= deadline
            ):
                outcome_label = "timeout"
                raise DeadlineExceeded(group, timeout, tuple(records))
            if last is not None:
                outcome_label = str(last.error)
                raise AllAttemptsFailed(group, tuple(records), last.error)
            if too_long is not None:
                outcome_label = str(ErrorClass.CONTEXT_WINDOW_EXCEEDED)
                raise InvalidRequest(
                    f"{too_long.message}, and no context-window fallback can take it",
                    param="messages",
                    code="context_length_exceeded",
                )
            reason, retry_at = _capacity_reason(skipped)
            outcome_label = reason
            if reason == "unsupported":
                raise InvalidRequest(
                    f"no deployment of {group!r} or its fallbacks can take this request "
                    "(tools unsupported, input too long, or a parameter it cannot take)",
                    code="unsupported_request",
                )
            self.metrics.rejected(reason)
            raise NoCapacity(reason, max(retry_at - monotonic(), 0.0), group)
        except anyio.get_cancelled_exc_class():
            outcome_label = "cancelled"  # the client went away (or the daemon is stopping)
            raise
        finally:
            if outcome_label != "streaming":  # a stream records itself when it ends
                self.metrics.request(group, outcome_label, monotonic() - started)

    async def _try_stream(
        self, actor: DeploymentActor, attempt: Attempt, turn: Turn | None, context: _StreamContext
    ) -> Outcome | ChunkStream:
        """One admitted streamed attempt: a `ChunkStream` once content flows, else its
        outcome."""
        started = monotonic()
        opened = await actor.stream(attempt, turn)
        if isinstance(opened, Failure):  # its deadline passed in the inbox, or it stopped
            return opened
        # `head` closes the attempt itself when it ends or is cancelled.
        first = await opened.head()
        if opened.started:
            self.metrics.first_token(context.group, actor.name, monotonic() - started)
            return self._committed(actor, context, first, opened)
        # The attempt ended before any content: its outcome decides.
        outcome = opened.outcome
        assert outcome is not None
        if isinstance(outcome, Success):  # a stream that ended without content
            return self._committed(actor, context, first, opened)
        return outcome

    def _committed(
        self,
        actor: DeploymentActor,
        context: _StreamContext,
        first: list[ChatCompletionChunk],
        attempt: StreamAttempt,
    ) -> ChunkStream:
        metrics, group, call = self.metrics, context.group, context.call

        def finish(outcome: Outcome | None) -> None:
            if outcome is None:  # the client went away mid-stream
                label = "client_closed"
            else:
                label = "success" if isinstance(outcome, Success) else str(outcome.error)
                metrics.attempt(group, actor.name, outcome)
            metrics.request(call.model, label, monotonic() - context.started)

        options = call.stream_options
        return ChunkStream(
            group=group,
            deployment=actor.name,
            attempts=context.attempts_before + 1,
            first=first,
            attempt=attempt,
            include_usage=bool(options and options.include_usage),
            finish=finish,
        )

    def _retry_delay(self, failure: Failure, retry: int, deadline: float) -> float | None:
        if not failure.retryable or retry >= self.config.num_retries:
            return None
        delay = self._backoff(retry)
        if failure.retry_after is not None:
            if failure.retry_after > MAX_INLINE_RETRY_WAIT_S:
                return None
            delay = max(delay, failure.retry_after)
        if monotonic() + delay >= deadline:
            return None
        return delay


def _record(actor: DeploymentActor, outcome: Success | Failure) -> AttemptRecord:
    if isinstance(outcome, Success):
        return AttemptRecord(
            deployment=actor.name,
            outcome="success",
            status=200,
            latency_ms=round(outcome.latency_s * 1000.0, 3),
        )
    return AttemptRecord(
        deployment=actor.name,
        outcome=str(outcome.error),
        status=outcome.status,
        latency_ms=round(outcome.latency_s * 1000.0, 3),
        message=outcome.message,
    )


def _capacity_reason(skipped: dict[str, float]) -> tuple[str, float]:
    """Why nothing was sent: inbox_full wins (429), then rate limits, cooldowns (503)."""
    for reason in ("inbox_full", "rate_limited", "cooling_down", "stopped", "unsupported"):
        if reason in skipped:
            return reason, skipped[reason]
    return "no_deployment", monotonic() + 1.0


def _admission(actor: DeploymentActor, attempt: Attempt) -> Turn | Unavailable | None:
    """`actor.submit`'s answer: a slot (None), a place in its inbox (`Turn`), or why not."""
    try:
        return actor.submit(attempt)
    except Unavailable as exc:
        return exc


async def _admission_after(
    refill: anyio.Event, actor: DeploymentActor, attempt: Attempt
) -> Turn | Unavailable | None:
    """Out of budget with the cluster's lease on its way (one Redis round trip): wait for
    it (at most REFILL_WAIT_S), then ask once more."""
    with anyio.move_on_after(min(REFILL_WAIT_S, attempt.deadline - monotonic())):
        await refill.wait()
    return _admission(actor, attempt)
