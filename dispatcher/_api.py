"""The chat, model, health and metrics routes: a thin layer over the supervisor.

Requests are decoded once here (straight from the body bytes into typed
Structs) and answered with msgspec-encoded bytes, with the tools of `_http`.
Everything behind this module is HTTP-agnostic; only `_errors` knows statuses.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

import anyio
import msgspec
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from actors import BreakerState, ChatCall, ChatCompletionChunk, call_decoder, encoder, format_cost

from ._disconnect import watching
from ._exceptions import DispatchError, InvalidRequest, UnknownGroup
from ._http import (
    App,
    ClientGone,
    Handler,
    Receive,
    Scope,
    Send,
    check_nesting,
    decode_body,
    read_body,
    respond,
    respond_error,
)
from ._metrics import Metrics
from ._requestlog import request_info
from ._sse_out import sse_body
from ._streaming import ChunkStream, Drain, ErrorChunk
from ._supervisor import Dispatched, Supervisor

_DONE: Final = b"data: [DONE]\n\n"
_LAST_WRITE_S: Final = 0.5
"""How long the last chunk of a stream ended by the drain may wait on a slow client."""


class Api:
    """The socket API's own routes (`metrics_only`: the TCP scrape listener's /metrics,
    /health and /health/ready). Called as an ASGI app it serves them alone; the daemon
    composes `routes()` with the job routes into one `App`."""

    def __init__(
        self,
        supervisor: Supervisor,
        metrics: Metrics,
        *,
        max_body_bytes: int,
        metrics_only: bool = False,
        cluster: Callable[[], Awaitable[Any]] | None = None,
    ) -> None:
        self.supervisor = supervisor
        self._cluster = cluster
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self._metrics_only = metrics_only
        self._drain = Drain()
        self._app = App(self.routes())

    def routes(self) -> dict[tuple[str, str], Handler]:
        routes: dict[tuple[str, str], Handler] = {
            ("GET", "/health"): self._health,
            ("GET", "/health/ready"): self._ready,
            ("GET", "/metrics"): self._metrics,
        }
        if not self._metrics_only:
            routes |= {
                ("POST", "/v1/chat/completions"): self._chat,
                ("GET", "/v1/models"): self._models,
                ("GET", "/v1/deployments"): self._deployments,
                ("GET", "/v1/cluster"): self._cluster_status,
                # models.retrieve: an id may hold '/' (the SDK escapes it; the server decodes).
                ("GET", "/v1/models/{path}"): self._model,
            }
        return routes

    def drain(self, timeout_s: float) -> None:
        """The daemon is stopping: streams still running in `timeout_s` end then (an error
        chunk and [DONE]) instead of being cut by the server."""
        self._drain.start(timeout_s)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)

    # -- routes ----------------------------------------------------------------

    async def _chat(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        supervisor = self.supervisor
        info = request_info()
        try:
            body = await read_body(scope, receive, self.max_body_bytes)
            call = _decode_call(body)
            info.group = call.model
            # Unless the client leaves first (cancelling the upstream call). Inline, not a
            # helper coroutine: every resumption of the request task walks each frame.
            # A stream is relayed under the same watch: one scope for the whole request.
            value: Dispatched | _StreamOut | DispatchError | None = None
            try:
                async with watching(scope, receive) as watch:
                    try:
                        if call.stream:
                            value = _StreamOut(await supervisor.open_stream(call), send)
                            info.served(value.stream.deployment, value.stream.attempts, None)
                            await value.relay(watch, self._drain)
                        else:
                            value = await supervisor.complete(call)
                    except DispatchError as exc:
                        value = exc  # raised out here: a task group would wrap it in a group
            finally:
                if isinstance(value, _StreamOut):  # ended, cut by the drain, or failed
                    await value.after(watch, self._drain)
            if isinstance(value, _StreamOut):
                stream = value.stream
                info.served(stream.deployment, stream.attempts, stream.usage)
                info.outcome = stream.outcome
                return
            if value is None:
                return  # the client left: the cancellation reached the upstream call
            if isinstance(value, DispatchError):
                raise value
            result = value
        except ClientGone:
            return
        except DispatchError as exc:
            if isinstance(exc, InvalidRequest):
                self.metrics.rejected("invalid_request")
            if exc.attempts:
                info.attempts = len(exc.attempts)
            await respond_error(send, exc)
            return
        info.served(result.deployment, len(result.attempts), result.response.usage)
        payload = encoder.encode(result.response)
        headers = [
            ("x-dispatcher-deployment", result.deployment),
            ("x-dispatcher-attempts", str(len(result.attempts))),
        ]
        if result.dropped_params:
            headers.append(("x-dispatcher-dropped-params", ",".join(result.dropped_params)))
        if result.cost_usd is not None:
            headers.append(("x-dispatcher-cost-usd", format_cost(result.cost_usd)))
        self.metrics.overhead(time.perf_counter() - started - result.waited_s)
        await respond(send, 200, payload, headers)

    async def _models(self, scope: Scope, receive: Receive, send: Send) -> None:
        data = [_model_object(group) for group in self.supervisor.groups()]
        await respond(send, 200, msgspec.json.encode({"object": "list", "data": data}))

    async def _model(self, scope: Scope, receive: Receive, send: Send) -> None:
        """One model group as OpenAI's `models.retrieve` answers; 404 `model_not_found`."""
        group = scope["path_params"]["path"]
        groups = self.supervisor.groups()
        if group in groups:
            await respond(send, 200, msgspec.json.encode(_model_object(group)))
            return
        await respond_error(send, UnknownGroup(group, groups))

    async def _health(self, scope: Scope, receive: Receive, send: Send) -> None:
        await respond(send, 200, b'{"status":"ok"}')

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
            await respond(send, 503, body)
        else:
            await respond(send, 200, b'{"status":"ready"}')

    async def _deployments(self, scope: Scope, receive: Receive, send: Send) -> None:
        metrics = self.metrics
        stats = [
            {
                **msgspec.structs.asdict(actor.statistics()),
                # None: the deployment has no price, so its answers have no cost.
                "cost_usd": None if actor.price is None else metrics.cost_usd(group, actor.name),
            }
            for group, members in self.supervisor.router.groups.items()
            for actor in members
        ]
        await respond(send, 200, msgspec.json.encode({"object": "list", "data": stats}))

    async def _cluster_status(self, scope: Scope, receive: Receive, send: Send) -> None:
        status = await self._cluster() if self._cluster is not None else {"enabled": False}
        await respond(send, 200, msgspec.json.encode(status))

    async def _metrics(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = generate_latest(self.metrics.registry)
        await respond(send, 200, body, content_type=CONTENT_TYPE_LATEST)


def _model_object(group: str) -> dict[str, str | int]:
    return {"id": group, "object": "model", "created": 0, "owned_by": "llm-dispatcher"}


class _StreamOut:
    """A committed stream sent as server-sent events; a client that leaves cancels it.

    `relay` runs inside the request's watch scope (the one that covered the dispatch: the
    client leaving cancels it), which also ends at the drain deadline; `after` (outside
    it) ends a stream the drain cut as any failure after the commit ends, and closes it.
    """

    __slots__ = ("_done", "_send", "stream")

    def __init__(self, stream: ChunkStream, send: Send) -> None:
        self.stream = stream
        self._send = send
        self._done = False

    async def relay(self, watch: anyio.CancelScope, drain: Drain) -> None:
        stream = self.stream
        headers = [
            (b"content-type", b"text/event-stream"),
            (b"cache-control", b"no-cache"),
            (b"x-dispatcher-deployment", stream.deployment.encode()),
            (b"x-dispatcher-attempts", str(stream.attempts).encode()),
        ]
        if stream.dropped_params:
            dropped = ",".join(stream.dropped_params).encode()
            headers.append((b"x-dispatcher-dropped-params", dropped))
        await self._send({"type": "http.response.start", "status": 200, "headers": headers})
        drain.watch(watch)  # the watch scope ends the relay at the drain deadline too
        try:
            await stream.relay(self._emit)
        finally:
            drain.unwatch(watch)

    def _emit(
        self, batch: Sequence[ChatCompletionChunk | ErrorChunk], last: bool
    ) -> Awaitable[None] | None:
        # The last chunks go out with [DONE] in one write, as soon as the provider's own
        # end marker came (the rest of its body, read after, holds nothing for the client).
        # The write itself is returned, not awaited: no coroutine of ours per read.
        if self._done:
            return None
        if last:
            self._done = True
            return self._send({"type": "http.response.body", "body": sse_body(batch) + _DONE})
        if batch:
            body = sse_body(batch)
            return self._send({"type": "http.response.body", "body": body, "more_body": True})
        return None

    async def after(self, watch: anyio.CancelScope, drain: Drain) -> None:
        stream = self.stream
        try:
            if watch.cancelled_caught and not self._done and drain.expired():
                await stream.aclose()  # the upstream call stops now, not when this write is done
                last = b"data: " + encoder.encode(stream.stopped_chunk()) + b"\n\n" + _DONE
                with anyio.move_on_after(_LAST_WRITE_S):
                    await self._send({"type": "http.response.body", "body": last})
        finally:
            await stream.aclose()


def _decode_call(body: bytes) -> ChatCall:
    check_nesting(body)
    return decode_body(call_decoder, body)
