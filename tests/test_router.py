"""Router: strategies order a group's deployments; chains hand each deployment out once."""

from __future__ import annotations

import random
from collections import Counter

import httpx
import msgspec
import pytest

from actors import ChatCall, DeploymentActor
from config import parse_config
from dispatcher import InvalidRequest, Router

from .helpers import chat_json, completion, deployments, stack

pytestmark = pytest.mark.anyio


def router(text: str, seed: int = 7) -> tuple[Router, dict[str, DeploymentActor]]:
    config = parse_config(text)
    actors = {d.name: DeploymentActor(d, config.router.cooldown) for d in config.deployment}
    return Router(config.router, actors.values(), rng=random.Random(seed)), actors


def test_simple_shuffle_follows_weights() -> None:
    """A weight-3 deployment comes first about three times as often as a weight-1 one."""
    r, _ = router(deployments("heavy g weight=3", "light g weight=1"))
    firsts = Counter(r.order("g")[0].name for _ in range(4000))
    assert 2.6 < firsts["heavy"] / firsts["light"] < 3.4


def test_least_busy_prefers_the_idle_deployment() -> None:
    """least-busy orders by attempts queued or in flight."""
    r, actors = router(deployments("a g", "b g", router='strategy = "least-busy"'))
    actors["a"]._inflight = 3
    assert [a.name for a in r.order("g")] == ["b", "a"]


def test_latency_measures_unmeasured_first_then_fastest() -> None:
    """latency tries a deployment with no measurement first, then the fastest."""
    r, actors = router(deployments("slow g", "fast g", "new g", router='strategy = "latency"'))
    actors["slow"]._latency = 2.0
    actors["fast"]._latency = 0.2
    assert [a.name for a in r.order("g")] == ["new", "fast", "slow"]


def test_usage_prefers_the_least_used_budget() -> None:
    """usage orders by the share of the tpm budget used in the last minute."""
    text = deployments("a g tpm=1000", "b g tpm=1000", router='strategy = "usage"')
    r, actors = router(text)
    actors["a"]._limiter.tokens.take(800, now=0.0)
    actors["a"]._limiter.tokens._stamp = float("inf")  # no refill in this test
    assert [a.name for a in r.order("g")] == ["b", "a"]


def test_chain_visits_each_deployment_once_in_group_order() -> None:
    """Request fallbacks, then configured, then default; duplicates are skipped."""
    text = deployments(
        "a g", "b r", "c f", "d d",
        router='default_fallbacks = ["d", "g"]\n[router.fallbacks]\ng = ["f", "r"]',
    )  # fmt: skip
    r, _ = router(text)
    assert [a.name for a in r.chain("g", ("r",))] == ["a", "b", "c", "d"]


async def test_too_long_request_goes_to_context_window_fallbacks_without_a_call() -> None:
    """max_input_tokens: a request known to be too long skips to the context-window chain."""
    bodies: dict[str, int] = Counter()

    def answer(name: str):  # type: ignore[no-untyped-def]
        async def handler(request: httpx.Request) -> httpx.Response:
            bodies[name] += 1
            return completion()

        return handler

    text = deployments(
        "small g max_input_tokens=10", "generic f", "big large",
        router='default_fallbacks = ["f"]\n[router.context_window_fallbacks]\ng = ["large"]',
    )  # fmt: skip
    handlers = {n: answer(n) for n in ("small", "generic", "big")}
    long_call = msgspec.convert(chat_json("g", "word " * 200), ChatCall)
    async with stack(text, handlers) as s:
        result = await s.supervisor.complete(long_call)
        assert result.deployment == "big"
        assert bodies == {"big": 1}
    text_no_chain = deployments("small g max_input_tokens=10", "generic f",
                                router='default_fallbacks = ["f"]')  # fmt: skip
    async with stack(text_no_chain, handlers) as s:
        with pytest.raises(InvalidRequest) as info:
            await s.supervisor.complete(long_call)
    assert info.value.code == "context_length_exceeded"
    assert bodies == {"big": 1}


async def test_tools_skip_deployments_without_tool_support() -> None:
    """supports_tools = false: a request with tools goes to the next candidate."""
    seen: list[str] = []

    async def notools(request: httpx.Request) -> httpx.Response:
        seen.append("notools")
        return completion()

    async def tools(request: httpx.Request) -> httpx.Response:
        seen.append("tools")
        return completion()

    text = deployments(
        "notools g supports_tools=false", "tools g", router='strategy = "least-busy"'
    )
    tool = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    call = msgspec.convert(chat_json("g", tools=tool), ChatCall)
    async with stack(text, {"notools": notools, "tools": tools}) as s:
        for _ in range(5):
            assert (await s.supervisor.complete(call)).deployment == "tools"
    assert seen == ["tools"] * 5
