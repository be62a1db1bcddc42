"""Request ids and the access log: one ASGI layer in front of every listener's app.

`RequestLog` gives each HTTP request an id — the client's ``x-request-id`` when it is
1-128 characters of ``A-Z a-z 0-9 . _ : / + = @ -``, else a new ``req_<24 hex>`` — and
answers it in ``x-request-id`` on every response. While the request is served, the id and
what the route learns (group, deployment, attempts, tokens) sit in a context variable:
every log line of the request carries them (see `_logging`), and when the answer is sent
the access log (logger ``dispatcher.access``, when it is enabled) gets one line:

    POST /v1/chat/completions 200 group=gpt-4o-mini deployment=mock-mini-a attempts=1
    duration_ms=21.4 prompt_tokens=9 completion_tokens=12 request_id=req_3f9c...

Never content, headers or keys: only the fields of `RequestInfo`.
"""

from __future__ import annotations

import itertools
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable, MutableMapping
from contextvars import ContextVar
from typing import Any, Final

from msgspec import UnsetType

from actors import Usage

from ._exceptions import clip

# The ASGI shapes (as in `_api`, which imports this module).
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

access_logger = logging.getLogger("dispatcher.access")

MAX_REQUEST_ID: Final = 128
_CLIENT_ID: Final = re.compile(rb"[A-Za-z0-9._:/+=@-]{1,%d}" % MAX_REQUEST_ID)
REQUEST_ID_HEADER: Final = b"x-request-id"
REQUEST_ID_EXTENSION: Final = "dispatcher.request_id"
"""Where the daemon's own protocol (`_protocol`) puts the id it gave a request, which it also
answers in `x-request-id` itself: `RequestLog` then needs no `send` wrapper."""
_PATH_SHOWN: Final = 200
_COUNT_MASK: Final = (1 << 48) - 1

ACCESS_FIELDS: Final = (
    "group",
    "deployment",
    "attempts",
    "outcome",
    "prompt_tokens",
    "completion_tokens",
    "job_id",
)
"""What a route may note about its request, in the order the access line shows them."""


class RequestInfo:
    """One request's id and what its route noted; each request has its own."""

    __slots__ = ("request_id", *ACCESS_FIELDS)

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.group: str | None = None
        self.deployment: str | None = None
        self.attempts: int | None = None
        self.outcome: str | None = None
        """Set when the answer's status does not tell it (a stream that failed after 200)."""
        self.prompt_tokens: int | None = None
        self.completion_tokens: int | None = None
        self.job_id: str | None = None

    def served(self, deployment: str, attempts: int, usage: Usage | UnsetType | None) -> None:
        """The request was answered by `deployment` after `attempts` attempts."""
        self.deployment = deployment
        self.attempts = attempts
        if isinstance(usage, Usage):
            self.prompt_tokens = usage.prompt_tokens
            self.completion_tokens = usage.completion_tokens

    def fields(self) -> dict[str, str | int]:
        out: dict[str, str | int] = {}
        for name in ACCESS_FIELDS:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out


_current: ContextVar[RequestInfo | None] = ContextVar("dispatcher_request", default=None)


def current_request() -> RequestInfo | None:
    """The request being served in this context (None outside a request)."""
    return _current.get()


def request_info() -> RequestInfo:
    """The request being served, or a throwaway one (an app served without `RequestLog`)."""
    return _current.get() or RequestInfo("")


class RequestIds:
    """New request ids for one daemon: ``req_``, 12 hex digits drawn at random when it
    starts, then a 12-hex-digit count. The count makes them unique within the daemon, the
    random part across daemons, workers and restarts; and a new id costs no system call
    (a `secrets.token_hex` per request was about 1% of the daemon's CPU)."""

    __slots__ = ("_count", "_prefix")

    def __init__(self) -> None:
        self._prefix = f"req_{secrets.token_hex(6)}"
        self._count = itertools.count()

    def new(self) -> str:
        return f"{self._prefix}{next(self._count) & _COUNT_MASK:012x}"


def request_id_of(headers: list[tuple[bytes, bytes]], ids: RequestIds | None = None) -> str:
    """The client's x-request-id when it is short and plain, else a new one (from `ids`)."""
    for name, value in headers:
        if name == REQUEST_ID_HEADER:
            if _CLIENT_ID.fullmatch(value):
                return value.decode("ascii")
            break  # a bad one is replaced, not refused: the answer says which id it got
    return ids.new() if ids is not None else f"req_{secrets.token_hex(12)}"


class RequestLog:
    """An ASGI app: `app` with request ids, and an access line per request (`access`)."""

    def __init__(self, app: ASGIApp, *, access: bool = True) -> None:
        self._app = app
        self._access = access

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if scope["type"] == "http":
            extensions = scope.get("extensions")
            given = extensions.get(REQUEST_ID_EXTENSION) if extensions else None
            if given is not None and not (
                self._access and access_logger.isEnabledFor(logging.INFO)
            ):
                # The daemon's protocol (which names the id and answers its header) runs
                # each request in a task of its own, so in a context of its own: the id is
                # set for it with nothing to reset, and the app's coroutine goes back to be
                # awaited with no frame of this layer on the request's stack.
                _current.set(RequestInfo(given))
                return self._app(scope, receive, send)
        return self._logged(scope, receive, send)

    async def _logged(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        extensions = scope.get("extensions")
        given = extensions.get(REQUEST_ID_EXTENSION) if extensions else None
        access = self._access and access_logger.isEnabledFor(logging.INFO)
        started = time.perf_counter()
        info = RequestInfo(given if given is not None else request_id_of(scope["headers"]))
        header = None if given is not None else (REQUEST_ID_HEADER, info.request_id.encode())
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if header is not None:
                    message = {**message, "headers": [*message.get("headers", ()), header]}
            await send(message)

        token = _current.set(info)
        try:
            await self._app(scope, receive, send_with_id)
        finally:
            _current.reset(token)
            if access:
                _access_line(scope, status, info, time.perf_counter() - started)


def _access_line(scope: Scope, status: int, info: RequestInfo, seconds: float) -> None:
    path = clip(scope["path"], _PATH_SHOWN)
    if not path.isprintable():  # a decoded %0A must not start a line of its own
        path = path.encode("unicode_escape").decode("ascii")
    fields: dict[str, str | int | float] = {
        "method": scope["method"],
        "path": path,
        "status": status,  # 0: the client left before an answer
        **info.fields(),
        "duration_ms": round(seconds * 1000.0, 3),
        "request_id": info.request_id,
    }
    access_logger.info("%s %s %d", scope["method"], path, status, extra=fields)
