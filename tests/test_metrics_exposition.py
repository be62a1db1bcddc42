"""The hot-path metrics are plain numbers turned into families at scrape time: what a scrape
shows must be what prometheus_client's own Counter and Histogram show for the same events."""

from __future__ import annotations

import random

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from actors import ErrorClass, Failure, Success, Usage
from dispatcher._metrics import _LATENCY_BUCKETS, _OVERHEAD_BUCKETS, Metrics


def _samples(registry: CollectorRegistry, prefix: str) -> dict[tuple[str, frozenset], float]:
    text = generate_latest(registry).decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith(prefix) and not sample.name.endswith("_created")
    }


def test_a_scrape_shows_what_prometheus_clients_own_metrics_would() -> None:
    ours = CollectorRegistry()
    metrics = Metrics(ours)
    theirs = CollectorRegistry()
    requests = Counter("dispatcher_requests_total", "x", ["group", "outcome"], registry=theirs)
    duration = Histogram(
        "dispatcher_request_duration_seconds",
        "x",
        ["group"],
        buckets=_LATENCY_BUCKETS,
        registry=theirs,
    )
    attempts = Counter(
        "dispatcher_attempts_total", "x", ["group", "deployment", "outcome"], registry=theirs
    )
    attempt_duration = Histogram(
        "dispatcher_attempt_duration_seconds",
        "x",
        ["group", "deployment"],
        buckets=_LATENCY_BUCKETS,
        registry=theirs,
    )
    tokens = Counter(
        "dispatcher_tokens_total", "x", ["group", "deployment", "kind"], registry=theirs
    )
    cost = Counter("dispatcher_cost_usd_total", "x", ["group", "deployment"], registry=theirs)
    overhead = Histogram(
        "dispatcher_overhead_seconds", "x", buckets=_OVERHEAD_BUCKETS, registry=theirs
    )
    Histogram("dispatcher_job_queue_wait_seconds", "x", buckets=_LATENCY_BUCKETS, registry=theirs)
    Counter("dispatcher_job_submissions_total", "x", registry=theirs)

    rng = random.Random(7)
    # Bucket bounds themselves ("less than or equal"), values between, and past the last.
    values = [*_LATENCY_BUCKETS, 0.0, 1e-9, 700.0, *(rng.uniform(0, 3) for _ in range(200))]
    for i, seconds in enumerate(values):
        group = ("a", "b")[i % 2]
        outcome = ("success", "timeout", "rate_limited")[i % 3]
        metrics.request(group, outcome, seconds)
        requests.labels(group, outcome).inc()
        duration.labels(group).observe(seconds)
        if i % 3 == 0:
            usage = Usage(prompt_tokens=i, completion_tokens=2 * i, total_tokens=3 * i)
            answer = Success(response=None, latency_s=seconds, usage=usage, cost_usd=i / 1000)
            metrics.attempt(group, "dep", answer)
            attempts.labels(group, "dep", "success").inc()
            tokens.labels(group, "dep", "prompt").inc(i)
            tokens.labels(group, "dep", "completion").inc(2 * i)
            cost.labels(group, "dep").inc(i / 1000)
        else:
            failure = Failure(error=ErrorClass.TIMEOUT, message="", latency_s=seconds)
            metrics.attempt(group, "dep", failure)
            attempts.labels(group, "dep", "timeout").inc()
        attempt_duration.labels(group, "dep").observe(seconds)
        metrics.overhead(seconds / 1000)
        overhead.observe(seconds / 1000)

    mine = _samples(ours, "dispatcher_")
    mine.pop(("dispatcher_build_info", frozenset({("version", _version())})))
    assert mine == _samples(theirs, "dispatcher_")
    assert len(mine) > 100  # every family above, every bucket
    assert (
        metrics.cost_usd("a", "dep")
        == mine[("dispatcher_cost_usd_total", frozenset({("group", "a"), ("deployment", "dep")}))]
    )


def _version() -> str:
    from dispatcher._version import VERSION

    return VERSION
