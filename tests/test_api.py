"""The HTTP API: routes, headers, and a precise error for every kind of bad input."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx
import msgspec
import pytest

from dispatcher import Api

from .helpers import Stack, chat_json, completion, deployments, error, stack

pytestmark = pytest.mark.anyio

JSON = {"content-type": "application/json"}


@contextlib.asynccontextmanager
async def client(
    config: str, handlers: dict, max_body_bytes: int = 4096
) -> AsyncIterator[tuple[httpx.AsyncClient, Stack]]:
    async with stack(config, handlers) as s:
        app = Api(s.supervisor, s.metrics, max_body_bytes=max_body_bytes)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://d") as c:
            yield c, s


async def ok(request: httpx.Request) -> httpx.Response:
    return completion("hello")


async def test_chat_answers_with_routing_headers() -> None:
    """A served request carries x-dispatcher-deployment and x-dispatcher-attempts."""
    async with client(deployments("a g"), {"a": ok}) as (c, _):
        response = await c.post("/v1/chat/completions", json=chat_json())
    assert response.status_code == 200
    assert response.headers["x-dispatcher-deployment"] == "a"
    assert response.headers["x-dispatcher-attempts"] == "1"
    assert response.json()["choices"][0]["message"]["content"] == "hello"


@pytest.mark.parametrize(
    ("body", "status", "code", "param"),
    [
        pytest.param(b"{not json", 400, "invalid_json", None, id="malformed-json"),
        pytest.param(b"[]", 400, "invalid_request", None, id="not-an-object"),
        pytest.param(
            b'{"model": "g"}', 400, "missing_required_parameter", "messages", id="missing-messages"
        ),
        pytest.param(
            b'{"model": "g", "messages": []}',
            400,
            "invalid_request",
            "messages",
            id="empty-messages",
        ),
        pytest.param(
            b'{"model": "g", "messages": [{"role": "user", "content": 5}]}',
            400,
            "invalid_request",
            "messages[0].content",
            id="wrong-type",
        ),
        pytest.param(
            b'{"model": "g", "messages": [{"role": "robot", "content": "x"}]}',
            400,
            "invalid_request",
            "messages[0].role",
            id="bad-role",
        ),
        pytest.param(
            b'{"model": "g", "messages": [{"role": "user", "content": "x"}], "not_a_param": {}}',
            400,
            "unknown_parameter",
            "not_a_param",
            id="unknown-parameter",
        ),
        pytest.param(
            b'{"model": "g", "messages": [{"role": "user", "content": "x", "cache_control": 1}]}',
            400,
            "unknown_parameter",
            "messages[0].cache_control",
            id="unknown-nested",
        ),
        pytest.param(
            b'{"model": "nope", "messages": [{"role": "user", "content": "x"}]}',
            404,
            "model_not_found",
            None,
            id="unknown-model",
        ),
        pytest.param(
            b'{"model": "g", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}',
            400,
            "invalid_request",
            "stream",
            id="stream-wrong-type",
        ),
        pytest.param(b"x" * 5000, 413, "request_too_large", None, id="too-large"),
    ],
)
async def test_bad_input_gets_a_precise_error(
    body: bytes, status: int, code: str, param: str | None
) -> None:
    """Each kind of bad input has its own status, code and param, in OpenAI's error shape."""
    async with client(deployments("a g"), {"a": ok}) as (c, _):
        response = await c.post("/v1/chat/completions", content=body, headers=JSON)
        assert response.status_code == status, response.text
        err = response.json()["error"]
        assert (err["code"], err["param"]) == (code, param)
        assert err["message"]
        # ... and the daemon keeps serving.
        assert (await c.post("/v1/chat/completions", json=chat_json())).status_code == 200


async def test_all_attempts_failed_is_502_listing_attempts() -> None:
    """A 502 body lists each attempt: deployment, error class, status and message."""

    async def down(request: httpx.Request) -> httpx.Response:
        return error(503, message="upstream overloaded")

    async with client(deployments("a g"), {"a": down}) as (c, _):
        response = await c.post("/v1/chat/completions", json=chat_json())
    assert response.status_code == 502
    err = response.json()["error"]
    assert (err["type"], err["code"]) == ("upstream_error", "all_attempts_failed")
    [attempt] = err["attempts"]
    assert (attempt["deployment"], attempt["outcome"], attempt["status"]) == (
        "a",
        "overloaded",
        503,
    )
    assert "upstream overloaded" in attempt["message"]


