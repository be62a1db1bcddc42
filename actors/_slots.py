"""A deployment's concurrency: `concurrency` slots and a bounded FIFO waiting room.

An attempt runs in the task of the request that makes it; what the actor keeps is
who may run. `take` and `queue` are synchronous: a free slot is taken at once (no
await, no task switch), else the caller gets a `Turn` in the waiting room, unless
it is full. A slot given back goes straight to the oldest turn still waiting, so
one waiter wakes per freed slot and slots are never over-committed.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio


class Turn:
    """A place in the waiting room: `granted` once a slot was handed to it."""

    __slots__ = ("event", "granted")

    def __init__(self) -> None:
        self.event = anyio.Event()
        self.granted = False


class Slots:
    """`size` slots, `room` places to wait for one; `on_free` runs whenever one is given
    back (after it went to a waiter, if any)."""

    __slots__ = ("_on_free", "_waiting", "busy", "room", "size")

    def __init__(self, size: int, room: int, on_free: Callable[[], None]) -> None:
        self.size = size
        self.room = room
        self.busy = 0
        """Slots held (attempts in flight)."""
        # Insertion-ordered: the oldest turn first; a turn that leaves is removed in O(1).
        self._waiting: dict[Turn, None] = {}
        self._on_free = on_free

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def take(self) -> bool:
        """Take a free slot now, if one is free and nobody waits for it."""
        if self.busy < self.size and not self._waiting:
            self.busy += 1
            return True
        return False

    def queue(self) -> Turn | None:
        """A place in the waiting room (None: it is full); wait for `turn.event`, then
        `turn.granted` says whether the slot is the caller's (False: the actor stopped)."""
        if len(self._waiting) >= self.room:
            return None
        turn = Turn()
        self._waiting[turn] = None
        return turn

    def give_back(self) -> None:
        """The caller's slot is free: the oldest waiter gets it, else it is free."""
        waiting = self._waiting
        if waiting:
            turn = next(iter(waiting))
            del waiting[turn]
            turn.granted = True
            turn.event.set()
        else:
            self.busy -= 1
        self._on_free()

    def leave(self, turn: Turn) -> None:
        """`turn` stops waiting (deadline, cancellation); a slot it was given goes on."""
        if turn.granted:
            self.give_back()
        else:
            self._waiting.pop(turn, None)

    def drain(self) -> None:
        """Empty the waiting room (the actor stops): every turn wakes, without a slot."""
        turns, self._waiting = self._waiting, {}
        for turn in turns:
            turn.event.set()
