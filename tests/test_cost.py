"""Cost in USD: prices from the model table or a deployment; every answer priced from usage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from actors import Usage, call_decoder, format_cost, usage_cost
from config import (
    ConfigError,
    Price,
    default_config_path,
    deployment_price,
    model_table,
    parse_config,
)
from dispatcher.cli import main

from .fakes import OpenAIFake, serve_app
from .helpers import chat_json, completion, running_daemon, stack, uds_client

pytestmark = pytest.mark.anyio

PRICE = Price(input=3.0, output=15.0, cached_input=0.3, cache_write=3.75, cache_write_1h=6.0)


def deployment(provider: str, model: str, *extra: str, name: str = "d") -> str:
    lines = [
        "[[deployment]]",
        f'name = "{name}"',
        'group = "g"',
        f'provider = "{provider}"',
        f'model = "{model}"',
        'api_key = "sk-test-secret-key"',
        'region = "us-east-1"',
        'api_base = "http://up.invalid/v1"',
        *extra,
    ]
    return "\n".join(lines) + "\n"


# -- arithmetic -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        pytest.param({"prompt": 1_000_000, "completion": 0}, 3.0, id="input"),
        pytest.param({"prompt": 0, "completion": 1_000_000}, 15.0, id="output"),
        pytest.param({"prompt": 1_000_000, "completion": 0, "cached": 1_000_000}, 0.3,
                     id="all-cached"),
        pytest.param({"prompt": 2_000_000, "completion": 0, "cached": 1_000_000}, 3.3,
                     id="half-cached"),
        pytest.param({"prompt": 1_000_000, "completion": 0, "cache_write": 1_000_000}, 3.75,
                     id="5m-writes"),
        pytest.param({"prompt": 1_000_000, "completion": 0, "cache_write": 1_000_000,
                      "cache_write_1h": 1_000_000}, 6.0, id="1h-writes"),
    ],
)  # fmt: skip
def test_each_token_kind_has_its_rate(counts: dict[str, int], expected: float) -> None:
    """Plain input, cache reads, 5-minute and 1-hour cache writes and output: each its rate."""
    assert PRICE.cost(**counts) == pytest.approx(expected)


def test_a_token_kind_without_a_rate_makes_the_cost_unknown() -> None:
    """Cached or cache-write tokens the price has no rate for: None, never a guess."""
    bare = Price(input=1.0, output=2.0)
    assert bare.cost(prompt=10, completion=10) == pytest.approx(30e-6)
    assert bare.cost(prompt=10, completion=10, cached=5) is None
    assert bare.cost(prompt=10, completion=10, cache_write=5) is None
    no_1h = Price(input=1.0, output=2.0, cache_write=1.25)
    assert no_1h.cost(prompt=10, completion=0, cache_write=10, cache_write_1h=4) is None


def test_a_long_prompt_prices_every_token_at_the_long_context_rates() -> None:
    """Over above_input_tokens (cache reads counted) the whole request takes `above`."""
    table = model_table()
    price = table.lookup("claude-sonnet-4-5-20250929").price_for("anthropic", "claude-sonnet-4-5")
    assert price is not None and price.above_input_tokens == 200_000
    short = price.cost(prompt=200_000, completion=1_000)
    long = price.cost(prompt=200_001, completion=1_000, cached=100_000)
    assert short == pytest.approx(200_000 * 3e-6 + 1_000 * 15e-6)
    assert long == pytest.approx(100_001 * 6e-6 + 100_000 * 0.6e-6 + 1_000 * 22.5e-6)


def test_usage_is_read_as_every_adapter_reports_it() -> None:
    """OpenAI's cached_tokens, the cache_creation counts; an unreadable count: unknown."""
    usage = Usage(
        prompt_tokens=1_000,
        completion_tokens=100,
        prompt_tokens_details={
            "cached_tokens": 500,
            "cache_creation_tokens": 300,
            "cache_creation_token_details": {"ephemeral_1h_input_tokens": 100},
        },
    )
    expected = (200 * 3.0 + 500 * 0.3 + 200 * 3.75 + 100 * 6.0 + 100 * 15.0) / 1e6
    assert usage_cost(PRICE, usage) == pytest.approx(expected)
    assert usage_cost(None, usage) is None
    assert usage_cost(PRICE, None) is None
    odd = Usage(prompt_tokens=10, prompt_tokens_details={"cached_tokens": "5"})
    assert usage_cost(PRICE, odd) is None
    negative = Usage(prompt_tokens=10, prompt_tokens_details={"cached_tokens": -1})
    assert usage_cost(PRICE, negative) is None
    assert usage_cost(PRICE, Usage(prompt_tokens=10, prompt_tokens_details=None)) == 30e-6


