"""The actor as admission state machine: slots, the bounded waiting room, stop and close.

Attempts run in their caller's task; the actor decides who may run. These tests drive it
through the supervisor (and directly, for stop), with scripted transports that hold
answers until the test lets them go.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from time import monotonic

import anyio
import httpx
import msgspec
import pytest

from actors import Attempt, ChatCall, DeploymentActor, Failure, encoder
from config import parse_config
from dispatcher import AllAttemptsFailed, DeadlineExceeded

from .fakes import sse
from .helpers import chat_json, completion, deployments, stack

pytestmark = pytest.mark.anyio


def call(text: str = "hi", **extra: object) -> ChatCall:
    return msgspec.convert(chat_json("g", text, **extra), ChatCall)


class Held:
    """A provider that answers each request only when the test releases it."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.gates: list[anyio.Event] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.texts.append(msgspec.json.decode(request.content)["messages"][0]["content"])
        gate = anyio.Event()
        self.gates.append(gate)
        await gate.wait()
        return completion()


async def test_waiters_get_the_slot_one_at_a_time_in_arrival_order() -> None:
    """With one slot, queued attempts start one per finished attempt, oldest first."""
    up = Held()
    async with stack(deployments("a g inbox=3 concurrency=1"), {"a": up}) as s:
        actor = s.actors["a"]
        async with anyio.create_task_group() as tg:
            for text in ("1", "2", "3"):
                tg.start_soon(s.supervisor.complete, call(text))
                await anyio.wait_all_tasks_blocked()
            stats = actor.statistics()
            assert (stats.inflight, stats.inbox_used, actor.load()) == (1, 2, 3)
            for started in (1, 2, 3):
                assert len(up.texts) == started  # the others still wait
                up.gates[-1].set()
                await anyio.wait_all_tasks_blocked()
        assert up.texts == ["1", "2", "3"]
        assert actor.load() == 0


async def test_a_waiter_past_its_deadline_leaves_and_gives_back_its_tokens() -> None:
    """A queued attempt whose deadline passes times out, leaves the inbox, and its tpm
    reservation is given back; the attempt in flight keeps its slot."""
    up = Held()
    async with stack(deployments("a g inbox=2 concurrency=1 tpm=1000000"), {"a": up}) as s:
        actor = s.actors["a"]
        async with anyio.create_task_group() as tg:
            tg.start_soon(s.supervisor.complete, call())
            await anyio.wait_all_tasks_blocked()
            one = actor.statistics().tpm_used
            with anyio.fail_after(5), pytest.raises(DeadlineExceeded) as info:
                await s.supervisor.complete(call(), timeout_s=0.05)
            assert [r.outcome for r in info.value.attempts] == ["timeout"]
            stats = actor.statistics()
            assert (stats.inbox_used, stats.inflight) == (0, 1)
            assert 0 < stats.tpm_used <= one
            assert len(up.texts) == 1
            up.gates[0].set()
        assert actor.load() == 0


async def test_a_cancelled_waiter_leaves_the_inbox() -> None:
    """A client that leaves while its attempt waits frees its place at once."""
    up = Held()
    async with stack(deployments("a g inbox=2 concurrency=1"), {"a": up}) as s:
        actor = s.actors["a"]
        async with anyio.create_task_group() as tg:
            tg.start_soon(s.supervisor.complete, call("served"))
            await anyio.wait_all_tasks_blocked()
            async with anyio.create_task_group() as leaving:
                leaving.start_soon(s.supervisor.complete, call("gone"))
                await anyio.wait_all_tasks_blocked()
                assert actor.statistics().inbox_used == 1
                leaving.cancel_scope.cancel()
            assert (actor.statistics().inbox_used, actor.load()) == (0, 1)
            up.gates[0].set()
        assert up.texts == ["served"]
        assert actor.load() == 0


async def test_a_slot_handed_to_a_waiter_that_is_cancelled_goes_on() -> None:
    """A waiter cancelled after a slot was handed to it, before it ran, passes the slot
    on: nothing leaks, and the next request runs at once."""
    up = Held()
    async with stack(deployments("a g inbox=2 concurrency=1"), {"a": up}) as s:
        actor = s.actors["a"]
        async with anyio.create_task_group() as tg:
            tg.start_soon(s.supervisor.complete, call("first"))
            await anyio.wait_all_tasks_blocked()
            async with anyio.create_task_group() as leaving:
                leaving.start_soon(s.supervisor.complete, call("gone"))
                await anyio.wait_all_tasks_blocked()
                # Runs right after the first attempt handed its slot to the waiter.
                actor.notify_when_idle(leaving.cancel_scope.cancel)
                up.gates[0].set()
            assert actor.load() == 0
            tg.start_soon(s.supervisor.complete, call("next"))
            await anyio.wait_all_tasks_blocked()
            assert up.texts == ["first", "next"]
            up.gates[-1].set()


