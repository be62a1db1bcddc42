"""`dispatcher import-litellm`: LiteLLM proxy configs become TOML our loader takes."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest

from config import Config, load_config, parse_config
from dispatcher.cli import main
from dispatcher.cli._litellm import AnyEnvironment, LiteLLMConfigError, import_litellm

ENV = {
    "AZURE_API_KEY_EU": "azure-eu-secret",
    "AZURE_API_KEY_CA": "azure-ca-secret",
    "OPENAI_API_KEY": "sk-openai-secret",
    "ANTHROPIC_API_KEY": "sk-ant-secret",
}

# The shape of LiteLLM's documented proxy config (docs/proxy/configs.md, "Quick Start" and
# "Router settings"): two Azure deployments load-balanced under one name, Bedrock, an
# OpenAI-compatible vLLM server, fallbacks of every kind in router_settings.
DOCUMENTED = """
model_list:
  - model_name: gpt-4o ### RECEIVED MODEL NAME ###
    litellm_params: # all params accepted by litellm.completion()
      model: azure/gpt-4o-eu ### MODEL NAME sent to `litellm.completion()` ###
      api_base: https://my-endpoint-europe-berri-992.openai.azure.com/
      api_key: "os.environ/AZURE_API_KEY_EU" # does os.getenv("AZURE_API_KEY_EU")
      api_version: "2024-10-21"
      rpm: 6      # [OPTIONAL] Rate limit for this deployment: in requests per minute (rpm)
  - model_name: bedrock-claude-v1
    litellm_params:
      model: bedrock/anthropic.claude-instant-v1
      aws_region_name: us-west-2
  - model_name: gpt-4o
    litellm_params:
      model: azure/gpt-4o-ca
      api_base: https://my-endpoint-canada-berri992.openai.azure.com/
      api_key: "os.environ/AZURE_API_KEY_CA"
      rpm: 6
      weight: 2
      timeout: 30
  - model_name: anthropic-claude
    litellm_params:
      model: anthropic/claude-sonnet-4-5-20250929
      api_key: os.environ/ANTHROPIC_API_KEY
    model_info:
      id: claude-primary
      max_input_tokens: 200000
      base_model: claude-sonnet-4-5
  - model_name: vllm-models
    litellm_params:
      model: openai/facebook/opt-125m # the `openai/` prefix tells litellm it's openai compatible
      api_base: http://0.0.0.0:4000/v1
      api_key: none
      rpm: 1440
    model_info:
      input_cost_per_token: 0.0000001
      output_cost_per_token: 0.0000002
litellm_settings: # module level litellm settings
  drop_params: True
  success_callback: ["langfuse"]
  request_timeout: 10
general_settings:
  master_key: sk-1234 # [OPTIONAL] Only use this if you to require all calls to contain this key
  database_url: "postgresql://user:password@localhost:5432/db"
router_settings:
  routing_strategy: least-busy
  num_retries: 2
  timeout: 30
  allowed_fails: 3
  cooldown_time: 30
  fallbacks: [{"gpt-4o": ["anthropic-claude"]}]
  context_window_fallbacks: [{"gpt-4o": ["anthropic-claude"]}]
  content_policy_fallbacks: [{"anthropic-claude": ["gpt-4o"]}]
  default_fallbacks: ["gpt-4o"]
  redis_host: os.environ/REDIS_HOST
environment_variables:
  REDIS_PASSWORD: "eYVX71"
"""

# The shape of litellm/proxy/example_config_yaml/load_balancer.yaml: bare model names,
# rpm/tpm beside litellm_params, YAML 1.1 numbers with underscores, a prefix we lack.
LOAD_BALANCER = """
litellm_settings:
  drop_params: True
model_list:
  - model_name: gpt-3.5-turbo
    litellm_params:
      model: gpt-3.5-turbo
      api_key: sk-inline-secret-1
    tpm: 20_000
    rpm: 3
  - model_name: gpt-3.5-turbo
    litellm_params:
      model: gpt-3.5-turbo
      api_key: sk-inline-secret-2
    tpm: 20000
    rpm: 3
  - model_name: gpt-3.5-turbo
    litellm_params:
      model: openrouter/gpt-3.5-turbo
  - model_name: mistral-7b-instruct
    litellm_params:
      model: mistralai/mistral-7b-instruct
