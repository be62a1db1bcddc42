"""End to end through the daemon: Gemini 3 thought signatures round-trip, thoughts come back
as reasoning_content, logprobs and dropped parameters, against the strict fake."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import openai
import pytest

from .fakes import GeminiFake, serve_app, thought_signature
from .helpers import running_daemon, uds_client
from .provider_streams import FORCED, WEATHER, events, sdk
from .test_gemini_adapter import SKIP
from .test_gemini_e2e import HEAD, KEY, deployment

pytestmark = pytest.mark.anyio

GEMINI_3 = "gemini-3-pro-preview"
QUESTION = {"role": "user", "content": "Weather in Paris?"}
SIGNATURE = thought_signature(GEMINI_3, "get_weather", {"city": "fake"})


@contextlib.asynccontextmanager
async def daemon_for(
    tmp_path: Path, fake: GeminiFake, model: str = GEMINI_3
) -> AsyncIterator[tuple[openai.AsyncOpenAI, httpx.AsyncClient]]:
    """The SDK and a raw client on a daemon whose group "gem" is `model` on `fake`."""
    async with serve_app(fake) as url:
        text = HEAD + deployment("gem", "gemini", model, url, KEY)
        async with running_daemon(text, tmp_path) as daemon, uds_client(daemon) as client:
            async with sdk(daemon) as openai_client:
                yield openai_client, client


async def test_a_signed_call_goes_back_signed_and_gemini_3_accepts_the_turn(
    tmp_path: Path,
) -> None:
    """The SDK keeps the call's extra_content; the next turn sends Gemini its signature."""
    fake = GeminiFake(api_key=KEY)
    async with daemon_for(tmp_path, fake) as (client, _):
        with anyio.fail_after(10):
            first = await client.chat.completions.create(
                model="gem", messages=[QUESTION], tools=WEATHER, tool_choice=FORCED
            )
            message = first.choices[0].message
            [call] = message.tool_calls or []
            result = {"role": "tool", "tool_call_id": call.id, "content": "18C"}
            second = await client.chat.completions.create(
                model="gem",
                messages=[QUESTION, message, result],
                tools=WEATHER,  # type: ignore[list-item]
            )
    assert call.model_extra == {"extra_content": {"google": {"thought_signature": SIGNATURE}}}
    assert second.choices[0].message.content == "gemini: Weather in Paris?"
    sent = fake.requests[1].json["contents"][1]["parts"][0]
    assert sent["thoughtSignature"] == SIGNATURE  # not the placeholder
    assert [r.status for r in fake.requests] == [200, 200]


async def test_a_streamed_signed_call_round_trips(tmp_path: Path) -> None:
    """The one streamed fragment of a call carries extra_content; sent back, it is accepted."""
    fake = GeminiFake(api_key=KEY)
    ask = {"model": "gem", "messages": [QUESTION], "tools": WEATHER, "tool_choice": FORCED}
    async with daemon_for(tmp_path, fake) as (_, client):
        with anyio.fail_after(10):
            async with client.stream(
                "POST", "/v1/chat/completions", json=ask | {"stream": True}
            ) as r:
                got = await events(r)
            [fragment] = [
                call
                for event in got[:-1]
                for choice in event["choices"]
                for call in choice["delta"].get("tool_calls") or ()
            ]
            call = {key: fragment[key] for key in ("id", "type", "function", "extra_content")}
            history = [QUESTION, {"role": "assistant", "tool_calls": [call]},
                       {"role": "tool", "tool_call_id": call["id"], "content": "18C"}]  # fmt: skip
            second = await client.post(
                "/v1/chat/completions", json={"model": "gem", "messages": history}
            )
    assert fragment["extra_content"] == {"google": {"thought_signature": SIGNATURE}}
    assert second.status_code == 200, second.text
    assert fake.requests[1].json["contents"][1]["parts"][0]["thoughtSignature"] == SIGNATURE


@pytest.mark.parametrize(
    ("extra", "status", "sent"),
    [
        pytest.param(None, 200, SKIP, id="no-signature-gets-the-placeholder"),
        pytest.param({"google": {"thought_signature": "c2lnbmF0dXJl"}}, 400, "c2lnbmF0dXJl",
                     id="a-foreign-signature-is-refused"),
    ],
)  # fmt: skip
async def test_gemini_3_judges_the_signature_it_gets(
    tmp_path: Path, extra: dict[str, Any] | None, status: int, sent: str
) -> None:
    """History from elsewhere goes with Google's placeholder; a wrong signature is a 400."""
    function = {"name": "get_weather", "arguments": '{"city":"fake"}'}
    call: dict[str, Any] = {"id": "c1", "type": "function", "function": function}
    if extra is not None:
        call["extra_content"] = extra
    history = [QUESTION, {"role": "assistant", "tool_calls": [call]},
               {"role": "tool", "tool_call_id": "c1", "content": "18C"}]  # fmt: skip
    fake = GeminiFake(api_key=KEY)
    async with daemon_for(tmp_path, fake) as (_, client):
        with anyio.fail_after(10):
            response = await client.post(
                "/v1/chat/completions", json={"model": "gem", "messages": history}
            )
    assert response.status_code == status, response.text
    assert fake.requests[0].json["contents"][1]["parts"][0]["thoughtSignature"] == sent
    if status != 200:
        assert "Corrupted thought signature" in response.text


