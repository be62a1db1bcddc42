"""This daemon's link to the cluster's Redis: join, heartbeat, listen, lose, rejoin.

    run ──connect──▶ joined ──(any Redis error)──▶ lost ──backoff──▶ connect ...
                      │  heartbeat every HEARTBEAT_S (members alive: a sorted set
                      │  with expiries, one key per member with its details)
                      └─ breaker notes from the other daemons, to their `Peer`s

While lost, every `Peer` decides locally (see `Peer.left`); the log says so once,
then at most every `LOG_EVERY_S`; `Peer.joined` catches up when Redis is back.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final, Protocol, TypeVar

import anyio
import msgspec
from anyio.abc import TaskStatus
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from config import ClusterConfig

from . import _scripts

logger = logging.getLogger("dispatcher.cluster")

REDIS_DOWN: Final = (RedisError, OSError, RuntimeError)
"""What a lost Redis connection raises: redis-py's errors, socket errors, and the event
loop's RuntimeError for a transport torn down mid-call (uvloop: "handler is closed")."""

HEARTBEAT_S: Final = 1.0
MEMBER_TTL_S: Final = 3 * HEARTBEAT_S
"""A member that sent no heartbeat for this long is gone."""
TIMEOUT_S: Final = 1.0
"""Connect and command timeout: past it Redis counts as unreachable."""
BACKOFF_S: Final = (0.1, 2.0)
"""Reconnect delays: the first, doubled up to the last."""
LOG_EVERY_S: Final = 60.0
"""While Redis stays unreachable, the log says so at most this often."""
LEAVE_WAIT_S: Final = 2.0
"""At close, how long the link waits for peers to give their leases back."""

T = TypeVar("T")


class Disconnected(Exception):
    """Redis did not answer (the link is down, or just went down)."""


class Note(msgspec.Struct, frozen=True, kw_only=True):
    """A breaker message between daemons (channel `<prefix>breakers`)."""

    op: str
    """open | close | free (a probe lock was given back unused)."""
    deployment: str
    member: str
    hold_ms: int = 0
    at: float = 0.0
    """Sender's wall clock (how late a note arrives, for the log)."""


_note_decoder: Final = msgspec.json.Decoder(Note)
_MAX_NOTE_BYTES: Final = 4096


class Peer(Protocol):
    """What the link tells a deployment's shared state."""

    name: str

    def joined(self) -> None: ...

    def left(self, members: int) -> None: ...

    def heard(self, note: Note) -> None: ...


class Scripts:
    """The Lua scripts, bound to one connection's client."""

    def __init__(self, client: Redis) -> None:
        self.lease: AsyncScript = client.register_script(_scripts.LEASE)
        self.open: AsyncScript = client.register_script(_scripts.OPEN)
        self.close: AsyncScript = client.register_script(_scripts.CLOSE)
        self.free: AsyncScript = client.register_script(_scripts.FREE)
        self.heartbeat: AsyncScript = client.register_script(_scripts.HEARTBEAT)


