"""The LiteLLM bug reports this design makes impossible, as tests that would have caught them."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import anyio
import httpx
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors import Attempt, ChatCall, ChatRequest, DeploymentActor, Turn
from config import parse_config
from dispatcher import Daemon

from .fakes import AZURE_PARAMS, AzureFake, OpenAIFake, check_chat_request, hang, serve_app
from .helpers import completion, error, stack

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get current weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]
FORCED = {"type": "function", "function": {"name": "get_weather"}}


def config_text(primary_url: str, azure_url: str, *, primary_timeout: float = 30.0) -> str:
    return f"""
[server]
socket = "d.sock"
metrics = ""
[router]
num_retries = 0
[router.fallbacks]
"primary" = ["azure"]
[router.cooldown]
allowed_fails = 1000
[[deployment]]
name = "primary-openai"
group = "primary"
provider = "openai-compatible"
model = "gpt-4o-mini"
api_base = "{primary_url}/v1"
api_key = "sk-primary"
timeout_s = {primary_timeout}
[[deployment]]
name = "azure-east"
group = "azure"
provider = "azure"
model = "gpt-4o-mini"
api_base = "{azure_url}"
api_version = "2024-10-21"
api_key = "azure-key"
"""


async def test_fallback_after_timeout_keeps_tools_and_tool_choice(tmp_path: Path) -> None:
    """Primary times out; the strict Azure fake gets `tools` and `tool_choice`, calls the tool."""
    primary, azure = OpenAIFake(api_key="sk-primary"), AzureFake(api_key="azure-key")
    primary.script(hang())
    async with serve_app(primary) as p_url, serve_app(azure) as a_url:
        daemon = Daemon(parse_config(config_text(p_url, a_url, primary_timeout=0.2)), tmp_path)
        async with anyio.create_task_group() as tg:
            await tg.start(daemon.run)
            transport = httpx.AsyncHTTPTransport(uds=os.fspath(daemon.socket_path))
            async with httpx.AsyncClient(transport=transport, base_url="http://d") as client:
                body = {
                    "model": "primary",
                    "messages": [{"role": "user", "content": "Weather in Paris?"}],
                    "tools": TOOLS,
                    "tool_choice": FORCED,
                }
                with anyio.fail_after(10):
                    response = await client.post("/v1/chat/completions", json=body)
            daemon.stop()
    assert response.status_code == 200, response.text
    assert response.headers["x-dispatcher-attempts"] == "2"
    [call] = response.json()["choices"][0]["message"]["tool_calls"]
    assert call["function"]["name"] == "get_weather"
    [received] = azure.requests
    assert received.status == 200
    assert received.json["tools"] == TOOLS
    assert received.json["tool_choice"] == FORCED


async def test_one_hundred_requests_take_the_same_path(tmp_path: Path) -> None:
    """Request and config fallback chains are never consumed: 100 calls, 100 identical paths."""
    text = """
