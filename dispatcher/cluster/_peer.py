"""One deployment's shared state (`actors.Shared`): leased budget, breaker, probe lock.

Keys (prefix `llm-dispatcher:<cluster name>:`):
    budget:<deployment>   hash: the rpm/tpm token buckets (the LEASE script)
    breaker:<deployment>  set while the breaker is open; its expiry is the hold
    probe:<deployment>    the half-open probe's lock (SET NX, value: the member holding it)

One task per deployment (`run`, started by its actor) does every round trip, so
admission never waits on Redis: it leases budget when the `LeasedLimiter` runs
low, gives idle budget back, publishes the breaker's transitions, and takes the
probe lock when the cooldown ends.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from time import monotonic
from typing import Final

import anyio
import msgspec
from anyio.abc import TaskStatus

from actors import Breaker, BreakerState, LeasedLimiter
from config import Deployment

from ._link import Disconnected, Link, Note

logger = logging.getLogger("dispatcher.cluster")

IDLE_RETURN_S: Final = 1.0
"""Budget leased but not spent for this long goes back to the cluster."""
PROBE_IDLE_S: Final = 1.0
"""A probe lock won here but not used for this long is given back for another daemon."""
PARTIAL_RETRY_S: Final = 0.05
"""After a lease that got less than it asked for, the next one waits this long."""
RETRY_MAX_S: Final = 1.0
"""The longest wait before asking again for budget that had no room, or for a probe lock."""


class Peer:
    """A deployment's link to the same deployment on the other daemons."""

    def __init__(self, link: Link, spec: Deployment, breaker: Breaker) -> None:
        self.name = spec.name
        self._link = link
        self._spec = spec
        self._breaker = breaker
        self._wake = anyio.Event()
        self._limiter = LeasedLimiter(spec.rpm, spec.tpm, monotonic(), on_low=self._poke)
        self._outbox: deque[tuple[str, float]] = deque()
        self._closed = False
        self._catch_up = False
        self._lease_retry_at = 0.0
        self._probe_retry_at = 0.0
        self._holding = False
        self._grant_until = 0.0
        self._budget = link.key("budget", spec.name)
        self._state = link.key("breaker", spec.name)
        self._probe = link.key("probe", spec.name)
        self._lock_ms = int((PROBE_IDLE_S + spec.timeout_s + 1.0) * 1000)

    @property
    def limiter(self) -> LeasedLimiter:
        return self._limiter

    # -- what the actor calls (synchronous) ----------------------------------------

    def opened(self, hold_s: float) -> None:
        if self._link.connected:
            self._outbox.append(("open", hold_s))
            self._wake.set()

    def closed(self) -> None:
        if self._link.connected:
            self._outbox.append(("close", 0.0))
            self._wake.set()

    def close(self) -> None:
        self._closed = True
        self._wake.set()

    # -- what the link calls ---------------------------------------------------------

    def joined(self) -> None:
        self._breaker.shared = True
        self._catch_up = True
        self._limiter.connect()  # wakes the task

    def left(self, members: int) -> None:
        self._breaker.shared = False  # half-open probes are local again
        self._breaker.grant_probe(0.0)
        self._holding = False
        self._outbox.clear()
        self._limiter.disconnect(members, monotonic())
        self._wake.set()

    def heard(self, note: Note) -> None:
        breaker = self._breaker
        if note.op == "open":
            breaker.hold(monotonic() + note.hold_ms / 1000)
            logger.info(
                "cluster: %s opened by %s for %.1fs (heard %.1f ms after)",
                self.name,
                note.member,
                note.hold_ms / 1000,
                max(time.time() - note.at, 0.0) * 1000,
            )
        elif note.op == "close":
            breaker.close()
            logger.info("cluster: %s closed by %s (its probe succeeded)", self.name, note.member)
        else:  # "free": a probe lock is free again
            self._probe_retry_at = 0.0
        self._wake.set()

    # -- the task ----------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        link = self._link
        link.attach(self)
        task_status.started()
        try:
            while not self._closed:
                with anyio.move_on_after(self._next_wait(monotonic())):
                    await self._wake.wait()
                self._wake = anyio.Event()
                if self._closed or not link.connected:
                    continue
                try:
                    await self._step()
                except Disconnected:
                    pass
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(1.0):
                await self._give_back()
            link.detach(self)

    def _poke(self) -> None:
        self._wake.set()

    def _next_wait(self, now: float) -> float:
        if self._closed or self._outbox or self._catch_up:
            return 0.0
        waits = [math.inf]
        limiter = self._limiter
        if limiter.connected:
            if limiter.asking:
                waits.append(self._lease_retry_at - now)
            elif limiter.balance_r > 0 or limiter.balance_t > 0:
                waits.append(limiter.last_spend + IDLE_RETURN_S - now)
        breaker = self._breaker
        if self._link.connected and breaker.shared:
            state = breaker.state(now)
            if self._holding and state is not BreakerState.HALF_OPEN:
                waits.append(0.0)  # the breaker moved on: free the lock
            elif state is BreakerState.OPEN:
                waits.append(breaker.open_until - now)
            elif state is BreakerState.HALF_OPEN and not breaker.probing:
                waits.append(
                    self._grant_until - now if self._holding else self._probe_retry_at - now
                )
        return max(min(waits), 0.0)

    async def _step(self) -> None:
        link = self._link
        while self._outbox:
            op, hold_s = self._outbox[0]
            await self._publish(op, hold_s)
            self._outbox.popleft()
        if self._catch_up:
            await self._sync_breaker()
            self._catch_up = False
        limiter = self._limiter
        now = monotonic()
        if limiter.connected and limiter.asking and now >= self._lease_retry_at:
            await self._lease(now)
        elif (
            limiter.connected
            and (limiter.balance_r > 0 or limiter.balance_t > 0)
            and now - limiter.last_spend >= IDLE_RETURN_S
        ):
            await self._give_back()
        if link.connected and self._breaker.shared:
            await self._probe_step(monotonic())

    async def _lease(self, now: float) -> None:
        limiter = self._limiter
        debt = limiter.take_debt()
        want_r, want_t, need_r, need_t = limiter.wanted(now)
        spec = self._spec
        answer = await self._link.call(
            lambda scripts, _: scripts.lease(
                keys=[self._budget],
                args=[spec.rpm, spec.tpm, want_r, want_t, need_r, need_t, 0, -debt],
            )
        )
        got_r, got_t, wait, used_r, used_t = (float(x) for x in answer)
        now = monotonic()
        limiter.grant(got_r, got_t, wait, (used_r, used_t), now)
        if not (got_r or got_t):
            self._lease_retry_at = now + min(max(wait, 0.001), RETRY_MAX_S)
        elif got_r < want_r * 0.999 or got_t < want_t * 0.999:
            # The budget is nearly spent: ask again later, not at every request.
            self._lease_retry_at = now + PARTIAL_RETRY_S
        else:
            self._lease_retry_at = 0.0

    async def _give_back(self) -> None:
        limiter = self._limiter
        if not (limiter.connected and self._link.connected):
            return
        debt = limiter.take_debt()
        back_r, back_t = limiter.give_back()
        if not (back_r or back_t or debt):
            return
        spec = self._spec
        try:
            await self._link.call(
                lambda scripts, _: scripts.lease(
                    keys=[self._budget],
                    args=[spec.rpm, spec.tpm, 0, 0, 0, 0, back_r, back_t - debt],
                )
            )
        except Disconnected:
            pass

    async def _publish(self, op: str, hold_s: float) -> None:
        link = self._link
        hold_ms = max(int(hold_s * 1000), 1)
        note = msgspec.json.encode(
            Note(op=op, deployment=self.name, member=link.member, hold_ms=hold_ms, at=time.time())
        )
        if op == "open":
            await link.call(
                lambda scripts, _: scripts.open(
                    keys=[self._state, self._probe],
                    args=[link.member, hold_ms, link.channel, note],
                )
            )
            logger.info("cluster: %s opened here for %.1fs: told every daemon", self.name, hold_s)
        else:
            await link.call(
                lambda scripts, _: scripts.close(
                    keys=[self._state, self._probe], args=[link.channel, note]
                )
            )
            logger.info("cluster: %s closed here (probe succeeded): told every daemon", self.name)
        self._holding = False

    async def _sync_breaker(self) -> None:
        """After (re)joining: take the cluster's open state, or tell it ours."""
        pttl = int(await self._link.call(lambda _, client: client.pttl(self._state)))
        now = monotonic()
        if pttl > 0:
            self._breaker.hold(now + pttl / 1000)
            logger.info("cluster: %s is open in the cluster for %.1fs more", self.name, pttl / 1000)
        elif self._breaker.state(now) is BreakerState.OPEN:
            await self._publish("open", self._breaker.open_until - now)

    async def _probe_step(self, now: float) -> None:
        """Half-open: one daemon of the cluster holds the probe lock and lets one attempt
        through; the others wait for its outcome (a close or open note) or the lock's end."""
        breaker, link = self._breaker, self._link
        state = breaker.state(now)
        if self._holding:
            if state is BreakerState.HALF_OPEN and (breaker.probing or now < self._grant_until):
                return  # under way, or still ours to use
            # Unused (or the breaker moved on without us): free it for another daemon.
            self._holding = False
            breaker.grant_probe(0.0)
            note = msgspec.json.encode(Note(op="free", deployment=self.name, member=link.member))
            await link.call(
                lambda scripts, _: scripts.free(
                    keys=[self._probe], args=[link.member, link.channel, note]
                )
            )
            self._probe_retry_at = now + PROBE_IDLE_S  # let another daemon have it first
            return
        if state is not BreakerState.HALF_OPEN or breaker.probing or now < self._probe_retry_at:
            return
        won = await link.call(
            lambda _, client: client.set(self._probe, link.member, nx=True, px=self._lock_ms)
        )
        now = monotonic()
        if won:
            self._holding = True
            self._grant_until = now + PROBE_IDLE_S
            breaker.grant_probe(self._grant_until)
            logger.info("cluster: %s half-open: this daemon holds the cluster's probe", self.name)
            return
        pttl = int(await link.call(lambda _, client: client.pttl(self._probe)))
        self._probe_retry_at = now + (min(pttl / 1000, RETRY_MAX_S) if pttl > 0 else 0.01)
