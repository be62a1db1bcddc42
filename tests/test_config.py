"""Config: the schema rejects what it should, naming file, key and reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from config import ConfigError, default_config_path, load_config, parse_config
from dispatcher.cli import main

DEP = '[[deployment]]\nname = "a"\ngroup = "g"\nprovider = "openai"\nmodel = "gpt-4o-mini"\n'


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        pytest.param(
            DEP + "rpm = 'fast'", "deployment[0].rpm", "Expected `int`, got `str`", id="wrong-type"
        ),
        pytest.param(DEP + "rmp = 1", "deployment[0].rmp", "unknown key", id="typo"),
        pytest.param(DEP + "inbox = 0", "deployment[0].inbox", ">= 1", id="range"),
        pytest.param(
            DEP + "api_key = 'env:NOT_SET_ANYWHERE'",
            "deployment[0].api_key",
            "NOT_SET_ANYWHERE is not set",
            id="missing-env",
        ),
        pytest.param(
            DEP + "latency_ms = 3",
            "deployment[0].latency_ms",
            "knob of provider 'mock'",
            id="mock-knob-elsewhere",
        ),
        pytest.param(
            DEP.replace('"openai"', '"azure"'),
            "deployment[0].api_base",
            "needs it",
            id="azure-base",
        ),
        pytest.param(
            DEP.replace('"openai"', '"acme"'),
            "deployment[0].provider",
            "Invalid enum value",
            id="unknown-provider",
        ),
        pytest.param(DEP + DEP, "deployment[1].name", "used twice", id="duplicate-name"),
        pytest.param(
            "[router]\ndefault_fallbacks = ['x']\n" + DEP,
            "router.default_fallbacks",
            "unknown group 'x'",
            id="unknown-fallback",
        ),
        pytest.param(
            "[router.fallbacks]\ng = ['nope']\n" + DEP,
            "router.fallbacks.g",
            "unknown group 'nope'",
            id="unknown-chain-group",
        ),
        pytest.param(
            "[router]\nstrategy = 'fastest'\n",
            "router.strategy",
            "Invalid enum value",
            id="strategy",
        ),
        pytest.param(
            "[server]\nmetrics = 'nowhere'\n", "server.metrics", "host:port", id="address"
        ),
        pytest.param("[serverr]\n", "serverr", "unknown key", id="unknown-table"),
    ],
)
def test_bad_config_names_key_and_reason(text: str, key: str, reason: str) -> None:
    """Every bad config names the file, the key and why."""
    with pytest.raises(ConfigError) as info:
        parse_config(text, file="my.toml", env={})
    assert (info.value.file, info.value.key) == ("my.toml", key)
    assert reason in info.value.reason
    assert str(info.value).startswith(f"my.toml: {key}: ")


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    """Syntax errors and unreadable files are ConfigErrors too."""
    with pytest.raises(ConfigError, match="invalid TOML"):
        parse_config("x = [", file="bad.toml")
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.toml")


def test_env_secret_is_resolved_and_never_printed() -> None:
    """env:NAME and os.environ/NAME read the environment; repr shows only the source."""
    text = (
        DEP
        + 'api_key = "env:MY_KEY"\n'
        + DEP.replace('"a"', '"b"')
        + 'api_key = "os.environ/MY_KEY"\n'
    )
    config = parse_config(text, env={"MY_KEY": "sk-live-123"})
    a, b = config.deployment
    assert a.api_key is not None and a.api_key.reveal() == "sk-live-123"
    assert a.api_key == b.api_key
    assert "sk-live-123" not in repr(config)


def test_shipped_configs_are_valid() -> None:
    """The default config and every example load (example secrets come from env)."""
    default = load_config(default_config_path())
    assert {"gpt-4o-mini", "my-model"} <= set(default.groups())
    assert default.router.fallbacks["my-model"] == ("gpt-4o-mini",)
    examples = sorted(Path(default_config_path()).parent.joinpath("examples").glob("*.toml"))
    assert examples
    for path in examples:
        text = path.read_text()
        names = {part.split('"')[0] for part in text.split('"env:')[1:]}
        parse_config(text, file=str(path), env={name: "sk-example" for name in names})


def test_config_is_immutable() -> None:
    """Config Structs are frozen: nothing can change a loaded config in place."""
    config = parse_config(DEP)
    with pytest.raises(AttributeError):
        config.deployment[0].rpm = 5  # type: ignore[misc]


def test_check_prints_groups_and_redacts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`dispatcher check` prints groups and deployments without any secret."""
    path = tmp_path / "c.toml"
    path.write_text(
        DEP
        + 'api_key = "env:CHECK_KEY"\n'
        + DEP.replace('"a"', '"inline"')
        + 'api_key = "sk-inline-999"\n'
    )
    monkeypatch.setenv("CHECK_KEY", "sk-from-env-777")
    assert main(["check", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "group g" in out and "- a: provider=openai" in out
    assert "api_key=env:CHECK_KEY (***)" in out
    assert "sk-from-env-777" not in out and "sk-inline-999" not in out


def test_check_fails_with_file_key_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad config makes `dispatcher check` exit 1 with file, key and reason."""
    path = tmp_path / "c.toml"
    path.write_text(DEP + "rpm = -1\n")
    assert main(["check", "--config", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}: deployment[0].rpm:" in err and ">= 0" in err
