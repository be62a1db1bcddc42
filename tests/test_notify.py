"""sd_notify: the real daemon tells a datagram socket of the test's own what systemd hears."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import httpx
import pytest
from anyio.abc import Process, UNIXDatagramSocket

from dispatcher._notify import Notifier

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parent.parent
CONFIG = """
[server]
socket = "run/d.sock"
metrics = ""
[[deployment]]
name = "mock"
group = "mini"
provider = "mock"
model = "mock-mini"
"""


class Listener:
    """The service manager's end: a datagram socket and the messages it got."""

    def __init__(self, sock: UNIXDatagramSocket) -> None:
        self.sock = sock
        self.seen: list[dict[str, str]] = []

    async def next_with(self, key: str) -> dict[str, str]:
        """The next message that carries `key` (the ones before it are kept in `seen`)."""
        while True:
            data, _ = await self.sock.receive()
            fields = dict(line.split("=", 1) for line in data.decode().split("\n") if line)
            self.seen.append(fields)
            if key in fields:
                return fields


@contextlib.asynccontextmanager
async def listener(address: str) -> AsyncIterator[Listener]:
    local = "\0" + address[1:] if address.startswith("@") else address
    async with await anyio.create_unix_datagram_socket(local_path=local) as sock:
        yield Listener(sock)


@contextlib.asynccontextmanager
async def daemon(tmp_path: Path, env: dict[str, str]) -> AsyncIterator[Process]:
    config = tmp_path / "d.toml"
    config.write_text(CONFIG)
    command = [sys.executable, "-m", "dispatcher", "serve", "--config", str(config)]
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    with (tmp_path / "stderr.log").open("wb") as log:
        async with await anyio.open_process(command, env=full_env, stderr=log) as process:
            try:
                yield process
            finally:
                if process.returncode is None:
                    process.kill()


def uds(tmp_path: Path) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(uds=os.fspath(tmp_path / "run" / "d.sock"))
    return httpx.AsyncClient(transport=transport, base_url="http://d", timeout=10)


@pytest.mark.slow
@pytest.mark.parametrize("abstract", [True, False], ids=["abstract", "path"])
async def test_daemon_notifies_ready_reload_watchdog_and_stopping(
    tmp_path: Path, abstract: bool
) -> None:
    """READY=1 once the socket answers; RELOADING=1 with MONOTONIC_USEC then READY=1 around
    SIGHUP; WATCHDOG=1 while it runs; STOPPING=1 on SIGTERM, then exit 0."""
    address = f"@dispatcher-test-{secrets.token_hex(8)}" if abstract else str(tmp_path / "n")
    env = {"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "300000"}
    async with listener(address) as manager, daemon(tmp_path, env) as process:
        with anyio.fail_after(30):
            ready = await manager.next_with("READY")
            assert ready["READY"] == "1"
            assert ready["STATUS"] == "serving 1 deployments in 1 groups"
            async with uds(tmp_path) as client:  # ready means the socket answers now
                assert (await client.get("/health")).status_code == 200

            before = time.monotonic_ns() // 1000
            process.send_signal(signal.SIGHUP)
            reloading = await manager.next_with("RELOADING")
            after = time.monotonic_ns() // 1000
            assert reloading["RELOADING"] == "1"
            # CLOCK_MONOTONIC is one clock for every process of the machine.
            assert before <= int(reloading["MONOTONIC_USEC"]) <= after
            assert (await manager.next_with("READY"))["READY"] == "1"

            # Two pings, whatever came before: the watchdog keeps going after a reload.
            await manager.next_with("WATCHDOG")
            assert (await manager.next_with("WATCHDOG"))["WATCHDOG"] == "1"

            process.send_signal(signal.SIGTERM)
            stopping = await manager.next_with("STOPPING")
            assert stopping["STOPPING"] == "1"
            # drain_timeout_s (30 by default) plus a margin, in microseconds.
            assert stopping["EXTEND_TIMEOUT_USEC"] == "35000000"
            assert await process.wait() == 0


@pytest.mark.slow
async def test_refused_reload_still_reports_ready(tmp_path: Path) -> None:
    """A config file that no longer validates: RELOADING=1, then READY=1 with a status that
    says so (systemd would otherwise wait for the reload to end)."""
    address = f"@dispatcher-test-{secrets.token_hex(8)}"
    async with listener(address) as manager, daemon(tmp_path, {"NOTIFY_SOCKET": address}) as p:
        with anyio.fail_after(30):
            await manager.next_with("READY")
            (tmp_path / "d.toml").write_text("[server]\nsocket = 5\n")
            p.send_signal(signal.SIGHUP)
            await manager.next_with("RELOADING")
            ready = await manager.next_with("READY")
            assert ready["STATUS"].startswith("reload refused")
            p.send_signal(signal.SIGTERM)
            assert await p.wait() == 0
    assert not any("WATCHDOG" in message for message in manager.seen)  # none was asked for


async def test_notifier_sends_one_datagram_per_message(tmp_path: Path) -> None:
    """Each message is one datagram of KEY=VALUE lines, to a path as to an abstract name."""
    for address in (str(tmp_path / "notify"), f"@dispatcher-test-{secrets.token_hex(8)}"):
        async with listener(address) as manager:
            notifier = Notifier.from_environ({"NOTIFY_SOCKET": address})
            try:
                notifier.ready("serving")
                with anyio.fail_after(5):
                    assert await manager.next_with("READY") == {"READY": "1", "STATUS": "serving"}
            finally:
                notifier.close()


@pytest.mark.parametrize(
    ("env", "watchdog_s"),
    [
        pytest.param({"WATCHDOG_USEC": "20000000"}, 20.0, id="usec"),
        pytest.param({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "1"}, None, id="other-pid"),
        pytest.param({"WATCHDOG_USEC": "0"}, None, id="zero"),
        pytest.param({"WATCHDOG_USEC": "²"}, None, id="not-ascii-digits"),
        pytest.param({"WATCHDOG_USEC": "9" * 40}, None, id="huge"),
    ],
)
def test_watchdog_timeout_from_the_environment(
    env: dict[str, str], watchdog_s: float | None
) -> None:
    """WATCHDOG_USEC counts for this process only (WATCHDOG_PID) and only when sane."""
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": "/run/x", **env})
    assert notifier.watchdog_s == watchdog_s


def test_watchdog_pid_of_this_process_counts() -> None:
    """WATCHDOG_PID naming this very process keeps the watchdog."""
    env = {"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": str(os.getpid())}
    assert Notifier.from_environ(env).watchdog_s == 1.0


@pytest.mark.parametrize("address", ["", "relative/path", "vsock:2:1234"])
def test_unusable_addresses_turn_notification_off(address: str) -> None:
    """No NOTIFY_SOCKET, or one this daemon cannot use: every call is a no-op."""
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": address})
    assert not notifier.enabled
    assert notifier.send("READY=1") is False


def test_a_dead_manager_is_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A socket nobody listens on: the send fails quietly after one warning per run of failures."""
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    try:
        assert notifier.send("READY=1") is False
        assert notifier.send("WATCHDOG=1") is False
    finally:
        notifier.close()
    warnings = [r for r in caplog.records if r.name == "dispatcher.notify"]
    assert len(warnings) == 1
    assert "cannot notify the service manager" in warnings[0].getMessage()
