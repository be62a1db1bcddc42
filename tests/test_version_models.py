"""Version and metadata: `--version`, `dispatcher_build_info`, the standard process metrics,
and `GET /v1/models/{id}` as the OpenAI SDK's `models.retrieve` calls it."""

from __future__ import annotations

import os
from importlib.metadata import version
from pathlib import Path

import httpx
import httpx2
import openai
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from dispatcher import Metrics
from dispatcher.cli._main import main

from .helpers import running_daemon, uds_client

CONFIG = """
[server]
socket = "run/d.sock"
metrics = "127.0.0.1:0"
[[deployment]]
name = "mini-a"
group = "mini"
provider = "mock"
model = "mock-mini"
[[deployment]]
name = "org-a"
group = "org/model-1"
provider = "mock"
model = "mock-org"
"""


def test_version_flag_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    """`dispatcher --version` prints the distribution's version and exits 0."""
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"dispatcher {version('llm-dispatcher')}\n"


def test_build_info_and_process_metrics_are_on_the_injected_registry() -> None:
    """The registry a Metrics is given carries build_info and the standard collectors."""
    registry = CollectorRegistry()
    Metrics(registry)
    build = {"version": version("llm-dispatcher")}
    assert registry.get_sample_value("dispatcher_build_info", build) == 1.0
    assert registry.get_sample_value("process_resident_memory_bytes")
    assert registry.get_sample_value("process_open_fds")
    assert registry.get_sample_value("process_cpu_seconds_total") is not None
    info = [s for s in registry.collect() if s.name == "python_info"]
    assert info and info[0].samples[0].labels["implementation"]
    assert registry.get_sample_value("python_gc_collections_total", {"generation": "0"})


@pytest.mark.anyio
async def test_models_retrieve_through_the_sdk(tmp_path: Path) -> None:
    """models.retrieve answers a group (one with '/' too) and 404s in OpenAI's shape."""
    async with running_daemon(CONFIG, tmp_path) as daemon:
        http_client = openai.DefaultAsyncHttpxClient(
            transport=httpx2.AsyncHTTPTransport(uds=os.fspath(daemon.socket_path))
        )
        sdk = openai.AsyncOpenAI(
            base_url="http://dispatcher/v1", api_key="unused", http_client=http_client
        )
        async with sdk:
            model = await sdk.models.retrieve("mini")
            assert (model.id, model.object, model.owned_by) == ("mini", "model", "llm-dispatcher")
            assert (await sdk.models.retrieve("org/model-1")).id == "org/model-1"
            with pytest.raises(openai.NotFoundError) as info:
                await sdk.models.retrieve("gpt-nope")
            assert info.value.code == "model_not_found"
            assert info.value.type == "invalid_request_error"
            assert "gpt-nope" in info.value.message
        async with uds_client(daemon) as client:
            assert (await client.post("/v1/models/mini")).status_code == 405
            assert (await client.get("/v1/models/")).status_code == 404
            scrape = (await client.get("/metrics")).text
        assert daemon.metrics_address is not None
        host, port = daemon.metrics_address
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as tcp:
            # The scrape listener serves /metrics and /health only.
            assert (await tcp.get("/v1/models/mini")).status_code == 404
    samples = {s.name for f in text_string_to_metric_families(scrape) for s in f.samples}
    assert {"dispatcher_build_info", "process_resident_memory_bytes", "python_info"} <= samples
