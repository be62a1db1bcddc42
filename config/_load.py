"""Reading a config file: TOML syntax, then the schema, then cross-references."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import msgspec

from ._exceptions import ConfigError
from ._schema import Config
from ._secret import Secret, env_reference

_PATH_IN_ERROR = re.compile(r"^(?P<reason>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    """Read, parse and validate the config file at `path`.

    `env` is where ``env:NAME`` secrets are looked up (default: ``os.environ``).
    Raises `ConfigError` naming the file, the key and the reason.
    """
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(file, "", f"cannot read: {exc.strerror or exc}") from None
    return parse_config(text, file=file, env=env)


def parse_config(
    text: str, *, file: str = "<config>", env: Mapping[str, str] | None = None
) -> Config:
    """Validate TOML `text` as a Config (see `load_config`)."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(file, "", f"invalid TOML: {exc}") from None
    environ = os.environ if env is None else env

    def dec_hook(type_: type, obj: Any) -> Any:
        if type_ is Secret and isinstance(obj, str):
            name = env_reference(obj)
            if name is None:
                return Secret(obj)
            if not name:
                raise ValueError(f"{obj!r}: expected env:NAME with a variable name")
            if name not in environ:
                raise ValueError(f"environment variable {name} is not set")
            return Secret(environ[name], source=f"env:{name}")
        raise TypeError(f"Expected `str` or `env:NAME`, got `{type(obj).__name__}`")

    try:
        config = msgspec.convert(raw, Config, dec_hook=dec_hook)
    except msgspec.ValidationError as exc:
        raise _located(file, raw, str(exc)) from None
    _check_references(file, config)
    return config


def default_config_path() -> Path:
    """The shipped default config (works offline with mock deployments)."""
    return Path(str(resources.files("config").joinpath("dispatcher.toml")))


def _located(file: str, raw: dict[str, Any], message: str) -> ConfigError:
    match = _PATH_IN_ERROR.match(message)
    if match is None:
        return ConfigError(file, "", message)
    path, reason = (match["path"] or "").lstrip("."), match["reason"]
    if reason.startswith("Object contains unknown field"):
        return ConfigError(file, _join(path, reason.split("`")[1]), "unknown key")
    key_reason = _KEY_REASON.match(reason)
    if key_reason is not None and isinstance(_lookup(raw, path), dict):
        # A cross-field rule of a table (Struct.__post_init__) names its key first.
        path, reason = _join(path, key_reason["key"]), key_reason["reason"]
    value = _lookup(raw, path)
    secret = "api_key" in path or path == "cluster.redis"  # a Redis URL may hold a password
    if value is not _MISSING and not isinstance(value, dict) and not secret:
        reason = f"{reason} (got {value!r})"
    return ConfigError(file, path or "(top level)", reason)


_MISSING = object()
_KEY_REASON = re.compile(r"^(?P<key>[a-z_]+): (?P<reason>.*)$", re.S)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _lookup(raw: Any, path: str) -> Any:
    node = raw
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        try:
            node = node[int(part[1:-1])] if part.startswith("[") else node[part]
        except (KeyError, IndexError, TypeError, ValueError):
            return _MISSING
    return node


def _check_references(file: str, config: Config) -> None:
    names: set[str] = set()
    for index, dep in enumerate(config.deployment):
        if dep.name in names:
            raise ConfigError(file, f"deployment[{index}].name", f"{dep.name!r} is used twice")
        names.add(dep.name)
    groups = config.groups()
    router = config.router
    for key, value in (("router.default_fallbacks", router.default_fallbacks),):
        _known_groups(file, key, value, groups)
    for table in ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks"):
        for group, chain in getattr(router, table).items():
            _known_groups(file, f"router.{table}.{group}", (group, *chain), groups)


def _known_groups(file: str, key: str, names: tuple[str, ...], groups: Mapping[str, Any]) -> None:
    for name in names:
        if name not in groups:
            known = ", ".join(sorted(groups)) or "none"
            raise ConfigError(file, key, f"unknown group {name!r} (groups: {known})")
