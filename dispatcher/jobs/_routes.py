"""The job routes of the socket API.

    POST   /v1/jobs                 submit: 202 {"id", "status"} once committed
                                    (200 for a repeated idempotency_key, 409 if its request differs)
    GET    /v1/jobs?status=&limit=  the newest jobs, newest first
    GET    /v1/jobs/{id}[?wait=S]   one job; long-polls up to S seconds for a terminal state
    DELETE /v1/jobs/{id}            cancel
    GET    /v1/status               job counts (what `dispatcher status` shows)

The chat request is kept as the client's own JSON bytes (`request`), validated
here once (by the same translator as a live request's, its path under `request`);
`metadata`, `priority` and the rest stay in the job's envelope and never reach a
provider. A failed job's error, kept as data, is rendered by the error table as the
live request's error object plus its `http_status`.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from typing import Annotated, Final

import anyio
import msgspec
from msgspec import UNSET, Meta, UnsetType

from actors import call_decoder, encoder

from .._errors import render
from .._exceptions import AttemptRecord, DispatchError, InvalidRequest, UnknownGroup, clip
from .._http import (
    ClientGone,
    Handler,
    Receive,
    Scope,
    Send,
    check_nesting,
    decode_body,
    query,
    query_one,
    read_body,
    respond,
    respond_error,
)
from .._requestlog import request_info
from ._model import STATUSES, Job, NewJob, Status
from ._scheduler import Jobs

MAX_WAIT_S: Final = 600.0
MAX_LIMIT: Final = 1000
MAX_TIMEOUT_S: Final = 86400.0
"""A job's own deadline (`timeout_s`) is at most a day."""
MIN_PRIORITY: Final = -(2**31)
MAX_PRIORITY: Final = 2**31 - 1
_DIGITS: Final = re.compile(r"[0-9]{1,4}")


