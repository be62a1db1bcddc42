"""systemd's service notification protocol (sd_notify(3)), for `Type=notify` units.

The protocol is one datagram per message: newline-separated ``KEY=VALUE`` lines sent to
the ``AF_UNIX`` socket that ``$NOTIFY_SOCKET`` names, an absolute path or ``@name`` in the
abstract namespace. The daemon says:

    READY=1                          the socket accepts (at start, and after a reload)
    RELOADING=1 + MONOTONIC_USEC=    a SIGHUP reload begins (systemd >= 253 wants the
                                     CLOCK_MONOTONIC time with it)
    STOPPING=1 + EXTEND_TIMEOUT_USEC the drain begins; the extension lets a drain_timeout_s
                                     longer than TimeoutStopSec= finish
    WATCHDOG=1                       every WATCHDOG_USEC / 2 while the event loop runs
    STATUS=...                       one line for `systemctl status`

Without ``$NOTIFY_SOCKET`` (not under systemd) every call does nothing. A message that
cannot be sent is logged, never raised: supervision is the service manager's business and
must not stop a daemon that serves.

Why not a library: the protocol is one ``sendto()`` that systemd documents as stable for
independent implementations. `sdnotify` (PyPI) was last released in 2017, reads the
environment once at construction and swallows every error; `systemd-python` and
`cysystemd` wrap libsystemd and need a C toolchain and its headers to install.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

import anyio

logger = logging.getLogger("dispatcher.notify")


class Notifier:
    """Sends sd_notify messages to one address (None: not under systemd, a no-op)."""

    def __init__(self, address: str | None = None, *, watchdog_s: float | None = None) -> None:
        self.address = address
        """What `$NOTIFY_SOCKET` said: an absolute path or '@name' (abstract namespace)."""
        self.watchdog_s = watchdog_s
        """The service manager's watchdog timeout (None: no watchdog)."""
        self._target = None if address is None else _socket_address(address)
        self._socket: socket.socket | None = None
        self._failing = False

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        """The notifier `$NOTIFY_SOCKET`, `$WATCHDOG_USEC` and `$WATCHDOG_PID` describe."""
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET") or None
        if address is not None and not address.startswith(("/", "@")):
            # systemd >= 254 may also name a vsock address, for VMs; not this daemon's case.
            logger.warning("NOTIFY_SOCKET=%r is not a path or @name: not notifying", address)
            address = None
        return cls(address, watchdog_s=_watchdog_s(env))

    @property
    def enabled(self) -> bool:
        return self._target is not None

    def ready(self, status: str) -> None:
        self.send("READY=1", f"STATUS={status}")

    def reloading(self) -> None:
        now_usec = time.monotonic_ns() // 1000
        self.send("RELOADING=1", f"MONOTONIC_USEC={now_usec}", "STATUS=reloading")

    def stopping(self, drain_timeout_s: float) -> None:
        extend_usec = int((drain_timeout_s + 5.0) * 1_000_000)
        self.send("STOPPING=1", f"EXTEND_TIMEOUT_USEC={extend_usec}", "STATUS=draining")

    async def keep_alive(self) -> None:
        """Send WATCHDOG=1 every half watchdog timeout, forever (returns at once without one).

        It runs on the daemon's event loop: a loop that stops turning stops the pings, and
        systemd restarts the service.
        """
        if self.watchdog_s is None or not self.enabled:
            return
        while True:
            self.send("WATCHDOG=1")
            await anyio.sleep(self.watchdog_s / 2)

    def send(self, *fields: str) -> bool:
        """Send one message; False (logged once per run of failures) when it could not go."""
        if self._target is None:
            return False
        message = "\n".join(fields).encode()
        try:
            if self._socket is None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                sock.setblocking(False)  # the event loop never waits on the service manager
                self._socket = sock
            self._socket.sendto(message, self._target)
        except OSError as exc:
            if not self._failing:
                logger.warning(
                    "cannot notify the service manager at %s: %s", self.address, exc.strerror
                )
            self._failing = True
            return False
        self._failing = False
        return True

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def __repr__(self) -> str:
        watchdog = f" | watchdog {self.watchdog_s:g}s" if self.watchdog_s else ""
        return f"<Notifier {self.address or 'off'}{watchdog}>"


def _socket_address(address: str) -> str:
    # '@name' is the abstract namespace: a leading NUL byte, no file.
    return "\0" + address[1:] if address.startswith("@") else address


def _watchdog_s(env: Mapping[str, str]) -> float | None:
    """WATCHDOG_USEC in seconds, when it is set for this process (WATCHDOG_PID, if any)."""
    usec, pid = env.get("WATCHDOG_USEC", ""), env.get("WATCHDOG_PID", "")
    if pid and pid != str(os.getpid()):
        return None  # meant for another process (a parent that exec'd us without resetting it)
    if not (usec.isascii() and usec.isdigit()) or len(usec) > 15 or int(usec) == 0:
        return None
    return int(usec) / 1_000_000
