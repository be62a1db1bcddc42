"""Connections (max_connections, who is evicted), the fd budget, and the log budget."""

from __future__ import annotations

import logging

import pytest

from config import parse_config
from dispatcher import Connections, DaemonError
from dispatcher._connections import Limits, LogBudget, connection_limit

LIMITS = Limits(
    max_header_bytes=65536,
    max_headers=100,
    header_timeout_s=10,
    body_timeout_s=60,
    send_timeout_s=60,
    linger_bytes=1 << 20,
)


class Conn:
    def __init__(self, name: str) -> None:
        self.name = name
        self.evicted = False

    def evict(self) -> None:
        self.evicted = True

    def __repr__(self) -> str:
        return self.name


def test_at_the_limit_the_longest_idle_connection_makes_room() -> None:
    """A new connection evicts the one that has waited longest for a request."""
    rejected: list[str] = []
    conns = Connections(LIMITS, 3, on_reject=rejected.append)
    a, b, c, d = Conn("a"), Conn("b"), Conn("c"), Conn("d")
    for conn in (a, b, c):
        assert conns.admit(conn)
    conns.busy(a)  # a has a request in flight: never evicted
    conns.busy(b)
    conns.idle(b)  # b waits again, now after c
    assert conns.admit(d)
    assert (a.evicted, b.evicted, c.evicted) == (False, False, True)
    assert repr(conns) == "<Connections [open 3/3 | idle 2] evicted 1, refused 0>"
    assert rejected == []


def test_closing_connections_are_evicted_first() -> None:
    """A connection lingering after an error answer goes before any idle one."""
    conns = Connections(LIMITS, 2)
    a, b, c = Conn("a"), Conn("b"), Conn("c")
    conns.admit(a)
    conns.admit(b)
    conns.closing(b)
    assert conns.admit(c)
    assert b.evicted and not a.evicted


def test_when_every_connection_is_busy_the_new_one_is_refused() -> None:
    """Nothing idle to evict: refused, counted as a `connection_limit` rejection."""
    rejected: list[str] = []
    conns = Connections(LIMITS, 2, on_reject=rejected.append)
    a, b = Conn("a"), Conn("b")
    for conn in (a, b):
        conns.admit(conn)
        conns.busy(conn)
    assert not conns.admit(Conn("c"))
    assert rejected == ["connection_limit"]
    conns.release(a)
    assert conns.admit(Conn("d"))
    stats = conns.statistics()
    assert (stats.open, stats.refused, stats.evicted) == (2, 1, 0)


def test_released_connections_are_forgotten() -> None:
    """A closed connection never comes back as idle (no late `idle` after release)."""
    conns = Connections(LIMITS, 1)
    a = Conn("a")
    conns.admit(a)
    conns.release(a)
    conns.idle(a)
    assert conns.statistics().open == 0 and conns.statistics().idle == 0


def deployments(*concurrency: int) -> str:
    return "\n".join(
        f'[[deployment]]\nname = "d{i}"\ngroup = "g"\nprovider = "mock"\nmodel = "m"\n'
        f"concurrency = {n}"
        for i, n in enumerate(concurrency)
    )


def test_connection_limit_keeps_room_for_upstreams_and_the_daemon() -> None:
    """max_connections is lowered to the fd limit minus 64 and every upstream slot."""
    deps = parse_config(deployments(8, 32)).deployment
    assert connection_limit(1024, 1 << 16, deps) == 1024
    assert connection_limit(1024, 256, deps) == 256 - 64 - 40
    with pytest.raises(DaemonError, match=r"open-file limit \(110\).*ulimit -n"):
        connection_limit(1024, 110, deps)


def test_log_budget_lets_a_few_lines_through_and_counts_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """10 lines a minute; the first line after a gap says how many were dropped."""
    now = [0.0]
    budget = LogBudget(logging.getLogger("t"), logging.WARNING, per_minute=10, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING):
        for i in range(100):
            budget.log("bad request %d", i)
        assert len(caplog.records) == 10
        now[0] += 6.0  # one token back
        budget.log("bad request %d", 100)
    assert len(caplog.records) == 11
    assert caplog.records[-1].getMessage() == (
        "bad request 100 (90 more like this were not logged)"
    )
