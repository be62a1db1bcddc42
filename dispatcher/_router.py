"""Model groups, strategies and fallback chains.

The router only orders candidates; the supervisor walks them. A `Chain` hands
out each deployment at most once, group by group, ordering a group's
deployments by the strategy at the moment the chain reaches it (so load and
latency are read when they matter, not when the request arrived).
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable, Mapping

from actors import DeploymentActor, ErrorClass
from config import RouterConfig


class Router:
    """Orders a group's deployments by strategy and builds fallback chains."""

    def __init__(
        self,
        config: RouterConfig,
        actors: Iterable[DeploymentActor],
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        groups: dict[str, list[DeploymentActor]] = {}
        for actor in actors:
            groups.setdefault(actor.group, []).append(actor)
        self.groups: Mapping[str, tuple[DeploymentActor, ...]] = {
            name: tuple(members) for name, members in groups.items()
        }
        self._rng = rng or random.Random()
        self._order = {
            "simple-shuffle": self._shuffle,
            "least-busy": self._least_busy,
            "latency": self._latency,
            "usage": self._usage,
        }[config.strategy]

    def order(self, group: str) -> list[DeploymentActor]:
        """The group's deployments, best first, by the configured strategy."""
        return self._order(self.groups.get(group, ()))

    def chain(self, group: str, request_fallbacks: tuple[str, ...] = ()) -> Chain:
        """Candidates for `group`: its deployments, then each fallback group's."""
        return Chain(self, self.chain_groups(group, request_fallbacks))

    def chain_groups(self, group: str, request_fallbacks: tuple[str, ...] = ()) -> list[str]:
        """`group`, then the request's, `[router.fallbacks]` and default fallbacks, once each."""
        config = self.config
        groups = [
            group,
            *request_fallbacks,
            *config.fallbacks.get(group, ()),
            *config.default_fallbacks,
        ]
        return list(dict.fromkeys(groups))

    def special_fallbacks(self, group: str, error: ErrorClass) -> tuple[str, ...] | None:
        """The only chain allowed after `error` (None: the generic chain goes on)."""
        if error is ErrorClass.CONTEXT_WINDOW_EXCEEDED:
            return self.config.context_window_fallbacks.get(group, ())
        if error is ErrorClass.CONTENT_POLICY:
            return self.config.content_policy_fallbacks.get(group, ())
        return None

    # -- strategies ----------------------------------------------------------

    def _shuffle(self, members: tuple[DeploymentActor, ...]) -> list[DeploymentActor]:
        if len(members) < 2:
            return list(members)
        # Weighted random permutation (Efraimidis-Spirakis): key = u ** (1 / weight).
        rand = self._rng.random
        return sorted(members, key=lambda a: rand() ** (1.0 / a.spec.weight), reverse=True)

    def _least_busy(self, members: tuple[DeploymentActor, ...]) -> list[DeploymentActor]:
        rand = self._rng.random
        return sorted(members, key=lambda a: (a.load(), rand()))

    def _latency(self, members: tuple[DeploymentActor, ...]) -> list[DeploymentActor]:
        # Deployments without a measurement yet go first, so every one gets measured.
        rand = self._rng.random
        return sorted(members, key=lambda a: (a.latency_ewma() or 0.0, rand()))

    def _usage(self, members: tuple[DeploymentActor, ...]) -> list[DeploymentActor]:
        rand = self._rng.random
        return sorted(members, key=lambda a: (a.usage(), rand()))


class Chain:
    """An ordered walk over candidate deployments, each at most once."""

    __slots__ = ("_current", "_groups", "_router", "_seen", "group")

    def __init__(self, router: Router, groups: list[str]) -> None:
        self._router = router
        self._groups = deque(groups)
        self._current: deque[DeploymentActor] = deque()
        self._seen: set[str] = set()
        self.group = groups[0]

    def __iter__(self) -> Chain:
        return self

    def __next__(self) -> DeploymentActor:
        while True:
            while self._current:
                actor = self._current.popleft()
                if actor.name not in self._seen:
                    self._seen.add(actor.name)
                    return actor
            if not self._groups:
                raise StopIteration
            self.group = self._groups.popleft()
            self._current.extend(self._router.order(self.group))

    def divert(self, groups: tuple[str, ...]) -> None:
        """Replace everything still ahead with `groups` (context-window, content-policy)."""
        self._current.clear()
        self._groups = deque(groups)
