"""Retry-After: parsed defensively, capped at the breaker, never an infinite answer header."""

from __future__ import annotations

import email.utils
import math
import time

import httpx
import pytest

from actors import RETRY_AFTER_MAX_COOLDOWNS
from actors.providers import retry_after
from dispatcher import Api, NoCapacity
from dispatcher._errors import MAX_RETRY_AFTER_HEADER_S, error_answer

from .helpers import chat_json, deployments, error, stack

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param({"retry-after": "7"}, 7.0, id="seconds"),
        pytest.param({"retry-after": " 1.5 "}, 1.5, id="fractional-seconds"),
        pytest.param({"retry-after-ms": "250"}, 0.25, id="milliseconds"),
        pytest.param({"retry-after-ms": "250", "retry-after": "9"}, 0.25, id="ms-wins"),
        pytest.param({"retry-after-ms": "inf", "retry-after": "9"}, 9.0, id="bad-ms-falls-back"),
        pytest.param({"retry-after": "inf"}, None, id="inf"),
        pytest.param({"retry-after": "-inf"}, None, id="minus-inf"),
        pytest.param({"retry-after": "nan"}, None, id="nan"),
        pytest.param({"retry-after": "1e999"}, None, id="overflows-to-inf"),
        pytest.param({"retry-after": "-5"}, None, id="negative"),
        pytest.param({"retry-after-ms": "nan"}, None, id="nan-ms"),
        pytest.param({"retry-after": "soon"}, None, id="garbage"),
        pytest.param({"retry-after": ""}, None, id="empty"),
        pytest.param({"retry-after": "Thu, 01 Jan 1970 00:00:00 GMT"}, 0.0, id="past-date"),
        pytest.param({"retry-after": "Fri, 31 Dec 99999 23:59:59 GMT"}, None, id="year-99999"),
        pytest.param({}, None, id="absent"),
    ],
)
def test_retry_after_takes_only_finite_non_negative_waits(
    headers: dict[str, str], expected: float | None
) -> None:
    """Seconds, milliseconds and dates parse; inf, NaN, negatives and garbage are ignored."""
    assert retry_after(headers) == expected


def test_retry_after_reads_an_http_date() -> None:
    """An HTTP date in the future is the seconds until then."""
    when = email.utils.formatdate(time.time() + 120, usegmt=True)
    wait = retry_after({"retry-after": when})
    assert wait is not None
    assert 100.0 < wait <= 121.0


async def _two_requests(value: str) -> tuple[httpx.Response, httpx.Response, float]:
    """Two requests to a deployment that answers 429 with `Retry-After: value` (cooldown 30 s)."""

    async def limited(request: httpx.Request) -> httpx.Response:
        return error(429, "rate_limit_exceeded", **{"retry-after": value})

    config = deployments("a g").replace("[router]", "[router.cooldown]\ncooldown_s = 30\n[router]")
    async with stack(config, {"a": limited}) as s:
        app = Api(s.supervisor, s.metrics, max_body_bytes=4096)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://d") as c:
            first = await c.post("/v1/chat/completions", json=chat_json())
            cooling = s.actors["a"].statistics().cooldown_remaining_s
            second = await c.post("/v1/chat/completions", json=chat_json())
    return first, second, cooling


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("100000", id="27-hours"),
        pytest.param("Fri, 01 Jan 2100 00:00:00 GMT", id="date-in-2100"),
    ],
)
async def test_absurd_retry_after_cools_a_deployment_for_a_few_cooldowns_at_most(
    value: str,
) -> None:
    """A 429 asking for hours or years holds the deployment off for the cap, not for that."""
    first, second, cooling = await _two_requests(value)
    assert first.status_code == 502
    cap = 30.0 * RETRY_AFTER_MAX_COOLDOWNS
    assert cap - 5.0 < cooling <= cap
    assert second.status_code == 503
    assert 1 <= int(second.headers["retry-after"]) <= math.ceil(cap)


@pytest.mark.parametrize("value", ["inf", "1e999", "nan"])
async def test_infinite_retry_after_is_ignored(value: str) -> None:
    """`Retry-After: inf` neither cools the deployment forever nor turns later requests to 500."""
    first, second, cooling = await _two_requests(value)
    assert cooling == 0.0
    assert (first.status_code, second.status_code) == (502, 502)


@pytest.mark.parametrize("wait", [math.inf, math.nan, 1e300, -3.0])
def test_error_table_retry_after_header_is_always_a_small_integer(wait: float) -> None:
    """Whatever a capacity error carries, its Retry-After header is a bounded whole number."""
    answer = error_answer(NoCapacity("cooling_down", wait, "g"))
    [(_, value)] = [h for h in answer.headers if h[0] == "retry-after"]
    assert 1 <= int(value) <= MAX_RETRY_AFTER_HEADER_S
