"""The socket's clients: `dispatcher chat`, `dispatcher status`, `dispatcher jobs [ID]`.

Plain HTTP over the Unix socket with httpx: nothing of the server is imported here.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import msgspec

from .._exceptions import DaemonError
from ._cluster import cluster_lines


def connect(socket_path: Path) -> httpx.Client:
    """A client of the daemon at `socket_path` (no timeout: long-polls wait as asked)."""
    transport = httpx.HTTPTransport(uds=os.fspath(socket_path))
    return httpx.Client(transport=transport, base_url="http://dispatcher", timeout=None)


def chat(socket_path: Path, model: str, text: str) -> int:
    """Send one user message to `model`; print the answer, and where it was served."""
    body = {"model": model, "messages": [{"role": "user", "content": text}]}
    with connect(socket_path) as client:
        response = client.post("/v1/chat/completions", json=body)
    if response.status_code != 200:
        print(f"error {response.status_code}: {response.text}", file=sys.stderr)
        return 1
    data = response.json()
    message = data["choices"][0]["message"]
    if message.get("content") is not None:
        print(message["content"])
    for call in message.get("tool_calls") or ():
        print(f"[tool call] {call['function']['name']}({call['function']['arguments']})")
    deployment = response.headers.get("x-dispatcher-deployment")
    attempts = response.headers.get("x-dispatcher-attempts")
    cost = response.headers.get("x-dispatcher-cost-usd")
    priced = f", ${cost}" if cost is not None else ""
    print(f"-- {deployment}, {attempts} attempt(s){priced}", file=sys.stderr)
    return 0


def status(socket_path: Path) -> int:
    """Print the deployments (state, inbox, in flight, cooldown, cost), the job counts, and
    the cluster (members, shared breakers, budgets) when there is one."""
    with connect(socket_path) as client:
        response = client.get("/v1/deployments")
        jobs = jobs_line(client) if response.status_code == 200 else ""
        cluster = cluster_lines(client) if response.status_code == 200 else []
    if response.status_code != 200:
        print(f"error {response.status_code}: {response.text}", file=sys.stderr)
        return 1
    rows = msgspec.json.decode(response.content)["data"]
    print(
        f"{'deployment':24} {'group':16} {'state':10} {'inbox':>9} {'inflight':>9} {'cooldown':>9}"
        f" {'cost (USD)':>12}"
    )
    total = 0.0
    for row in rows:
        cost = row.get("cost_usd")
        total += cost or 0.0
        print(
            f"{row['name']:24} {row['group']:16} {row['state']:10} "
            f"{row['inbox_used']:>4}/{row['inbox_size']:<4} "
            f"{row['inflight']:>4}/{row['concurrency']:<4} "
            f"{row['cooldown_remaining_s']:>8.1f}s "
            + (f"{cost:>12.6f}" if cost is not None else f"{'no price':>12}")
        )
    unpriced = sum(1 for row in rows if row.get("cost_usd") is None)
    print(
        f"cost since start: ${total:.6f}"
        + (f" ({unpriced} deployment(s) without a price not counted)" if unpriced else "")
    )
    print(jobs)
    for line in cluster:
        print(line)
    return 0


def show_jobs(socket_path: Path, job_id: str | None, status: str | None, limit: int) -> str:
    """One job as indented JSON, or a table of the newest jobs."""
    with connect(socket_path) as client:
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
