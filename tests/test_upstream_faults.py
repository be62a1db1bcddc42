"""A broken upstream fails one attempt, never the daemon: bodies that never end, events
that never end, huge answers, keep-alives without content and slow drips are each cut
by a bound (bytes or a deadline) and fail over to the next candidate."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import msgspec
import pytest

from actors import ChatCall
from dispatcher import AllAttemptsFailed, Daemon

from .fakes import Directive, OpenAIFake, flood, serve_app, sse, stream
from .helpers import chat_json, deployments, openai_deployment, running_daemon, stack, uds_client
from .provider_streams import events

pytestmark = pytest.mark.anyio

KEY = "sk-fault"
HEAD = """
[server]
socket = "d.sock"
metrics = ""
[router]
num_retries = 0
[router.fallbacks]
"primary" = ["spare"]
"""
SPARE_TEXT = "spare: hi"  # what the spare (a well-behaved fake) answers to "hi"


def chunk(content: str | None = None, **delta: Any) -> dict[str, Any]:
    if content is not None:
        delta["content"] = content
    return {"id": "chatcmpl-f", "object": "chat.completion.chunk", "created": 1,
            "model": "gpt-4o-mini", "choices": [{"index": 0, "delta": delta,
            "finish_reason": None}]}  # fmt: skip


COMPLETION_HEAD = (
    b'{"id":"chatcmpl-f","object":"chat.completion","created":1,"model":"gpt-4o-mini",'
    b'"choices":[{"index":0,"message":{"role":"assistant","content":"'
)
COMPLETION_TAIL = b'"},"finish_reason":"stop"}]}'
ROLE = sse(chunk(role="assistant"))


def endless_json() -> Directive:
    """A completion whose content never ends."""
    return flood(b"a" * 65536, head=COMPLETION_HEAD)


def huge_completion(size: int) -> Directive:
    """A well-formed completion of about `size` bytes."""
    return flood(b"a" * 65536, head=COMPLETION_HEAD, tail=COMPLETION_TAIL, times=size // 65536)


def endless_sse_line(head: bytes = ROLE) -> Directive:
    """A stream whose next `data:` line never ends."""
    return flood(b"a" * 65536, head=head + b'data: {"id":"', content_type="text/event-stream")


def pings(interval_s: float = 0.0) -> Directive:
    """A stream of keep-alive comments (after a role chunk) that never brings content."""
    return flood(b": ping\n\n", head=ROLE, interval_s=interval_s, content_type="text/event-stream")


def drip(interval_s: float) -> Directive:
    """A JSON body that trickles a byte of whitespace at a time and never ends."""
    return flood(b" ", head=b'{"id":', interval_s=interval_s)


def config(primary: str, spare: str, *extra: str) -> str:
    return (
        HEAD
        + openai_deployment("primary-a", "primary", primary, KEY, *extra)
        + openai_deployment("spare-a", "spare", spare, KEY)
    )


def failures(daemon: Daemon, outcome: str) -> float:
    labels = {"group": "primary", "deployment": "primary-a", "outcome": outcome}
    return daemon.registry.get_sample_value("dispatcher_attempts_total", labels) or 0.0


async def ask(daemon: Daemon, *, stream: bool) -> tuple[dict[str, str], str]:
    """One request to group "primary": the answer's headers and its whole text."""
    body = chat_json("primary", "hi", stream=stream)
    async with uds_client(daemon, timeout=30) as client:
        if not stream:
            response = await client.post("/v1/chat/completions", json=body)
            assert response.status_code == 200, response.text
            text = response.json()["choices"][0]["message"]["content"]
            return dict(response.headers), text
        async with client.stream("POST", "/v1/chat/completions", json=body) as response:
            assert response.status_code == 200
            got = await events(response)
    assert got[-1] == "[DONE]"
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in got[:-1] if e["choices"])
    return dict(response.headers), text


@pytest.mark.parametrize(
    ("directive", "stream", "outcome", "extra"),
    [
        pytest.param(endless_json(), False, "server_error", (), id="never-ending-body"),
        pytest.param(huge_completion(4 << 20), False, "server_error", (), id="huge-body"),
        pytest.param(endless_sse_line(), True, "server_error", (), id="never-ending-sse-line"),
        pytest.param(pings(), True, "timeout", ("first_token_timeout_s = 0.3",),
                     id="pings-without-content"),
        pytest.param(drip(0.02), False, "timeout", ("timeout_s = 0.3",), id="slow-drip"),
    ],
)  # fmt: skip
async def test_a_broken_upstream_fails_over(
    tmp_path: Path, directive: Directive, stream: bool, outcome: str, extra: tuple[str, ...]
) -> None:
    """Each fault fails the primary's attempt as `outcome` long before its 60 s attempt
    deadline, the connection is dropped, and the spare answers the client."""
    primary, spare = OpenAIFake(api_key=KEY), OpenAIFake(api_key=KEY, name="spare")
    primary.script(directive)
    budget = () if any(x.startswith("timeout_s") for x in extra) else ("timeout_s = 60",)
    text = config("{p}", "{s}", *budget, "max_response_bytes = 1048576", *extra)
    async with serve_app(primary) as p_url, serve_app(spare) as s_url:
        async with running_daemon(text.format(p=p_url, s=s_url), tmp_path) as daemon:
            with anyio.fail_after(10):
                headers, answer = await ask(daemon, stream=stream)
                await primary.requests[0].wait_finished()
            assert failures(daemon, outcome) == 1
    assert (headers["x-dispatcher-deployment"], answer) == ("spare-a", SPARE_TEXT)
    assert primary.requests[0].disconnected


