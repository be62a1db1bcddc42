"""The TCP listener's door: bearer tokens, the Host check, and the config rules behind them."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from config import ConfigError, parse_config
from dispatcher.cli import main

from .helpers import running_daemon, uds_client

pytestmark = pytest.mark.anyio

KEY = "sk-dispatcher-0123456789abcdef"
OTHER_KEY = "sk-dispatcher-second-key-99999"

CONFIG = """
[server]
socket = "run/d.sock"
metrics = ""
listen = "{listen}"
{extra}
[[deployment]]
name = "mini-a"
group = "mini"
provider = "mock"
model = "mock-mini"
"""

CHAT = {"model": "mini", "messages": [{"role": "user", "content": "hi"}]}


def config(listen: str = "127.0.0.1:0", extra: str = "") -> str:
    return CONFIG.format(listen=listen, extra=extra)


def with_keys(*keys: str, extra: str = "") -> str:
    listed = ", ".join(f'"{key}"' for key in keys)
    return config(extra=f"api_keys = [{listed}]\n{extra}")


def tcp_client(address: tuple[str, int] | None, **kwargs: object) -> httpx.AsyncClient:
    assert address is not None
    host, port = address
    return httpx.AsyncClient(base_url=f"http://{host}:{port}", **kwargs)  # type: ignore[arg-type]


async def test_without_a_token_the_answer_is_401_in_openai_shape(tmp_path: Path) -> None:
    """No token, a wrong one, or another scheme: 401, `www-authenticate: Bearer`."""
    async with running_daemon(with_keys(KEY, OTHER_KEY), tmp_path) as daemon:
        async with tcp_client(daemon.tcp_address) as client:
            for headers in (
                {},
                {"authorization": "Bearer sk-dispatcher-wrong"},
                {"authorization": f"Basic {KEY}"},
                {"authorization": f"Bearer {KEY}x"},
            ):
                response = await client.post("/v1/chat/completions", json=CHAT, headers=headers)
                assert response.status_code == 401, headers
                assert response.headers["www-authenticate"] == "Bearer"
                error = response.json()["error"]
                assert error["type"] == "invalid_request_error"
                assert error["code"] == "invalid_api_key"
                assert KEY not in response.text
            listed = await client.get("/v1/jobs")
            assert listed.status_code == 401


async def test_each_configured_key_is_accepted(tmp_path: Path) -> None:
    """Either key, with any case of `Bearer`, is let through to the API."""
    async with running_daemon(with_keys(KEY, OTHER_KEY), tmp_path) as daemon:
        async with tcp_client(daemon.tcp_address) as client:
            for value in (f"Bearer {KEY}", f"bearer {OTHER_KEY}"):
                response = await client.post(
                    "/v1/chat/completions", json=CHAT, headers={"authorization": value}
                )
                assert response.status_code == 200
                assert response.json()["choices"][0]["message"]["content"] == "mock: hi"


async def test_the_unix_socket_needs_no_token(tmp_path: Path) -> None:
    """The 0600 socket is its own door: no token there."""
    async with running_daemon(with_keys(KEY), tmp_path) as daemon, uds_client(daemon) as client:
        assert (await client.post("/v1/chat/completions", json=CHAT)).status_code == 200


async def test_unauthenticated_body_is_not_swallowed(tmp_path: Path) -> None:
    """A 401 given before a large body arrived closes the connection (no endless read)."""
    async with running_daemon(with_keys(KEY), tmp_path) as daemon:
        async with tcp_client(daemon.tcp_address) as client:
            response = await client.post("/v1/chat/completions", content=b"x" * (4 << 20))
    assert response.status_code == 401
    assert response.headers["connection"] == "close"


@pytest.mark.parametrize(
    "host",
    [
        pytest.param("evil.example", id="rebound-name"),
        pytest.param("evil.example:{port}", id="rebound-name-with-port"),
        pytest.param("localhost.evil.example", id="suffix"),
        pytest.param("10.1.2.3:{port}", id="other-address"),
    ],
)
async def test_foreign_host_is_refused_with_421(tmp_path: Path, host: str) -> None:
    """DNS rebinding: a Host that does not name this server is 421, even on loopback."""
    async with running_daemon(config(), tmp_path) as daemon:
        assert daemon.tcp_address is not None
        async with tcp_client(daemon.tcp_address) as client:
            headers = {"host": host.format(port=daemon.tcp_address[1])}
            response = await client.post("/v1/chat/completions", json=CHAT, headers=headers)
            assert response.status_code == 421
            assert response.json()["error"]["code"] == "host_not_allowed"
            health = await client.get("/health", headers=headers)
            assert health.status_code == 421


@pytest.mark.parametrize(
    "host",
    [
        "localhost:{port}",
        "LOCALHOST",
        "127.0.0.1:{port}",
        "127.0.0.1",
        "dispatcher.internal:{port}",
        "Dispatcher.Internal.",
    ],
)
async def test_own_names_and_allowed_hosts_are_answered(tmp_path: Path, host: str) -> None:
    """localhost, the listener's own address and `allowed_hosts` are this server."""
    text = config(extra='allowed_hosts = ["dispatcher.internal"]')
    async with running_daemon(text, tmp_path) as daemon:
        assert daemon.tcp_address is not None
        async with tcp_client(daemon.tcp_address) as client:
            headers = {"host": host.format(port=daemon.tcp_address[1])}
            response = await client.post("/v1/chat/completions", json=CHAT, headers=headers)
            assert response.status_code == 200


