"""The same bad chat request gets the same error live and as a job (its path under `request`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import msgspec
import pytest

from dispatcher import Daemon

from .jobsupport import client, config_text, running

pytestmark = pytest.mark.anyio

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def daemon(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Daemon]:
    async with running(tmp_path_factory.mktemp("same"), config_text()) as daemon:
        yield daemon


@pytest.fixture
async def http(daemon: Daemon) -> AsyncIterator[httpx.AsyncClient]:
    async with client(daemon) as http:
        with anyio.fail_after(10):
            yield http


@pytest.mark.parametrize(
    "request_body",
    [
        pytest.param({"model": "mini"}, id="no-messages"),
        pytest.param({"messages": MESSAGES}, id="no-model"),
        pytest.param({"model": "mini", "messages": []}, id="empty-messages"),
        pytest.param({"model": "mini", "messages": [{"role": "robot"}]}, id="bad-role"),
        pytest.param({"model": "mini", "messages": [{"content": "x"}]}, id="no-role"),
        pytest.param({"model": "mini", "messages": MESSAGES, "routing": 1}, id="unknown-key"),
        pytest.param({"model": "mini", "messages": MESSAGES, "temperature": "hot"}, id="type"),
        pytest.param({"model": "mini", "messages": MESSAGES, "seed": 2**64}, id="int-range"),
        pytest.param({"model": "mini", "messages": "hi"}, id="messages-not-a-list"),
        pytest.param({"model": "nope", "messages": MESSAGES}, id="unknown-model"),
        pytest.param([1, 2], id="not-an-object"),
    ],
)
async def test_chat_and_jobs_answer_bad_input_alike(
    http: httpx.AsyncClient, request_body: Any
) -> None:
    """Status, type, code and message agree; a job's param is the chat param under `request.`"""
    live = await http.post("/v1/chat/completions", json=request_body)
    job = await http.post("/v1/jobs", json={"request": request_body})
    assert live.status_code == job.status_code, (live.text, job.text)
    assert live.status_code in (400, 404)
    expected: dict[str, Any] = live.json()["error"]
    param = expected["param"]
    if param is not None:
        path = "request" if param.startswith("[") else "request."
        expected["param"] = f"{path}{param}"
        expected["message"] = expected["message"].replace(f"'{param}'", f"'{path}{param}'")
    elif expected["message"].startswith("Invalid request:"):  # the whole body is wrong
        expected["param"] = "request"
        expected["message"] = expected["message"].replace("Invalid request:", "Invalid 'request':")
    assert job.json()["error"] == expected
    assert live.headers.get("x-should-retry") == job.headers.get("x-should-retry") == "false"


async def test_every_post_route_reads_bodies_alike(http: httpx.AsyncClient) -> None:
    """Malformed JSON and a body that is not JSON: the same 400 and 415 on both routes."""
    for path in ("/v1/chat/completions", "/v1/jobs"):
        broken = await http.post(path, content=b"{", headers={"content-type": "application/json"})
        plain = await http.post(path, content=msgspec.json.encode({}))
        assert (broken.status_code, broken.json()["error"]["code"]) == (400, "invalid_json")
        assert (plain.status_code, plain.json()["error"]["code"]) == (415, "unsupported_media_type")