"""


def loaded(text: str) -> tuple[Config, Any]:
    imported = import_litellm(text)
    return parse_config(imported.toml("config.yaml"), env=AnyEnvironment()), imported


def skipped(imported: Any) -> dict[str, str]:
    return {s.key: s.reason for s in imported.skipped}


def test_documented_config_converts_and_loads() -> None:
    """Groups, providers, endpoints, keys, limits and the router carry over, then load."""
    config, imported = loaded(DOCUMENTED)
    by_name = {d.name: d for d in config.deployment}
    assert list(by_name) == [
        "gpt-4o-azure",
        "bedrock-claude-v1-bedrock",
        "gpt-4o-azure-2",
        "claude-primary",
        "vllm-models-openai-compatible",
    ]
    eu, bedrock, ca = (
        by_name["gpt-4o-azure"],
        by_name["bedrock-claude-v1-bedrock"],
        by_name["gpt-4o-azure-2"],
    )
    assert (eu.group, eu.provider, eu.model, eu.api_version, eu.rpm) == (
        "gpt-4o",
        "azure",
        "gpt-4o-eu",
        "2024-10-21",
        6,
    )
    assert eu.api_base == "https://my-endpoint-europe-berri-992.openai.azure.com/"
    assert eu.api_key is not None and eu.api_key.source == "env:AZURE_API_KEY_EU"
    assert (ca.weight, ca.timeout_s, ca.api_version) == (2.0, 30.0, None)
    assert (bedrock.provider, bedrock.model, bedrock.region) == (
        "bedrock",
        "anthropic.claude-instant-v1",
        "us-west-2",
    )
    claude = by_name["claude-primary"]
    assert (claude.provider, claude.model, claude.max_input_tokens) == (
        "anthropic",
        "claude-sonnet-4-5-20250929",
        200000,
    )
    vllm = by_name["vllm-models-openai-compatible"]
    assert (vllm.provider, vllm.model, vllm.api_base) == (
        "openai-compatible",
        "facebook/opt-125m",
        "http://0.0.0.0:4000/v1",
    )
    assert (vllm.input_cost_per_mtok, vllm.output_cost_per_mtok) == (0.1, 0.2)
    assert all(d.drop_params for d in config.deployment)
    router = config.router
    assert (router.strategy, router.num_retries, router.timeout_s) == ("least-busy", 2, 30.0)
    assert (router.cooldown.allowed_fails, router.cooldown.cooldown_s) == (3, 30.0)
    assert router.fallbacks == {"gpt-4o": ("anthropic-claude",)}
    assert router.context_window_fallbacks == {"gpt-4o": ("anthropic-claude",)}
    assert router.content_policy_fallbacks == {"anthropic-claude": ("gpt-4o",)}
    assert router.default_fallbacks == ("gpt-4o",)
    # Every key left behind is named with a reason; the values (secrets) never are.
    assert set(skipped(imported)) == {
        "model_list[3].model_info.base_model",
        "litellm_settings.success_callback",
        "general_settings.master_key",
        "general_settings.database_url",
        "router_settings.redis_host",
        "environment_variables.REDIS_PASSWORD",
    }
    report = imported.toml("x")
    for secret in ("sk-1234", "eYVX71", "password@"):
        assert secret not in report.split("\n\n", 1)[0]


def test_load_balancer_example() -> None:
    """Bare names find their provider, rpm/tpm beside litellm_params count, unknown prefixes
    are listed; inline keys are carried to the file and only named in the notes."""
    config, imported = loaded(LOAD_BALANCER)
    deps = config.deployment
    assert [(d.name, d.provider, d.model, d.rpm, d.tpm) for d in deps] == [
        ("gpt-3.5-turbo-openai", "openai", "gpt-3.5-turbo", 3, 20000),
        ("gpt-3.5-turbo-openai-2", "openai", "gpt-3.5-turbo", 3, 20000),
        ("gpt-3.5-turbo-openai-compatible", "openai-compatible", "gpt-3.5-turbo", 0, 0),
    ]
    assert deps[0].api_key is not None and deps[0].api_key.reveal() == "sk-inline-secret-1"
    assert deps[2].api_base == "https://openrouter.ai/api/v1"
    assert deps[2].api_key is not None and deps[2].api_key.source == "env:OPENROUTER_API_KEY"
    reasons = skipped(imported)
    assert "mistralai" in reasons["model_list[3].litellm_params.model"]
    notes = " ".join(imported.notes)
    assert "inline" in notes and "sk-inline-secret" not in notes


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        pytest.param({"model": "bedrock/converse/us.anthropic.claude-haiku-4-5-v1:0",
                      "aws_region_name": "us-east-1"},
                     ("bedrock", "us.anthropic.claude-haiku-4-5-v1:0"), id="bedrock-converse"),
        pytest.param({"model": "mistral/mistral-large-latest"},
                     ("mistral", "mistral-large-latest"), id="mistral"),
        pytest.param({"model": "gemini/gemini-2.5-flash"}, ("gemini", "gemini-2.5-flash"),
                     id="gemini"),
        pytest.param({"model": "openai/gpt-4o", "api_base": "https://api.openai.com/v1"},
                     ("openai", "gpt-4o"), id="openai-with-its-own-base"),
        pytest.param({"model": "groq/llama-3.3-70b-versatile"},
                     ("openai-compatible", "llama-3.3-70b-versatile"), id="groq"),
        pytest.param({"model": "claude-3-5-haiku-20241022"},
                     ("anthropic", "claude-3-5-haiku-20241022"), id="bare-claude"),
        pytest.param({"model": "hosted_vllm/qwen", "api_base": "http://gpu:8000/v1"},
                     ("openai-compatible", "qwen"), id="vllm"),
    ],
)  # fmt: skip
def test_prefixes(params: dict[str, Any], expected: tuple[str, str]) -> None:
    yaml_text = f"model_list:\n  - model_name: m\n    litellm_params: {params!r}\n"
    config, imported = loaded(yaml_text.replace("'", '"'))
    [dep] = config.deployment
    assert (dep.provider, dep.model) == expected
    assert not imported.skipped


@pytest.mark.parametrize(
    ("entry", "key", "reason"),
    [
        pytest.param('{"model_name": "m", "litellm_params": {"model": "hosted_vllm/q"}}',
                     "model_list[0].litellm_params.model", "needs an api_base", id="no-base"),
        pytest.param('{"model_name": "m", "litellm_params": {"model": "bedrock/x"}}',
                     "model_list[0].litellm_params", "aws_region_name", id="no-region"),
        pytest.param('{"model_name": "m", "litellm_params": {"model": "azure/x"}}',
                     "model_list[0]", "api_base", id="azure-no-base"),
        pytest.param('{"model_name": "*", "litellm_params": {"model": "openai/*"}}',
                     "model_list[0].model_name", "wildcard", id="wildcard"),
        pytest.param('{"model_name": "m", "litellm_params": {"model": "vertex_ai/gemini"}}',
                     "model_list[0].litellm_params.model", "Vertex", id="vertex"),
    ],
)  # fmt: skip
def test_deployments_we_cannot_serve_are_listed(entry: str, key: str, reason: str) -> None:
    text = f"model_list:\n  - {entry}\n  - {{model_name: ok, litellm_params: {{model: gpt-4o}}}}\n"
    config, imported = loaded(text)
    assert [d.group for d in config.deployment] == ["ok"]
    assert reason in skipped(imported)[key]


def test_router_values_we_cannot_take() -> None:
    """An unknown strategy and fallbacks naming groups that did not survive are listed."""
    text = """
