"""The HTTP API: a thin ASGI app over the supervisor.

Requests are decoded once here (straight from the body bytes into typed
Structs) and answered with msgspec-encoded bytes. Everything behind this module
is HTTP-agnostic; only `_errors` knows statuses.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from functools import partial
from typing import TYPE_CHECKING, Any, Final

import anyio
import msgspec
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from actors import BreakerState, ChatCall, call_decoder, encoder

from ._bodies import check_nesting, decode_body, require_json
from ._errors import error_answer, simple_error
from ._exceptions import BodyTooLarge, DispatchError, InvalidRequest, UnknownGroup, clip
from ._metrics import Metrics
from ._requestlog import request_info
from ._streaming import ChunkStream, Drain
from ._supervisor import Dispatched, Supervisor

if TYPE_CHECKING:
    from ._jobs_api import JobsApi

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_JSON: Final = (b"content-type", b"application/json")
_MODEL: Final = "/v1/models/"
_LAST_WRITE_S: Final = 0.5
"""How long the last chunk of a stream ended by the drain may wait on a slow client."""


class ClientGone(Exception):
    """The client disconnected before its request was read."""


class Api:
    """The socket API (`metrics_only`: the TCP scrape listener's /metrics, /health and
    /health/ready)."""

    def __init__(
        self,
        supervisor: Supervisor,
        metrics: Metrics,
        *,
        max_body_bytes: int,
        metrics_only: bool = False,
        jobs: JobsApi | None = None,
    ) -> None:
        self.supervisor = supervisor
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        routes: dict[tuple[str, str], Callable[[Scope, Receive, Send], Awaitable[None]]] = {
            ("GET", "/health"): self._health,
            ("GET", "/health/ready"): self._ready,
            ("GET", "/metrics"): self._metrics,
        }
        if not metrics_only:
            routes |= {
                ("POST", "/v1/chat/completions"): self._chat,
                ("GET", "/v1/models"): self._models,
                ("GET", "/v1/deployments"): self._deployments,
            }
            if jobs is not None:
                routes |= jobs.routes()
        self._jobs = None if metrics_only else jobs
        self._metrics_only = metrics_only
        self._drain = Drain()
        self._routes = routes
        self._paths = {path for _, path in routes}

    def drain(self, timeout_s: float) -> None:
        """The daemon is stopping: streams still running in `timeout_s` end then (an error
        chunk and [DONE]) instead of being cut by the server."""
        self._drain.start(timeout_s)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        handler = self._routes.get((scope["method"], path))
        if handler is None and self._jobs is not None:  # /v1/jobs/{id}
            handler = self._jobs.item_route(scope["method"], path)
        # /v1/models/{id}: an id may hold '/' (the SDK escapes it; the server decodes it).
        is_model = not self._metrics_only and path.startswith(_MODEL) and len(path) > len(_MODEL)
        if handler is None and is_model and scope["method"] == "GET":
            handler = self._model
        if handler is not None:
            await handler(scope, receive, send)
        elif path in self._paths or is_model:
            body = simple_error(
                405, "Method not allowed", "invalid_request_error", "method_not_allowed"
            )
            await _respond(send, 405, body)
        else:
            body = simple_error(
                404, f"No route {clip(scope['path'])}", "invalid_request_error", "not_found"
            )
            await _respond(send, 404, body)

    # -- routes ----------------------------------------------------------------

    async def _chat(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        supervisor = self.supervisor
        info = request_info()
        try:
            body = await _read_body(scope, receive, self.max_body_bytes)
            call = _decode_call(body)
            info.group = call.model
            done = await _unless_client_leaves(
                receive,
                partial(supervisor.open_stream if call.stream else supervisor.complete, call),
            )
            if not done:
                return  # the client left: the supervisor cancelled the upstream call
            [value] = done
            if isinstance(value, DispatchError):
                raise value
            if isinstance(value, ChunkStream):
                stream = value
            else:
                result = value
        except ClientGone:
            return
        except DispatchError as exc:
            if isinstance(exc, InvalidRequest):
                self.metrics.rejected("invalid_request")
            if exc.attempts:
                info.attempts = len(exc.attempts)
            answer = error_answer(exc)
            await _respond(send, answer.status, answer.body, answer.headers)
            return
        if call.stream:
            info.served(stream.deployment, stream.attempts, None)
            await _stream(stream, receive, send, self._drain)
            info.served(stream.deployment, stream.attempts, stream.usage)
            info.outcome = stream.outcome
            return
        info.served(result.deployment, len(result.attempts), result.response.usage)
        payload = encoder.encode(result.response)
        headers = [
            ("x-dispatcher-deployment", result.deployment),
            ("x-dispatcher-attempts", str(len(result.attempts))),
        ]
        if result.dropped_params:
            headers.append(("x-dispatcher-dropped-params", ",".join(result.dropped_params)))
        self.metrics.overhead(time.perf_counter() - started - result.waited_s)
        await _respond(send, 200, payload, headers)

    async def _models(self, scope: Scope, receive: Receive, send: Send) -> None:
        data = [_model_object(group) for group in self.supervisor.groups()]
        await _respond(send, 200, msgspec.json.encode({"object": "list", "data": data}))

    async def _model(self, scope: Scope, receive: Receive, send: Send) -> None:
        """One model group as OpenAI's `models.retrieve` answers; 404 `model_not_found`."""
        group = scope["path"][len(_MODEL) :]
        groups = self.supervisor.groups()
        if group in groups:
            await _respond(send, 200, msgspec.json.encode(_model_object(group)))
            return
        answer = error_answer(UnknownGroup(group, groups))
        await _respond(send, answer.status, answer.body, answer.headers)

    async def _health(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _respond(send, 200, b'{"status":"ok"}')

    async def _ready(self, scope: Scope, receive: Receive, send: Send) -> None:
        """200 when a request for every group can be served now: some deployment of its
        chain (its own, then its `[router.fallbacks]`, then `default_fallbacks`) is not
        cooling down. Else 503 naming the groups that have none."""
        router = self.supervisor.router
        members = router.groups
        serving = {
            group
            for group, actors in members.items()
            if any(a.statistics().state is not BreakerState.OPEN for a in actors)
        }
        down = [
            group for group in members if not any(g in serving for g in router.chain_groups(group))
        ]
        if down:
            body = msgspec.json.encode({"status": "not_ready", "groups_without_deployment": down})
            await _respond(send, 503, body)
        else:
            await _respond(send, 200, b'{"status":"ready"}')

    async def _deployments(self, scope: Scope, receive: Receive, send: Send) -> None:
        stats = [
            actor.statistics()
            for members in self.supervisor.router.groups.values()
            for actor in members
        ]
        await _respond(send, 200, msgspec.json.encode({"object": "list", "data": stats}))

    async def _metrics(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = generate_latest(self.metrics.registry)
        await _respond(send, 200, body, content_type=CONTENT_TYPE_LATEST)


def _model_object(group: str) -> dict[str, str | int]:
    return {"id": group, "object": "model", "created": 0, "owned_by": "llm-dispatcher"}


async def _stream(stream: ChunkStream, receive: Receive, send: Send, drain: Drain) -> None:
    """Send a committed stream as server-sent events; a client that leaves cancels it.

    At the drain deadline the stream ends as any failure after the commit does.
    """
    headers = [
        (b"content-type", b"text/event-stream"),
        (b"cache-control", b"no-cache"),
        (b"x-dispatcher-deployment", stream.deployment.encode()),
        (b"x-dispatcher-attempts", str(stream.attempts).encode()),
    ]
    if stream.dropped_params:
        headers.append((b"x-dispatcher-dropped-params", ",".join(stream.dropped_params).encode()))
    try:
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        done = False
        with drain.scope() as relay:
            async with anyio.create_task_group() as tg:
                tg.start_soon(_cancel_on_disconnect, receive, tg.cancel_scope)
                async for batch in stream.batches():
                    body = b"".join([b"data: " + encoder.encode(c) + b"\n\n" for c in batch])
                    await send({"type": "http.response.body", "body": body, "more_body": True})
                await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})
                done = True
                tg.cancel_scope.cancel()
        if relay.cancelled_caught and not done:
            stream.close()  # the upstream call stops now, not when this last write is done
            last = b"data: " + encoder.encode(stream.stopped_chunk()) + b"\n\ndata: [DONE]\n\n"
            with anyio.move_on_after(_LAST_WRITE_S):
                await send({"type": "http.response.body", "body": last})
    finally:
        stream.close()


