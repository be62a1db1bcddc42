"""Cluster mode: what a daemon shares with the others on one Redis and `[cluster].name`."""

from __future__ import annotations

from collections.abc import Iterable

import anyio
import msgspec
from anyio.abc import TaskStatus

from actors import Breaker
from config import ClusterConfig, Deployment

from ._link import Disconnected, Link
from ._peer import Peer


class ClusterStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """This daemon's view of the cluster (what the gauges read)."""

    name: str
    member: str
    connected: bool
    members: int
    redis_calls: int
    redis_errors: int


class MemberStatus(msgspec.Struct, frozen=True, kw_only=True):
    member: str
    pid: int = 0
    at: float = 0.0
    """Its last heartbeat (its wall clock)."""


class DeploymentStatus(msgspec.Struct, frozen=True, kw_only=True):
    """A deployment as the whole cluster sees it."""

    name: str
    breaker: str
    """closed | open (for `open_for_s`) | half_open (`probe` holds the one probe)."""
    open_for_s: float = 0.0
    probe: str | None = None
    rpm: int = 0
    rpm_used: float = 0.0
    """Of the cluster's budget, leased to daemons included."""
    tpm: int = 0
    tpm_used: float = 0.0


class ClusterStatus(msgspec.Struct, frozen=True, kw_only=True):
    """`GET /v1/cluster`: members seen, shared breakers, budgets used."""

    enabled: bool = True
    name: str = ""
    redis: str = ""
    member: str = ""
    connected: bool = False
    members: tuple[MemberStatus, ...] = ()
    deployments: tuple[DeploymentStatus, ...] = ()


_member_decoder = msgspec.json.Decoder(MemberStatus)


class Cluster:
    """Shares limits and breakers with the daemons on the same Redis and name.

    `share` is the `actors.Sharing` every actor gets; `run` keeps the link (start it
    before the actors, `close` it after them: the link waits for their leases).
    """

    def __init__(self, config: ClusterConfig) -> None:
        self.config = config
        self.link = Link(config)

    def share(self, spec: Deployment, breaker: Breaker) -> Peer:
        return Peer(self.link, spec, breaker)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        await self.link.run(task_status=task_status)

    def close(self) -> None:
        self.link.close()

    def statistics(self) -> ClusterStatistics:
        link = self.link
        return ClusterStatistics(
            name=link.name,
            member=link.member,
            connected=link.connected,
            members=link.members,
            redis_calls=link.calls,
            redis_errors=link.errors,
        )

    async def status(self, deployments: Iterable[Deployment]) -> ClusterStatus:
        """Read the cluster's state from Redis (only this daemon's view when it is down)."""
        link = self.link
        base = ClusterStatus(
            name=link.name, redis=link.address, member=link.member, connected=link.connected
        )
        try:
            with anyio.fail_after(2.0):
                return await self._status(base, tuple(deployments))
        except (Disconnected, TimeoutError):
            return msgspec.structs.replace(base, connected=False)

    async def _status(
        self, base: ClusterStatus, deployments: tuple[Deployment, ...]
    ) -> ClusterStatus:
        link = self.link
        found = await link.call(lambda _, client: client.zrange(link.prefix + "members", 0, -1))
        ids = [str(member) for member in found]  # decode_responses: they are str
        members: list[MemberStatus] = []
        if ids:
            infos = await link.call(
                lambda _, client: client.mget([link.key("member", m) for m in ids])
            )
            for member, info in zip(ids, infos, strict=True):
                if info is None:
                    continue  # expired since
                try:
                    members.append(_member_decoder.decode(info))
                except msgspec.DecodeError:
                    members.append(MemberStatus(member=member))
        rows: list[DeploymentStatus] = []
        for spec in deployments:
            rows.append(await self._deployment(spec))
        return msgspec.structs.replace(base, members=tuple(members), deployments=tuple(rows))

    async def _deployment(self, spec: Deployment) -> DeploymentStatus:
        link = self.link
        state, probe = link.key("breaker", spec.name), link.key("probe", spec.name)
        pttl = int(await link.call(lambda _, client: client.pttl(state)))
        value = await link.call(lambda _, client: client.get(probe))
        holder = None if value is None else str(value)
        used_r = used_t = 0.0
        if spec.rpm or spec.tpm:
            answer = await link.call(
                lambda scripts, _: scripts.lease(
                    keys=[link.key("budget", spec.name)],
                    args=[spec.rpm, spec.tpm, 0, 0, 0, 0, 0, 0],
                )
            )
            used_r, used_t = float(answer[3]), float(answer[4])
        if pttl > 0:
            breaker = "open"
        elif holder is not None:
            breaker = "half_open"
        else:
            breaker = "closed"
        return DeploymentStatus(
            name=spec.name,
            breaker=breaker,
            open_for_s=max(pttl, 0) / 1000,
            probe=holder,
            rpm=spec.rpm,
            rpm_used=used_r,
            tpm=spec.tpm,
            tpm_used=used_t,
        )
