"""Fault drills: the mock provider fails as providers do, and each router path shows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from config import ConfigError, parse_config

from .helpers import chat_json, running_daemon, uds_client

pytestmark = pytest.mark.anyio

SERVER = """
[server]
socket = "run/d.sock"
metrics = ""
[router]
num_retries = 0
"""
SPARE = '[router.fallbacks]\ng = ["h"]\n'
"""The drilled deployment is group g's only one; `spare` (group h) is its fallback, so the
order of the attempts is fixed."""


def mock(name: str, group: str, *knobs: str) -> str:
    lines = ["[[deployment]]", f'name = "{name}"', f'group = "{group}"', 'provider = "mock"']
    return "\n".join([*lines, 'model = "mock"', *knobs]) + "\n"


def sample(daemon: Any, name: str, **labels: str) -> float:
    return daemon.registry.get_sample_value(name, labels) or 0.0


def events(text: str) -> list[dict[str, Any]]:
    return [
        json.loads(line.removeprefix("data: "))
        for line in text.splitlines()
        if line.startswith("data: {")
    ]


async def test_context_window_error_takes_the_context_window_chain(tmp_path: Path) -> None:
    """A context-window 400 skips the group's generic fallbacks for its own chain."""
    text = (
        SERVER
        + '[router.fallbacks]\nsmall = ["generic"]\n'
        + '[router.context_window_fallbacks]\nsmall = ["large"]\n'
        + mock("small-1", "small", 'fault = "context_window"')
        + mock("generic-1", "generic")
        + mock("large-1", "large", 'reply = "from the large model"')
    )
    async with running_daemon(text, tmp_path) as daemon, uds_client(daemon) as http:
        response = await http.post("/v1/chat/completions", json=chat_json("small"))
        assert response.status_code == 200, response.text
        assert response.json()["choices"][0]["message"]["content"] == "from the large model"
        assert response.headers["x-dispatcher-attempts"] == "2"
        outcome = {"group": "small", "deployment": "small-1"}
        assert sample(daemon, "dispatcher_attempts_total", **outcome,
                      outcome="context_window_exceeded") == 1  # fmt: skip
        assert sample(daemon, "dispatcher_fallbacks_total", from_group="small",
                      to_group="large") == 1  # fmt: skip
        assert sample(daemon, "dispatcher_attempts_total", group="generic",
                      deployment="generic-1", outcome="success") == 0  # fmt: skip


async def test_content_policy_refusal_takes_only_the_content_policy_chain(
    tmp_path: Path,
) -> None:
    """A content-policy refusal goes to content_policy_fallbacks, never the generic chain;
    without one it is answered, not retried elsewhere."""
    text = (
        SERVER
        + 'default_fallbacks = ["generic"]\n'
        + '[router.content_policy_fallbacks]\nstrict = ["lenient"]\n'
        + mock("strict-1", "strict", 'fault = "content_policy"')
        + mock("alone-1", "alone", 'fault = "content_policy"')
        + mock("generic-1", "generic")
        + mock("lenient-1", "lenient", 'reply = "lenient answer"')
    )
    async with running_daemon(text, tmp_path) as daemon, uds_client(daemon) as http:
        served = await http.post("/v1/chat/completions", json=chat_json("strict"))
        assert served.status_code == 200, served.text
        assert served.json()["choices"][0]["message"]["content"] == "lenient answer"
        refused = await http.post("/v1/chat/completions", json=chat_json("alone"))
        assert refused.status_code == 400
        error = refused.json()["error"]
        assert error["code"] == "content_filter" and "safety system" in error["message"]
        assert [a["outcome"] for a in error["attempts"]] == ["content_policy"]
        assert sample(daemon, "dispatcher_attempts_total", group="generic",
                      deployment="generic-1", outcome="success") == 0  # fmt: skip