async def test_thoughts_come_back_as_reasoning_content(tmp_path: Path) -> None:
    """reasoning_effort asks Gemini for thoughts; they are reasoning, never the answer."""
    fake = GeminiFake(api_key=KEY)
    async with daemon_for(tmp_path, fake, "gemini-3-flash-preview") as (client, raw):
        with anyio.fail_after(10):
            whole = await client.chat.completions.create(
                model="gem", messages=[{"role": "user", "content": "hi"}], reasoning_effort="low"
            )
            ask = {"model": "gem", "stream": True, "reasoning_effort": "minimal",
                   "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
            async with raw.stream("POST", "/v1/chat/completions", json=ask) as response:
                got = await events(response)
    message = whole.choices[0].message
    assert message.content == "gemini: hi"
    assert message.model_extra == {"reasoning_content": "Thinking about 'hi'."}
    usage = whole.usage
    assert usage is not None and usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens
    deltas = [c["choices"][0]["delta"] for c in got[:-1] if c["choices"]]
    assert "".join(d.get("reasoning_content") or "" for d in deltas) == "Thinking about 'hi'."
    assert "".join(d.get("content") or "" for d in deltas) == "gemini: hi"
    configs = [r.json["generationConfig"]["thinkingConfig"] for r in fake.requests]
    assert configs == [{"thinkingLevel": "LOW", "includeThoughts": True},
                       {"thinkingLevel": "MINIMAL", "includeThoughts": True}]  # fmt: skip


async def test_logprobs_come_back_in_openais_shape(tmp_path: Path) -> None:
    """logprobs / top_logprobs -> responseLogprobs / logprobs, and back as logprobs.content."""
    fake = GeminiFake(api_key=KEY)
    async with daemon_for(tmp_path, fake) as (client, _):
        with anyio.fail_after(10):
            answer = await client.chat.completions.create(
                model="gem", messages=[{"role": "user", "content": "hi there"}],
                logprobs=True, top_logprobs=2,
            )  # fmt: skip
    choice = answer.choices[0]
    assert choice.logprobs is not None and choice.logprobs.content
    assert "".join(t.token for t in choice.logprobs.content) == choice.message.content
    assert all(len(t.top_logprobs) == 2 for t in choice.logprobs.content)
    config = fake.requests[0].json["generationConfig"]
    assert config == {"responseLogprobs": True, "logprobs": 2}


async def test_openai_only_parameters_and_cache_hints_are_named(tmp_path: Path) -> None:
    """metadata, store and part cache hints never reach Gemini and are all named."""
    fake = GeminiFake(api_key=KEY)
    hinted = {"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}
    body = {"model": "gem", "messages": [{"role": "user", "content": [hinted]}],
            "metadata": {"team": "a"}, "store": True, "service_tier": "flex"}  # fmt: skip
    async with daemon_for(tmp_path, fake) as (_, client):
        with anyio.fail_after(10):
            response = await client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    assert response.headers["x-dispatcher-dropped-params"] == "cache_control,metadata,store"
    assert set(fake.requests[0].json) == {"contents", "serviceTier"}


async def test_the_legacy_functions_api_round_trips(tmp_path: Path) -> None:
    """functions + function_call force a call; its role "function" answer is accepted."""
    fake = GeminiFake(api_key=KEY)
    function = WEATHER[0]["function"]
    ask: dict[str, Any] = {"model": "gem", "messages": [QUESTION], "functions": [function],
                           "function_call": {"name": "get_weather"}}  # fmt: skip
    async with daemon_for(tmp_path, fake) as (_, client):
        with anyio.fail_after(10):
            first = await client.post("/v1/chat/completions", json=ask)
            [call] = first.json()["choices"][0]["message"]["tool_calls"]
            legacy = {"role": "assistant", "content": None, "function_call": call["function"]}
            answer = {"role": "function", "name": "get_weather", "content": "18C"}
            ask["messages"] = [QUESTION, legacy, answer]
            del ask["function_call"]
            second = await client.post("/v1/chat/completions", json=ask)
    assert first.status_code == 200 and "x-dispatcher-dropped-params" not in first.headers
    assert fake.requests[0].json["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}
    }
    assert second.status_code == 200, second.text
    response_part = fake.requests[1].json["contents"][2]["parts"][0]["functionResponse"]
    assert response_part["name"] == "get_weather" and response_part["response"] == {"output": "18C"}
