"""Supervisor: retries, fallbacks, deadlines and capacity, over scripted transports."""

from __future__ import annotations

import anyio
import httpx
import msgspec
import pytest

from actors import ChatCall, ErrorClass
from dispatcher import AllAttemptsFailed, DeadlineExceeded, NoCapacity, UnknownGroup

from .helpers import chat_json, completion, deployments, error, stack

pytestmark = pytest.mark.anyio


def call(model: str = "g", **extra: object) -> ChatCall:
    return msgspec.convert(chat_json(model, **extra), ChatCall)


class Upstream:
    """A scripted provider: answers from a list, records every body it got."""

    def __init__(self, *answers: httpx.Response | type[Exception] | str) -> None:
        self.answers = list(answers)
        self.bodies: list[bytes] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.bodies.append(request.content)
        answer = self.answers.pop(0) if self.answers else completion()
        if answer == "hang":
            await anyio.sleep_forever()
        if isinstance(answer, type):
            raise answer("scripted")
        assert isinstance(answer, httpx.Response)
        return answer


async def test_success_records_one_attempt_and_metrics() -> None:
    """A healthy deployment answers; metrics count the request and its tokens."""
    up = Upstream()
    async with stack(deployments("a g"), {"a": up}) as s:
        result = await s.supervisor.complete(call())
    assert result.deployment == "a"
    assert [r.outcome for r in result.attempts] == ["success"]
    assert s.sample("dispatcher_requests_total", group="g", outcome="success") == 1
    assert s.sample("dispatcher_tokens_total", group="g", deployment="a", kind="prompt") == 3


async def test_retryable_error_is_retried_on_the_same_deployment() -> None:
    """A 500 is retried up to num_retries on the same deployment."""
    up = Upstream(error(500), error(502))
    config = deployments("a g", router="num_retries = 2").replace("num_retries = 0\n", "")
    async with stack(config, {"a": up}) as s:
        result = await s.supervisor.complete(call())
        assert [r.outcome for r in result.attempts] == ["server_error", "server_error", "success"]
        assert s.sample("dispatcher_retries_total", deployment="a") == 2


@pytest.mark.parametrize(
    ("answer", "error_class"),
    [
        pytest.param(error(401), "auth", id="auth"),
        pytest.param(error(404), "not_found", id="not-found"),
        pytest.param(error(400), "bad_request", id="bad-request"),
        pytest.param(error(429, "insufficient_quota"), "rate_limited", id="quota"),
    ],
)
async def test_non_retryable_error_moves_to_next_candidate(
    answer: httpx.Response, error_class: str
) -> None:
    """Errors that retrying cannot fix go straight to the next deployment."""
    config = deployments("a g", "b g", router='strategy = "least-busy"').replace(
        "num_retries = 0", "num_retries = 3"
    )
    first, second = Upstream(answer), Upstream(answer)
    async with stack(config, {"a": first, "b": second}) as s:
        with pytest.raises(AllAttemptsFailed) as info:
            await s.supervisor.complete(call())
    assert [r.outcome for r in info.value.attempts] == [error_class, error_class]
    assert len(first.bodies) == len(second.bodies) == 1


