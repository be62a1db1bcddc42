"""`dispatcher import-litellm`: a LiteLLM proxy `config.yaml` as our TOML.

What is carried over:
- `model_list[]`: `model_name` -> `group`; `litellm_params.model`'s prefix -> `provider`
  and the rest -> `model` (`azure/`, `bedrock/` (`converse/` too), `anthropic/`,
  `mistral/`, `gemini/`, `openai/`, and the OpenAI-compatible services in `COMPATIBLE`);
  `api_base`, `api_key` (`os.environ/NAME` kept as is), `api_version`, `aws_region_name`
  -> `region`, `rpm`, `tpm`, `timeout` -> `timeout_s`, `weight`, `drop_params`,
  `max_input_tokens` and the per-token prices (as per-million `*_cost_per_mtok`);
- `router_settings` (and the same keys in `litellm_settings`): `routing_strategy`,
  `num_retries`, `timeout`, `allowed_fails`, `cooldown_time`, `fallbacks`,
  `context_window_fallbacks`, `content_policy_fallbacks`, `default_fallbacks`.

Everything else is listed with the reason it was not carried over; nothing is dropped
silently. Secrets are never printed: an inline `api_key` is written to the output file
(as it was in the YAML) and only named in the notes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any, Final

import msgspec
import tomli_w
import yaml

from ._litellm_keys import (
    AWS_CREDENTIALS,
    BARE,
    COMPATIBLE,
    NATIVE,
    PRICES,
    REQUEST_DEFAULTS,
    ROUTER_KEYS,
    STRATEGIES,
    router_reason,
)

MAX_YAML_BYTES: Final = 4 * 1024 * 1024
MAX_DEPLOYMENTS: Final = 10_000
_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")


class Skipped(msgspec.Struct, frozen=True):
    """A key of the LiteLLM file that has no place in ours, and why."""

    key: str
    reason: str


class Imported(msgspec.Struct, frozen=True):
    """Our config as a TOML-ready table, what was left behind, and what to know."""

    config: dict[str, Any]
    skipped: tuple[Skipped, ...]
    notes: tuple[str, ...]

    def toml(self, source: str) -> str:
        """The config file: a comment naming the source and the gaps, then the TOML."""
        head = [f"# Imported from LiteLLM config {source} by `dispatcher import-litellm`."]
        if self.skipped:
            head.append("# Not carried over:")
            head.extend(f"#   {s.key}: {s.reason}" for s in self.skipped)
        if self.notes:
            head.append("# Notes:")
            head.extend(f"#   {note}" for note in self.notes)
        body = tomli_w.dumps(self.config)
        return "\n".join(head) + "\n\n" + body + ("" if body.endswith("\n") else "\n")


class AnyEnvironment(Mapping[str, str]):
    """An environment where every variable is set, to validate a converted config before
    the variables it names exist (`dispatcher check` then reads the real ones)."""

    def __getitem__(self, name: str) -> str:
        return "placeholder-secret-value"

    def __contains__(self, name: object) -> bool:
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


class LiteLLMConfigError(ValueError):
    """The file is not a LiteLLM config we can read (bad YAML, no model_list...)."""


def import_litellm(text: str) -> Imported:
    """Convert the YAML `text` of a LiteLLM proxy config; raises `LiteLLMConfigError`."""
    if len(text.encode()) > MAX_YAML_BYTES:
        raise LiteLLMConfigError(f"over {MAX_YAML_BYTES} bytes: not a LiteLLM config")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise LiteLLMConfigError(f"invalid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise LiteLLMConfigError("expected a mapping with model_list at the top level")
    return _Importer(data).run()


class _Importer:
    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.skipped: list[Skipped] = []
        self.notes: list[str] = []
        self.names: set[str] = set()

    def skip(self, key: str, reason: str) -> None:
        self.skipped.append(Skipped(key, reason))

    def run(self) -> Imported:
        models = self.data.get("model_list")
        if not isinstance(models, list) or not models:
            raise LiteLLMConfigError("model_list: expected a non-empty list of models")
        if len(models) > MAX_DEPLOYMENTS:
            raise LiteLLMConfigError(f"model_list: over {MAX_DEPLOYMENTS} entries")
        settings = self.data.get("litellm_settings")
        settings = settings if isinstance(settings, dict) else {}
        drop = settings.get("drop_params")
        deployments = [
            dep
            for index, entry in enumerate(models)
            if (dep := self.deployment(index, entry, drop)) is not None
        ]
        groups = {dep["group"] for dep in deployments}
        router = self.router(groups)
        self.other_sections()
        config: dict[str, Any] = {}
        if router:
            config["router"] = router
        config["deployment"] = deployments
        return Imported(config, tuple(self.skipped), tuple(self.notes))

    # -- model_list ------------------------------------------------------------------

    def deployment(self, index: int, entry: Any, drop: Any) -> dict[str, Any] | None:
        where = f"model_list[{index}]"
        if not isinstance(entry, dict):
            self.skip(where, "not a mapping")
            return None
        group = entry.get("model_name")
        params = entry.get("litellm_params")
        if not isinstance(params, dict) or not isinstance(params.get("model"), str):
            self.skip(where, "no litellm_params.model")
            return None
        if not isinstance(group, str) or not _NAME.match(group):
            reason = "wildcard routing has no equivalent: groups are exact names"
            if not (isinstance(group, str) and "*" in group):
                reason = f"model_name {group!r} is not a group name (letters, digits, ._:/-)"
            self.skip(f"{where}.model_name", reason)
            return None
        resolved = self.provider(where, params)
        if resolved is None:
            return None
        provider, model, base, key_variable = resolved
        dep: dict[str, Any] = {"name": "", "group": group, "provider": provider, "model": model}
        base = params.get("api_base") or base
        if base is not None:
            dep["api_base"] = str(base)
        if provider == "openai-compatible" and "api_base" not in dep:
            self.skip(f"{where}.litellm_params.model", f"{params['model']!r} needs an api_base")
            return None
        if provider == "azure" and "api_base" not in dep:
            self.skip(where, "azure needs api_base (LiteLLM's AZURE_API_BASE is not read)")
            return None
        self.key(where, dep, params.get("api_key"), key_variable)
        if isinstance(params.get("api_version"), str) and provider == "azure":
            dep["api_version"] = params["api_version"]
        if provider == "bedrock":
            region = params.get("aws_region_name")
            endpoint = params.get("aws_bedrock_runtime_endpoint")
            if isinstance(region, str) and region:
                dep["region"] = region
            if isinstance(endpoint, str) and endpoint:
                dep["api_base"] = endpoint
            if "region" not in dep and "api_base" not in dep:
                self.skip(f"{where}.litellm_params", "bedrock needs aws_region_name")
                return None
        self.limits(where, dep, entry, params)
        self.prices(where, dep, entry, params)
        drop_params = params.get("drop_params", drop)
        if isinstance(drop_params, bool):
            dep["drop_params"] = drop_params
        self.leftovers(where, params)
        for key in entry:
            if key not in ("model_name", "litellm_params", "model_info", "rpm", "tpm"):
                self.skip(f"{where}.{key}", "not a deployment setting we know")
        info = entry.get("model_info")
        for key in info if isinstance(info, dict) else ():
            if key not in ("id", "max_input_tokens", *PRICES):
                self.skip(f"{where}.model_info.{key}", "no equivalent (see config/models.toml)")
        dep["name"] = self.name(entry, group, provider)
        return dep

    def provider(self, where: str, params: dict[str, Any]) -> tuple[str, str, Any, Any] | None:
        """(provider, model, default api_base, LiteLLM's key variable), or None (skipped)."""
        full: str = params["model"]
        prefix, sep, rest = full.partition("/")
        if not sep:
            for pattern, provider in BARE:
                if pattern.match(full):
                    return provider, full, None, NATIVE[provider][1]
            self.skip(f"{where}.litellm_params.model", f"{full!r}: no provider prefix we know")
            return None
        if prefix == "bedrock":
            for route in ("converse/", "invoke/"):
                rest = rest.removeprefix(route)
        if prefix == "openai":
            base = params.get("api_base")
            if isinstance(base, str) and "api.openai.com" not in base:
                return "openai-compatible", rest, None, None
        if prefix in NATIVE:
            provider, variable = NATIVE[prefix]
            return provider, rest, None, variable
        if prefix in COMPATIBLE:
            base, variable = COMPATIBLE[prefix]
            return "openai-compatible", rest, base, variable
        reason = f"provider {prefix!r} is not one of ours"
        if prefix in ("vertex_ai", "vertex_ai_beta"):
            reason = "Vertex AI is not a provider of ours (gemini/ is Google AI Studio)"
        self.skip(f"{where}.litellm_params.model", f"{full!r}: {reason}")
        return None

    def key(self, where: str, dep: dict[str, Any], value: Any, variable: str | None) -> None:
        if isinstance(value, str) and value:
            dep["api_key"] = value
            if not value.startswith(("os.environ/", "env:")):
                self.notes.append(f"{where}: api_key is inline; consider os.environ/NAME")
        elif variable is not None:
            dep["api_key"] = f"os.environ/{variable}"
            self.notes.append(f"{where}: no api_key; os.environ/{variable}, as LiteLLM reads")

    def limits(
        self, where: str, dep: dict[str, Any], entry: dict[str, Any], params: dict[str, Any]
    ) -> None:
        for key in ("rpm", "tpm"):
            value = params.get(key, entry.get(key))
            if value is None:
                continue
            if _whole(value) and value >= 0:
                dep[key] = int(value)
            else:
                self.skip(f"{where}.{key}", f"expected a whole number, got {value!r}")
        timeout = params.get("timeout")
        if timeout is not None:
            if _positive(timeout):
                dep["timeout_s"] = float(timeout)
            else:
                self.skip(f"{where}.litellm_params.timeout", f"expected seconds, got {timeout!r}")
        weight = params.get("weight")
        if weight is not None:
            if _positive(weight):
                dep["weight"] = float(weight)
            else:
                self.skip(f"{where}.litellm_params.weight", f"expected > 0, got {weight!r}")
        info = entry.get("model_info")
        limit: Any = info.get("max_input_tokens") if isinstance(info, dict) else None
        if _whole(limit) and limit > 0:
            dep["max_input_tokens"] = int(limit)

    def prices(
        self, where: str, dep: dict[str, Any], entry: dict[str, Any], params: dict[str, Any]
    ) -> None:
        info = entry.get("model_info")
        sources = [params, info if isinstance(info, dict) else {}]
        for theirs, ours in PRICES.items():
            value = next((s[theirs] for s in sources if s.get(theirs) is not None), None)
            if value is None:
                continue
            if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
                dep[ours] = round(float(value) * 1e6, 9)
            else:
                self.skip(f"{where}.{theirs}", f"expected USD per token, got {value!r}")
        if ("input_cost_per_mtok" in dep) != ("output_cost_per_mtok" in dep):
            for key in ("input_cost_per_mtok", "output_cost_per_mtok"):
                dep.pop(key, None)
            self.skip(f"{where}.model_info", "a price needs both input and output costs")
        if "input_cost_per_mtok" not in dep:
            for key in ("cached_input_cost_per_mtok", "cache_write_cost_per_mtok"):
                if dep.pop(key, None) is not None:
                    self.skip(f"{where}.model_info", f"{key} without input and output costs")

    def leftovers(self, where: str, params: dict[str, Any]) -> None:
        carried = {
            "model", "api_base", "api_key", "api_version", "aws_region_name",
            "aws_bedrock_runtime_endpoint", "rpm", "tpm", "timeout", "weight", "drop_params",
            *PRICES,
        }  # fmt: skip
        for key in params:
            if key in carried:
                continue
            if key == "order":
                reason = (
                    "no deployment priority: a group's deployments share by weight; "
                    "put lower-priority deployments in a fallback group"
                )
            elif key in REQUEST_DEFAULTS:
                reason = "a request default: the daemon never changes what a client asks"
            elif key in AWS_CREDENTIALS:
                reason = "AWS credentials come from botocore's chain (environment, profile, role)"
            elif key in ("max_retries", "num_retries"):
                reason = "retries are set for the router ([router].num_retries)"
            elif key == "stream_timeout":
                reason = "streams are bounded by first_token_timeout_s and idle_timeout_s"
            else:
                reason = "no equivalent"
            self.skip(f"{where}.litellm_params.{key}", reason)

    def name(self, entry: dict[str, Any], group: str, provider: str) -> str:
        info = entry.get("model_info")
        wanted = info.get("id") if isinstance(info, dict) else None
        if not (isinstance(wanted, str) and _NAME.match(wanted) and wanted not in self.names):
            base = f"{group}-{provider}"[:120]
            wanted, serial = base, 1
            while wanted in self.names:
                serial += 1
                wanted = f"{base}-{serial}"
        self.names.add(wanted)
        return wanted

    # -- router_settings / litellm_settings --------------------------------------------

    def router(self, groups: set[str]) -> dict[str, Any]:
        settings = self.data.get("litellm_settings")
        settings = settings if isinstance(settings, dict) else {}
        routing = self.data.get("router_settings")
        routing = routing if isinstance(routing, dict) else {}
        merged = {k: settings[k] for k in ROUTER_KEYS if k in settings}
        merged |= {k: routing[k] for k in ROUTER_KEYS if k in routing}
        router: dict[str, Any] = {}
        cooldown: dict[str, Any] = {}
        for key, value in merged.items():
            where = f"{'router_settings' if key in routing else 'litellm_settings'}.{key}"
            if key == "routing_strategy":
                if value in STRATEGIES:
                    router["strategy"] = STRATEGIES[value]
                else:
                    self.skip(where, f"{value!r}: no such strategy here (simple-shuffle is used)")
            elif key == "num_retries" and _whole(value) and value >= 0:
                router["num_retries"] = int(value)
            elif key in ("timeout", "request_timeout") and _positive(value):
                if key == "timeout" or "timeout" not in merged:  # the router's own wins
                    router["timeout_s"] = float(value)
            elif key == "allowed_fails" and _whole(value) and value >= 1:
                cooldown["allowed_fails"] = int(value)
            elif key == "cooldown_time" and _whole_or_float(value) and value >= 0:
                cooldown["cooldown_s"] = float(value)
            elif key == "default_fallbacks":
                chain = self.chain(where, value, groups)
                if chain:
                    router["default_fallbacks"] = chain
            elif key.endswith("fallbacks"):
                table = self.fallbacks(where, value, groups)
                if table:
                    router[key] = table
            else:
                self.skip(where, f"unexpected value {value!r}")
        if cooldown:
            router["cooldown"] = cooldown
        for section, keys in (("router_settings", routing), ("litellm_settings", settings)):
            for key in keys:
                if key not in ROUTER_KEYS and key != "drop_params":
                    self.skip(f"{section}.{key}", router_reason(key))
        return router

    def fallbacks(self, where: str, value: Any, groups: set[str]) -> dict[str, list[str]]:
        """LiteLLM's `[{group: [fallback, ...]}, ...]` as our `{group: [fallback, ...]}`."""
        items = value if isinstance(value, list) else [value]
        table: dict[str, list[str]] = {}
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                self.skip(f"{where}[{index}]", f"expected {{group: [fallbacks]}}, got {item!r}")
                continue
            for group, chain in item.items():
                if group not in groups:
                    self.skip(f"{where}[{index}].{group}", "no such group after the import")
                    continue
                kept = self.chain(f"{where}[{index}].{group}", chain, groups)
                if kept:
                    table.setdefault(str(group), []).extend(kept)
        return table

    def chain(self, where: str, value: Any, groups: set[str]) -> list[str]:
        names = value if isinstance(value, list) else [value]
        kept = []
        for name in names:
            if isinstance(name, str) and name in groups:
                kept.append(name)
            else:
                self.skip(f"{where}: {name!r}", "no such group after the import")
        return kept

    def other_sections(self) -> None:
        reasons = {
            "general_settings": "proxy server settings (master_key, database...): our daemon "
            "serves a 0600 Unix socket; [server].listen and api_keys for TCP",
            "environment_variables": "set them in the daemon's environment "
            "(EnvironmentFile= of the systemd unit)",
            "guardrails": "no equivalent",
            "mcp_servers": "no equivalent",
        }
        for key, value in self.data.items():
            if key in ("model_list", "router_settings", "litellm_settings"):
                continue
            reason = reasons.get(str(key), "no equivalent")
            if isinstance(value, dict) and value:  # each key by name (never a value)
                for inner in value:
                    self.skip(f"{key}.{inner}", reason)
            else:
                self.skip(str(key), reason)


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _whole_or_float(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _positive(value: Any) -> bool:
    return _whole_or_float(value) and value > 0
