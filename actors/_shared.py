"""Cluster mode's plug point: the admission state a deployment shares with other daemons.

Admission stays synchronous (see `_deployment`): the actor spends rpm/tpm from
slices of the cluster's budget leased ahead of time (`LeasedLimiter`), and tells
its `Shared` when its breaker opens or its probe closes it. What carries this to
the other daemons (Redis, in `dispatcher.cluster`) plugs in through `Sharing`;
this layer knows only these protocols and does no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, Protocol

import anyio
from anyio.abc import TaskStatus

from config import Deployment

from ._limits import Breaker, RateLimiter

LEASE_HORIZON_S: Final = 0.1
"""A lease covers about this long of a daemon's spending at its current rate."""
MIN_SLICE: Final = 1 / 1000
"""The smallest lease, as a share of the budget (never less than one request's need)."""
MAX_SLICE: Final = 1 / 32
"""The largest lease, as a share of the budget: what one daemon may hold unspent."""
SHORT_WAIT_S: Final = 0.005
"""The retry hint of a request refused while its lease is on the way (see `refill`)."""


class Limiter(Protocol):
    """An rpm/tpm budget: what the actor reserves from at admission (see `RateLimiter`)."""

    def try_reserve(self, tokens: int, now: float) -> float: ...

    def release(self, tokens: int) -> None: ...

    def settle(self, reserved: int, actual: int, now: float) -> None: ...

    def used(self, now: float) -> tuple[float, float]: ...

    def share(self, now: float) -> float | None: ...

    def refill(self) -> anyio.Event | None:
        """After a refusal: an event set when budget arrived (None: none is on its way)."""


class Shared(Protocol):
    """One deployment's link to the cluster, owned by its actor.

    The actor runs `run` while it runs itself and calls `close` when it stops; it
    reports breaker transitions that the other daemons must see at once.
    """

    @property
    def limiter(self) -> Limiter: ...

    def opened(self, hold_s: float) -> None:
        """The breaker opened here (failures, auth, or a Retry-After) for `hold_s`."""

    def closed(self) -> None:
        """The half-open probe admitted here succeeded."""

    async def run(self, *, task_status: TaskStatus[None]) -> None: ...

    def close(self) -> None: ...


Sharing = Callable[[Deployment, Breaker], Shared]
"""Makes a deployment's `Shared` (the cluster passes one to every actor it builds)."""


