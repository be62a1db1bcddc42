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
from collections.abc import Awaitable, Callable
from typing import Annotated, Final
from urllib.parse import parse_qs

import anyio
import msgspec
from msgspec import UNSET, Meta, UnsetType

from actors import call_decoder, encoder

from ._api import ClientGone, Receive, Scope, Send, _read_body, _respond
from ._bodies import check_nesting, decode_body
from ._errors import error_answer, simple_error
from ._exceptions import DispatchError, InvalidRequest, UnknownGroup, clip
from ._jobs import Jobs
from ._jobsql import STATUSES, JobRow, NewJob, Status
from ._requestlog import request_info

Handler = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_WAIT_S: Final = 600.0
MAX_LIMIT: Final = 1000
MAX_TIMEOUT_S: Final = 86400.0
"""A job's own deadline (`timeout_s`) is at most a day."""
MIN_PRIORITY: Final = -(2**31)
MAX_PRIORITY: Final = 2**31 - 1
_ITEM: Final = "/v1/jobs/"
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
    request_id: str | UnsetType = UNSET


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
            ("GET", "/v1/status"): self.status,
        }

    def item_route(self, method: str, path: str) -> Handler | None:
        """The handler for `/v1/jobs/{id}` (None: not such a path)."""
        if not path.startswith(_ITEM) or "/" in path[len(_ITEM) :] or len(path) == len(_ITEM):
            return None
        if method == "GET":
            return self.get
        if method == "DELETE":
            return self.cancel
        return _method_not_allowed

    # -- handlers ------------------------------------------------------------------

    async def submit(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            body = await _read_body(scope, receive, self.max_body_bytes)
            job = self.new_job(body)
            info = request_info()
            info.group = job.model
            job_id, status, created = await self.jobs.submit(job)
            info.job_id = job_id  # an idempotent repeat answers the first job
        except ClientGone:
            return
        except DispatchError as exc:
            await _error(send, exc)
            return
        answer = msgspec.json.encode({"id": job_id, "status": status})
        await _respond(send, 202 if created else 200, answer)

    async def get(self, scope: Scope, receive: Receive, send: Send) -> None:
        job_id = scope["path"][len(_ITEM) :]
        try:
            wait_s = _wait(_query(scope))
            if wait_s:
                found = await self._long_poll(job_id, wait_s, receive)
                if found is None:
                    return  # the client left during the long-poll
                row = found
            else:
                row = await self.jobs.get(job_id)
        except DispatchError as exc:
            await _error(send, exc)
            return
        await _respond(send, 200, encoder.encode(view(row)))

    async def cancel(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            row = await self.jobs.cancel(scope["path"][len(_ITEM) :])
        except DispatchError as exc:
            await _error(send, exc)
            return
        await _respond(send, 200, encoder.encode(view(row)))

    async def list_jobs(self, scope: Scope, receive: Receive, send: Send) -> None:
        query = _query(scope)
        try:
            status = _status(query)
            limit = _limit(query)
            rows = await self.jobs.recent(status, limit + 1)
        except DispatchError as exc:
            await _error(send, exc)
            return
        data = [view(row) for row in rows[:limit]]
        body = {"object": "list", "data": data, "has_more": len(rows) > limit}
        await _respond(send, 200, encoder.encode(body))

    async def status(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = {"object": "status", "jobs": self.jobs.statistics()}
        await _respond(send, 200, encoder.encode(body))

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
            request_id=request_info().request_id or None,
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
        request_id=UNSET if row.request_id is None else row.request_id,
    )


async def _method_not_allowed(scope: Scope, receive: Receive, send: Send) -> None:
    body = simple_error(405, "Method not allowed", "invalid_request_error", "method_not_allowed")
    await _respond(send, 405, body)


async def _error(send: Send, exc: DispatchError) -> None:
    answer = error_answer(exc)
    await _respond(send, answer.status, answer.body, answer.headers)


def _query(scope: Scope) -> dict[str, list[str]]:
    return parse_qs(scope.get("query_string", b"").decode("latin-1"))


def _one(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[-1] if values else None


def _wait(query: dict[str, list[str]]) -> float:
    raw = _one(query, "wait")
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


def _status(query: dict[str, list[str]]) -> Status | None:
    raw = _one(query, "status")
    if raw is None or raw == "":
        return None
    for status in STATUSES:
        if raw == status:
            return status
    raise InvalidRequest(
        f"status: expected one of {', '.join(STATUSES)}, got {clip(raw)!r}", param="status"
    )


def _limit(query: dict[str, list[str]]) -> int:
    raw = _one(query, "limit")
    if raw is None:
        return 20
    # ASCII digits only: str.isdigit() also takes '²', which int() refuses.
    if not _DIGITS.fullmatch(raw) or not 1 <= int(raw) <= MAX_LIMIT:
        raise InvalidRequest(
            f"limit: expected an integer between 1 and {MAX_LIMIT}, got {clip(raw)!r}",
            param="limit",
        )
    return int(raw)