async def test_context_window_exceeded_is_a_client_error() -> None:
    """With no context-window fallback left, the client gets OpenAI's 400 error."""

    async def small(request: httpx.Request) -> httpx.Response:
        return error(400, "context_length_exceeded", message="maximum context length is 10 tokens")

    async with client(deployments("a g"), {"a": small}) as (c, _):
        response = await c.post("/v1/chat/completions", json=chat_json())
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "context_length_exceeded"


async def test_models_health_and_ready() -> None:
    """/v1/models lists groups; /health and /health/ready answer 200 when all is well."""
    async with client(deployments("a g", "b h"), {"a": ok, "b": ok}) as (c, _):
        models = (await c.get("/v1/models")).json()
        assert sorted(m["id"] for m in models["data"]) == ["g", "h"]
        assert (await c.get("/health")).json() == {"status": "ok"}
        assert (await c.get("/health/ready")).status_code == 200


async def test_ready_names_groups_that_are_cooling() -> None:
    """/health/ready is 503 naming every group whose deployments are all cooling down."""

    async def auth(request: httpx.Request) -> httpx.Response:
        return error(401)

    async with client(deployments("a g", "b h"), {"a": auth, "b": ok}) as (c, _):
        await c.post("/v1/chat/completions", json=chat_json("g"))
        response = await c.get("/health/ready")
    assert response.status_code == 503
    assert response.json()["groups_without_deployment"] == ["g"]


@pytest.mark.parametrize(
    "router",
    [
        pytest.param('[router.fallbacks]\ng = ["h"]', id="router-fallbacks"),
        pytest.param('default_fallbacks = ["h"]', id="default-fallbacks"),
    ],
)
async def test_ready_counts_a_group_whose_fallback_chain_can_serve(router: str) -> None:
    """A group whose own deployments cool down is ready while a fallback group can serve."""

    async def auth(request: httpx.Request) -> httpx.Response:
        return error(401)

    config = deployments("a g", "b h", router=router)
    async with client(config, {"a": auth, "b": ok}) as (c, s):
        served = await c.post("/v1/chat/completions", json=chat_json("g"))
        assert served.headers["x-dispatcher-deployment"] == "b"
        assert s.actors["a"].statistics().state == "open"
        response = await c.get("/health/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


async def test_ready_is_503_when_the_whole_chain_cools() -> None:
    """When a group's own deployments and its fallbacks' all cool down, it is named."""

    async def auth(request: httpx.Request) -> httpx.Response:
        return error(401)

    config = deployments("a g", "b h", "c k", router='[router.fallbacks]\ng = ["h"]')
    async with client(config, {"a": auth, "b": auth, "c": ok}) as (c, _):
        await c.post("/v1/chat/completions", json=chat_json("g"))
        response = await c.get("/health/ready")
    assert response.status_code == 503
    assert response.json()["groups_without_deployment"] == ["g", "h"]


async def test_metrics_exposition() -> None:
    """/metrics is Prometheus text with the dispatcher_ families and actor gauges."""
    async with client(deployments("a g"), {"a": ok}) as (c, _):
        await c.post("/v1/chat/completions", json=chat_json())
        response = await c.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'dispatcher_requests_total{group="g",outcome="success"} 1.0' in text
    assert 'dispatcher_inbox_depth{deployment="a"} 0.0' in text
    assert "dispatcher_overhead_seconds_count 1.0" in text


async def test_unknown_route_and_method() -> None:
    """Unknown paths are 404 and wrong methods 405, both in OpenAI's error shape."""
    async with client(deployments("a g"), {"a": ok}) as (c, _):
        assert (await c.get("/v2/nothing")).status_code == 404
        response = await c.get("/v1/chat/completions")
    assert response.status_code == 405
    assert msgspec.json.decode(response.content)["error"]["code"] == "method_not_allowed"