def test_header_format_has_no_exponent() -> None:
    assert format_cost(4e-07) == "0.0000004"
    assert format_cost(1.5) == "1.5"
    assert format_cost(0.0) == "0.0"


# -- where a deployment's price comes from ---------------------------------------------


@pytest.mark.parametrize(
    ("provider", "model", "expected"),
    [
        pytest.param("openai", "gpt-4o-mini-2024-07-18", (0.15, 0.6, 0.075), id="openai-table"),
        pytest.param("openai", "gpt-4o-2024-05-13", (5.0, 15.0, None), id="narrowed-by-match"),
        pytest.param("anthropic", "claude-haiku-4-5-20251001", (1.0, 5.0, 0.1), id="anthropic"),
        pytest.param("bedrock", "anthropic.claude-3-5-haiku-20241022-v1:0", (0.8, 4.0, 0.08),
                     id="bedrock-same-list-price"),
        pytest.param("bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0", None,
                     id="bedrock-regional-premium-not-priced"),
        pytest.param("azure", "gpt-4o-mini", None, id="azure-deployment-names-not-priced"),
        pytest.param("openai-compatible", "gpt-4o-mini", None, id="self-hosted-not-priced"),
        pytest.param("anthropic", "claude-next-9", None, id="unknown-claude"),
        pytest.param("openai", "gpt-9", None, id="unknown"),
        pytest.param("anthropic", "claude-opus-5-5", None, id="row-without-this-price"),
    ],
)  # fmt: skip
def test_table_price_per_provider(
    provider: str, model: str, expected: tuple[float, float, float | None] | None
) -> None:
    """A table price holds for the providers it names, and only for the ids it matches."""
    config = parse_config(deployment(provider, model))
    price = deployment_price(config.deployment[0])
    if expected is None:
        assert price is None
    else:
        assert price is not None
        assert (price.input, price.output, price.cached_input) == expected
        assert price.source and price.date