class Link:
    """The Redis connection one daemon shares with its deployments' `Peer`s."""

    def __init__(self, config: ClusterConfig) -> None:
        assert config.redis is not None
        self._url = config.redis
        self.address = config.describe()
        self.name = config.name
        self.prefix = f"llm-dispatcher:{config.name}:"
        self.channel = self.prefix + "breakers"
        # Unique even when a pid is reused (a restart) or two daemons share a process (tests).
        self.member = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(2)}"
        self.connected = False
        self.members = 1
        """Members alive at the last heartbeat (this one included)."""
        self.scripts: Scripts | None = None
        self.client: Redis | None = None
        self.calls = 0
        self.errors = 0
        self._peers: dict[str, set[Peer]] = {}
        self._session: anyio.CancelScope | None = None
        self._stopping = False
        self._stop = anyio.Event()
        self._lost_at = 0.0
        self._logged_at = 0.0
        self._detached = anyio.Event()

    # -- what peers use ---------------------------------------------------------

    def attach(self, peer: Peer) -> None:
        self._peers.setdefault(peer.name, set()).add(peer)
        if self.connected:
            peer.joined()

    def detach(self, peer: Peer) -> None:
        peers = self._peers.get(peer.name)
        if peers is not None:
            peers.discard(peer)
            if not peers:
                del self._peers[peer.name]
        if not self._peers:
            self._detached.set()

    async def call(self, fn: Callable[[Scripts, Redis], Awaitable[T]]) -> T:
        """Run `fn` on the live connection; `Disconnected` (and the link drops) if it fails."""
        scripts, client = self.scripts, self.client
        if not self.connected or scripts is None or client is None:
            raise Disconnected
        self.calls += 1
        try:
            return await fn(scripts, client)
        except REDIS_DOWN as exc:
            self.errors += 1
            self._lost(exc)
            raise Disconnected from None

    def key(self, kind: str, name: str) -> str:
        return f"{self.prefix}{kind}:{name}"

    # -- lifecycle ----------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Stay joined until `close()`. One connection attempt is made before `started`,
        so a daemon whose Redis is up starts joined, and one whose Redis is down starts
        (on local limits) all the same."""
        delay = BACKOFF_S[0]
        started = False
        while not self._stopping:
            client = Redis.from_url(
                self._url.reveal(),
                decode_responses=True,
                socket_timeout=TIMEOUT_S,
                socket_connect_timeout=TIMEOUT_S,
                retry=Retry(NoBackoff(), 0),  # a failure is reported now; the link retries
                client_name=f"llm-dispatcher-{os.getpid()}",
            )
            pubsub = client.pubsub()
            try:
                with anyio.CancelScope() as session:
                    self._session = session
                    await pubsub.subscribe(self.channel)  # before catching up: no note missed
                    scripts = Scripts(client)
                    self.members = await self._beat(scripts)
                    self.client, self.scripts = client, scripts
                    self._joined()
                    delay = BACKOFF_S[0]
                    if not started:
                        started = True
                        task_status.started()
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(self._listen, pubsub)
                        tg.start_soon(self._heartbeats, scripts)
            except REDIS_DOWN as exc:
                self._lost(exc)
            finally:
                self._session = None
                self.client = self.scripts = None
                with anyio.CancelScope(shield=True):
                    await self._leave(client, pubsub)
            if not started:
                started = True
                task_status.started()
            with anyio.move_on_after(delay):
                await self._stop.wait()
            delay = min(delay * 2, BACKOFF_S[1])

    def close(self) -> None:
        """Leave once the peers gave their leases back (at most `LEAVE_WAIT_S`)."""
        self._stopping = True
        self._stop.set()
        if not self._peers:
            self._detached.set()

    # -- internals ------------------------------------------------------------------

    def _joined(self) -> None:
        self.connected = True
        if self._lost_at:
            logger.warning(
                "cluster %r: rejoined %s after %.1fs; shared limits and breakers again",
                self.name,
                self.address,
                time.monotonic() - self._lost_at,
            )
        else:
            logger.info(
                "cluster %r: joined %s as %s (%d members)",
                self.name,
                self.address,
                self.member,
                self.members,
            )
        self._lost_at = 0.0
        for peers in list(self._peers.values()):
            for peer in list(peers):
                peer.joined()

    def _lost(self, exc: BaseException) -> None:
        now = time.monotonic()
        if self.connected or not self._lost_at:
            self._lost_at = self._logged_at = now
            logger.warning(
                "cluster %r: redis %s unreachable (%s); serving on local limits and breakers "
                "(this daemon's share of each budget: 1/%d)",
                self.name,
                self.address,
                _describe(exc),
                self.members,
            )
        elif now - self._logged_at >= LOG_EVERY_S:
            self._logged_at = now
            logger.warning(
                "cluster %r: redis %s still unreachable after %.0fs (%s)",
                self.name,
                self.address,
                now - self._lost_at,
                _describe(exc),
            )
        if self.connected:
            self.connected = False
            for peers in list(self._peers.values()):
                for peer in list(peers):
                    peer.left(self.members)
        if self._session is not None:
            self._session.cancel()

    async def _heartbeats(self, scripts: Scripts) -> None:
        while True:
            with anyio.move_on_after(HEARTBEAT_S):
                await self._stop.wait()
            if self._stopping:
                with anyio.move_on_after(LEAVE_WAIT_S):
                    await self._detached.wait()
                if self._session is not None:
                    self._session.cancel()
                return
            try:
                members = await self._beat(scripts)
            except REDIS_DOWN as exc:
                self._lost(exc)
                return
            if members != self.members:
                logger.info("cluster %r: %d members (was %d)", self.name, members, self.members)
                self.members = members

    async def _beat(self, scripts: Scripts) -> int:
        info = msgspec.json.encode({"member": self.member, "pid": os.getpid(), "at": time.time()})
        count = await scripts.heartbeat(
            keys=[self.prefix + "members", self.key("member", self.member)],
            args=[int(MEMBER_TTL_S * 1000), self.member, info],
        )
        return max(int(count), 1)

    async def _listen(self, pubsub: PubSub) -> None:
        try:
            async for message in pubsub.listen():
                if message.get("type") != "message":
                    continue
                data = message.get("data")
                if not isinstance(data, str) or len(data) > _MAX_NOTE_BYTES:
                    continue
                try:
                    note = _note_decoder.decode(data)
                except msgspec.DecodeError:
                    continue  # a foreign or newer message: not ours to act on
                if note.member == self.member:
                    continue
                for peer in list(self._peers.get(note.deployment, ())):
                    peer.heard(note)
        except REDIS_DOWN as exc:
            self._lost(exc)

    async def _leave(self, client: Redis, pubsub: PubSub) -> None:
        with anyio.move_on_after(TIMEOUT_S):
            try:
                if self._stopping and self.connected:
                    await client.zrem(self.prefix + "members", self.member)
                    await client.delete(self.key("member", self.member))
            except REDIS_DOWN:
                pass
        self.connected = False
        with anyio.move_on_after(TIMEOUT_S):
            try:
                await pubsub.aclose()  # type: ignore[no-untyped-call]
                await client.aclose()
            except REDIS_DOWN:
                pass


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:200] + "..."


def decode_float(value: Any) -> float:
    """A number a script returned as a string."""
    return float(value)