model_list:
  - {model_name: a, litellm_params: {model: gpt-4o}}
router_settings:
  routing_strategy: cost-based-routing
  fallbacks: [{"a": ["gone", "a"]}, {"gone": ["a"]}]
  default_fallbacks: gone
"""
    config, imported = loaded(text)
    assert config.router.strategy == "simple-shuffle"
    assert config.router.fallbacks == {"a": ("a",)}
    reasons = skipped(imported)
    assert "no such strategy" in reasons["router_settings.routing_strategy"]
    assert "router_settings.fallbacks[1].gone" in reasons
    assert "router_settings.fallbacks[0].a: 'gone'" in reasons
    assert "router_settings.default_fallbacks: 'gone'" in reasons


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("model_list: [", "invalid YAML", id="bad-yaml"),
        pytest.param("- a\n- b\n", "mapping", id="a-list"),
        pytest.param("router_settings: {}\n", "model_list", id="no-models"),
    ],
)
def test_files_that_are_not_litellm_configs(text: str, message: str) -> None:
    with pytest.raises(LiteLLMConfigError, match=message):
        import_litellm(text)


def test_cli_writes_a_private_file_that_check_accepts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command writes 0600, reports the gaps on stderr, never overwrites by surprise,
    and `dispatcher check` loads the result with the real environment."""
    source = tmp_path / "config.yaml"
    source.write_text(DOCUMENTED)
    out = tmp_path / "dispatcher.toml"
    assert main(["import-litellm", str(source), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "5 deployment(s) in 4 group(s)" in err
    assert "general_settings.master_key" in err and "sk-1234" not in err
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert main(["import-litellm", str(source), "-o", str(out)]) == 1
    assert "exists" in capsys.readouterr().err
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    assert main(["check", "--config", str(out)]) == 0
    assert "group gpt-4o" in capsys.readouterr().out
    assert load_config(out).deployment[0].api_key is not None


def test_cli_bad_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "config.yaml"
    source.write_text("model_list: [")
    assert main(["import-litellm", str(source)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"dispatcher: {source}: invalid YAML") and "Traceback" not in err
