"""What a fake saw: one `RecordedRequest` per HTTP request, and a way to await arrivals."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import anyio
import msgspec

from ._asgi import Scope


@dataclass(eq=False, kw_only=True)
class RecordedRequest:
    """One request as the fake received it, completed as the fake answers it.

    `headers` keys are lower-case (repeated headers joined with ", "); `query` keeps the
    last value of a repeated parameter.  `json` is the parsed body, or `None` when the
    body is not JSON.  The fake fills in the outcome:

    - `status`: the status it answered, `None` while pending or when it sent none;
    - `dropped`: it closed the connection on purpose (`close()` directive);
    - `disconnected`: the request ended before the fake had finished answering: it saw
      `http.disconnect` (the client went away) or `serve_app` stopped under it;
    - `content_encoding`: how it compressed the answer (`None`: not at all).
    """

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    json: Any
    status: int | None = None
    dropped: bool = False
    disconnected: bool = False
    content_encoding: str | None = None
    finished: anyio.Event = field(default_factory=anyio.Event, repr=False)

    @classmethod
    def from_scope(cls, scope: Scope, body: bytes) -> RecordedRequest:
        """Build the record from an ASGI http scope and the full body."""
        headers: dict[str, str] = {}
        for raw_name, raw_value in scope.get("headers", []):
            name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        query_string = scope.get("query_string", b"").decode("latin-1")
        try:
            parsed: Any = msgspec.json.decode(body) if body else None
        except msgspec.DecodeError:
            parsed = None
        return cls(
            method=scope["method"],
            path=scope["path"],
            query=dict(parse_qsl(query_string, keep_blank_values=True)),
            headers=headers,
            body=body,
            json=parsed,
        )

    async def wait_finished(self) -> None:
        """Return once the fake has answered, dropped, or given up on this request."""
        await self.finished.wait()


class Recorder:
    """The list of requests a fake received, with an awaitable arrival count."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._arrived = anyio.Event()

    def add(self, record: RecordedRequest) -> None:
        self.requests.append(record)
        # Wake every waiter, then arm a fresh event for the next arrival.
        self._arrived.set()
        self._arrived = anyio.Event()

    async def wait_for(self, count: int) -> list[RecordedRequest]:
        """Wait until at least `count` requests arrived; return the first `count`."""
        while len(self.requests) < count:
            await self._arrived.wait()
        return self.requests[:count]
