"""The job routes of the socket API.

    POST   /v1/jobs                 submit: 202 {"id", "status"} once committed
                                    (200 for a repeated idempotency_key, 409 if its request differs)
    GET    /v1/jobs?status=&limit=  the newest jobs, newest first
    GET    /v1/jobs/{id}[?wait=S]   one job; long-polls up to S seconds for a terminal state
    DELETE /v1/jobs/{id}            cancel
    GET    /v1/status               job counts (what `dispatcher status` shows)

The chat request is kept as the client's own JSON bytes (`request`), validated
here once; `metadata`, `priority` and the rest stay in the job's envelope and
never reach a provider.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Callable
from typing import Annotated, Final

import anyio
import msgspec
from msgspec import UNSET, Meta, UnsetType

from actors import call_decoder, encoder

from ._exceptions import DispatchError, InvalidRequest, UnknownGroup, clip
from ._http import (
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
from ._jobs import Jobs
from ._jobsql import STATUSES, JobRow, NewJob, Status

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


class JobView(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A job as the API shows it; stored JSON is spliced in as is."""

    id: str
    status: str
    model: str
    created_at: int
    attempts: msgspec.Raw
    result: msgspec.Raw | UnsetType = UNSET
    error: msgspec.Raw | UnsetType = UNSET
    metadata: msgspec.Raw | UnsetType = UNSET


_submission: Final = msgspec.json.Decoder(JobSubmission)


class JobsApi:
    """Route handlers over a `Jobs` scheduler."""

    def __init__(self, jobs: Jobs, groups: Callable[[], tuple[str, ...]], *, max_body_bytes: int):
        self.jobs = jobs
        self._groups = groups
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
            job_id, status, created = await self.jobs.submit(self.new_job(body))
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
                row = found
            else:
                row = await self.jobs.get(job_id)
        except DispatchError as exc:
            await respond_error(send, exc)
            return
        await respond(send, 200, encoder.encode(view(row)))

    async def cancel(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            row = await self.jobs.cancel(scope["path_params"]["id"])
        except DispatchError as exc:
            await respond_error(send, exc)
            return
        await respond(send, 200, encoder.encode(view(row)))

    async def list_jobs(self, scope: Scope, receive: Receive, send: Send) -> None:
        params = query(scope)
        try:
            status = _status(params)
            limit = _limit(params)
            rows = await self.jobs.recent(status, limit + 1)
        except DispatchError as exc:
            await respond_error(send, exc)
            return
        data = [view(row) for row in rows[:limit]]
        body = {"object": "list", "data": data, "has_more": len(rows) > limit}
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
        groups = self._groups()
        if call.model not in groups:
            raise UnknownGroup(call.model, groups)
        metadata = submission.metadata
        return NewJob(
            id=f"job_{secrets.token_hex(12)}",
            model=call.model,
            request=request,
            digest=hashlib.sha256(encoder.encode(call)).digest(),
            idempotency_key=submission.idempotency_key,
            metadata=None if metadata is None else encoder.encode(metadata),
            timeout_s=submission.timeout_s,
            priority=submission.priority,
            created_at=time.time(),
        )

    async def _long_poll(self, job_id: str, wait_s: float, receive: Receive) -> JobRow | None:
        """`Jobs.get` with a wait, given up when the client disconnects."""
        found: list[JobRow] = []
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


def view(row: JobRow) -> JobView:
    return JobView(
        id=row.id,
        status=row.status,
        model=row.model,
        created_at=int(row.created_at),
        attempts=msgspec.Raw(row.attempts or b"[]"),
        result=UNSET if row.result is None else msgspec.Raw(row.result),
        error=UNSET if row.error is None else msgspec.Raw(row.error),
        metadata=UNSET if row.metadata is None else msgspec.Raw(row.metadata),
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
