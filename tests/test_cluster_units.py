"""Cluster mode's pure parts: the leased limiter, the shared breaker, the [cluster] table,
and that a daemon without [cluster] never imports redis."""

from __future__ import annotations

import subprocess
import sys

import anyio
import pytest

from actors import Breaker, BreakerState, LeasedLimiter
from config import ConfigError, parse_config

from .cluster_support import ROOT


class Pokes:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


def joined(rpm: int = 600, tpm: int = 0) -> tuple[LeasedLimiter, Pokes]:
    pokes = Pokes()
    limiter = LeasedLimiter(rpm, tpm, 0.0, on_low=pokes)
    limiter.connect()
    return limiter, pokes


def test_spends_its_lease_without_asking_until_it_runs_low() -> None:
    """A lease of 10 requests admits 10; the task is asked for more only when it runs low."""
    limiter, pokes = joined()
    assert pokes.count == 1 and limiter.asking  # joining asks at once
    limiter.grant(10.0, 0.0, 0.0, (10.0, 0.0), 0.0)
    assert not limiter.asking
    for _ in range(9):
        assert limiter.try_reserve(100, 0.0) == 0.0
    assert pokes.count == 1
    assert limiter.try_reserve(100, 0.0) == 0.0  # the last one: below one request left
    assert limiter.asking and pokes.count == 2


@pytest.mark.anyio
async def test_a_refused_request_waits_on_the_lease_that_covers_every_waiter() -> None:
    """With nothing leased, refusals come with one refill event; the next lease asks for
    every waiting request, and granting it sets the event."""
    limiter, _ = joined()
    for _ in range(3):
        assert limiter.try_reserve(1, 0.0) > 0.0
    refill = limiter.refill()
    assert refill is not None and not refill.is_set()
    want_r, _, need_r, _ = limiter.wanted(0.0)
    assert need_r == 1.0 and want_r >= 3.0
    limiter.grant(want_r, 0.0, 0.0, (want_r, 0.0), 0.0)
    assert refill.is_set()
    assert [limiter.try_reserve(1, 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]


@pytest.mark.anyio
async def test_an_empty_budget_refuses_until_the_cluster_says() -> None:
    """After the cluster answered 'no room for 2.5 s', refusals say so and offer no wait."""
    limiter, _ = joined()
    limiter.grant(0.0, 0.0, 2.5, (600.0, 0.0), 10.0)
    assert limiter.try_reserve(1, 10.0) == pytest.approx(2.5)
    assert limiter.refill() is None


def test_tokens_settled_above_the_reservation_are_a_debt_the_next_lease_pays() -> None:
    """tpm: a request that used more than it reserved leaves a debt; the lease returns it."""
    limiter, _ = joined(rpm=0, tpm=1000)
    limiter.grant(0.0, 300.0, 0.0, (0.0, 300.0), 0.0)
    assert limiter.try_reserve(200, 0.0) == 0.0
    limiter.settle(reserved=200, actual=450, now=0.0)
    assert limiter.take_debt() == pytest.approx(150.0)
    assert limiter.take_debt() == 0.0


@pytest.mark.anyio
async def test_disconnected_it_decides_on_its_share_and_wakes_waiters() -> None:
    """Redis gone with 3 members: a local bucket of rpm / 3; waiting requests are woken."""
    limiter, _ = joined(rpm=30)
    assert limiter.try_reserve(1, 0.0) > 0.0
    refill = limiter.refill()
    assert refill is not None
    limiter.disconnect(members=3, now=0.0)
    assert refill.is_set()
    assert [limiter.try_reserve(1, 0.0) == 0.0 for _ in range(11)] == [True] * 10 + [False]


def test_shared_breaker_probes_only_with_the_clusters_grant() -> None:
    """Half-open in shared mode: no probe until granted; the grant lapses; one probe."""
    breaker = Breaker(allowed_fails=1, window_s=10.0, cooldown_s=5.0, shared=True)
    breaker.failure(0.0, counts=True, open_now=False, retry_after=None)
    assert breaker.state(5.0) is BreakerState.HALF_OPEN
    assert not breaker.admit(5.0)
    breaker.grant_probe(6.0)
    assert breaker.admit(5.5) and not breaker.admit(5.5)
    breaker.release()
    assert not breaker.admit(6.0)  # lapsed


def test_shared_breaker_holds_closes_and_ignores_a_late_success() -> None:
    """Another daemon's open holds it; a success admitted before does not close it; the
    cluster's close does."""
    breaker = Breaker(allowed_fails=3, window_s=10.0, cooldown_s=5.0, shared=True)
    breaker.hold(20.0)
    breaker.success(1.0)
    assert breaker.state(1.0) is BreakerState.OPEN
    breaker.close()
    assert breaker.state(1.0) is BreakerState.CLOSED and breaker.admit(1.0)


def test_cluster_table_validates_and_never_prints_the_password() -> None:
    """[cluster]: a redis URL (its password never shown); absent or "" is no cluster."""
    config = parse_config('[cluster]\nredis = "redis://:hunter2@10.0.0.5:6379/1"\nname = "prod"')
    assert config.cluster.enabled
    assert config.cluster.describe() == "redis://***@10.0.0.5:6379/1"
    assert "hunter2" not in repr(config.cluster)
    assert not parse_config("").cluster.enabled
    assert not parse_config('[cluster]\nredis = ""').cluster.enabled
    with pytest.raises(ConfigError) as info:
        parse_config('[cluster]\nredis = "http://:hunter2@host"')
    assert "cluster.redis" in str(info.value) and "hunter2" not in str(info.value)
    env = parse_config('[cluster]\nredis = "env:REDIS_URL"', env={"REDIS_URL": "redis://h:1/0"})
    assert env.cluster.describe() == "env:REDIS_URL (***)"


def test_no_redis_import_without_a_cluster() -> None:
    """A daemon without [cluster] (built, CLI loaded) never imports redis."""
    code = (
        "import sys, pathlib, dispatcher, dispatcher.cli\n"
        "from config import parse_config\n"
        "d = dispatcher.Daemon(parse_config(''), pathlib.Path('.'))\n"
        "assert d.cluster is None\n"
        "assert 'redis' not in sys.modules, 'redis imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


@pytest.mark.anyio
async def test_refill_event_is_set_once_per_lease() -> None:
    """A second round of refusals after a grant gets a fresh event."""
    limiter, _ = joined()
    assert limiter.try_reserve(1, 0.0) > 0.0
    first = limiter.refill()
    limiter.grant(1.0, 0.0, 0.0, (1.0, 0.0), 0.0)
    assert limiter.try_reserve(1, 0.0) == 0.0
    assert limiter.try_reserve(1, 0.0) > 0.0
    second = limiter.refill()
    assert first is not None and second is not None and first is not second
    with anyio.fail_after(1):
        await first.wait()
    assert not second.is_set()
