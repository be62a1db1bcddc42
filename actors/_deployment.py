"""The deployment actor: admission (breaker, limits, slots and a bounded waiting room),
one HTTP transport, and the attempts it admitted, each run in its caller's task.

`submit` is synchronous: it checks the breaker, reserves rpm/tpm and takes one of
`concurrency` slots, or a place in the waiting room (`inbox` places), without
awaiting, so admission decisions cannot interleave. The caller then runs the
attempt itself (`call`, or `stream` for a streamed one): it waits for its turn if
it has to, decodes its own request from the attempt's bytes, translates it with
the adapter, calls the provider, classifies the outcome and records it here (the
breaker, the limits, the latency), all in the request's task, so a client that
leaves cancels the upstream call directly. A finished attempt hands its slot to
the oldest waiter.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from time import monotonic
from typing import Final

import anyio
import httpx
import msgspec
from anyio.abc import TaskStatus

from config import CooldownConfig, Deployment, deployment_price

from ._chat import ChatRequest, request_decoder
from ._cost import priced_completion, usage_cost
from ._exceptions import (
    CoolingDown,
    ErrorClass,
    InboxFull,
    ProviderError,
    RateLimited,
    Stopped,
    TooLong,
    Unsupported,
)
from ._limits import Breaker, BreakerState, RateLimiter
from ._messages import Attempt, Failure, Outcome, Success, timed_out
from ._redact import redactor_for
from ._shared import Limiter, Sharing
from ._slots import Slots, Turn
from ._streamed import StreamAttempt
from ._transport import AiohttpTransport, Answer
from ._upstream import Upstream
from .providers import Adapter, HttpRequest, MockUpstream, adapter_for, inert_params

logger = logging.getLogger("dispatcher.actor")

_EWMA_WEIGHT: Final = 0.2
_STOPPED: Final = Failure(
    error=ErrorClass.CONNECTION, message="deployment stopped", latency_s=0.0, retryable=False
)
_EXPIRED: Final = Failure(
    error=ErrorClass.TIMEOUT,
    message="the deadline passed while waiting in the deployment's inbox",
    latency_s=0.0,
)


class DeploymentStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of an actor's state (what gauges and the router read)."""

    name: str
    group: str
    state: BreakerState
    inbox_used: int
    inbox_size: int
    inflight: int
    concurrency: int
    cooldown_remaining_s: float
    latency_ewma_s: float | None
    rpm_used: float
    tpm_used: float
    attempts: int
    failures: int


