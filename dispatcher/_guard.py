"""The TCP listener's door: a `Host` that names this server, then a bearer token.

`Host` first (DNS-rebinding defence): a web page whose name an attacker re-points at
127.0.0.1 reaches a loopback listener with its own name in `Host`, so only names of this
server are answered: ``localhost``, loopback addresses, the address the connection came
in on, the configured `listen` host, and `[server].allowed_hosts` (``"*"``: any). Anything
else is 421 (Misdirected Request). The port is not compared: the attacker's page must use
ours anyway.

Then, when `[server].api_keys` is set, ``Authorization: Bearer KEY`` must carry one of
them. The token's SHA-256 is compared with every key's (hmac.compare_digest, all of them,
no early exit), so neither timing nor length says which part was wrong. Otherwise 401 in
OpenAI's error shape with ``www-authenticate: Bearer``. The Unix socket (0600) has no door.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Callable, Sequence
from typing import Final

from config import Secret, is_loopback_host

from ._errors import simple_error
from ._http import Handler, Receive, Scope, Send, respond

_WILDCARDS: Final = frozenset({"", "0.0.0.0", "::"})


class ListenerGuard:
    """An ASGI app that lets through to `app` only requests for this server, with a key."""

    def __init__(
        self,
        app: Handler,
        *,
        api_keys: Sequence[Secret],
        allowed_hosts: Sequence[str],
        listen_host: str,
        on_reject: Callable[[str], None] = lambda reason: None,
    ) -> None:
        self._app = app
        self._digests = tuple(_digest(key.reveal().encode()) for key in api_keys)
        self._any_host = "*" in allowed_hosts
        names = {_name(host) for host in allowed_hosts if host != "*"}
        names.add("localhost")
        if listen_host not in _WILDCARDS:
            names.add(_name(listen_host))
        self._hosts = frozenset(names)
        self._on_reject = on_reject

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refusal = self._host_refusal(scope) or self._auth_refusal(scope)
            if refusal is not None:
                await respond(send, *refusal)
                return
        await self._app(scope, receive, send)

    def _host_refusal(self, scope: Scope) -> tuple[int, bytes, list[tuple[str, str]]] | None:
        hosts = [value for name, value in scope["headers"] if name == b"host"]
        if len(hosts) != 1:
            self._on_reject("host_not_allowed")
            body = simple_error(
                400, "Exactly one Host header is required.", "invalid_request_error", "bad_host"
            )
            return 400, body, []
        if self._any_host or self._is_ours(hosts[0], scope):
            return None
        self._on_reject("host_not_allowed")
        body = simple_error(
            421,
            "This server does not answer for that Host; add it to [server].allowed_hosts.",
            "invalid_request_error",
            "host_not_allowed",
        )
        return 421, body, []

    def _is_ours(self, raw: bytes, scope: Scope) -> bool:
        try:
            name = _name(raw.decode("ascii"))
        except UnicodeDecodeError:
            return False
        if name in self._hosts or is_loopback_host(name):
            return True
        server = scope.get("server")
        return server is not None and _same_address(name, str(server[0]))

    def _auth_refusal(self, scope: Scope) -> tuple[int, bytes, list[tuple[str, str]]] | None:
        if not self._digests:
            return None
        token = _bearer(scope["headers"])
        if token is not None:
            offered = _digest(token)
            matched = False
            for digest in self._digests:  # every key, no early exit
                matched |= hmac.compare_digest(offered, digest)
            if matched:
                return None
        self._on_reject("unauthorized")
        message = (
            "Missing bearer token: send `Authorization: Bearer KEY`, KEY one of [server].api_keys."
            if token is None
            else "Incorrect API key provided."
        )
        body = simple_error(401, message, "invalid_request_error", "invalid_api_key")
        return 401, body, [("www-authenticate", "Bearer")]


def _digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


def _bearer(headers: Sequence[tuple[bytes, bytes]]) -> bytes | None:
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.strip().partition(b" ")
            token = token.strip()
            return token if scheme.lower() == b"bearer" and token else None
    return None


def _name(host: str) -> str:
    """`Host` without its port or IPv6 brackets, lower case, no trailing dot."""
    host = host.strip().lower()
    if host.startswith("["):
        host = host[1:].partition("]")[0]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    return host.rstrip(".")


def _same_address(name: str, local: str) -> bool:
    try:
        return ipaddress.ip_address(name) == ipaddress.ip_address(local)
    except ValueError:
        return False
