"""Prometheus metrics, on an injected registry (no module globals).

On the hot path a request's counters and histograms are plain numbers in dicts on
`Metrics` (one dict update each, no lock, no prometheus_client object per observation:
the daemon serves from one event loop thread). A collector turns them into metric
families at scrape time, as the per-deployment gauges are read from the actors'
`statistics()` then. The exposition is prometheus_client's (`generate_latest`): same
names, labels, buckets and HELP as a `Counter`/`Histogram` would show, less their
`_created` samples. The registry also carries `dispatcher_build_info{version}` and
prometheus_client's standard process (`process_*`), platform (`python_info`) and GC
(`python_gc_*`) collectors, as every Prometheus exporter does.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Final

from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    Info,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

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


class _Counter:
    """A counter family's values by label values, exposed at scrape time."""

    __slots__ = ("documentation", "labels", "name", "values")

    def __init__(self, name: str, documentation: str, labels: tuple[str, ...] = ()) -> None:
        self.name = name
        self.documentation = documentation
        self.labels = labels
        self.values: dict[tuple[str, ...], float] = {} if labels else {(): 0.0}

    def inc(self, key: tuple[str, ...], amount: float = 1.0) -> None:
        values = self.values
        values[key] = values.get(key, 0.0) + amount

    def family(self) -> Metric:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labels)
        for key, value in self.values.items():
            family.add_metric(key, value)
        return family