class DeploymentActor:
    """One configured deployment. Start it with `await task_group.start(actor.run)`."""

    def __init__(
        self,
        spec: Deployment,
        cooldown: CooldownConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        share: Sharing | None = None,
    ) -> None:
        """`share` (cluster mode) links the limits and the breaker to the other daemons'."""
        self.spec = spec
        self.name = spec.name
        self.group = spec.group
        self.adapter: Adapter = adapter_for(spec)
        self.price = deployment_price(spec)
        """What this deployment's answers cost (None: unknown, no cost is reported)."""
        self._transport = transport
        # The upstream exists while `run` does (a constructor holds no resources).
        self._upstream: Upstream | None = None
        self._breaker = Breaker(cooldown.allowed_fails, cooldown.window_s, cooldown.cooldown_s)
        self._shared = share(spec, self._breaker) if share is not None else None
        self._limiter: Limiter = (
            self._shared.limiter
            if self._shared is not None
            else RateLimiter(spec.rpm, spec.tpm, now=0.0)
        )
        self._slots = Slots(spec.concurrency, spec.inbox, self._freed)
        self._attempts = 0
        self._failures = 0
        self._latency: float | None = None
        self._probe: Attempt | None = None
        """The attempt admitted as the breaker's half-open probe, until it reports back."""
        self._running = False
        self._closed: anyio.Event | None = None
        self._drained: anyio.Event | None = None
        # Provider text passes this before it is cut and kept (502 bodies, jobs, the store).
        self._redact = redactor_for(spec, self.adapter.auth)
        self._when_idle: set[Callable[[], None]] = set()

    # -- admission (synchronous) -----------------------------------------

    def submit(self, attempt: Attempt) -> Turn | None:
        """Admit `attempt`, or raise an `Unavailable` saying why not and until when.

        None: it holds a slot now; a `Turn`: it waits in the inbox for one. Either way
        the caller must go on with `call` or `stream` at once (no await in between).
        """
        if not self._running:
            raise Stopped(self.name)
        now = monotonic()
        breaker = self._breaker
        probing = breaker.probing
        if not breaker.admit(now):
            raise CoolingDown(self.name, retry_at=breaker.open_until)
        if breaker.probing and not probing:
            self._probe = attempt  # the half-open probe: it reports back, or gives it back
        wait = self._limiter.try_reserve(attempt.tokens, now)
        if wait:
            self._unprobe(attempt)
            raise RateLimited(self.name, retry_at=now + wait, refill=self._limiter.refill())
        slots = self._slots
        if slots.take():
            return None
        turn = slots.queue()
        if turn is None:
            self._unprobe(attempt)
            self._limiter.release(attempt.tokens)
            raise InboxFull(self.name)
        return turn

    def _unprobe(self, attempt: Attempt) -> None:
        """`attempt` will say nothing about the deployment (it never reached the provider,
        or its client left): if it was the half-open probe, the next attempt may be."""
        if self._probe is attempt:
            self._probe = None
            self._breaker.release()

    def check(self, request: ChatRequest, *, tokens: int) -> None:
        """Raise `Unsupported` when this deployment cannot take `request` at all.

        With `drop_params = false` a deployment whose provider cannot express one of the
        request's optional parameters is no candidate.
        """
        tools = bool(request.tools)
        if tools and not self.spec.supports_tools:
            raise Unsupported(self.name, f"deployment {self.name!r} does not support tools")
        limit = self.spec.max_input_tokens
        if limit is not None and tokens > limit:
            raise TooLong(self.name, f"about {tokens} input tokens exceed {self.name!r}'s {limit}")
        if not self.spec.drop_params:
            # Inert parameters (tool_choice without tools...) go whatever drop_params says.
            inert = inert_params(request)
            missing = [n for n in self.adapter.dropped_params(request) if n not in inert]
            if missing:
                raise Unsupported(
                    self.name,
                    f"{self.spec.provider} deployment {self.name!r} does not support "
                    f"{', '.join(missing)} (drop_params = false)",
                )

    def notify_when_idle(self, callback: Callable[[], None]) -> None:
        """Call `callback` once, when the next attempt finishes (a slot frees up)."""
        self._when_idle.add(callback)

    # -- lifecycle -------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Hold the transport until `close()` and until the attempts admitted before it
        (in flight or waiting) are done; waiting ones are answered, never dropped."""
        transport = self._transport
        if transport is None:
            transport = _transport_for(self.spec)
        self._upstream = Upstream(transport, self.adapter.auth)
        closed = self._closed = anyio.Event()
        try:
            async with anyio.create_task_group() as tg:
                if self._shared is not None:
                    await tg.start(self._shared.run)
                self._running = True
                task_status.started()
                await closed.wait()
                slots = self._slots
                while slots.busy or slots.waiting:
                    self._drained = anyio.Event()
                    await self._drained.wait()
        finally:
            self._running = False
            self._slots.drain()  # cancelled: whoever still waits is answered `_STOPPED`
            with anyio.CancelScope(shield=True):
                await self._upstream.aclose()

    def close(self) -> None:
        """Stop taking attempts; those admitted finish, then `run` returns."""
        self._running = False
        if self._shared is not None:
            self._shared.close()
        if self._closed is not None:
            self._closed.set()

    # -- attempts (in the caller's task) -------------------------------------

    async def call(self, attempt: Attempt, turn: Turn | None) -> Outcome:
        """Run `attempt`, admitted by `submit` (`turn`: what it returned), to its outcome.

        A waiting attempt waits at most until its deadline; a running one is bounded by
        the deadline and the deployment's timeout_s. A cancelled one (the client left)
        raises the cancellation and is not recorded against the deployment.
        """
        if turn is not None:
            refused = await self._wait(turn, attempt)
            if refused is not None:
                return refused
        start = monotonic()
        self._attempts += 1
        upstream = self._upstream
        assert upstream is not None  # set by `run` before any attempt is admitted
        outcome: Outcome | None = None
        try:
            with anyio.move_on_after(min(attempt.deadline - start, self.spec.timeout_s)):
                try:
                    # Fresh objects from the attempt's bytes; the provider's call in this
                    # frame (a helper coroutine would be one more frame on the request's
                    # stack, walked by every resumption of its task).
                    http = self.adapter.build(request_decoder.decode(attempt.payload))
                    response = await upstream.send(http)
                    outcome = self._answered(http, response, start)
                except Exception as exc:
                    outcome = self._failed(exc, start)
        except BaseException:
            self._slots.give_back()  # a client that left says nothing about the deployment
            self._unprobe(attempt)
            raise
        self._slots.give_back()
        now = monotonic()
        if outcome is None:
            outcome = timed_out(now - start)
        self._record(outcome, attempt, now)
        return outcome

    async def stream(self, attempt: Attempt, turn: Turn | None) -> StreamAttempt | Failure:
        """`attempt` as a stream to read in this task, once its turn came (else why not).

        The caller reads it to its end or closes it; it holds its slot until then.
        """
        if turn is not None:
            refused = await self._wait(turn, attempt)
            if refused is not None:
                return refused
        self._attempts += 1
        upstream = self._upstream
        assert upstream is not None
        return StreamAttempt(
            attempt, upstream, self.adapter, self.spec, self.price, self._failed, self._ended
        )

    async def _wait(self, turn: Turn, attempt: Attempt) -> Failure | None:
        """Wait for `turn`'s slot until the attempt's deadline; None: the slot is ours."""
        try:
            with anyio.move_on_after(attempt.deadline - monotonic()) as scope:
                await turn.event.wait()
            # Cancelled as the slot came (its client left): it must not reach the provider.
            await anyio.lowlevel.checkpoint_if_cancelled()
        except BaseException:
            self._leave(turn, attempt)
            raise
        if turn.granted and not scope.cancelled_caught:
            return None
        self._leave(turn, attempt)  # a slot given to it as its deadline struck goes on
        return _EXPIRED if scope.cancelled_caught else _STOPPED

    def _leave(self, turn: Turn, attempt: Attempt) -> None:
        # It never reached the provider: the request counts, its tokens are given back.
        self._slots.leave(turn)
        self._limiter.settle(attempt.tokens, 0, monotonic())
        self._unprobe(attempt)

    def _freed(self) -> None:
        if self._when_idle:
            callbacks, self._when_idle = self._when_idle, set()
            for callback in callbacks:
                callback()
        if self._drained is not None:
            self._drained.set()

    def _ended(self, outcome: Outcome | None, attempt: Attempt) -> None:
        """A streamed attempt is over (`outcome` None: its reader left): free its slot."""
        self._slots.give_back()
        if outcome is None:
            self._unprobe(attempt)
        else:
            self._record(outcome, attempt, monotonic())

    def _answered(
        self, http: HttpRequest, response: Answer | httpx.Response, start: float
    ) -> Outcome:
        """The outcome of a whole answer (`ProviderError` for an error answer)."""
        if response.is_success:
            completion = self.adapter.parse(
                response.status_code, response.headers, response.content
            )
            cost = usage_cost(self.price, completion.usage or None)
            completion = priced_completion(completion, cost)
            return Success(
                response=completion,
                latency_s=monotonic() - start,
                usage=completion.usage or None,
                dropped_params=http.dropped_params,
                cost_usd=cost,
            )
        raise self.adapter.classify(response.status_code, response.headers, response.content)

    def _failed(self, exc: Exception, start: float) -> Failure:
        """What an attempt that raised `exc` says about the deployment."""
        if isinstance(exc, ProviderError):
            return self._failure(exc, start)
        if isinstance(exc, Unsupported):
            return self._failure(ProviderError(ErrorClass.BAD_REQUEST, exc.message), start)
        # A bug in an adapter must not take the actor down.
        logger.exception("deployment %s: unexpected error", self.name, exc_info=exc)
        return self._failure(
            ProviderError(ErrorClass.SERVER_ERROR, f"internal error: {type(exc).__name__}"),
            start,
        )

    def _failure(self, exc: ProviderError, start: float) -> Failure:
        # Adapters keep provider text whole: redacted here first, then cut.
        wait = exc.retry_after
        return Failure(
            error=exc.error,
            message=self._redact.cut(exc.message),
            latency_s=monotonic() - start,
            status=exc.status,
            retry_after=wait if wait is not None and 0.0 <= wait < math.inf else None,
            retryable=exc.retryable,
        )

    def _record(self, outcome: Outcome, attempt: Attempt, now: float) -> None:
        if self._probe is attempt:
            self._probe = None  # its success or failure settles the breaker below
        reserved = attempt.tokens
        latency = outcome.latency_s
        self._latency = (
            latency
            if self._latency is None
            else (self._latency + _EWMA_WEIGHT * (latency - self._latency))
        )
        breaker, shared = self._breaker, self._shared
        if isinstance(outcome, Success):
            was = breaker.state(now)
            breaker.success(now)
            if shared is not None and was is BreakerState.HALF_OPEN and breaker.open_until == 0.0:
                shared.closed()
            usage = outcome.usage
            if usage:
                self._limiter.settle(reserved, usage.total_tokens, now)
            return
        self._failures += 1
        error = outcome.error
        before = breaker.open_until
        breaker.failure(
            now,
            counts=error.counts_toward_breaker,
            open_now=error.opens_breaker,
            retry_after=outcome.retry_after if error is ErrorClass.RATE_LIMITED else None,
        )
        if shared is not None and breaker.open_until > before:
            shared.opened(breaker.open_until - now)  # every daemon skips it from now on

    # -- introspection -----------------------------------------------------

    def load(self) -> int:
        """Attempts queued or in flight (the least-busy strategy's key)."""
        return self._slots.busy + self._slots.waiting

    def latency_ewma(self) -> float | None:
        """Smoothed attempt latency in seconds (the latency strategy's key)."""
        return self._latency

    def usage(self) -> float:
        """Share of the rate budget used in the last minute (the usage strategy's key)."""
        share = self._limiter.share(monotonic())
        return float(self._attempts) if share is None else share

    def statistics(self) -> DeploymentStatistics:
        now = monotonic()
        state = self._breaker.state(now)
        rpm_used, tpm_used = self._limiter.used(now)
        return DeploymentStatistics(
            name=self.name,
            group=self.group,
            state=state,
            inbox_used=self._slots.waiting,
            inbox_size=self.spec.inbox,
            inflight=self._slots.busy,
            concurrency=self.spec.concurrency,
            cooldown_remaining_s=max(self._breaker.open_until - now, 0.0),
            latency_ewma_s=self._latency,
            rpm_used=rpm_used,
            tpm_used=tpm_used,
            attempts=self._attempts,
            failures=self._failures,
        )

    def __repr__(self) -> str:
        stats = self.statistics()
        return (
            f"<Deployment {self.name!r} {stats.state.upper()} "
            f"[inbox {stats.inbox_used}/{stats.inbox_size} | "
            f"inflight {stats.inflight}/{stats.concurrency}]>"
        )


def _transport_for(spec: Deployment) -> httpx.AsyncBaseTransport:
    if spec.provider == "mock":
        return MockUpstream(spec).transport()
    return AiohttpTransport(
        max_connections=spec.concurrency, max_response_bytes=spec.max_response_bytes
    )


__all__ = ["DeploymentActor", "DeploymentStatistics"]