class LeasedLimiter:
    """rpm/tpm spent from slices of a shared budget, leased ahead of time.

    Connected, `try_reserve` spends the local balance (no I/O); when the balance
    runs low, `on_low` wakes the leasing task, which asks for `wanted()` and
    applies the answer with `grant()`. A request that finds no room is refused at
    once, with a `refill` event the caller may wait on (one round trip) before it
    submits again; a lease covers every request waiting so. Slices follow the spending rate
    (`LEASE_HORIZON_S` of it, within `MIN_SLICE`..`MAX_SLICE` of the budget), so a
    busy daemon makes few round trips and an idle one holds little; what is held
    unspent is given back (`give_back`). Disconnected, the `fallback` local budget
    (the cluster's divided by the daemons last seen) decides alone.
    """

    __slots__ = (
        "_measured_at",
        "_on_low",
        "_rate_r",
        "_rate_t",
        "_ready",
        "_retry_at",
        "_spent_r",
        "_spent_t",
        "_waiting_r",
        "_waiting_t",
        "asking",
        "balance_r",
        "balance_t",
        "cluster_used",
        "connected",
        "fallback",
        "last_spend",
        "need_t",
        "rpm",
        "tpm",
    )

    def __init__(self, rpm: int, tpm: int, now: float, *, on_low: Callable[[], None]) -> None:
        self.rpm = float(rpm)
        self.tpm = float(tpm)
        self._on_low = on_low
        self.connected = False
        self.fallback = RateLimiter(rpm, tpm, now)
        self.balance_r = 0.0
        self.balance_t = 0.0
        self.need_t = 0.0
        """tpm the next request needs (the last one's, or the refused one's)."""
        self.asking = False
        """The balance ran low, or a request found no room: the leasing task should lease."""
        self.last_spend = now
        self.cluster_used = (0.0, 0.0)
        """Requests and tokens used of the cluster's budget, as of the last lease."""
        self._retry_at = 0.0
        self._ready: anyio.Event | None = None
        self._waiting_r = 0.0
        self._waiting_t = 0.0
        self._spent_r = 0.0
        self._spent_t = 0.0
        self._rate_r = 0.0
        self._rate_t = 0.0
        self._measured_at = now

    # -- what the actor calls (synchronous) ------------------------------------

    def try_reserve(self, tokens: int, now: float) -> float:
        """Reserve one request and `tokens`; 0.0, or the seconds to wait (nothing taken)."""
        if not self.connected:
            return self.fallback.try_reserve(tokens, now)
        need_t = min(float(tokens), self.tpm) if self.tpm else 0.0
        self.need_t = need_t
        if (not self.rpm or self.balance_r >= 1.0) and self.balance_t >= need_t:
            if self.rpm:
                self.balance_r -= 1.0
                self._spent_r += 1.0
            if self.tpm:
                self.balance_t -= tokens  # a request larger than the budget runs into debt
                self._spent_t += tokens
            self.last_spend = now
            if self._low():
                self._ask()
            return 0.0
        self._ask()
        if now < self._retry_at:  # the cluster said: no room before then
            return self._retry_at - now
        self._waiting_r += 1.0
        self._waiting_t += need_t
        return SHORT_WAIT_S

    def release(self, tokens: int) -> None:
        if not self.connected:
            self.fallback.release(tokens)
            return
        if self.rpm:
            self.balance_r += 1.0
        if self.tpm:
            self.balance_t += tokens

    def settle(self, reserved: int, actual: int, now: float) -> None:
        if not self.connected:
            self.fallback.settle(reserved, actual, now)
        elif self.tpm:
            self.balance_t += reserved - actual  # below zero: a debt the next lease pays

    def used(self, now: float) -> tuple[float, float]:
        return self.fallback.used(now) if not self.connected else self.cluster_used

    def refill(self) -> anyio.Event | None:
        if not (self.connected and self.asking and self._waiting_r + self._waiting_t):
            return None
        if self._ready is None:
            self._ready = anyio.Event()
        return self._ready

    def share(self, now: float) -> float | None:
        if not self.connected:
            return self.fallback.share(now)
        if self.tpm:
            return self.cluster_used[1] / self.tpm
        if self.rpm:
            return self.cluster_used[0] / self.rpm
        return None

    # -- what the leasing task calls -------------------------------------------

    def wanted(self, now: float) -> tuple[float, float, float, float]:
        """(want_r, want_t, need_r, need_t): top the balance up to `want`, and grant
        nothing unless at least `need` fits (what the next request takes)."""
        elapsed = now - self._measured_at
        if elapsed >= 0.01:
            # Up at once, down by halves: a burst is served, a lull frees the budget.
            self._rate_r = max(self._spent_r / elapsed, self._rate_r / 2)
            self._rate_t = max(self._spent_t / elapsed, self._rate_t / 2)
            self._spent_r = self._spent_t = 0.0
            self._measured_at = now
        want_r = want_t = need_r = need_t = 0.0
        if self.rpm:
            need_r = max(1.0 - self.balance_r, 0.0)
            target = _clamp(self._rate_r * LEASE_HORIZON_S, self.rpm, self._waiting_r)
            want_r = max(target - self.balance_r, need_r)
        if self.tpm:
            need_t = max(self.need_t - self.balance_t, 0.0)
            target = _clamp(self._rate_t * LEASE_HORIZON_S, self.tpm, self._waiting_t)
            want_t = max(target - self.balance_t, need_t)
        return want_r, want_t, need_r, need_t

    def grant(
        self, r: float, t: float, retry_in: float, used: tuple[float, float], now: float
    ) -> None:
        """Apply a lease answer: `r` requests and `t` tokens (or nothing, and the budget
        has room for `need` in `retry_in` seconds)."""
        self.asking = False  # the next spend that runs low, or refusal, asks again
        self._wake_waiters()
        self.balance_r += r
        self.balance_t += t
        self.cluster_used = used
        self._retry_at = now + retry_in if not (r or t) else 0.0

    def take_debt(self) -> float:
        """Tokens overspent (settled above their reservation): the next lease pays them."""
        if self.balance_t >= 0.0:
            return 0.0
        debt, self.balance_t = -self.balance_t, 0.0
        return debt

    def give_back(self) -> tuple[float, float]:
        """Empty the balance (to return it to the cluster's budget)."""
        r, t = self.balance_r, max(self.balance_t, 0.0)
        self.balance_r = 0.0
        self.balance_t = min(self.balance_t, 0.0)
        return r, t

    def connect(self) -> None:
        """Joined (or rejoined) the cluster: spend leases from now on."""
        self.connected = True
        self.balance_r = self.balance_t = 0.0
        self.asking = False
        self._ask()  # lease at once rather than refuse the first request

    def disconnect(self, members: int, now: float) -> None:
        """The cluster is unreachable: decide locally on this daemon's share of the budget.

        The balance is dropped (the cluster counted it as spent; spending it twice
        is what a local budget must not do).
        """
        members = max(members, 1)
        self._wake_waiters()  # they go on the local budget now
        self.connected = False
        self.balance_r = self.balance_t = 0.0
        self.fallback = RateLimiter(int(self.rpm // members), int(self.tpm // members), now)

    def _wake_waiters(self) -> None:
        self._waiting_r = self._waiting_t = 0.0
        if self._ready is not None:
            self._ready.set()
            self._ready = None

    def _low(self) -> bool:
        if self.rpm and self.balance_r < max(self._rate_r * LEASE_HORIZON_S / 2, 1.0):
            return True
        return bool(self.tpm) and self.balance_t < max(
            self._rate_t * LEASE_HORIZON_S / 2, self.need_t
        )

    def _ask(self) -> None:
        if not self.asking:
            self.asking = True
            self._on_low()

    def __repr__(self) -> str:
        mode = "leased" if self.connected else "local"
        return (
            f"<LeasedLimiter {mode} [requests {self.balance_r:g} of {self.rpm:g}/min | "
            f"tokens {self.balance_t:g} of {self.tpm:g}/min]>"
        )


def _clamp(value: float, capacity: float, need: float) -> float:
    return max(min(value, capacity * MAX_SLICE), capacity * MIN_SLICE, need)
