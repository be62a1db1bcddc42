"""The LEASE script on a real Redis: the same token buckets as a lone daemon's, atomic."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from dispatcher.cluster._link import Scripts

from .cluster_support import RedisServer, cluster_name

pytestmark = pytest.mark.anyio


@pytest.fixture
async def scripts(redis_server: RedisServer) -> AsyncIterator[Scripts]:
    client = Redis.from_url(redis_server.url, decode_responses=True)
    try:
        yield Scripts(client)
    finally:
        await client.aclose()


async def lease(
    scripts: Scripts, key: str, rpm: int, tpm: int, *want_need_back: float
) -> list[float]:
    answer = await scripts.lease(keys=[key], args=[rpm, tpm, *want_need_back])
    return [float(x) for x in answer]


async def test_grants_up_to_want_from_a_full_bucket(scripts: Scripts) -> None:
    """A fresh budget is full: 10 of 60 requests are granted and counted as used."""
    key = cluster_name()
    got_r, got_t, wait, used_r, _ = await lease(scripts, key, 60, 0, 10, 0, 1, 0, 0, 0)
    assert (got_r, got_t, wait) == (10.0, 0.0, 0.0)
    assert used_r == pytest.approx(10.0, abs=0.1)


async def test_grants_nothing_unless_need_fits_and_says_how_long(scripts: Scripts) -> None:
    """With 2 requests left of 60/min, a need of 5 gets nothing and a wait of ~3 s."""
    key = cluster_name()
    await lease(scripts, key, 60, 0, 58, 0, 58, 0, 0, 0)
    got_r, _, wait, _, _ = await lease(scripts, key, 60, 0, 5, 0, 5, 0, 0, 0)
    assert got_r == 0.0
    assert 2.8 < wait <= 3.0


async def test_both_budgets_or_nothing(scripts: Scripts) -> None:
    """Room for requests but not tokens: neither is granted."""
    key = cluster_name()
    await lease(scripts, key, 600, 1000, 0, 900, 0, 900, 0, 0)
    got_r, got_t, wait, _, _ = await lease(scripts, key, 600, 1000, 1, 500, 1, 500, 0, 0)
    assert (got_r, got_t) == (0.0, 0.0)
    assert wait > 20.0  # ~400 tokens at 1000/min


async def test_a_debt_given_back_delays_the_next_grant(scripts: Scripts) -> None:
    """Tokens overspent (a negative give-back) take the bucket below zero."""
    key = cluster_name()
    await lease(scripts, key, 0, 1000, 0, 1000, 0, 1000, 0, 0)
    _, got_t, wait, _, used_t = await lease(scripts, key, 0, 1000, 0, 100, 0, 100, 0, -500)
    assert got_t == 0.0
    assert used_t == pytest.approx(1500.0, abs=1.0)
    assert wait == pytest.approx(36.0, abs=0.1)  # 600 tokens at 1000/min


async def test_a_give_back_never_overfills(scripts: Scripts) -> None:
    """Returning more than was taken leaves the bucket at its capacity."""
    key = cluster_name()
    await lease(scripts, key, 60, 0, 0, 0, 0, 0, 1000, 0)
    got_r, _, _, used_r, _ = await lease(scripts, key, 60, 0, 100, 0, 1, 0, 0, 0)
    assert got_r == 60.0 and used_r == pytest.approx(60.0, abs=0.1)
