"""Per-deployment admission: the rpm/tpm limiter and the circuit breaker.

Both are plain state machines over a caller-supplied clock, so the actor can
consult them synchronously at submit time (no await between check and reserve)
and tests can drive them with explicit times.
"""

from __future__ import annotations

import enum
from collections import deque
from typing import Final

RETRY_AFTER_MAX_COOLDOWNS: Final = 4.0
"""A provider's Retry-After holds a deployment off for at most this many `cooldown_s`.

A wait is a hint, not an order: one 429 saying ``Retry-After: 100000`` (or an HTTP date
decades ahead) must not take a deployment out for a day. Past the cap the half-open probe
asks the provider again.
"""


class TokenBucket:
    """`per_minute` units refilled continuously; starts full. 0 means unlimited."""

    __slots__ = ("_level", "_rate", "_stamp", "capacity")

    def __init__(self, per_minute: int, now: float) -> None:
        self.capacity = float(per_minute)
        self._rate = per_minute / 60.0
        self._level = self.capacity
        self._stamp = now

    def _refill(self, now: float) -> None:
        if now > self._stamp:
            self._level = min(self.capacity, self._level + (now - self._stamp) * self._rate)
            self._stamp = now

    def wait_time(self, amount: float, now: float) -> float:
        """Seconds until `amount` fits (0.0: it fits now)."""
        if not self.capacity:
            return 0.0
        self._refill(now)
        # A request larger than the whole bucket may go when the bucket is full.
        need = min(amount, self.capacity)
        return 0.0 if self._level >= need else (need - self._level) / self._rate

    def take(self, amount: float, now: float) -> None:
        if self.capacity:
            self._refill(now)
            self._level -= amount

    def give_back(self, amount: float) -> None:
        if self.capacity:
            self._level = min(self.capacity, self._level + amount)

    def used(self, now: float) -> float:
        """Units used out of the last minute's budget."""
        if not self.capacity:
            return 0.0
        self._refill(now)
        return self.capacity - self._level


class RateLimiter:
    """rpm and tpm budgets; a request reserves both before it is dispatched."""

    __slots__ = ("requests", "tokens")

    def __init__(self, rpm: int, tpm: int, now: float) -> None:
        self.requests = TokenBucket(rpm, now)
        self.tokens = TokenBucket(tpm, now)

    def try_reserve(self, tokens: int, now: float) -> float:
        """Reserve one request and `tokens`; return 0.0, or the seconds to wait (nothing taken)."""
        wait = max(self.requests.wait_time(1, now), self.tokens.wait_time(tokens, now))
        if wait == 0.0:
            self.requests.take(1, now)
            self.tokens.take(tokens, now)
        return wait

    def release(self, tokens: int) -> None:
        """Give back a reservation that never reached the provider."""
        self.requests.give_back(1)
        self.tokens.give_back(tokens)

    def settle(self, reserved: int, actual: int, now: float) -> None:
        """Correct a reservation with the tokens the provider reported."""
        if actual > reserved:
            self.tokens.take(actual - reserved, now)
        elif actual < reserved:
            self.tokens.give_back(reserved - actual)

    def used(self, now: float) -> tuple[float, float]:
        """Requests and tokens used out of the last minute's budgets."""
        return self.requests.used(now), self.tokens.used(now)

    def refill(self) -> None:
        """Nothing is on its way: a local budget refills with time alone."""
        return None

    def share(self, now: float) -> float | None:
        """Share of the budget used (tpm first, else rpm); None when both are unlimited."""
        if self.tokens.capacity:
            return self.tokens.used(now) / self.tokens.capacity
        if self.requests.capacity:
            return self.requests.used(now) / self.requests.capacity
        return None


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Breaker:
    """Opens after `allowed_fails` failures within `window_s`, or at once when told to.

    While open nothing passes. When the cooldown ends one probe passes
    (half-open): its success closes the breaker, its failure opens it again.
    A provider's Retry-After keeps the breaker open that long, at most
    `RETRY_AFTER_MAX_COOLDOWNS` x `cooldown_s`.

    `shared` (cluster mode): other daemons open and close it too (`hold`, `close`);
    the half-open probe is one for the whole cluster, so it passes only once the
    cluster granted it here (`grant_probe`); a success that arrives while the
    breaker is open (an attempt admitted before another daemon opened it) does not
    close it.
    """

    __slots__ = (
        "_fails",
        "_probe_until",
        "_probing",
        "allowed_fails",
        "cooldown_s",
        "open_until",
        "shared",
        "window_s",
    )

    def __init__(
        self, allowed_fails: int, window_s: float, cooldown_s: float, *, shared: bool = False
    ) -> None:
        self.allowed_fails = allowed_fails
        self.window_s = window_s
        self.cooldown_s = cooldown_s
        self.open_until = 0.0
        self.shared = shared
        self._fails: deque[float] = deque()
        self._probing = False
        self._probe_until = 0.0

    def state(self, now: float) -> BreakerState:
        if now < self.open_until:
            return BreakerState.OPEN
        if self.open_until:
            return BreakerState.HALF_OPEN
        return BreakerState.CLOSED

    def admit(self, now: float) -> bool:
        """May an attempt start now? In half-open, only the first one does (the probe)."""
        state = self.state(now)
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.OPEN or self._probing:
            return False
        if self.shared and now >= self._probe_until:
            return False  # another daemon holds the cluster's probe, or nobody yet
        self._probing = True
        return True

    @property
    def probing(self) -> bool:
        """A half-open probe admitted here is under way."""
        return self._probing

    def release(self) -> None:
        """An admitted attempt never reached the provider (e.g. the inbox was full)."""
        self._probing = False

    def success(self, now: float = 0.0) -> None:
        if self.shared and now < self.open_until:
            self._fails.clear()  # a late success says nothing against the cluster's open
            return
        self._probing = False
        self._probe_until = 0.0
        self.open_until = 0.0
        self._fails.clear()

    def grant_probe(self, until: float) -> None:
        """(shared) The cluster's half-open probe is this daemon's until `until` (0: no more)."""
        self._probe_until = until

    def hold(self, until: float) -> None:
        """(shared) Another daemon opened the breaker: stay open until at least `until`."""
        if until > self.open_until:
            self.open_until = until
            self._probe_until = 0.0
            self._fails.clear()

    def close(self) -> None:
        """(shared) Another daemon's probe succeeded."""
        self._probing = False
        self._probe_until = 0.0
        self.open_until = 0.0
        self._fails.clear()

    def failure(
        self, now: float, *, counts: bool, open_now: bool, retry_after: float | None
    ) -> None:
        was_probe, self._probing = self._probing, False
        if retry_after is not None and retry_after > 0.0:  # False for NaN too
            hold = min(retry_after, self.cooldown_s * RETRY_AFTER_MAX_COOLDOWNS)
            if now + hold > self.open_until:
                self.open_until = now + hold
                self._probe_until = 0.0
        if open_now or (counts and was_probe):
            self._open(now)
        elif counts:
            self._fails.append(now)
            while self._fails and self._fails[0] <= now - self.window_s:
                self._fails.popleft()
            if len(self._fails) >= self.allowed_fails:
                self._open(now)

    def _open(self, now: float) -> None:
        self.open_until = max(self.open_until, now + self.cooldown_s)
        self._probe_until = 0.0
        self._fails.clear()