[router]
num_retries = 0
default_fallbacks = ["last"]
[router.fallbacks]
"g" = ["cfg"]
[router.cooldown]
allowed_fails = 1000
"""
    for name, group in (("a", "g"), ("r", "req"), ("c", "cfg"), ("l", "last")):
        text += f'[[deployment]]\nname = "{name}"\ngroup = "{group}"\n'
        text += 'provider = "openai"\nmodel = "m"\n'

    async def fail(request: httpx.Request) -> httpx.Response:
        return error(503)

    async def ok(request: httpx.Request) -> httpx.Response:
        return completion()

    raw = b'{"model":"g","messages":[{"role":"user","content":"hi"}],"fallbacks":["req","cfg"]}'
    request = msgspec.json.decode(raw, type=ChatCall)
    async with stack(text, {"a": fail, "r": fail, "c": fail, "l": ok}) as s:
        before = copy.deepcopy(s.config)
        paths = set()
        for _ in range(100):
            result = await s.supervisor.complete(request)
            paths.add(tuple((a.deployment, a.outcome) for a in result.attempts))
        assert s.config == before
    assert paths == {
        (("a", "overloaded"), ("r", "overloaded"), ("c", "overloaded"), ("l", "success"))
    }
    assert request == msgspec.json.decode(raw, type=ChatCall)


# -- property: the payload never changes, and provider bodies hold only allow-listed keys ----

_text = st.text(min_size=1, max_size=20)
_user = st.builds(lambda t: {"role": "user", "content": t}, _text)
_system = st.builds(lambda t: {"role": "system", "content": t}, _text)
_tool_turn = st.builds(
    lambda i, a: [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": i, "type": "function", "function": {"name": "get_weather", "arguments": a}}
            ],
        },
        {"role": "tool", "tool_call_id": i, "content": "18C"},
    ],
    st.from_regex(r"call_[A-Za-z0-9]{1,30}", fullmatch=True),
    st.sampled_from(['{"city":"Paris"}', "{}"]),
)
_optional = st.fixed_dictionaries(
    {},
    optional={
        "temperature": st.floats(0, 2),
        "max_tokens": st.integers(1, 4096),
        "seed": st.integers(0, 2**31),
        "user": _text,
        "stop": st.lists(_text, max_size=2),
        "n": st.just(1),
        "top_p": st.floats(0, 1),
        "fallbacks": st.lists(st.sampled_from(["f1", "f2"]), max_size=2),
    },
)


@st.composite
def chat_requests(draw: st.DrawFn) -> dict[str, Any]:
    messages = [*draw(st.lists(_system, max_size=1)), draw(_user)]
    for turn in draw(st.lists(_tool_turn, max_size=2)):
        messages += [*turn, draw(_user)]
    body: dict[str, Any] = {"model": "g", "messages": messages, **draw(_optional)}
    if draw(st.booleans()):
        body["tools"] = TOOLS
        body["tool_choice"] = draw(st.sampled_from(["auto", "required", "none", FORCED]))
        if draw(st.booleans()):
            body["parallel_tool_calls"] = draw(st.booleans())
    return body


PROPERTY_CONFIG = """
[router]
num_retries = 1
default_fallbacks = ["f2"]
[router.fallbacks]
"g" = ["f1"]
[router.cooldown]
allowed_fails = 1000
[[deployment]]
name = "openai-a"
group = "g"
provider = "openai"
model = "gpt-4o-mini"
api_key = "sk-a"
[[deployment]]
name = "azure-b"
group = "f1"
provider = "azure"
model = "dep-b"
api_base = "https://b.openai.azure.com"
api_version = "2024-10-21"
api_key = "k-b"
[[deployment]]
name = "compat-c"
group = "f2"
provider = "openai-compatible"
model = "llama"
api_base = "http://c.invalid/v1"
"""


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=chat_requests())
def test_payload_is_identical_and_bodies_are_allow_listed(body: dict[str, Any]) -> None:
    """Every attempt carries the same bytes; every provider body passes the strict rules."""
    payloads: list[bytes] = []
    bodies: dict[str, list[dict[str, Any]]] = {"openai-a": [], "azure-b": [], "compat-c": []}

    def handler(name: str, fails: int) -> Any:
        async def answer(request: httpx.Request) -> httpx.Response:
            bodies[name].append(msgspec.json.decode(request.content))
            return error(500) if len(bodies[name]) <= fails else completion()

        return answer

    async def run() -> None:
        handlers = {
            "openai-a": handler("openai-a", 99),
            "azure-b": handler("azure-b", 99),
            "compat-c": handler("compat-c", 1),
        }
        async with stack(PROPERTY_CONFIG, handlers) as s:
            for actor in s.actors.values():
                spy(actor, payloads)
            call = msgspec.convert(body, ChatCall)
            result = await s.supervisor.complete(call, timeout_s=10)
            assert result.deployment == "compat-c"

    anyio.run(run, backend="asyncio")
    assert len(payloads) == sum(len(b) for b in bodies.values()) >= 2
    assert len(bodies["compat-c"]) == 2  # failed once, retried with the same bytes
    assert len(set(payloads)) == 1
    sent = msgspec.json.decode(payloads[0])
    assert "fallbacks" not in sent and msgspec.json.decode(payloads[0], type=ChatRequest)
    for name, accepted in (("openai-a", None), ("azure-b", AZURE_PARAMS), ("compat-c", None)):
        for provider_body in bodies[name]:
            kwargs = {} if accepted is None else {"accepted": accepted}
            assert check_chat_request(provider_body, **kwargs) is None, (name, provider_body)
            assert set(provider_body) <= set(ChatRequest.__struct_fields__)
            assert (
                provider_body["model"]
                == {"openai-a": "gpt-4o-mini", "azure-b": "dep-b", "compat-c": "llama"}[name]
            )


def spy(actor: DeploymentActor, payloads: list[bytes]) -> None:
    submit = actor.submit

    def recording(attempt: Attempt) -> Turn | None:
        payloads.append(attempt.payload)
        return submit(attempt)  # a Turn to wait for, or None: the slot is held

    actor.submit = recording  # type: ignore[method-assign]


pytestmark = pytest.mark.anyio
