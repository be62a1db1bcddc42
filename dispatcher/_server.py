"""Listeners: the Unix socket (0600, stale files replaced, live ones never stolen),
the optional TCP listener, and the TCP metrics listener, all served by uvicorn.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import uvicorn

from ._connections import Connections
from ._exceptions import DaemonError
from ._private import private_folder
from ._protocol import BoundedProtocol
from ._requestlog import RequestIds

_MAX_UNIX_PATH = 107  # sun_path is 108 bytes with the terminating NUL


class QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: the daemon owns signals and shutdown."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def make_server(
    app: Any,
    *,
    connections: Connections,
    drain_timeout_s: float,
    keepalive_timeout_s: float,
    request_ids: RequestIds | None = None,
) -> QuietServer:
    """A uvicorn server whose connections are bounded by `connections` (see `_protocol`).

    `ws="none"`: the API has no WebSocket route, so an upgrade request is plain HTTP.
    """
    config = uvicorn.Config(
        app,
        lifespan="off",
        log_config=None,
        access_log=False,
        # uvicorn calls it like its own protocol classes: config, server_state, app_state.
        http=partial(  # type: ignore[arg-type]
            BoundedProtocol,
            connections=connections,
            request_ids=request_ids or RequestIds(),
        ),
        ws="none",
        # Said, not guessed: the apps' __call__ may hand back their route's coroutine
        # rather than be coroutine functions themselves (`_http.App`, `RequestLog`).
        interface="asgi3",
        # Forwarded-for headers name no client of ours: the socket's peer is the client.
        proxy_headers=False,
        timeout_graceful_shutdown=drain_timeout_s,  # type: ignore[arg-type]  # a float works
        timeout_keep_alive=keepalive_timeout_s,  # type: ignore[arg-type]  # a float works
        server_header=False,
        date_header=False,
    )
    return QuietServer(config)


def bind_unix(path: Path) -> socket.socket:
    """A listening Unix socket at `path`, mode 0600.

    A socket file left by a dead daemon is replaced; one a live daemon answers
    on is not. The folder is created (0700) when missing, and refused when another
    user could replace the socket in it (see `_private`).
    """
    if len(os.fsencode(path)) > _MAX_UNIX_PATH:
        raise DaemonError(
            f"socket path {path} is longer than {_MAX_UNIX_PATH} bytes; choose a shorter one"
        )
    private_folder(path.parent, "socket")
    if path.is_symlink() or path.exists():
        if not stat.S_ISSOCK(path.lstat().st_mode):
            raise DaemonError(
                f"{path} exists and is not a socket; move it away or choose another path"
            )
        if _answers(path):
            raise DaemonError(f"another daemon is serving on {path}")
        path.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        sock.bind(os.fspath(path))
    except OSError as exc:
        sock.close()
        raise DaemonError(f"cannot bind {path}: {exc.strerror}") from None
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o600)
    sock.listen(4096)
    sock.setblocking(False)
    return sock


def bind_tcp(host: str, port: int, what: str) -> socket.socket:
    """A listening TCP socket (port 0 picks a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        hint = " (is another daemon running?)" if exc.errno == errno.EADDRINUSE else ""
        raise DaemonError(
            f"cannot listen for {what} on {host}:{port}: {exc.strerror}{hint}"
        ) from None
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def _answers(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(os.fspath(path))
    except OSError:
        return False
    finally:
        probe.close()
    return True