class _Histogram:
    """A histogram family: per label values, a count per bucket (not cumulative) and a sum."""

    __slots__ = ("_les", "bounds", "documentation", "labels", "name", "series")

    def __init__(
        self,
        name: str,
        documentation: str,
        bounds: tuple[float, ...],
        labels: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labels = labels
        self.bounds = bounds
        self._les = [floatToGoString(b) for b in bounds] + ["+Inf"]  # type: ignore[no-untyped-call]
        # [count in bucket 0, ..., count over the last bound, sum]
        self.series: dict[tuple[str, ...], list[float]] = {}
        if not labels:
            self.series[()] = [0] * (len(bounds) + 1) + [0.0]

    def observe(self, key: tuple[str, ...], value: float) -> None:
        counts = self.series.get(key)
        if counts is None:
            counts = self.series[key] = [0] * (len(self.bounds) + 1) + [0.0]
        counts[bisect_left(self.bounds, value)] += 1  # buckets are "less than or equal"
        counts[-1] += value

    def family(self) -> Metric:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labels)
        for key, counts in self.series.items():
            cumulative = 0.0
            buckets: list[tuple[str, float]] = []
            for le, count in zip(self._les, counts, strict=False):
                cumulative += count
                buckets.append((le, cumulative))
            family.add_metric(key, buckets, counts[-1])
        return family


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
        self._requests = _Counter(
            p + "requests_total", "Requests by model group and outcome", ("group", "outcome")
        )
        self._attempts = _Counter(
            p + "attempts_total",
            "Attempts by group, deployment and outcome",
            ("group", "deployment", "outcome"),
        )
        self._request_duration = _Histogram(
            p + "request_duration_seconds", "Whole-request duration", _LATENCY_BUCKETS, ("group",)
        )
        self._attempt_duration = _Histogram(
            p + "attempt_duration_seconds",
            "Duration of one attempt upstream",
            _LATENCY_BUCKETS,
            ("group", "deployment"),
        )
        self._first_token = _Histogram(
            p + "time_to_first_token_seconds",
            "Time to the first streamed token",
            _LATENCY_BUCKETS,
            ("group", "deployment"),
        )
        self._overhead = _Histogram(
            p + "overhead_seconds",
            "Time spent in the dispatcher itself per request",
            _OVERHEAD_BUCKETS,
        )
        self._fallbacks = _Counter(
            p + "fallbacks_total",
            "Moves from one model group to a fallback group",
            ("from_group", "to_group"),
        )
        self._retries = _Counter(
            p + "retries_total", "Retries on the same deployment", ("deployment",)
        )
        self._tokens = _Counter(
            p + "tokens_total", "Tokens reported by providers", ("group", "deployment", "kind")
        )
        self._cost = _Counter(
            p + "cost_usd_total",
            "USD spent on answers, from their usage and the deployment's price "
            "(answers of unknown cost are not counted)",
            ("group", "deployment"),
        )
        self._rejected = _Counter(
            p + "rejected_total", "Requests refused before any attempt", ("reason",)
        )
        self._job_submissions = _Counter(
            p + "job_submissions_total", "Jobs accepted (committed to the store)"
        )
        self._job_completions = _Counter(
            p + "job_completions_total",
            "Jobs that reached a terminal state, by outcome (success, cancelled, error class)",
            ("outcome",),
        )
        self._job_queue_wait = _Histogram(
            p + "job_queue_wait_seconds",
            "Time from a job's submission to the dispatch that settled it",
            _LATENCY_BUCKETS,
        )
        registry.register(
            _FamiliesCollector(
                (
                    self._requests,
                    self._attempts,
                    self._request_duration,
                    self._attempt_duration,
                    self._first_token,
                    self._overhead,
                    self._fallbacks,
                    self._retries,
                    self._tokens,
                    self._cost,
                    self._rejected,
                )
            )
        )
        registry.register(_ActorCollector(actors))
        registry.register(
            _FamiliesCollector((self._job_submissions, self._job_completions, self._job_queue_wait))
        )

    def request(self, group: str, outcome: str, seconds: float) -> None:
        self._requests.inc((group, outcome))
        self._request_duration.observe((group,), seconds)

    def attempt(self, group: str, deployment: str, outcome: Outcome) -> None:
        label = "success" if isinstance(outcome, Success) else str(outcome.error)
        self._attempts.inc((group, deployment, label))
        self._attempt_duration.observe((group, deployment), outcome.latency_s)
        if isinstance(outcome, Failure):
            return
        usage = outcome.usage
        if usage:
            self._tokens.inc((group, deployment, "prompt"), usage.prompt_tokens)
            self._tokens.inc((group, deployment, "completion"), usage.completion_tokens)
        if outcome.cost_usd is not None:
            self._cost.inc((group, deployment), outcome.cost_usd)

    def cost_usd(self, group: str, deployment: str) -> float:
        """USD counted for `deployment` so far (the `status` view)."""
        return self._cost.values.get((group, deployment), 0.0)

    def first_token(self, group: str, deployment: str, seconds: float) -> None:
        self._first_token.observe((group, deployment), seconds)

    def overhead(self, seconds: float) -> None:
        self._overhead.observe((), max(seconds, 0.0))

    def fallback(self, from_group: str, to_group: str) -> None:
        self._fallbacks.inc((from_group, to_group))

    def retry(self, deployment: str) -> None:
        self._retries.inc((deployment,))

    def rejected(self, reason: str) -> None:
        self._rejected.inc((reason,))

    def job_submitted(self) -> None:
        self._job_submissions.inc(())

    def job_completed(self, outcome: str) -> None:
        self._job_completions.inc((outcome,))

    def job_queue_wait(self, seconds: float) -> None:
        self._job_queue_wait.observe((), max(seconds, 0.0))

    def watch_jobs(self, counts: Callable[[], Mapping[str, int]]) -> None:
        """Serve `dispatcher_jobs{status}` from `counts()` at scrape time."""
        self.registry.register(_JobsCollector(counts))

    def watch_cluster(self, statistics: Callable[[], Any]) -> None:
        """Serve `dispatcher_cluster_*` from a `ClusterStatistics` read at scrape time."""
        self.registry.register(_ClusterCollector(statistics))


class _FamiliesCollector(Collector):
    """The hot-path counters and histograms, as metric families at scrape time."""

    def __init__(self, families: tuple[_Counter | _Histogram, ...]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        for family in self._families:
            yield family.family()

    def describe(self) -> Iterator[Metric]:
        return iter(())


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
