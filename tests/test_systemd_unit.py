"""deploy/llm-dispatcher.service: what it promises, in step with the daemon, its CLI and
deploy/dispatcher.toml; checked by `systemd-analyze` where the tool is installed."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from config import load_config
from dispatcher.cli._main import _parser, main

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "deploy" / "llm-dispatcher.service"
SERVICE_CONFIG = ROOT / "deploy" / "dispatcher.toml"
ANALYZE = shutil.which("systemd-analyze")
no_analyze = pytest.mark.skipif(
    ANALYZE is None, reason="systemd-analyze is not installed (Debian: apt-get install systemd)"
)


def service_section(text: str) -> dict[str, list[str]]:
    """[Service] as key -> values (a key may repeat, as SystemCallFilter= does)."""
    section = ""
    out: dict[str, list[str]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
        elif section == "[Service]":
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


def one(service: dict[str, list[str]], key: str) -> str:
    [value] = service[key]
    return value


def test_unit_is_a_hardened_notify_service() -> None:
    """Type=notify, reload by SIGHUP, a watchdog, an unprivileged user, and the hardening."""
    service = service_section(UNIT.read_text())
    assert one(service, "Type") == "notify"
    assert one(service, "NotifyAccess") == "main"
    assert one(service, "ExecReload") == "/bin/kill -HUP $MAINPID"
    assert float(one(service, "WatchdogSec")) > 0
    assert one(service, "User") not in ("", "root", "0")
    expected = {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "CapabilityBoundingSet": "",
        "RestrictSUIDSGID": "yes",
        "UMask": "0077",
        "RuntimeDirectoryMode": "0700",
        "StateDirectoryMode": "0700",
    }
    assert {key: one(service, key) for key in expected} == expected
    assert one(service, "EnvironmentFile").lstrip("-").startswith("/etc/llm-dispatcher/")
    assert "ProcSubset" not in service  # it would hide /proc/stat from the process_* metrics


def test_unit_folders_and_command_match_the_service_config(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ExecStart parses with our CLI; its config is in ConfigurationDirectory, the socket in
    RuntimeDirectory, the store in StateDirectory; TimeoutStopSec covers the drain."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-service-secret")
    service = service_section(UNIT.read_text())
    binary, *argv = shlex.split(one(service, "ExecStart"))
    assert binary.endswith("/bin/dispatcher")
    args = _parser().parse_args(argv)
    assert args.func.__name__ == "_serve"
    assert args.config == Path("/etc", one(service, "ConfigurationDirectory"), "dispatcher.toml")
    config = load_config(SERVICE_CONFIG)
    socket = Path(config.server.socket)
    assert socket.parent == Path("/run", one(service, "RuntimeDirectory"))
    assert Path(config.jobs.store).parent == Path("/var/lib", one(service, "StateDirectory"))
    assert float(one(service, "TimeoutStopSec")) > config.server.drain_timeout_s


def test_service_config_checks(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`dispatcher check` accepts deploy/dispatcher.toml and never prints the key."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-service-secret")
    assert main(["check", "--config", str(SERVICE_CONFIG)]) == 0
    out = capsys.readouterr().out
    assert "api_key=env:OPENAI_API_KEY (***)" in out
    assert "sk-service-secret" not in out


def unit_for_this_machine(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this venv's `dispatcher`: verify checks that the
    command exists."""
    installed = Path(sys.executable).parent / "dispatcher"
    if not installed.exists():
        pytest.skip(f"no installed dispatcher command at {installed} (run make install)")
    text = UNIT.read_text().replace("/opt/llm-dispatcher/bin/dispatcher", str(installed))
    unit = tmp_path / UNIT.name
    unit.write_text(text)
    return unit


@no_analyze
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    """`systemd-analyze verify` finds nothing to say about the unit (unknown keys, bad values
    and missing commands are all reported there)."""
    assert ANALYZE is not None
    unit = unit_for_this_machine(tmp_path)
    done = subprocess.run(
        [ANALYZE, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    about_us = [line for line in (done.stdout + done.stderr).splitlines() if unit.name in line]
    assert done.returncode == 0, done.stderr
    assert about_us == []


@no_analyze
def test_systemd_analyze_security_exposure_is_low(tmp_path: Path) -> None:
    """`systemd-analyze security` rates the unit's exposure at most 2.0 of 10 ("OK")."""
    assert ANALYZE is not None
    unit = unit_for_this_machine(tmp_path)
    command = [ANALYZE, "security", "--offline=yes", "--threshold=20", "--no-pager", str(unit)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    if "--offline" in done.stderr or "--threshold" in done.stderr:
        pytest.skip(f"systemd-analyze too old for offline security checks: {done.stderr.strip()}")
    overall = [line for line in done.stdout.splitlines() if "Overall exposure" in line]
    assert done.returncode == 0, overall or done.stdout[-2000:]


def test_readme_shows_the_unit_as_it_is() -> None:
    """Every line of the README's abridged unit is a line of the unit file."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("```ini\n", 1)[1].split("```", 1)[0]
    shown = [line for line in block.splitlines() if line and not line.startswith("#")]
    assert len(shown) > 10
    unit_lines = set(UNIT.read_text().splitlines())
    assert [line for line in shown if line not in unit_lines] == []
