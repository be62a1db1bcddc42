"""A streamed attempt, read piece by piece in the task of the request that made it.

There is no worker and no buffer between the provider and the reader: each read
awaits the next upstream piece in the caller's own task, under a cancel scope that
an alarm cancels once the stream's deadline for that piece passed (`head`, up to the
commit point, and `relay`, the committed stream's loop, each keep one scope for all
their reads):

- the first content (a text, refusal or tool-call delta) within
  first_token_timeout_s of the attempt's start, whatever comes before it (role
  chunks, `: ping` keep-alives do not move it); opening the response counts too;
- after it, each piece (any bytes) within idle_timeout_s of the read;
- the whole attempt within its budget (the request's deadline, the deployment's
  timeout_s), time spent by the reader between reads (a slow client) included.

A piece that is only keep-alives reaches a checkpoint, and the deadline is also
checked by the clock before each read, so an upstream that floods bytes without
ever making the reader wait still meets it.

The alarm is one timer for all of a stream's waits, not a deadline moved on the cancel
scope for each: moving one re-arms a timer (a libuv timer on uvloop, ~2-3 us, more than
the rest of a read's own code). A stream's due times only move later (idle_timeout_s
from each read), so the timer is armed once, re-armed only when it fires before the
wait it finds is due (or a wait is due before it), and a read only sets its due time.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from time import monotonic

import anyio

from config import Deployment, Price

from ._chat import ChatCompletionChunk, Usage, request_decoder
from ._cost import priced_chunk, usage_cost
from ._exceptions import ProviderError
from ._messages import Attempt, ChunkBatch, Failure, Outcome, Success, timed_out
from ._upstream import Body, Upstream, provider_error
from .providers import Adapter


class StreamAttempt:
    """One streamed attempt holding its deployment's slot: `head()` up to the first
    content, then `relay()` to the end, and `outcome` says how it ended; `aclose()`
    (idempotent) lets go early, and always closes the upstream response. An attempt
    closed before its end is not recorded against the deployment."""

    __slots__ = (
        "_adapter",
        "_alarm",
        "_attempt",
        "_body",
        "_budget_end",
        "_clock",
        "_done",
        "_ended",
        "_failed",
        "_first_end",
        "_idle_s",
        "_parser",
        "_pending",
        "_price",
        "_start",
        "_started",
        "_upstream",
        "_usage",
        "dropped_params",
        "outcome",
    )

    def __init__(
        self,
        attempt: Attempt,
        upstream: Upstream,
        adapter: Adapter,
        spec: Deployment,
        price: Price | None,
        failed: Callable[[Exception, float], Failure],
        ended: Callable[[Outcome | None, Attempt], None],
    ) -> None:
        """Called by the actor once the attempt holds a slot: `failed` classifies what an
        attempt raised, `ended` frees the slot and records the outcome (None: not)."""
        self._upstream = upstream
        self._adapter = adapter
        self._price = price
        self._failed = failed
        self._ended = ended
        self._idle_s = spec.idle_timeout_s
        self._attempt = attempt
        self._start = start = monotonic()
        loop = asyncio.get_running_loop()  # aiohttp, uvicorn: the actors run on asyncio
        self._alarm = _Alarm(loop)
        self._clock = loop.time  # the cancel scopes' clock: cheaper than anyio.current_time
        now = self._clock()
        self._budget_end = now + min(attempt.deadline - start, spec.timeout_s)
        self._first_end = min(self._budget_end, now + spec.first_token_timeout_s)
        self._parser = adapter.stream_parser()
        self._body: Body | None = None
        self._started = False
        self._usage: Usage | None = None
        self._pending: Failure | None = None
        self._done = False
        self.dropped_params: tuple[str, ...] = ()
        """What the provider request left out, once the first read built it."""
        self.outcome: Outcome | None = None
        """How the attempt ended (None: still running, or closed before its end)."""

    @property
    def started(self) -> bool:
        """A content delta (a text, reasoning, refusal or tool-call delta) was read: the
        commit point."""
        return self._started

    async def head(self) -> list[ChatCompletionChunk]:
        """Read up to the first content delta (`started` is then true) or the attempt's end
        (`outcome` then says how): the chunks read, in one list (maybe empty).

        One cancel scope for the reads, as in `relay`: a read that completed as its deadline
        passed ends it, and the next read (under a new one) times out by the clock.
        """
        chunks: list[ChatCompletionChunk] = []
        while not self._done:
            with anyio.CancelScope() as scope:
                while (batch := await self._read(scope)) is not None:
                    chunks += batch
                    if self._started or scope.cancel_called:
                        break
            if self._started:
                break
        return chunks

    async def relay(self, emit: Callable[[ChunkBatch], Awaitable[object] | None]) -> None:
        """Read to the end, each batch handed to `emit` as it comes, and what it returns
        awaited (None: nothing to wait for). `emit` raising ends nothing: the caller's
        `aclose` does. (`emit` is no coroutine function: each layer between a read and the
        client's write would be a coroutine built and run per read.)

        One cancel scope for the reads rather than one a read: the alarm cancels it only
        while an upstream read waits, not while `emit` runs. A read that completed as its
        deadline passed (the scope is then spent) is handed over outside it, and the next
        read (under a new one) times out by the clock if it is still due.
        """
        body = self._body
        if body is not None and self._pending is None and self._parser.ended() and body.at_end():
            # Whole, and the body's end already in: nothing is left to wait for (nor to read
            # for the answer), so no scope, no alarm and no read.
            await self._end(self._success())
            return
        while not self._done:
            late: ChunkBatch | None = None
            with anyio.CancelScope() as scope:
                while (batch := await self._read(scope)) is not None:
                    if scope.cancel_called:
                        late = batch
                        break
                    if (sent := emit(batch)) is not None:
                        await sent
            if late is not None and (sent := emit(late)) is not None:
                await sent

    async def _read(self, scope: anyio.CancelScope) -> ChunkBatch | None:
        """The next read's chunks (never empty; None: the attempt ended) under `scope`,
        which the alarm cancels once an upstream wait is past its deadline (the read timed
        out: raised once the outcome is recorded). One frame for all the steps, the
        provider's request and the body's reads included: each resumption of the request's
        task walks every frame on its stack."""
        alarm = self._alarm
        try:
            while not self._done:
                if self._pending is not None:
                    await self._end(self._pending)
                    break
                body = self._body
                if body is None:
                    adapter = self._adapter
                    http = adapter.build(request_decoder.decode(self._attempt.payload))
                    self.dropped_params = http.dropped_params
                    alarm.wait(scope, self._first_end)  # opening counts for the first token
                    response = await self._upstream.open(http)
                    self._body = self._upstream.body(response)  # closed by `_end`/`aclose`
                    if not response.is_success:
                        error = await response.aread()
                        raise adapter.classify(response.status_code, response.headers, error)
                    alarm.due = math.inf
                    continue
                started = self._started
                now = self._clock()
                deadline = min(self._budget_end, now + self._idle_s)
                if not started:
                    deadline = self._first_end  # keep-alives do not move it
                if now >= deadline:
                    await self._end(self._unless_whole(timed_out(monotonic() - self._start)))
                    break
                alarm.wait(scope, deadline)
                piece = await body.next_piece()
                alarm.due = math.inf
                if piece is None:
                    batch = self._priced(self._parser.close())
                    await self._end(self._success())
                    return batch or None
                try:
                    batch = self._parser.feed(piece)  # a new list: handed on, not copied
                except ProviderError as exc:
                    if not exc.partial:
                        raise
                    self._pending = self._failed(exc, self._start)  # after what it completed
                    batch = exc.partial  # type: ignore[assignment]  # chunks, as `feed`'s
                if batch:
                    batch = self._priced(batch)
                    if not started:
                        for chunk in batch:  # a loop, not any(...) over a generator
                            if chunk.has_content():
                                self._started = True
                                break
                    return batch
                # Keep-alives or part of an event: a read that was already buffered does not
                # yield, and a cancellation could not reach the loop.
                await anyio.lowlevel.checkpoint()
        except Exception as exc:
            failure = self._failed(provider_error(exc), self._start)
            await self._end(self._unless_whole(failure))
        except BaseException:
            if scope.cancel_called:  # its deadline passed
                await self._end(self._unless_whole(timed_out(monotonic() - self._start)))
            else:
                await self.aclose()  # cancelled from outside: the client left, or we stop
            raise
        return None

    @property
    def whole(self) -> bool:
        """The provider's end marker was read: the answer is whole. The attempt still reads
        the body to its end (`relay`; no read when that end is in already); whatever fails
        there fails nothing."""
        return self._parser.ended()

    def _unless_whole(self, failure: Failure) -> Outcome:
        return self._success() if self._parser.ended() else failure

    def _success(self) -> Success:
        usage = self._usage
        return Success(
            response=None,
            usage=usage,
            latency_s=monotonic() - self._start,
            dropped_params=self.dropped_params,
            cost_usd=usage_cost(self._price, usage),
        )

    def _priced(self, batch: ChunkBatch) -> ChunkBatch:
        """`batch` with the cost of each usage it carries (usage is cumulative: the last
        usage chunk of the stream carries the answer's cost), which is kept as the answer's."""
        for chunk in batch:  # a plain loop: cheaper than any() over a generator
            if chunk.usage:
                break
        else:
            return batch  # the common case: no usage
        price = self._price
        self._usage = next(chunk.usage for chunk in reversed(batch) if chunk.usage)
        return tuple(priced_chunk(chunk, usage_cost(price, chunk.usage or None)) for chunk in batch)

    async def _end(self, outcome: Outcome) -> None:
        if not self._done:
            self.outcome = outcome
            await self._let_go()
            self._ended(outcome, self._attempt)

    async def aclose(self) -> None:
        """Stop reading (the client left): the upstream response is closed, the slot freed.
        Nothing once the attempt ended."""
        if not self._done:
            await self._let_go()
            self._ended(None, self._attempt)

    async def _let_go(self) -> None:
        """Done: the alarm stopped, the body closed (an await only for a body that needs
        one: not on aiohttp's pool)."""
        self._done = True
        self._alarm.close()
        body, self._body = self._body, None
        if body is not None and not body.close():
            with anyio.CancelScope(shield=True):
                await body.aclose()


class _Alarm:
    """Cancels the scope of a stream's waiting read once that wait is `due` (module doc)."""

    __slots__ = ("_at", "_handle", "_loop", "due", "scope")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._handle: asyncio.TimerHandle | None = None
        self._at = math.inf  # when the timer fires (inf: not armed)
        self.due = math.inf
        """The waiting read's deadline (on the loop's clock); inf: no read waits."""
        self.scope: anyio.CancelScope | None = None

    def wait(self, scope: anyio.CancelScope, due: float) -> None:
        """A read is about to wait under `scope` until `due` (set `due` back to inf after)."""
        self.scope = scope
        self.due = due
        if due < self._at:
            self._arm(due)

    def _arm(self, at: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle = self._loop.call_at(at, self._fire)
        self._at = at

    def _fire(self) -> None:
        self._handle = None
        self._at = math.inf
        due = self.due
        if due == math.inf:
            return  # no read waits: the next one arms it again
        if self._loop.time() >= due:
            assert self.scope is not None
            self.scope.cancel()
        else:
            self._arm(due)

    def close(self) -> None:
        self.due = math.inf
        self.scope = None
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
            self._at = math.inf