async def test_rate_limit_retry_after_cools_the_deployment_down(tmp_path: Path) -> None:
    """A 429 with Retry-After: 30 fails over at once and keeps the deployment out for 30 s."""
    text = (
        SERVER
        + SPARE
        + "[router.cooldown]\nallowed_fails = 5\ncooldown_s = 10\n"
        + mock("limited", "g", 'fault = "rate_limited"', "retry_after_s = 30")
        + mock("spare", "h")
    )
    async with running_daemon(text, tmp_path) as daemon, uds_client(daemon) as http:
        first = await http.post("/v1/chat/completions", json=chat_json("g"))
        assert first.status_code == 200
        # The 429 is not waited out (30 s is over the inline wait): on to the fallback.
        assert first.headers["x-dispatcher-attempts"] == "2"
        assert first.headers["x-dispatcher-deployment"] == "spare"
        rows = {r["name"]: r for r in (await http.get("/v1/deployments")).json()["data"]}
        assert rows["limited"]["state"] == "open"
        assert 25 < rows["limited"]["cooldown_remaining_s"] <= 30
        for _ in range(3):  # the breaker holds: nobody is sent to `limited` meanwhile
            again = await http.post("/v1/chat/completions", json=chat_json("g"))
            assert again.headers["x-dispatcher-attempts"] == "1"
            assert again.headers["x-dispatcher-deployment"] == "spare"
        assert sample(daemon, "dispatcher_attempts_total", group="g", deployment="limited",
                      outcome="rate_limited") == 1  # fmt: skip


@pytest.mark.parametrize("fault", ["stall_before_first_token", "keepalive_only"])
async def test_no_first_token_fails_over_before_the_commit(tmp_path: Path, fault: str) -> None:
    """A stream that stalls before its first token, or only sends keep-alives, is
    abandoned at first_token_timeout_s and the client gets the next deployment's stream."""
    text = (
        SERVER
        + SPARE
        + mock("stalls", "g", f'fault = "{fault}"', "first_token_timeout_s = 0.3")
        + mock("spare", "h", 'reply = "fresh stream"')
    )
    async with running_daemon(text, tmp_path) as daemon, uds_client(daemon) as http:
        with anyio.fail_after(10):
            response = await http.post("/v1/chat/completions", json=chat_json("g", stream=True))
        assert response.status_code == 200
        assert response.headers["x-dispatcher-deployment"] == "spare"
        assert response.headers["x-dispatcher-attempts"] == "2"
        chunks = events(response.text)
        text_out = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
        assert text_out == "fresh stream"
        assert all(c["choices"][0]["finish_reason"] != "error" for c in chunks)
        assert response.text.endswith("data: [DONE]\n\n")
        assert sample(daemon, "dispatcher_attempts_total", group="g", deployment="stalls",
                      outcome="timeout") == 1  # fmt: skip


async def test_a_stall_after_the_first_token_ends_with_an_error_chunk(tmp_path: Path) -> None:
    """After the commit there is no failover: the idle timeout ends the stream with an
    error chunk (finish_reason "error"), then [DONE]."""
    text = (
        SERVER
        + SPARE
        + mock(
            "stalls",
            "g",
            'fault = "stall_after_first_token"',
            'reply = "one two three"',
            "idle_timeout_s = 0.3",
        )
        + mock("spare", "h")
    )
    async with running_daemon(text, tmp_path) as daemon, uds_client(daemon) as http:
        with anyio.fail_after(10):
            response = await http.post("/v1/chat/completions", json=chat_json("g", stream=True))
        assert response.headers["x-dispatcher-attempts"] == "1"
        chunks = events(response.text)
        assert chunks[1]["choices"][0]["delta"]["content"] == "one"
        last = chunks[-1]
        assert last["choices"][0]["finish_reason"] == "error"
        assert last["error"]["code"] == "timeout"
        assert response.text.endswith("data: [DONE]\n\n")
        assert sample(daemon, "dispatcher_attempts_total", group="h", deployment="spare",
                      outcome="success") == 0  # fmt: skip


@pytest.mark.parametrize(
    ("knobs", "message"),
    [
        pytest.param(('fault = "rate_limited"', "fail_status = 500"), "one failure at a time",
                     id="two-failures"),
        pytest.param(("retry_after_s = 5",), "retry_after_s", id="retry-after-alone"),
        pytest.param(('fault = "sometimes"',), "fault", id="unknown-fault"),
    ],
)  # fmt: skip
def test_drill_knobs_are_checked(knobs: tuple[str, ...], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(mock("m", "g", *knobs))
    text = mock("m", "g", *knobs).replace('provider = "mock"', 'provider = "openai"')
    with pytest.raises(ConfigError):
        parse_config(text)
