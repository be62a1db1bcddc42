"""The deployment actor: a bounded inbox, a pool of workers, one HTTP transport.

`submit` is synchronous: it checks the breaker, reserves rpm/tpm and puts the
attempt in the inbox without awaiting, so admission decisions cannot
interleave. `concurrency` workers take attempts from the inbox; each decodes
its own request from the attempt's bytes, translates it with the adapter,
calls the provider, classifies the outcome, and answers the attempt's reply.
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
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from config import CooldownConfig, Deployment, deployment_price

from ._chat import ChatCompletionChunk, ChatRequest, Usage, request_decoder
from ._cost import priced_chunk, priced_completion, usage_cost
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
from ._messages import Attempt, Failure, Outcome, Success
from ._redact import redactor_for
from ._shared import Limiter, Sharing
from ._transport import AiohttpTransport
from ._upstream import Upstream
from .providers import Adapter, MockUpstream, adapter_for, inert_params

logger = logging.getLogger("dispatcher.actor")

_EWMA_WEIGHT: Final = 0.2
_STOPPED: Final = Failure(
    error=ErrorClass.CONNECTION, message="deployment stopped", latency_s=0.0, retryable=False
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
        # The inbox exists while `run` does (a constructor holds no resources).
        self._send: MemoryObjectSendStream[Attempt] | None = None
        self._breaker = Breaker(cooldown.allowed_fails, cooldown.window_s, cooldown.cooldown_s)
        self._shared = share(spec, self._breaker) if share is not None else None
        self._limiter: Limiter = (
            self._shared.limiter
            if self._shared is not None
            else RateLimiter(spec.rpm, spec.tpm, now=0.0)
        )
        self._inflight = 0
        self._attempts = 0
        self._failures = 0
        self._latency: float | None = None
        self._running = False
        # Provider text passes this before it is cut and kept (502 bodies, jobs, the store).
        self._redact = redactor_for(spec, self.adapter.auth)
        self._when_idle: set[Callable[[], None]] = set()

    # -- admission (synchronous) -----------------------------------------

    def submit(self, attempt: Attempt) -> bool:
        """Queue `attempt`, or raise an `Unavailable` saying why not and until when.

        Returns whether it waits in the inbox (False: an idle worker took it at once).
        """
        if not self._running:
            raise Stopped(self.name)
        now = monotonic()
        if not self._breaker.admit(now):
            raise CoolingDown(self.name, retry_at=self._breaker.open_until)
        wait = self._limiter.try_reserve(attempt.tokens, now)
        if wait:
            self._breaker.release()
            raise RateLimited(self.name, retry_at=now + wait, refill=self._limiter.refill())
        send = self._send
        assert send is not None  # set while running
        idle = send.statistics().tasks_waiting_receive
        try:
            send.send_nowait(attempt)
        except anyio.WouldBlock:
            self._breaker.release()
            self._limiter.release(attempt.tokens)
            raise InboxFull(self.name) from None
        return not idle

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
        """Call `callback` once, when the next attempt finishes (a worker frees up)."""
        self._when_idle.add(callback)

    # -- lifecycle -------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Serve the inbox until `close()`; queued attempts are answered, never dropped."""
        transport = self._transport
        if transport is None:
            transport = _transport_for(self.spec)
        send, receive = anyio.create_memory_object_stream[Attempt](self.spec.inbox)
        upstream = Upstream(transport, self.adapter.auth)
        try:
            with send, receive:
                self._send = send
                try:
                    async with anyio.create_task_group() as tg:
                        if self._shared is not None:
                            await tg.start(self._shared.run)
                        for _ in range(self.spec.concurrency):
                            tg.start_soon(self._worker, upstream, receive.clone())
                        self._running = True
                        task_status.started()
                finally:
                    self._running = False
                    _answer_leftovers(receive)
        finally:
            with anyio.CancelScope(shield=True):
                await upstream.aclose()

    def close(self) -> None:
        """Stop taking attempts; workers finish what is queued, then `run` returns."""
        self._running = False
        if self._shared is not None:
            self._shared.close()
        if self._send is not None:
            self._send.close()

    # -- work --------------------------------------------------------------

    async def _worker(self, upstream: Upstream, inbox: MemoryObjectReceiveStream[Attempt]) -> None:
        async with inbox:
            async for attempt in inbox:
                if attempt.reply.abandoned:
                    self._limiter.settle(attempt.tokens, 0, monotonic())  # its tokens only
                    self._breaker.release()
                    continue
                try:
                    outcome = await self._serve(upstream, attempt)
                except BaseException:
                    attempt.reply.set(_STOPPED)
                    raise
                attempt.reply.set(outcome)

    async def _serve(self, upstream: Upstream, attempt: Attempt) -> Outcome:
        start = monotonic()
        budget = min(attempt.deadline - start, self.spec.timeout_s)
        self._inflight += 1
        self._attempts += 1
        outcome: Outcome | None = None
        with anyio.move_on_after(budget) as scope:
            attempt.reply.bind(scope)
            try:
                if attempt.chunks is None:
                    outcome = await self._call(upstream, attempt.payload, start)
                else:
                    outcome = await self._call_stream(upstream, attempt, scope, start)
            except ProviderError as exc:
                outcome = self._failure(exc, start)
            except Unsupported as exc:
                outcome = self._failure(ProviderError(ErrorClass.BAD_REQUEST, exc.message), start)
            except Exception as exc:  # a bug in an adapter must not take the actor down
                logger.exception("deployment %s: unexpected error", self.name)
                outcome = self._failure(
                    ProviderError(ErrorClass.SERVER_ERROR, f"internal error: {type(exc).__name__}"),
                    start,
                )
        self._inflight -= 1
        if self._when_idle:
            callbacks, self._when_idle = self._when_idle, set()
            for callback in callbacks:
                callback()
        if attempt.chunks is not None:
            attempt.chunks.close()
        now = monotonic()
        if outcome is None:
            # Cancelled by the deadline, or abandoned by the supervisor.
            outcome = Failure(
                error=ErrorClass.TIMEOUT,
                message=f"no answer within {now - start:.3f}s",
                latency_s=now - start,
                retryable=not attempt.reply.abandoned,
            )
        if not attempt.reply.abandoned:  # a client that left says nothing about the deployment
            self._record(outcome, attempt.tokens, now)
        return outcome

    async def _call(self, upstream: Upstream, payload: bytes, start: float) -> Outcome:
        request = request_decoder.decode(payload)
        http = self.adapter.build(request)
        response = await upstream.send(http)
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

    async def _call_stream(
        self, upstream: Upstream, attempt: Attempt, scope: anyio.CancelScope, start: float
    ) -> Outcome:
        """Stream the provider's answer into `attempt.chunks`, within the stream timeouts.

        `scope`'s deadline is moved as the stream goes: the first content (a text,
        refusal or tool-call delta) must come within first_token_timeout_s of the
        attempt's start, whatever else arrives before it (role chunks, `: ping`
        keep-alives); after it, each piece (any bytes) within idle_timeout_s; the
        whole attempt within its budget. Waiting on a slow client counts toward the
        budget only. The loop reaches a checkpoint on every piece, so a deadline or a
        cancellation is delivered even while an upstream floods it with bytes.
        """
        chunks = attempt.chunks
        assert chunks is not None
        parser = self.adapter.stream_parser()
        http = self.adapter.build(request_decoder.decode(attempt.payload))
        attempt.reply.dropped_params = http.dropped_params
        budget_end = scope.deadline
        spec = self.spec
        first_token_end = min(budget_end, anyio.current_time() + spec.first_token_timeout_s)
        scope.deadline = first_token_end
        response = await upstream.open(http)
        try:
            if not response.is_success:
                body = await response.aread()
                raise self.adapter.classify(response.status_code, response.headers, body)
            usage: Usage | None = None
            started = False
            async for piece in upstream.pieces(response):
                scope.deadline = budget_end
                try:
                    batch = tuple(parser.feed(piece))
                except ProviderError as exc:
                    if exc.partial:
                        await chunks.send(exc.partial)  # type: ignore[arg-type]
                    raise
                if batch:
                    batch = self._priced(batch)
                    for chunk in batch:
                        usage = chunk.usage or usage
                        started = started or chunk.has_content()
                    # One message per upstream read, however many chunks it held.
                    await chunks.send(batch)  # a checkpoint
                if started:
                    scope.deadline = min(budget_end, anyio.current_time() + spec.idle_timeout_s)
                else:
                    scope.deadline = first_token_end  # keep-alives do not move it
                if not batch:
                    # Keep-alives or part of an event: a read that was already buffered
                    # does not yield, and the deadline could not interrupt the loop.
                    await anyio.lowlevel.checkpoint()
            scope.deadline = budget_end
            batch = self._priced(tuple(parser.close()))
            if batch:
                usage = next((c.usage for c in reversed(batch) if c.usage), usage)
                await chunks.send(batch)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            # The supervisor stopped reading (client gone): stop the upstream read too.
            scope.cancel()
            return Failure(
                error=ErrorClass.CONNECTION,
                message="stream reader went away",
                latency_s=monotonic() - start,
            )
        finally:
            with anyio.CancelScope(shield=True):
                await response.aclose()
        return Success(
            response=None,
            usage=usage,
            latency_s=monotonic() - start,
            dropped_params=http.dropped_params,
            cost_usd=usage_cost(self.price, usage),
        )

    def _priced(self, batch: tuple[ChatCompletionChunk, ...]) -> tuple[ChatCompletionChunk, ...]:
        """`batch` with the cost of each usage it carries (usage is cumulative: the last
        usage chunk of the stream carries the answer's cost)."""
        if not any(chunk.usage for chunk in batch):
            return batch
        return tuple(
            priced_chunk(chunk, usage_cost(self.price, chunk.usage or None)) for chunk in batch
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

    def _record(self, outcome: Outcome, reserved: int, now: float) -> None:
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
        return self._inflight + self._queued()

    def _queued(self) -> int:
        return self._send.statistics().current_buffer_used if self._send is not None else 0

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
            inbox_used=self._queued(),
            inbox_size=self.spec.inbox,
            inflight=self._inflight,
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


def _answer_leftovers(receive: MemoryObjectReceiveStream[Attempt]) -> None:
    # Workers are gone (finished or cancelled): whatever is still queued gets a reply.
    while True:
        try:
            attempt = receive.receive_nowait()
        except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
            return
        attempt.reply.set(_STOPPED)


def _transport_for(spec: Deployment) -> httpx.AsyncBaseTransport:
    if spec.provider == "mock":
        return MockUpstream(spec).transport()
    return AiohttpTransport(
        max_connections=spec.concurrency, max_response_bytes=spec.max_response_bytes
    )


__all__ = ["DeploymentActor", "DeploymentStatistics"]
