"""deploy/grafana-dashboard.json: every metric and label its queries name exists in a real
scrape of a daemon that has served traffic."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from .helpers import running_daemon, uds_client

pytestmark = pytest.mark.anyio

DASHBOARD = Path(__file__).resolve().parent.parent / "deploy" / "grafana-dashboard.json"
PROMETHEUS_LABELS = frozenset({"instance", "job"})
"""Labels Prometheus adds at scrape time (not in the daemon's own exposition)."""
OUR_METRIC = re.compile(r"\b(?:dispatcher|process|python)_[a-z0-9_]+\b")
SELECTOR = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}")
MATCHER_LABEL = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
LABEL_VALUES = re.compile(r"label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,\s*([a-zA-Z_]\w*)\s*\)")
"""A template variable's `label_values(metric, label)`: a selector without braces."""
CONFIG = """
[server]
socket = "run/d.sock"
metrics = ""
[jobs]
store = "run/jobs.sqlite3"
[router]
num_retries = 1
[router.fallbacks]
flaky = ["mini"]
[[deployment]]
name = "mini-a"
group = "mini"
provider = "mock"
model = "mock-mini"
input_cost_per_mtok = 0.15
output_cost_per_mtok = 0.6
[[deployment]]
name = "broken"
group = "flaky"
provider = "mock"
model = "mock-broken"
fail_status = 503
"""


def queries(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL expression: panel targets (rows included) and template variables."""
    found: list[str] = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for panel in panels:
            found.extend(target["expr"] for target in panel.get("targets", ()))
            walk(panel.get("panels", []))

    walk(dashboard["panels"])
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            found.append(variable["definition"])
    return found


async def scrape_after_traffic(tmp_path: Path) -> dict[str, set[str]]:
    """Sample name -> its label names, from /metrics of a daemon that served a plain request,
    a retried and fallen-back one, a stream, an unknown model and a job."""
    async with running_daemon(CONFIG, tmp_path) as daemon, uds_client(daemon) as client:
        chat = {"model": "mini", "messages": [{"role": "user", "content": "hi"}]}
        assert (await client.post("/v1/chat/completions", json=chat)).status_code == 200
        flaky = await client.post("/v1/chat/completions", json={**chat, "model": "flaky"})
        assert flaky.headers["x-dispatcher-attempts"] == "3"  # a retry, then the fallback
        stream = {**chat, "stream": True, "stream_options": {"include_usage": True}}
        assert (await client.post("/v1/chat/completions", json=stream)).status_code == 200
        assert (await client.post("/v1/chat/completions", json={**chat, "model": "x"})).is_error
        job = (await client.post("/v1/jobs", json={"request": chat})).json()
        done = (await client.get(f"/v1/jobs/{job['id']}?wait=10")).json()
        assert done["status"] == "succeeded"
        text = (await client.get("/metrics")).text
    samples: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, set()).update(sample.labels)
    return samples


def test_dashboard_is_well_formed() -> None:
    """Unique panel ids, no overlapping panels, a data source variable on every query, a
    refId per target."""
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"]
    panels = dashboard["panels"]
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
    cells = [
        (x, y)
        for panel in panels
        for x in range(panel["gridPos"]["x"], panel["gridPos"]["x"] + panel["gridPos"]["w"])
        for y in range(panel["gridPos"]["y"], panel["gridPos"]["y"] + panel["gridPos"]["h"])
    ]
    assert len(cells) == len(set(cells)), "panels overlap"
    assert all(x < 24 for x, _ in cells)
    names = {variable["name"] for variable in dashboard["templating"]["list"]}
    assert {"datasource", "instance", "group", "deployment"} <= names


def test_dashboard_covers_what_operators_ask_for() -> None:
    """Requests, attempts, fallbacks, latency, TTFT, overhead, inbox, in-flight, breakers,
    tokens, cost and jobs each have a query."""
    text = "\n".join(queries(json.loads(DASHBOARD.read_text())))
    for metric in (
        "dispatcher_requests_total",
        "dispatcher_attempts_total",
        "dispatcher_fallbacks_total",
        "dispatcher_retries_total",
        "dispatcher_request_duration_seconds_bucket",
        "dispatcher_time_to_first_token_seconds_bucket",
        "dispatcher_overhead_seconds_bucket",
        "dispatcher_inbox_depth",
        "dispatcher_inflight",
        "dispatcher_deployment_cooldown",
        "dispatcher_tokens_total",
        "dispatcher_cost_usd_total",
        "dispatcher_jobs",
        "dispatcher_job_queue_wait_seconds_bucket",
        "dispatcher_build_info",
        "process_resident_memory_bytes",
    ):
        assert re.search(rf"\b{metric}\{{", text), metric


async def test_every_metric_and_label_of_the_dashboard_is_scraped(tmp_path: Path) -> None:
    """Each metric a query selects is in the scrape (histograms by their _bucket/_sum/_count
    samples), with the labels the query matches on and groups by."""
    scraped = await scrape_after_traffic(tmp_path)
    missing: list[str] = []
    for query in queries(json.loads(DASHBOARD.read_text())):
        selectors = SELECTOR.findall(query)
        groupings = GROUPING.findall(query)
        for name, label in LABEL_VALUES.findall(query):
            selectors.append((name, ""))
            groupings.append(label)
        # Every metric is written with a selector, so none escapes the checks below.
        assert {name for name, _ in selectors} == set(OUR_METRIC.findall(query)), query
        labels_here: set[str] = set(PROMETHEUS_LABELS)
        for name, matchers in selectors:
            labels = scraped.get(name)
            if labels is None:
                missing.append(f"{name} (in {query})")
                continue
            labels_here |= labels
            for label in MATCHER_LABEL.findall(matchers):
                assert label in labels | PROMETHEUS_LABELS, f"{name} has no {label}"
        for grouping in groupings:
            for label in (part.strip() for part in grouping.split(",")):
                assert label in labels_here, f"grouping by {label!r} in {query}"
    assert missing == [], "\n".join(missing)