async def test_every_attempt_receives_identical_bytes() -> None:
    """Failover re-sends the same payload: what one attempt saw, the next sees too."""
    ups = {name: Upstream(error(503)) for name in "abc"}
    ups["c"] = Upstream()
    config = deployments(
        "a g", "b f1", "c f2", router='default_fallbacks = ["f2"]\n[router.fallbacks]\ng = ["f1"]'
    )
    tools = [
        {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
    ]
    request = call(
        tools=tools, tool_choice={"type": "function", "function": {"name": "get_weather"}}
    )
    async with stack(config, ups) as s:
        result = await s.supervisor.complete(request)
        assert result.deployment == "c"
        assert s.sample("dispatcher_fallbacks_total", from_group="g", to_group="f1") == 1
        assert s.sample("dispatcher_fallbacks_total", from_group="f1", to_group="f2") == 1
    bodies = [ups[n].bodies[0] for n in "abc"]
    assert bodies[0] == bodies[1] == bodies[2]
    sent = msgspec.json.decode(bodies[2])
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert sent["tools"][0]["function"]["name"] == "get_weather"


async def test_request_fallbacks_come_before_configured_ones() -> None:
    """Per-request `fallbacks` are tried first, then [router.fallbacks], then defaults."""
    ups = {"a": Upstream(error(503)), "b": Upstream(), "c": Upstream()}
    config = deployments("a g", "b r", "c f", router='[router.fallbacks]\ng = ["f"]')
    async with stack(config, ups) as s:
        result = await s.supervisor.complete(call(fallbacks=["r"]))
    assert result.deployment == "b"
    assert ups["c"].bodies == []


async def test_context_window_error_takes_only_its_own_chain() -> None:
    """context_window_exceeded skips the generic chain for context_window_fallbacks."""
    ups = {
        "a": Upstream(error(400, "context_length_exceeded")),
        "generic": Upstream(),
        "big": Upstream(),
    }
    config = deployments(
        "a g",
        "generic f",
        "big large",
        router='default_fallbacks = ["f"]\n[router.context_window_fallbacks]\ng = ["large"]',
    )
    async with stack(config, ups) as s:
        result = await s.supervisor.complete(call())
    assert result.deployment == "big"
    assert ups["generic"].bodies == []


async def test_content_policy_error_never_takes_the_generic_chain() -> None:
    """content_policy with no content_policy_fallbacks ends the request."""
    ups = {"a": Upstream(error(400, "content_filter")), "generic": Upstream()}
    config = deployments("a g", "generic f", router='default_fallbacks = ["f"]')
    async with stack(config, ups) as s:
        with pytest.raises(AllAttemptsFailed) as info:
            await s.supervisor.complete(call())
    assert info.value.last is ErrorClass.CONTENT_POLICY
    assert ups["generic"].bodies == []


async def test_connection_and_garbage_are_classified() -> None:
    """A transport error is `connection`; a 200 that is not a completion is `server_error`."""
    garbage = httpx.Response(200, content=b"<html>oops</html>")
    ups = {"a": Upstream(httpx.ConnectError), "b": Upstream(garbage)}
    config = deployments("a g", "b g", router='strategy = "least-busy"')
    async with stack(config, ups) as s:
        with pytest.raises(AllAttemptsFailed) as info:
            await s.supervisor.complete(call())
    outcomes = sorted(r.outcome for r in info.value.attempts)
    assert outcomes == ["connection", "server_error"]
    garbage_record = next(r for r in info.value.attempts if r.outcome == "server_error")
    assert "<html>oops</html>" in (garbage_record.message or "")


async def test_deadline_cancels_the_hung_attempt() -> None:
    """The whole-request deadline raises DeadlineExceeded and frees the deployment."""
    up = Upstream("hang")
    async with stack(deployments("a g"), {"a": up}) as s:
        with pytest.raises(DeadlineExceeded):
            await s.supervisor.complete(call(), timeout_s=0.05)
        await anyio.wait_all_tasks_blocked()
        assert s.actors["a"].statistics().inflight == 0


async def test_per_attempt_timeout_fails_over() -> None:
    """A deployment slower than its timeout_s is a `timeout` and the next one answers."""
    ups = {"slow": Upstream("hang"), "fast": Upstream()}
    config = deployments("slow g timeout_s=0.05", "fast f", router='default_fallbacks = ["f"]')
    async with stack(config, ups) as s:
        result = await s.supervisor.complete(call())
    assert [r.outcome for r in result.attempts] == ["timeout", "success"]


async def test_full_inboxes_answer_429_at_once() -> None:
    """With every inbox full the request is refused at once, never queued."""
    release = anyio.Event()

    async def held(request: httpx.Request) -> httpx.Response:
        await release.wait()
        return completion()

    async with stack(deployments("a g inbox=1 concurrency=1"), {"a": held}) as s:
        async with anyio.create_task_group() as tg:
            tg.start_soon(s.supervisor.complete, call())  # in flight
            await anyio.wait_all_tasks_blocked()
            tg.start_soon(s.supervisor.complete, call())  # queued in the inbox
            await anyio.wait_all_tasks_blocked()
            assert s.actors["a"].statistics().inbox_used == 1
            with pytest.raises(NoCapacity) as info:
                await s.supervisor.complete(call())
            assert info.value.reason == "inbox_full"
            assert s.sample("dispatcher_rejected_total", reason="inbox_full") == 1
            release.set()


async def test_breaker_opens_and_cooling_group_answers_503_reason() -> None:
    """allowed_fails failures open the breaker; then nothing is sent and the reason is cooling."""
    up = Upstream(error(500), error(500))
    config = deployments("a g", router="[router.cooldown]\nallowed_fails = 2\ncooldown_s = 60")
    async with stack(config, {"a": up}) as s:
        for _ in range(2):
            with pytest.raises(AllAttemptsFailed):
                await s.supervisor.complete(call())
        with pytest.raises(NoCapacity) as info:
            await s.supervisor.complete(call())
        assert info.value.reason == "cooling_down"
        assert 59 < info.value.retry_after <= 60
        assert len(up.bodies) == 2
        assert s.sample("dispatcher_deployment_cooldown", deployment="a") == 1


async def test_retry_after_opens_cooldown_and_fails_over() -> None:
    """A 429 with a long Retry-After is not waited on inline; the next candidate answers."""
    ups = {"a": Upstream(error(429, **{"retry-after": "30"})), "b": Upstream()}
    config = deployments("a g", "b f", router='default_fallbacks = ["f"]').replace(
        "num_retries = 0", "num_retries = 2"
    )
    async with stack(config, ups) as s:
        result = await s.supervisor.complete(call())
        assert result.deployment == "b"
        assert s.actors["a"].statistics().cooldown_remaining_s > 29


async def test_rpm_limit_skips_the_deployment() -> None:
    """A deployment out of rpm budget is skipped before any network call."""
    ups = {"a": Upstream(), "b": Upstream()}
    config = deployments("a g rpm=1", "b f", router='default_fallbacks = ["f"]')
    async with stack(config, ups) as s:
        first = await s.supervisor.complete(call())
        second = await s.supervisor.complete(call())
    assert (first.deployment, second.deployment) == ("a", "b")
    assert len(ups["a"].bodies) == 1


async def test_unknown_group() -> None:
    """A model that names no group is refused before anything else."""
    async with stack(deployments("a g"), {"a": Upstream()}) as s:
        with pytest.raises(UnknownGroup):
            await s.supervisor.complete(call("nope"))


async def test_secret_never_appears_in_failure_messages() -> None:
    """A provider error that echoes the key is redacted before it reaches the client."""
    up = Upstream(error(401, message="Incorrect API key provided: sk-test-secret"))
    async with stack(deployments("a g"), {"a": up}) as s:
        with pytest.raises(AllAttemptsFailed) as info:
            await s.supervisor.complete(call())
    assert "sk-test-secret" not in (info.value.attempts[0].message or "")
    assert "***" in (info.value.attempts[0].message or "")


async def test_unsupported_param_is_dropped_and_named() -> None:
    """A parameter the provider cannot take is dropped and reported, not sent."""
    up = Upstream()
    config = deployments("a g").replace('provider = "openai-compatible"', 'provider = "azure"')
    config = config.replace('model = "m"', 'model = "m"\napi_version = "2024-10-21"')
    async with stack(config, {"a": up}) as s:
        result = await s.supervisor.complete(call(reasoning_effort="low"))
    assert result.dropped_params == ("reasoning_effort",)
    assert "reasoning_effort" not in msgspec.json.decode(up.bodies[0])


async def test_drop_params_false_skips_the_candidate() -> None:
    """With drop_params = false the deployment is skipped before any network call."""
    ups = {"strict": Upstream(), "b": Upstream()}
    config = deployments(
        "strict g drop_params=false", "b f", router='default_fallbacks = ["f"]'
    ).replace('provider = "openai-compatible"', 'provider = "azure"', 1)
    config = config.replace('model = "m"', 'model = "m"\napi_version = "2024-10-21"', 1)
    async with stack(config, ups) as s:
        result = await s.supervisor.complete(call(reasoning_effort="low"))
    assert result.deployment == "b"
    assert ups["strict"].bodies == []


async def test_deadline_bounds_the_wait_in_a_busy_inbox() -> None:
    """A request queued behind a busy worker still ends at its own deadline."""
    release = anyio.Event()

    async def held(request: httpx.Request) -> httpx.Response:
        await release.wait()
        return completion()

    async with stack(deployments("a g inbox=1 concurrency=1"), {"a": held}) as s:
        async with anyio.create_task_group() as tg:
            tg.start_soon(s.supervisor.complete, call())  # occupies the only worker
            await anyio.wait_all_tasks_blocked()
            with anyio.fail_after(5), pytest.raises(DeadlineExceeded):
                await s.supervisor.complete(call(), timeout_s=0.05)
            release.set()
