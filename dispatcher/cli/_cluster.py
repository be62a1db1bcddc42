"""`dispatcher status`'s cluster section, from `GET /v1/cluster` (no Redis import here)."""

from __future__ import annotations

from typing import Any

import httpx
import msgspec


def cluster_lines(client: httpx.Client) -> list[str]:
    """The cluster's members, shared breakers and budgets; nothing without `[cluster]`."""
    response = client.get("/v1/cluster")
    if response.status_code != 200:
        return []
    data: dict[str, Any] = msgspec.json.decode(response.content)
    if not data.get("enabled"):
        return []
    head = f"cluster {data['name']!r} on {data['redis']} (this daemon: {data['member']})"
    if not data.get("connected"):
        return [f"{head}: redis unreachable, serving on local limits and breakers"]
    members = data.get("members") or []
    lines = [f"{head}: connected, {len(members)} member(s)"]
    for member in members:
        lines.append(f"  member {member['member']} (pid {member.get('pid', '?')})")
    lines.append(
        f"  {'deployment':24} {'breaker':10} {'probe':20} {'rpm used':>14} {'tpm used':>16}"
    )
    for row in data.get("deployments") or []:
        breaker = row["breaker"]
        if breaker == "open":
            breaker = f"open {row['open_for_s']:.1f}s"
        lines.append(
            f"  {row['name']:24} {breaker:10} {row.get('probe') or '-':20} "
            f"{_budget(row['rpm_used'], row['rpm']):>14} {_budget(row['tpm_used'], row['tpm']):>16}"
        )
    return lines


def _budget(used: float, limit: int) -> str:
    return f"{used:.0f}/{limit}" if limit else "-"