async def _unless_client_leaves(
    receive: Receive, work: Callable[[], Awaitable[Dispatched | ChunkStream]]
) -> list[Dispatched | ChunkStream | DispatchError]:
    """`work`'s result or error, or nothing if the client disconnected first (cancelling it)."""
    done: list[Dispatched | ChunkStream | DispatchError] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(_cancel_on_disconnect, receive, tg.cancel_scope)
        try:
            done.append(await work())
        except DispatchError as exc:
            done.append(exc)
        tg.cancel_scope.cancel()
    return done


async def _cancel_on_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    scope.cancel()


def _decode_call(body: bytes) -> ChatCall:
    check_nesting(body)
    return decode_body(call_decoder, body)


async def _read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The whole body of a JSON request (415 for another content type, 413 over `limit`)."""
    require_json(scope["headers"])
    for name, value in scope["headers"]:
        # Digits only, and few of them: int() of a 5,000-digit string raises ValueError.
        if (
            name == b"content-length"
            and value.isdigit()
            and (len(value) > 18 or int(value) > limit)
        ):
            shown = clip(value.decode(), 20)
            raise BodyTooLarge(f"Request body of {shown} bytes is over the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"Request body is over the {limit}-byte limit")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _respond(
    send: Send,
    status: int,
    body: bytes,
    headers: list[tuple[str, str]] | tuple[tuple[str, str], ...] = (),
    *,
    content_type: str | None = None,
) -> None:
    raw = [
        (b"content-type", content_type.encode()) if content_type else _JSON,
        (b"content-length", str(len(body)).encode()),
    ]
    raw.extend((name.encode(), value.encode("latin-1")) for name, value in headers)
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
