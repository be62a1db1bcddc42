"""`dispatcher jobs [ID]` and the job line of `dispatcher status`: read-only views."""

from __future__ import annotations

import time
from typing import Any

import httpx
import msgspec

from ._exceptions import DaemonError


def show_jobs(client: httpx.Client, job_id: str | None, status: str | None, limit: int) -> str:
    """One job as indented JSON, or a table of the newest jobs."""
    if job_id is not None:
        response = client.get(f"/v1/jobs/{job_id}")
        _check(response)
        return msgspec.json.format(response.content, indent=2).decode()
    params: dict[str, str | int] = {"limit": limit}
    if status:
        params["status"] = status
    response = client.get("/v1/jobs", params=params)
    _check(response)
    listing = response.json()
    out = [f"{'id':28} {'status':10} {'model':20} {'attempts':>8}  {'submitted':19}  metadata"]
    for job in listing["data"]:
        out.append(_row(job))
    if listing["has_more"]:
        out.append(f"... (the newest {limit} shown; --limit N for more)")
    return "\n".join(out)


def jobs_line(client: httpx.Client) -> str:
    """`jobs: 12 queued, 4 running (of 256), 100 succeeded, 2 failed, 0 cancelled`."""
    response = client.get("/v1/status")
    if response.status_code == 404:  # a daemon from before jobs
        return "jobs: not served by this daemon"
    _check(response)
    jobs = response.json()["jobs"]
    return (
        f"jobs: {jobs['queued']} queued, {jobs['running']} running "
        f"({jobs['in_flight']} in flight of {jobs['concurrency']}), {jobs['succeeded']} "
        f"succeeded, {jobs['failed']} failed, {jobs['cancelled']} cancelled"
    )


def _row(job: dict[str, Any]) -> str:
    submitted = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(job["created_at"]))
    metadata = " ".join(f"{k}={v}" for k, v in (job.get("metadata") or {}).items())
    return (
        f"{job['id']:28} {job['status']:10} {job['model'][:20]:20} "
        f"{len(job['attempts']):>8}  {submitted:19}  {metadata}"
    )


def _check(response: httpx.Response) -> None:
    if response.status_code == 200:
        return
    try:
        message = response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = response.text
    raise DaemonError(f"error {response.status_code}: {message}")