class JobSubmission(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The body of `POST /v1/jobs`; every number has a range (a 400, never an overflow in
    the store or in deadline arithmetic)."""

    request: msgspec.Raw
    """The chat request, kept as the client's bytes."""
    idempotency_key: Annotated[str, Meta(min_length=1, max_length=256)] | None = None
    metadata: dict[str, str] | None = None
    timeout_s: Annotated[float, Meta(gt=0, le=MAX_TIMEOUT_S)] | None = None
    priority: Annotated[int, Meta(ge=MIN_PRIORITY, le=MAX_PRIORITY)] = 0


class AttemptView(msgspec.Struct, frozen=True):
    """One attempt as a job lists it (its message shows in the error, when it failed; the
    answering attempt's `cost_usd` when its model has a price)."""

    deployment: str
    outcome: str
    status: int | None
    latency_ms: float
    cost_usd: float | UnsetType = UNSET


class ErrorView(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A failed job's error: the object a live request would have got, and its status."""

    message: str
    type: str
    code: str
    param: str | None
    attempts: tuple[AttemptRecord, ...] | UnsetType = UNSET
    http_status: int


class JobView(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A job as the API shows it; the stored result and metadata are spliced in as is."""

    id: str
    status: str
    model: str
    created_at: int
    attempts: tuple[AttemptView, ...]
    result: msgspec.Raw | UnsetType = UNSET
    error: ErrorView | UnsetType = UNSET
    metadata: msgspec.Raw | UnsetType = UNSET
    request_id: str | UnsetType = UNSET


_submission: Final = msgspec.json.Decoder(JobSubmission)


class JobRoutes:
    """Route handlers over a `Jobs` scheduler (`routes()`: the table the daemon composes)."""

    def __init__(self, jobs: Jobs, *, max_body_bytes: int) -> None:
        self.jobs = jobs
        self.max_body_bytes = max_body_bytes

    def routes(self) -> dict[tuple[str, str], Handler]:
        return {
            ("POST", "/v1/jobs"): self.submit,
            ("GET", "/v1/jobs"): self.list_jobs,
            ("GET", "/v1/jobs/{id}"): self.get,
            ("DELETE", "/v1/jobs/{id}"): self.cancel,
            ("GET", "/v1/status"): self.status,
        }

    # -- handlers ------------------------------------------------------------------

    async def submit(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            body = await read_body(scope, receive, self.max_body_bytes)
            job = self.new_job(body)
            info = request_info()
            info.group = job.model
            job_id, status, created = await self.jobs.submit(job)
            info.job_id = job_id  # an idempotent repeat answers the first job
        except ClientGone:
            return
        except DispatchError as exc:
            await respond_error(send, exc)
            return
        answer = msgspec.json.encode({"id": job_id, "status": status})
        await respond(send, 202 if created else 200, answer)

    async def get(self, scope: Scope, receive: Receive, send: Send) -> None:
        job_id = scope["path_params"]["id"]
        try:
            wait_s = _wait(query(scope))
            if wait_s:
                found = await self._long_poll(job_id, wait_s, receive)
                if found is None:
                    return  # the client left during the long-poll
                job = found
            else:
                job = await self.jobs.get(job_id)
        except DispatchError as exc:
            await respond_error(send, exc)
            return
        await respond(send, 200, encoder.encode(view(job)))

    async def cancel(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            job = await self.jobs.cancel(scope["path_params"]["id"])
        except DispatchError as exc:
            await respond_error(send, exc)
            return
        await respond(send, 200, encoder.encode(view(job)))

    async def list_jobs(self, scope: Scope, receive: Receive, send: Send) -> None:
        params = query(scope)
        try:
            status = _status(params)
            limit = _limit(params)
            jobs = await self.jobs.recent(status, limit + 1)
        except DispatchError as exc:
            await respond_error(send, exc)
            return
        data = [view(job) for job in jobs[:limit]]
        body = {"object": "list", "data": data, "has_more": len(jobs) > limit}
        await respond(send, 200, encoder.encode(body))

    async def status(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = {"object": "status", "jobs": self.jobs.statistics()}
        await respond(send, 200, encoder.encode(body))

    # -- helpers -------------------------------------------------------------------

    def new_job(self, body: bytes) -> NewJob:
        """Validate a submission (400 with the parameter's path, 404 unknown model)."""
        check_nesting(body, envelope=1)
        submission = decode_body(_submission, body)
        request = bytes(submission.request)
        call = decode_body(call_decoder, request, prefix="request")
        if call.stream:
            raise InvalidRequest(
                "jobs are not streamed: leave out request.stream or set it to false",
                param="request.stream",
            )
        groups = self.jobs.groups()
        if call.model not in groups:
            raise UnknownGroup(call.model, groups)
        metadata = submission.metadata
        key = submission.idempotency_key
        # Only a key compares requests, and it must not care how they were spelled (key
        # order, spaces): then, and only then, the request is encoded canonically once.
        digest = b"" if key is None else hashlib.sha256(encoder.encode(call)).digest()
        return NewJob(
            id=f"job_{secrets.token_hex(12)}",
            model=call.model,
            request=request,
            digest=digest,
            idempotency_key=key,
            metadata=None if metadata is None else encoder.encode(metadata),
            timeout_s=submission.timeout_s,
            priority=submission.priority,
            created_at=time.time(),
            request_id=request_info().request_id or None,
        )

    async def _long_poll(self, job_id: str, wait_s: float, receive: Receive) -> Job | None:
        """`Jobs.get` with a wait, given up when the client disconnects."""
        found: list[Job] = []
        failed: list[DispatchError] = []
        async with anyio.create_task_group() as tg:

            async def watch() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                tg.cancel_scope.cancel()

            tg.start_soon(watch)
            try:
                found.append(await self.jobs.get(job_id, wait_s=wait_s))
            except DispatchError as exc:
                failed.append(exc)
            tg.cancel_scope.cancel()
        if failed:
            raise failed[0]
        return found[0] if found else None


def view(job: Job) -> JobView:
    error: ErrorView | UnsetType = UNSET
    if job.error is not None:
        status, shown, _ = render(job.error, job.attempts)
        error = ErrorView(
            message=shown.message,
            type=shown.type,
            code=shown.code,
            param=shown.param,
            attempts=shown.attempts,
            http_status=status,
        )
    return JobView(
        id=job.id,
        status=job.status,
        model=job.model,
        created_at=int(job.created_at),
        attempts=tuple(
            AttemptView(
                a.deployment,
                a.outcome,
                a.status,
                a.latency_ms,
                UNSET if a.cost_usd is None else a.cost_usd,
            )
            for a in job.attempts
        ),
        result=UNSET if job.result is None else msgspec.Raw(job.result),
        error=error,
        metadata=UNSET if job.metadata is None else msgspec.Raw(job.metadata),
        request_id=UNSET if job.request_id is None else job.request_id,
    )


def _wait(params: dict[str, list[str]]) -> float:
    raw = query_one(params, "wait")
    if raw is None:
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= MAX_WAIT_S:  # also rejects nan
        raise InvalidRequest(
            f"wait: expected seconds between 0 and {MAX_WAIT_S:g}, got {clip(raw)!r}",
            param="wait",
        )
    return value


def _status(params: dict[str, list[str]]) -> Status | None:
    raw = query_one(params, "status")
    if raw is None or raw == "":
        return None
    for status in STATUSES:
        if raw == status:
            return status
    raise InvalidRequest(
        f"status: expected one of {', '.join(STATUSES)}, got {clip(raw)!r}", param="status"
    )


def _limit(params: dict[str, list[str]]) -> int:
    raw = query_one(params, "limit")
    if raw is None:
        return 20
    # ASCII digits only: str.isdigit() also takes '²', which int() refuses.
    if not _DIGITS.fullmatch(raw) or not 1 <= int(raw) <= MAX_LIMIT:
        raise InvalidRequest(
            f"limit: expected an integer between 1 and {MAX_LIMIT}, got {clip(raw)!r}",
            param="limit",
        )
    return int(raw)