async def test_a_big_answer_under_the_limit_is_served(tmp_path: Path) -> None:
    """max_response_bytes bounds answers without cutting the ones that fit (3 MiB here)."""
    primary = OpenAIFake(api_key=KEY)
    primary.script(huge_completion(3 << 20))
    text = config("{u}", "{u}", "max_response_bytes = 4194304")
    async with serve_app(primary) as url, running_daemon(text.format(u=url), tmp_path) as daemon:
        with anyio.fail_after(10):
            headers, answer = await ask(daemon, stream=False)
    assert headers["x-dispatcher-deployment"] == "primary-a"
    assert answer == "a" * (3 << 20)


async def _two_streams(primary: OpenAIFake, text: str, tmp_path: Path) -> list[list[Any]]:
    """The events of two streamed requests, one after the other, to a daemon on `primary`
    (its script: one directive per request)."""
    async with serve_app(primary) as url, running_daemon(text.format(u=url), tmp_path) as daemon:
        body = chat_json("primary", "hi", stream=True)
        got = []
        async with uds_client(daemon) as client:
            for _ in range(2):
                with anyio.fail_after(10):
                    async with client.stream("POST", "/v1/chat/completions", json=body) as r:
                        got.append(await events(r))
    return got


async def test_keepalives_do_not_hold_a_committed_stream_past_the_budget(tmp_path: Path) -> None:
    """After content, pings keep a stream alive (idle_timeout_s is reset by any bytes) but
    never past the attempt's budget; a line that never ends is cut by the event limit.
    Both end the way every failure after the commit does: an error chunk, then [DONE]."""
    primary = OpenAIFake(api_key=KEY)
    content = ROLE + sse(chunk("Hel"))
    primary.script(
        flood(b": ping\n\n", head=content, interval_s=0.01, content_type="text/event-stream"),
        endless_sse_line(content),
    )
    text = config("{u}", "{u}", "timeout_s = 0.5", "idle_timeout_s = 0.2")
    got = await _two_streams(primary, text, tmp_path)
    for answer, code in zip(got, ["timeout", "server_error"], strict=True):
        assert answer[-1] == "[DONE]"
        assert answer[-2]["choices"][0]["finish_reason"] == "error"
        assert answer[-2]["error"]["code"] == code
        assert answer[-3]["choices"][0]["delta"]["content"] == "Hel"


async def test_after_content_only_the_idle_timeout_bounds_a_wait(tmp_path: Path) -> None:
    """Once content came, pauses longer than first_token_timeout_s (shorter than
    idle_timeout_s) go through, and a stall is cut at idle_timeout_s: a stream's one alarm
    timer, armed at the first-token deadline, finds the waiting read not yet due and waits
    on for it."""
    primary = OpenAIFake(api_key=KEY)
    content = ROLE + sse(chunk("Hel"))
    primary.script(
        flood(sse(chunk("lo")), head=content, times=2, interval_s=0.3,
              tail=b"data: [DONE]\n\n", content_type="text/event-stream"),
        stream(content, anyio.Event()),  # content, then silence
    )  # fmt: skip
    text = config("{u}", "{u}", "first_token_timeout_s = 0.2", "idle_timeout_s = 0.6")
    got = await _two_streams(primary, text, tmp_path)
    paused, stalled = got
    assert paused[-1] == "[DONE]"
    deltas = [e["choices"][0] for e in paused[:-1] if e["choices"]]
    assert "".join(c["delta"].get("content") or "" for c in deltas) == "Hellolo"
    assert all(c["finish_reason"] != "error" for c in deltas)
    assert stalled[-1] == "[DONE]"
    assert stalled[-2]["error"]["code"] == "timeout"
    assert stalled[-3]["choices"][0]["delta"]["content"] == "Hel"
    assert primary.requests[1].disconnected  # the stalled stream was closed


def test_fault_bodies_are_what_they_claim() -> None:
    """The huge completion is well-formed JSON (so only its size can fail it)."""
    body = COMPLETION_HEAD + b"a" * 65536 * 2 + COMPLETION_TAIL
    assert msgspec.json.decode(body)["choices"][0]["message"]["content"] == "a" * 131072


class _Eager(httpx.AsyncByteStream):
    """A body whose pieces are always there already: iterating it never yields."""

    def __init__(self, head: bytes, filler: bytes) -> None:
        self._head, self._filler = head, filler

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self._head
        while True:
            yield self._filler


@pytest.mark.timeout(20)  # before the fix the loop never yielded: only a signal ended it
@pytest.mark.parametrize(
    ("filler", "outcome"),
    [pytest.param(b": ping\n\n", "timeout", id="pings"),
     pytest.param(b"a" * 4096, "server_error", id="endless-line")],
)  # fmt: skip
async def test_deadlines_reach_a_stream_that_never_waits(filler: bytes, outcome: str) -> None:
    """An upstream read that never has to wait (bytes always buffered) still meets the
    first-token deadline or the event limit: the decode loop reaches a checkpoint."""

    async def handler(request: httpx.Request) -> httpx.Response:
        body = _Eager(ROLE, filler)
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=body)

    spec = deployments("a g first_token_timeout_s=0.2 timeout_s=60")
    async with stack(spec, {"a": handler}) as s:
        call = msgspec.convert(chat_json("g", stream=True), ChatCall)
        with anyio.fail_after(10), pytest.raises(AllAttemptsFailed) as caught:
            await s.supervisor.open_stream(call)
    [attempt] = caught.value.attempts
    assert attempt.outcome == outcome
