"""The daemon's client connections, over every listener: their limits, their count, their log.

File descriptors are one budget for the whole process: client connections, upstream
connections (one per request in flight to a deployment), the job store and the daemon's
own. `connection_limit` reads RLIMIT_NOFILE (raised to its hard limit first) and keeps
room for the rest, so that a flood of client connections can never make `accept()` fail
with EMFILE, which is the state where the daemon refuses every new client silently.

At the limit, a new connection takes the place of the one that has waited longest for a
request (a fresh connection that has not sent its head yet, or a kept-alive one between
requests): idle and slowloris connections cannot lock well-behaved clients out. Only when
every connection has a request in flight is the new one refused (503).
"""

from __future__ import annotations

import logging
import resource
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Final, Protocol

import msgspec

from config import Deployment, ServerConfig

from ._exceptions import DaemonError

logger = logging.getLogger("dispatcher.connections")

_BASE_FDS: Final = 64
"""Descriptors the daemon holds besides connections: std streams, event loop, signal pipe,
listeners, job store (database, WAL, shared memory), DNS and TLS files, logging."""
_MIN_CONNECTIONS: Final = 16
_FD_CEILING: Final = 1 << 20
"""Never ask for more than Linux's default nr_open when raising the soft limit."""


class Limits(msgspec.Struct, frozen=True, kw_only=True):
    """What one request may cost a connection (from `[server]`)."""

    max_header_bytes: int
    max_headers: int
    header_timeout_s: float
    body_timeout_s: float
    send_timeout_s: float
    linger_bytes: int
    """After an error answer, what may still be read (and dropped) so the client sees it."""

    @classmethod
    def of(cls, server: ServerConfig) -> Limits:
        return cls(
            max_header_bytes=server.max_header_bytes,
            max_headers=server.max_headers,
            header_timeout_s=server.header_timeout_s,
            body_timeout_s=server.body_timeout_s,
            send_timeout_s=server.send_timeout_s,
            linger_bytes=max(server.max_body_bytes, 1 << 20),
        )


class Evictable(Protocol):
    def evict(self) -> None:
        """Close this connection now: a newer one needs its place."""


class ConnectionStatistics(msgspec.Struct, frozen=True):
    open: int
    idle: int
    limit: int
    evicted: int
    refused: int


class LogBudget:
    """At most `per_minute` lines of one kind a minute (a token bucket); the next line
    that gets through says how many were dropped. A client cannot flood the log."""

    def __init__(
        self,
        logger: logging.Logger,
        level: int,
        *,
        per_minute: int = 10,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._level = level
        self._capacity = float(per_minute)
        self._tokens = float(per_minute)
        self._rate = per_minute / 60.0
        self._clock = clock
        self._last = clock()
        self.suppressed = 0

    def log(self, message: str, *args: object) -> None:
        now = self._clock()
        self._tokens = min(self._capacity, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens < 1.0:
            self.suppressed += 1
            return
        self._tokens -= 1.0
        if self.suppressed:
            message += " (%d more like this were not logged)"
            args = (*args, self.suppressed)
            self.suppressed = 0
        self._logger.log(self._level, message, *args)


class Connections:
    """Every client connection of one daemon, at most `limit` open at once.

    Protocols call `admit` when they are made, `busy` when a request head is complete,
    `idle` when they wait for the next one, `closing` when they only wait for the client
    to read an error answer (evicted first), and `release` when they are gone.
    """

    def __init__(
        self,
        limits: Limits,
        limit: int,
        *,
        on_reject: Callable[[str], None] = lambda reason: None,
    ) -> None:
        self.limits = limits
        self.limit = limit
        self.on_reject = on_reject
        self.invalid_log = LogBudget(logger, logging.WARNING)
        self._shed_log = LogBudget(logger, logging.WARNING)
        self._open: set[Evictable] = set()
        self._idle: OrderedDict[Evictable, None] = OrderedDict()  # evicted from the front
        self._evicted = 0
        self._refused = 0

    def admit(self, conn: Evictable) -> bool:
        """Count `conn` in, making room if needed; False: refuse it (all are busy)."""
        if len(self._open) >= self.limit:
            victim = next(iter(self._idle), None)
            if victim is None:
                self._refused += 1
                self.on_reject("connection_limit")
                self._shed_log.log(
                    "%d connections open, each with a request in flight: refusing new ones "
                    "(max_connections)",
                    len(self._open),
                )
                return False
            self.release(victim)
            victim.evict()
            self._evicted += 1
            self._shed_log.log(
                "%d connections open: closing the longest idle ones for new clients "
                "(max_connections)",
                self.limit,
            )
        self._open.add(conn)
        self._idle[conn] = None
        return True

    def busy(self, conn: Evictable) -> None:
        self._idle.pop(conn, None)

    def idle(self, conn: Evictable) -> None:
        if conn in self._open:
            self._idle[conn] = None
            self._idle.move_to_end(conn)

    def closing(self, conn: Evictable) -> None:
        if conn in self._open:
            self._idle[conn] = None
            self._idle.move_to_end(conn, last=False)

    def release(self, conn: Evictable) -> None:
        self._open.discard(conn)
        self._idle.pop(conn, None)

    def statistics(self) -> ConnectionStatistics:
        return ConnectionStatistics(
            len(self._open), len(self._idle), self.limit, self._evicted, self._refused
        )

    def __repr__(self) -> str:
        s = self.statistics()
        return (
            f"<Connections [open {s.open}/{s.limit} | idle {s.idle}] "
            f"evicted {s.evicted}, refused {s.refused}>"
        )


def raise_fd_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard one when allowed; the soft limit after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = _FD_CEILING if hard == resource.RLIM_INFINITY else min(hard, _FD_CEILING)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            logger.info("cannot raise the open-file limit from %d to %d: %s", soft, target, exc)
    return _FD_CEILING if soft == resource.RLIM_INFINITY else soft


def reserved_fds(deployments: Iterable[Deployment]) -> int:
    """Descriptors kept from client connections: one per upstream request in flight, and
    the daemon's own."""
    return _BASE_FDS + sum(d.concurrency for d in deployments)


def connection_limit(configured: int, fd_limit: int, deployments: Iterable[Deployment]) -> int:
    """`max_connections`, lowered to what the open-file limit leaves for clients."""
    reserved = reserved_fds(deployments)
    room = fd_limit - reserved
    if room < _MIN_CONNECTIONS:
        raise DaemonError(
            f"the open-file limit ({fd_limit}) leaves {max(room, 0)} descriptors for client "
            f"connections after {reserved} kept for upstream requests (the deployments' "
            f"concurrency) and the daemon; raise it (ulimit -n) or lower concurrency"
        )
    return min(configured, room)