async def test_close_lets_admitted_attempts_finish_and_a_stop_answers_waiters() -> None:
    """`close()` (a reload retiring the deployment) serves what it admitted; a cancelled
    `run` answers the attempts still waiting with "deployment stopped"."""
    up = Held()
    config = parse_config(deployments("a g inbox=2 concurrency=1"))
    spec, cooldown = config.deployment[0], config.router.cooldown
    payload = encoder.encode(msgspec.convert(chat_json("g", "x"), ChatCall))

    def attempt() -> Attempt:
        return Attempt(payload=payload, deadline=monotonic() + 60, tokens=10)

    # close(): both the running attempt and the waiting one are served, then run returns.
    actor = DeploymentActor(spec, cooldown, transport=httpx.MockTransport(up))
    outcomes: list[object] = []

    async def run(a: Attempt) -> None:
        outcomes.append(await actor.call(a, actor.submit(a)))

    async with anyio.create_task_group() as tg:
        await tg.start(actor.run)
        tg.start_soon(run, attempt())
        tg.start_soon(run, attempt())
        await anyio.wait_all_tasks_blocked()
        actor.close()
        for gate in range(2):
            await anyio.wait_all_tasks_blocked()
            up.gates[gate].set()
    assert len(outcomes) == 2 and not any(isinstance(o, Failure) for o in outcomes)

    # A stop (the actor's task cancelled): the waiting attempt gets its answer.
    actor = DeploymentActor(spec, cooldown, transport=httpx.MockTransport(up))
    outcomes.clear()
    async with anyio.create_task_group() as tg:
        async with anyio.create_task_group() as actor_tg:
            await actor_tg.start(actor.run)
            tg.start_soon(run, attempt())
            tg.start_soon(run, attempt())
            await anyio.wait_all_tasks_blocked()
            assert actor.statistics().inbox_used == 1
            actor_tg.cancel_scope.cancel()
        await anyio.wait_all_tasks_blocked()
        [stopped] = outcomes
        assert isinstance(stopped, Failure) and stopped.message == "deployment stopped"
        up.gates[-1].set()


class _Body(httpx.AsyncByteStream):
    """A streamed body that sends its first content, then waits; records being closed."""

    def __init__(self) -> None:
        self.closed = anyio.Event()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        delta = {"role": "assistant", "content": "hello"}
        yield sse({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                   "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})  # fmt: skip
        await anyio.sleep_forever()

    async def aclose(self) -> None:
        self.closed.set()


async def test_closing_a_committed_stream_closes_the_upstream_response() -> None:
    """A client that leaves mid-stream: the provider's response is closed, the slot freed,
    and the attempt is not counted against the deployment."""
    body = _Body()

    async def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=body)

    async with stack(deployments("a g"), {"a": handler}) as s:
        actor = s.actors["a"]
        stream = await s.supervisor.open_stream(call(stream=True))
        assert actor.statistics().inflight == 1
        await stream.aclose()
        assert body.closed.is_set()
        stats = actor.statistics()
        assert (stats.inflight, stats.failures, stream.outcome) == (0, 0, "client_closed")
        assert s.sample("dispatcher_requests_total", group="g", outcome="client_closed") == 1


class _FailHoldThenAnswer:
    """Answers 500, then holds the next request until the test is done, then answers."""

    def __init__(self) -> None:
        self.count = 0
        self.holding = anyio.Event()
        self.never = anyio.Event()

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.count += 1
        if self.count == 1:
            return httpx.Response(500, json={"error": {"message": "boom"}})
        if self.count == 2:
            self.holding.set()
            await self.never.wait()
        return completion("back")


async def test_a_probe_whose_client_left_lets_the_next_request_probe() -> None:
    """A failure opens the breaker; after the cooldown one probe passes. Its client leaves
    before the answer: the deployment must not stay shut, waiting for a probe that will
    never report (it did, until a restart), so the next request is the probe, and closes it."""
    up = _FailHoldThenAnswer()
    config = deployments("a g", router="[router.cooldown]\nallowed_fails = 1\ncooldown_s = 0")
    async with stack(config, {"a": up}) as s:
        with anyio.fail_after(5):
            with pytest.raises(AllAttemptsFailed):
                await s.supervisor.complete(call("one"))  # opens; half-open at once
            async with anyio.create_task_group() as tg:
                tg.start_soon(s.supervisor.complete, call("probe"))
                await up.holding.wait()  # the probe is with the provider
                tg.cancel_scope.cancel()  # ... and its client leaves
            result = await s.supervisor.complete(call("three"))
        assert result.response.choices[0].message.content == "back"
        stats = s.actors["a"].statistics()
        assert stats.state == "closed"
        assert stats.failures == 1  # the probe whose client left counts for nothing
