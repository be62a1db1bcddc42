"""How jobs share deployments with live requests, so a backlog never starves them.

A job goes through the very same supervisor as a synchronous request, with one
admission rule added (`Supervisor.with_admission`): a job's attempt goes to a
deployment only while it has a slot free for it, keeping `concurrency // 4`
slots (rounded down) for synchronous requests:

    job room = (concurrency - concurrency // 4) - (attempts queued + in flight)

So a job attempt never waits in an inbox (a synchronous request arriving later
is never queued behind it), and live traffic always finds the whole inbox and
at least a quarter of the slots. A deployment without room counts as full;
when none has room the job gets `NoCapacity`, and the scheduler puts it back in
the queue and retries it later.
"""

from __future__ import annotations

from actors import DeploymentActor

from .._supervisor import Supervisor


def job_limit(actor: DeploymentActor) -> int:
    """Attempts (queued or in flight) up to which a deployment takes job attempts."""
    concurrency = actor.spec.concurrency
    return concurrency - concurrency // 4


def job_room(actor: DeploymentActor) -> int:
    """Job attempts this deployment would start at once."""
    return max(job_limit(actor) - actor.load(), 0)


def lanes_of(supervisor: Supervisor) -> Supervisor:
    """`supervisor` for jobs: the same deployments, retries and metrics, admission added."""
    return supervisor.with_admission(lambda actor: job_room(actor) > 0)


def room(supervisor: Supervisor, group: str) -> int | None:
    """Free job room over `group`'s deployments (None: no such group here)."""
    members = supervisor.router.groups.get(group)
    if not members:
        return None
    return sum(job_room(actor) for actor in members)
