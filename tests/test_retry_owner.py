"""One retry owner: answers a client must not retry say so; capacity refusals are 429s."""

from __future__ import annotations

import os
from pathlib import Path

import httpx2
import openai
import pytest

from actors import ErrorClass
from dispatcher import (
    AllAttemptsFailed,
    AttemptRecord,
    BodyTooLarge,
    Daemon,
    DeadlineExceeded,
    DispatchError,
    IdempotencyConflict,
    InvalidRequest,
    NoCapacity,
    StoreUnavailable,
    UnknownGroup,
    UnknownJob,
    error_answer,
)

from .helpers import running_daemon

pytestmark = pytest.mark.anyio

_FAILED = (AttemptRecord(deployment="a", outcome="server_error", status=500, latency_ms=1.0),)
_REJECTED = (AttemptRecord(deployment="a", outcome="bad_request", status=400, latency_ms=1.0),)


@pytest.mark.parametrize(
    ("exc", "status", "should_retry", "retry_after"),
    [
        pytest.param(InvalidRequest("bad"), 400, "false", False, id="400-invalid"),
        pytest.param(BodyTooLarge("big"), 413, "false", False, id="413-too-large"),
        pytest.param(UnknownGroup("x", ("g",)), 404, "false", False, id="404-group"),
        pytest.param(UnknownJob("j"), 404, "false", False, id="404-job"),
        pytest.param(IdempotencyConflict("k", "j"), 409, "false", False, id="409-conflict"),
        pytest.param(
            AllAttemptsFailed("g", _FAILED, ErrorClass.SERVER_ERROR),
            502,
            "false",
            False,
            id="502-after-our-retries",
        ),
        pytest.param(
            AllAttemptsFailed("g", _REJECTED, ErrorClass.BAD_REQUEST),
            400,
            "false",
            False,
            id="400-rejected-by-provider",
        ),
        pytest.param(DeadlineExceeded("g", 1.0, _FAILED), 504, "false", False, id="504"),
        pytest.param(NoCapacity("inbox_full", 2.0, "g"), 429, None, True, id="429-inbox-full"),
        pytest.param(NoCapacity("rate_limited", 2.0, "g"), 429, None, True, id="429-rpm-tpm"),
        pytest.param(NoCapacity("cooling_down", 2.0, "g"), 503, None, True, id="503-cooling"),
        pytest.param(StoreUnavailable("disk full"), 503, None, False, id="503-store"),
        pytest.param(
            StoreUnavailable("busy", retry_after=1.0), 503, None, True, id="503-store-busy"
        ),
        pytest.param(DispatchError("bug"), 500, None, False, id="500"),
    ],
)
def test_error_answers_say_whether_a_client_may_retry(
    exc: DispatchError, status: int, should_retry: str | None, retry_after: bool
) -> None:
    """Final answers carry x-should-retry: false; capacity refusals carry Retry-After."""
    answer = error_answer(exc)
    headers = dict(answer.headers)
    assert answer.status == status
    assert headers.get("x-should-retry") == should_retry
    assert ("retry-after" in headers) is retry_after


def _sdk(daemon: Daemon, *, max_retries: int = 2) -> openai.AsyncOpenAI:
    http_client = openai.DefaultAsyncHttpxClient(
        transport=httpx2.AsyncHTTPTransport(uds=os.fspath(daemon.socket_path))
    )
    return openai.AsyncOpenAI(
        base_url="http://dispatcher/v1",
        api_key="unused",
        http_client=http_client,
        max_retries=max_retries,
    )


_CONFIG = """
[server]
socket = "run/d.sock"
metrics = ""
[router]
num_retries = 1
[[deployment]]
name = "broken"
group = "broken"
provider = "mock"
model = "m"
fail_status = 500
[[deployment]]
name = "slow"
group = "one-per-minute"
provider = "mock"
model = "m"
rpm = 1
"""

_HELLO = [{"role": "user", "content": "hello"}]


async def test_openai_sdk_makes_one_http_call_for_a_502(tmp_path: Path) -> None:
    """The SDK (default max_retries=2) does not retry a 502 the daemon already retried."""
    async with running_daemon(_CONFIG, tmp_path) as daemon, _sdk(daemon) as sdk:
        with pytest.raises(openai.InternalServerError) as info:
            await sdk.chat.completions.create(model="broken", messages=_HELLO)  # type: ignore[arg-type]
        assert info.value.status_code == 502
        assert info.value.response.headers["x-should-retry"] == "false"
        registry = daemon.metrics.registry
        calls = registry.get_sample_value(
            "dispatcher_requests_total", {"group": "broken", "outcome": "server_error"}
        )
        assert calls == 1
        attempts = registry.get_sample_value(
            "dispatcher_attempts_total",
            {"group": "broken", "deployment": "broken", "outcome": "server_error"},
        )
        assert attempts == 2  # our one retry (num_retries = 1), and nobody else's


async def test_spent_rpm_budget_is_a_429_with_retry_after(tmp_path: Path) -> None:
    """A deployment out of rpm answers 429 rate_limited with Retry-After, not a 503."""
    async with running_daemon(_CONFIG, tmp_path) as daemon, _sdk(daemon, max_retries=0) as sdk:
        await sdk.chat.completions.create(model="one-per-minute", messages=_HELLO)  # type: ignore[arg-type]
        with pytest.raises(openai.RateLimitError) as info:
            await sdk.chat.completions.create(model="one-per-minute", messages=_HELLO)  # type: ignore[arg-type]
    assert info.value.status_code == 429
    assert info.value.code == "rate_limited"
    assert 1 <= int(info.value.response.headers["retry-after"]) <= 60
