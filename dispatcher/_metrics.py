"""Prometheus metrics, on an injected registry (no module globals).

Counters and histograms are updated on the hot path through cached label
children; the per-deployment gauges are read from the actors' `statistics()`
at scrape time by a custom collector, so no code path keeps them in step.
The registry also carries `dispatcher_build_info{version}` and prometheus_client's
standard process (`process_*`), platform (`python_info`) and GC (`python_gc_*`)
collectors, as every Prometheus exporter does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Final

from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from actors import DeploymentActor, Failure, Outcome, Success

from ._version import VERSION

_LATENCY_BUCKETS: Final = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
)
_OVERHEAD_BUCKETS: Final = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
)


class Metrics:
    """All `dispatcher_*` metrics of one daemon."""

    def __init__(
        self,
        registry: CollectorRegistry,
        actors: Callable[[], Iterable[DeploymentActor]] = tuple,
    ) -> None:
        self.registry = registry
        p = "dispatcher_"
        Info(p + "build", "The running dispatcher", registry=registry).info({"version": VERSION})
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
        self._requests = Counter(
            p + "requests_total",
            "Requests by model group and outcome",
            ["group", "outcome"],
            registry=registry,
        )
        self._attempts = Counter(
            p + "attempts_total",
            "Attempts by group, deployment and outcome",
            ["group", "deployment", "outcome"],
            registry=registry,
        )
        self._request_duration = Histogram(
            p + "request_duration_seconds",
            "Whole-request duration",
            ["group"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self._attempt_duration = Histogram(
            p + "attempt_duration_seconds",
            "Duration of one attempt upstream",
            ["group", "deployment"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.time_to_first_token = Histogram(
            p + "time_to_first_token_seconds",
            "Time to the first streamed token",
            ["group", "deployment"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self._overhead = Histogram(
            p + "overhead_seconds",
            "Time spent in the dispatcher itself per request",
            buckets=_OVERHEAD_BUCKETS,
            registry=registry,
        )
        self._fallbacks = Counter(
            p + "fallbacks_total",
            "Moves from one model group to a fallback group",
            ["from_group", "to_group"],
            registry=registry,
        )
        self._retries = Counter(
            p + "retries_total",
            "Retries on the same deployment",
            ["deployment"],
            registry=registry,
        )
        self._tokens = Counter(
            p + "tokens_total",
            "Tokens reported by providers",
            ["group", "deployment", "kind"],
            registry=registry,
        )
        self._cost = Counter(
            p + "cost_usd_total",
            "USD spent on answers, from their usage and the deployment's price "
            "(answers of unknown cost are not counted)",
            ["group", "deployment"],
            registry=registry,
        )
        self._rejected = Counter(
            p + "rejected_total",
            "Requests refused before any attempt",
            ["reason"],
            registry=registry,
        )
        registry.register(_ActorCollector(actors))
        self._job_submissions = Counter(
            p + "job_submissions_total", "Jobs accepted (committed to the store)", registry=registry
        )
        self._job_completions = Counter(
            p + "job_completions_total",
            "Jobs that reached a terminal state, by outcome (success, cancelled, error class)",
            ["outcome"],
            registry=registry,
        )
        self._job_queue_wait = Histogram(
            p + "job_queue_wait_seconds",
            "Time from a job's submission to the dispatch that settled it",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        # label values -> child; prometheus_client's own lookup takes a lock each time
        self._children: dict[tuple[object, ...], Any] = {}

    def _child(self, metric: Counter | Histogram, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def request(self, group: str, outcome: str, seconds: float) -> None:
        self._child(self._requests, group, outcome).inc()
        self._child(self._request_duration, group).observe(seconds)

    def attempt(self, group: str, deployment: str, outcome: Outcome) -> None:
        label = "success" if isinstance(outcome, Success) else str(outcome.error)
        self._child(self._attempts, group, deployment, label).inc()
        self._child(self._attempt_duration, group, deployment).observe(outcome.latency_s)
        if isinstance(outcome, Failure):
            return
        usage = outcome.usage
        if usage:
            self._child(self._tokens, group, deployment, "prompt").inc(usage.prompt_tokens)
            self._child(self._tokens, group, deployment, "completion").inc(usage.completion_tokens)
        if outcome.cost_usd is not None:
            self._child(self._cost, group, deployment).inc(outcome.cost_usd)

    def cost_usd(self, group: str, deployment: str) -> float:
        """USD counted for `deployment` so far (the `status` view)."""
        labels = {"group": group, "deployment": deployment}
        return self.registry.get_sample_value("dispatcher_cost_usd_total", labels) or 0.0

    def first_token(self, group: str, deployment: str, seconds: float) -> None:
        self._child(self.time_to_first_token, group, deployment).observe(seconds)

    def overhead(self, seconds: float) -> None:
        self._overhead.observe(max(seconds, 0.0))

    def fallback(self, from_group: str, to_group: str) -> None:
        self._child(self._fallbacks, from_group, to_group).inc()

    def retry(self, deployment: str) -> None:
        self._child(self._retries, deployment).inc()

    def rejected(self, reason: str) -> None:
        self._child(self._rejected, reason).inc()

    def job_submitted(self) -> None:
        self._job_submissions.inc()

    def job_completed(self, outcome: str) -> None:
        self._child(self._job_completions, outcome).inc()

    def job_queue_wait(self, seconds: float) -> None:
        self._job_queue_wait.observe(max(seconds, 0.0))

    def watch_jobs(self, counts: Callable[[], Mapping[str, int]]) -> None:
        """Serve `dispatcher_jobs{status}` from `counts()` at scrape time."""
        self.registry.register(_JobsCollector(counts))

    def watch_cluster(self, statistics: Callable[[], Any]) -> None:
        """Serve `dispatcher_cluster_*` from a `ClusterStatistics` read at scrape time."""
        self.registry.register(_ClusterCollector(statistics))


class _ActorCollector(Collector):
    """inbox_depth, inflight and deployment_cooldown, read at scrape time."""

    def __init__(self, actors: Callable[[], Iterable[DeploymentActor]]) -> None:
        self._actors = actors

    def collect(self) -> Iterator[Metric]:
        inbox = GaugeMetricFamily(
            "dispatcher_inbox_depth",
            "Attempts waiting in a deployment's inbox",
            labels=["deployment"],
        )
        inflight = GaugeMetricFamily(
            "dispatcher_inflight", "Attempts in flight upstream", labels=["deployment"]
        )
        cooldown = GaugeMetricFamily(
            "dispatcher_deployment_cooldown",
            "1 while a deployment's breaker is open (cooling down), else 0",
            labels=["deployment"],
        )
        for actor in self._actors():
            stats = actor.statistics()
            inbox.add_metric([stats.name], stats.inbox_used)
            inflight.add_metric([stats.name], stats.inflight)
            cooldown.add_metric([stats.name], 1.0 if stats.state == "open" else 0.0)
        yield inbox
        yield inflight
        yield cooldown

    def describe(self) -> Iterator[Metric]:
        return iter(())


class _JobsCollector(Collector):
    """dispatcher_jobs{status}, read from the job scheduler at scrape time."""

    def __init__(self, counts: Callable[[], Mapping[str, int]]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(
            "dispatcher_jobs", "Jobs in the store by status", labels=["status"]
        )
        for status, count in self._counts().items():
            gauge.add_metric([status], count)
        yield gauge

    def describe(self) -> Iterator[Metric]:
        return iter(())


class _ClusterCollector(Collector):
    """dispatcher_cluster_connected, _members and _redis_calls_total (cluster mode)."""

    def __init__(self, statistics: Callable[[], Any]) -> None:
        self._statistics = statistics

    def collect(self) -> Iterator[Metric]:
        stats = self._statistics()
        yield GaugeMetricFamily(
            "dispatcher_cluster_connected",
            "1 while this daemon shares limits and breakers through Redis; 0: local only",
            value=1.0 if stats.connected else 0.0,
        )
        yield GaugeMetricFamily(
            "dispatcher_cluster_members",
            "Daemons of the cluster alive at the last heartbeat (this one included)",
            value=stats.members,
        )
        yield CounterMetricFamily(
            "dispatcher_cluster_redis_calls",
            "Redis round trips made for leases, breakers and probes",
            value=stats.redis_calls,
        )
        yield CounterMetricFamily(
            "dispatcher_cluster_redis_errors",
            "Redis round trips that failed (each one drops to local limits until rejoined)",
            value=stats.redis_errors,
        )

    def describe(self) -> Iterator[Metric]:
        return iter(())