async def test_allowed_hosts_star_answers_any_host(tmp_path: Path) -> None:
    """allowed_hosts = ["*"] turns the Host check off (behind a proxy that does it)."""
    async with running_daemon(config(extra='allowed_hosts = ["*"]'), tmp_path) as daemon:
        async with tcp_client(daemon.tcp_address) as client:
            response = await client.get("/health", headers={"host": "anything.example"})
            assert response.status_code == 200


@pytest.mark.parametrize("listen", ["0.0.0.0:8080", "[::]:8080", "192.0.2.7:8080", "box:8080"])
def test_non_loopback_listen_without_keys_is_a_config_error(listen: str) -> None:
    """Binding beyond loopback without api_keys names server.listen and the way out."""
    with pytest.raises(ConfigError) as info:
        parse_config(config(listen), file="d.toml")
    message = str(info.value)
    assert "server.listen" in message and "api_keys" in message and "127.0.0.1" in message


@pytest.mark.parametrize("listen", ["127.0.0.1:8080", "127.9.9.9:1", "[::1]:8080", "localhost:1"])
def test_loopback_listen_needs_no_keys(listen: str) -> None:
    """Loopback may go without keys (the Host check still applies)."""
    assert parse_config(config(listen)).server.listen == listen


def test_keys_come_from_the_environment_and_short_ones_are_refused() -> None:
    """`env:NAME` keys read the environment; a short key is an error that does not print it."""
    text = config("0.0.0.0:8080", 'api_keys = ["env:DISPATCHER_KEY"]')
    server = parse_config(text, env={"DISPATCHER_KEY": KEY}).server
    assert [key.reveal() for key in server.api_keys] == [KEY]
    with pytest.raises(ConfigError) as info:
        parse_config(text, env={"DISPATCHER_KEY": "short-key"})
    assert "server.api_keys" in str(info.value) and "short-key" not in str(info.value)
    with pytest.raises(ConfigError, match="DISPATCHER_KEY is not set"):
        parse_config(text, env={})


def test_check_shows_keys_redacted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`dispatcher check` names where each key comes from, never the key."""
    path = tmp_path / "d.toml"
    path.write_text(config("0.0.0.0:8080", f'api_keys = ["env:DISPATCHER_KEY", "{OTHER_KEY}"]'))
    monkeypatch.setenv("DISPATCHER_KEY", KEY)
    assert main(["check", "--config", os.fspath(path)]) == 0
    out = capsys.readouterr().out
    assert "api_keys=[env:DISPATCHER_KEY (***), ***]" in out
    assert KEY not in out and OTHER_KEY not in out