def test_deployment_keys_replace_the_table_price() -> None:
    """*_cost_per_mtok price a deployment the table cannot (a mock, a negotiated rate)."""
    text = deployment(
        "openai",
        "gpt-4o-mini",
        "input_cost_per_mtok = 0.1",
        "output_cost_per_mtok = 0.5",
        "cached_input_cost_per_mtok = 0.01",
    )
    price = deployment_price(parse_config(text).deployment[0])
    assert price is not None
    assert (price.input, price.output, price.cached_input, price.cache_write) == (
        0.1,
        0.5,
        0.01,
        None,
    )
    assert "'d'" in price.source


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        pytest.param(("input_cost_per_mtok = 1",), "set both", id="input-alone"),
        pytest.param(("cached_input_cost_per_mtok = 1",), "needs input_cost_per_mtok",
                     id="cached-alone"),
        pytest.param(("input_cost_per_mtok = -1", "output_cost_per_mtok = 1"), ">= 0.0",
                     id="negative"),
        pytest.param(("input_cost_per_mtok = 1e9", "output_cost_per_mtok = 1"), "<= 100000",
                     id="absurd"),
    ],
)  # fmt: skip
def test_bad_price_keys_are_config_errors(extra: tuple[str, ...], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(deployment("mock", "m", *extra))


def test_every_table_price_is_sourced_and_dated() -> None:
    """Each price names its providers, its source and the day it was read."""
    priced = 0
    for row in model_table().model:
        for price in row.price:
            priced += 1
            assert price.providers and price.source and price.date, row.id
            assert price.cached_input is None or price.cached_input <= price.input, row.id
            assert price.input <= price.output, row.id
    assert priced >= 20


# -- every answer priced ---------------------------------------------------------------


async def test_cached_tokens_are_priced_as_cached_and_recorded() -> None:
    """An OpenAI answer with cached input: the table's cached rate, in the outcome and metric."""
    text = deployment("openai", "gpt-4o-mini")

    async def handler(request: httpx.Request) -> httpx.Response:
        return completion(
            prompt_tokens=10_000,
            completion_tokens=1_000,
            total_tokens=11_000,
            prompt_tokens_details={"cached_tokens": 8_000},  # type: ignore[arg-type]
        )

    async with stack(text, {"d": handler}) as s:
        done = await s.supervisor.complete(call_decoder.decode(json.dumps(chat_json("g"))))
        expected = (2_000 * 0.15 + 8_000 * 0.075 + 1_000 * 0.6) / 1e6
        assert done.cost_usd == pytest.approx(expected)
        assert done.response.usage and done.response.usage.cost_usd == done.cost_usd
        cost = s.sample("dispatcher_cost_usd_total", group="g", deployment="d")
        assert cost == pytest.approx(expected)


MOCK = """
[server]
socket = "run/d.sock"
metrics = ""
[router]
num_retries = 0
[[deployment]]
name = "priced"
group = "mini"
provider = "mock"
model = "mock-mini"
input_cost_per_mtok = 100000
output_cost_per_mtok = 50000
[[deployment]]
name = "unpriced"
group = "free"
provider = "mock"
model = "mock-free"
"""


def expected_cost(usage: dict[str, Any]) -> float:
    return (usage["prompt_tokens"] * 100_000 + usage["completion_tokens"] * 50_000) / 1e6


async def test_answers_report_their_cost_everywhere(tmp_path: Path) -> None:
    """Header, body usage, stream usage chunk, metric, status view and job record agree."""
    async with running_daemon(MOCK, tmp_path) as daemon, uds_client(daemon) as http:
        first = await http.post("/v1/chat/completions", json=chat_json("mini", "one two three"))
        assert first.status_code == 200
        usage = first.json()["usage"]
        cost = expected_cost(usage)
        assert float(first.headers["x-dispatcher-cost-usd"]) == pytest.approx(cost)
        assert usage["cost_usd"] == pytest.approx(cost)

        # A stream: headers leave before the usage exists, so the usage chunk carries it.
        streamed = await http.post(
            "/v1/chat/completions",
            json=chat_json("mini", "four", stream=True, stream_options={"include_usage": True}),
        )
        assert "x-dispatcher-cost-usd" not in streamed.headers
        events = [
            json.loads(line.removeprefix("data: "))
            for line in streamed.text.splitlines()
            if line.startswith("data: {")
        ]
        [last] = [e for e in events if e.get("usage")]
        stream_cost = expected_cost(last["usage"])
        assert last["usage"]["cost_usd"] == pytest.approx(stream_cost)
        openai.types.chat.ChatCompletionChunk.model_validate(last)

        job = await http.post("/v1/jobs", json={"request": chat_json("mini", "five six")})
        done = (await http.get(f"/v1/jobs/{job.json()['id']}", params={"wait": 10})).json()
        assert done["status"] == "succeeded"
        job_cost = expected_cost(done["result"]["usage"])
        assert done["attempts"][-1]["cost_usd"] == pytest.approx(job_cost)

        total = cost + stream_cost + job_cost
        sample = daemon.registry.get_sample_value(
            "dispatcher_cost_usd_total", {"group": "mini", "deployment": "priced"}
        )
        assert sample == pytest.approx(total)
        rows = {row["name"]: row for row in (await http.get("/v1/deployments")).json()["data"]}
        assert rows["priced"]["cost_usd"] == pytest.approx(total)

        # No price: no header, no cost in the body, nothing counted, "no price" in status.
        free = await http.post("/v1/chat/completions", json=chat_json("free"))
        assert free.status_code == 200
        assert "x-dispatcher-cost-usd" not in free.headers
        assert "cost_usd" not in free.json()["usage"]
        assert rows["unpriced"]["cost_usd"] is None
        assert (
            daemon.registry.get_sample_value(
                "dispatcher_cost_usd_total", {"group": "free", "deployment": "unpriced"}
            )
            is None
        )


async def test_table_price_end_to_end_with_the_sdk(tmp_path: Path) -> None:
    """An OpenAI deployment of a known model is priced by the table; the SDK reads the answer."""
    fake = OpenAIFake(api_key="sk-test-secret-key")
    async with serve_app(fake) as url:
        text = MOCK.split("[[deployment]]")[0] + deployment("openai", "gpt-4o-mini").replace(
            "http://up.invalid", url
        )
        async with running_daemon(text, tmp_path) as daemon, uds_client(daemon) as http:
            response = await http.post("/v1/chat/completions", json=chat_json("g"))
    assert response.status_code == 200
    body = openai.types.chat.ChatCompletion.model_validate(response.json())
    assert body.usage is not None
    expected = (body.usage.prompt_tokens * 0.15 + body.usage.completion_tokens * 0.6) / 1e6
    assert float(response.headers["x-dispatcher-cost-usd"]) == pytest.approx(expected)


def test_check_shows_where_each_price_comes_from(capsys: pytest.CaptureFixture[str]) -> None:
    """`dispatcher check` names each deployment's price and its origin, or none."""
    assert main(["check", "--config", str(default_config_path())]) == 0
    out = capsys.readouterr().out
    assert "mock-mini-a: " in out and "price=0.15/0.6 per Mtok (deployment)" in out
    assert out.splitlines()[-1].endswith("price=none")  # mock-flaky: no price, no cost
