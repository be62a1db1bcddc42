"""Admission state machines: the rpm/tpm buckets and the breaker, on explicit clocks."""

from __future__ import annotations

import math

import pytest

from actors import RETRY_AFTER_MAX_COOLDOWNS, Breaker, BreakerState, RateLimiter, TokenBucket


def test_bucket_refills_continuously() -> None:
    """A 60/min bucket emptied at t=0 has room for one more at t=1."""
    bucket = TokenBucket(60, now=0.0)
    for _ in range(60):
        assert bucket.wait_time(1, 0.0) == 0.0
        bucket.take(1, 0.0)
    assert bucket.wait_time(1, 0.0) == 1.0
    assert bucket.wait_time(1, 1.0) == 0.0


def test_zero_means_unlimited() -> None:
    """rpm = 0 never limits."""
    bucket = TokenBucket(0, now=0.0)
    bucket.take(10_000, 0.0)
    assert bucket.wait_time(10_000, 0.0) == 0.0


def test_limiter_reserves_both_or_nothing() -> None:
    """A request that does not fit the tpm budget takes no rpm budget either."""
    limiter = RateLimiter(rpm=10, tpm=100, now=0.0)
    assert limiter.try_reserve(80, 0.0) == 0.0
    assert limiter.try_reserve(80, 0.0) > 0.0
    assert limiter.requests.used(0.0) == 1.0
    limiter.settle(reserved=80, actual=20, now=0.0)
    assert limiter.tokens.used(0.0) == 20.0
    assert limiter.try_reserve(80, 0.0) == 0.0


def test_breaker_opens_after_allowed_fails_within_window() -> None:
    """Failures older than window_s do not count; allowed_fails within it open the breaker."""
    breaker = Breaker(allowed_fails=2, window_s=10.0, cooldown_s=5.0)
    breaker.failure(0.0, counts=True, open_now=False, retry_after=None)
    breaker.failure(11.0, counts=True, open_now=False, retry_after=None)
    assert breaker.state(11.0) is BreakerState.CLOSED
    breaker.failure(12.0, counts=True, open_now=False, retry_after=None)
    assert breaker.state(12.0) is BreakerState.OPEN
    assert not breaker.admit(16.9)


def test_half_open_lets_one_probe_through() -> None:
    """After the cooldown one probe passes; its failure reopens, its success closes."""
    breaker = Breaker(allowed_fails=1, window_s=10.0, cooldown_s=5.0)
    breaker.failure(0.0, counts=True, open_now=False, retry_after=None)
    assert breaker.admit(5.0) and not breaker.admit(5.0)
    breaker.failure(5.5, counts=True, open_now=False, retry_after=None)
    assert breaker.state(6.0) is BreakerState.OPEN
    assert breaker.admit(10.5)
    breaker.success()
    assert (
        breaker.state(10.5) is BreakerState.CLOSED and breaker.admit(10.5) and breaker.admit(10.5)
    )


def test_auth_opens_at_once_and_bad_request_does_not_count() -> None:
    """open_now opens immediately; failures that do not count never open it."""
    breaker = Breaker(allowed_fails=1, window_s=10.0, cooldown_s=5.0)
    for _ in range(5):
        breaker.failure(0.0, counts=False, open_now=False, retry_after=None)
    assert breaker.state(0.0) is BreakerState.CLOSED
    breaker.failure(0.0, counts=False, open_now=True, retry_after=None)
    assert breaker.state(0.0) is BreakerState.OPEN


def test_retry_after_keeps_breaker_open_that_long() -> None:
    """A provider's Retry-After holds traffic off for at least that long."""
    breaker = Breaker(allowed_fails=5, window_s=10.0, cooldown_s=10.0)
    breaker.failure(0.0, counts=True, open_now=False, retry_after=30.0)
    assert breaker.state(29.0) is BreakerState.OPEN
    assert breaker.state(30.0) is BreakerState.HALF_OPEN


@pytest.mark.parametrize(
    "wait",
    [
        pytest.param(100_000.0, id="27-hours"),
        pytest.param(2_300_000_000.0, id="http-date-in-2100"),
        pytest.param(math.inf, id="inf"),
    ],
)
def test_retry_after_is_capped_at_a_few_cooldowns(wait: float) -> None:
    """An absurd Retry-After holds a deployment off RETRY_AFTER_MAX_COOLDOWNS cooldowns, no more."""
    breaker = Breaker(allowed_fails=5, window_s=10.0, cooldown_s=30.0)
    breaker.failure(100.0, counts=True, open_now=False, retry_after=wait)
    cap = 30.0 * RETRY_AFTER_MAX_COOLDOWNS
    assert breaker.open_until == 100.0 + cap
    assert breaker.state(100.0 + cap) is BreakerState.HALF_OPEN


def test_nan_retry_after_is_ignored() -> None:
    """A NaN wait neither opens the breaker nor poisons open_until."""
    breaker = Breaker(allowed_fails=5, window_s=10.0, cooldown_s=30.0)
    breaker.failure(0.0, counts=True, open_now=False, retry_after=math.nan)
    assert breaker.open_until == 0.0
    assert breaker.state(0.0) is BreakerState.CLOSED
