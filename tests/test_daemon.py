"""The daemon in-process: its Unix socket, its listeners, and the OpenAI SDK as a client."""

from __future__ import annotations

import contextlib
import os
import socket
import stat
from functools import partial
from pathlib import Path

import anyio
import httpx
import httpx2
import openai
import pytest

from config import parse_config
from dispatcher import Daemon, DaemonError

from .fakes import OpenAIFake, hang, serve_app, wait
from .helpers import running_daemon, uds_client

pytestmark = pytest.mark.anyio

CONFIG = """
[server]
socket = "run/d.sock"
metrics = "127.0.0.1:0"
drain_timeout_s = 5
[router]
num_retries = 0
[router.fallbacks]
flaky = ["mini"]
[[deployment]]
name = "mini-a"
group = "mini"
provider = "mock"
model = "mock-mini"
[[deployment]]
name = "broken"
group = "flaky"
provider = "mock"
model = "mock-broken"
fail_status = 503
"""


def running(tmp_path: Path, text: str = CONFIG) -> contextlib.AbstractAsyncContextManager[Daemon]:
    return running_daemon(text, tmp_path)


async def test_socket_is_private_and_removed_on_stop(tmp_path: Path) -> None:
    """The socket is created 0600 in a folder made for it, and removed at exit."""
    async with running(tmp_path) as daemon:
        mode = daemon.socket_path.stat().st_mode
        assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
        async with uds_client(daemon) as client:
            assert (await client.get("/health")).status_code == 200
    assert not daemon.socket_path.exists()


async def test_openai_sdk_over_the_unix_socket(tmp_path: Path) -> None:
    """The official SDK talks to the daemon over the socket, fallbacks included."""
    async with running(tmp_path) as daemon:
        http_client = openai.DefaultAsyncHttpxClient(
            transport=httpx2.AsyncHTTPTransport(uds=os.fspath(daemon.socket_path))
        )
        sdk = openai.AsyncOpenAI(
            base_url="http://dispatcher/v1", api_key="unused", http_client=http_client
        )
        async with sdk:
            reply = await sdk.chat.completions.with_raw_response.create(
                model="flaky", messages=[{"role": "user", "content": "hello"}]
            )
            completion = reply.parse()
            assert completion.choices[0].message.content == "mock: hello"
            assert reply.headers["x-dispatcher-deployment"] == "mini-a"
            assert reply.headers["x-dispatcher-attempts"] == "2"
            models = await sdk.models.list()
            assert sorted(m.id for m in models.data) == ["flaky", "mini"]
            with pytest.raises(openai.NotFoundError) as info:
                await sdk.chat.completions.create(
                    model="nope", messages=[{"role": "user", "content": "x"}]
                )
            assert info.value.code == "model_not_found"


async def test_metrics_listener_serves_metrics_and_health_only(tmp_path: Path) -> None:
    """The TCP scrape address answers /metrics, /health and /health/ready, and nothing else."""
    async with running(tmp_path) as daemon:
        assert daemon.metrics_address is not None
        host, port = daemon.metrics_address
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as client:
            assert (await client.get("/health")).status_code == 200
            ready = await client.get("/health/ready")
            assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
            assert "dispatcher_inflight" in (await client.get("/metrics")).text
            chat = await client.post("/v1/chat/completions", json={})
            assert chat.status_code == 404


async def test_stale_socket_is_replaced(tmp_path: Path) -> None:
    """A socket file nobody answers on (a dead daemon's) is replaced."""
    path = tmp_path / "run" / "d.sock"
    path.parent.mkdir()
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(os.fspath(path))
    dead.close()
    async with running(tmp_path) as daemon, uds_client(daemon) as client:
        assert (await client.get("/health")).status_code == 200


async def test_live_socket_is_not_stolen(tmp_path: Path) -> None:
    """A second daemon on the same socket refuses to start and leaves the first serving."""
    async with running(tmp_path) as first:
        second = Daemon(parse_config(CONFIG.replace("127.0.0.1:0", "")), tmp_path)
        with pytest.raises(DaemonError, match="another daemon is serving"):
            await second.run()
        async with uds_client(first) as client:
            assert (await client.get("/health")).status_code == 200


async def test_socket_path_that_is_not_a_socket(tmp_path: Path) -> None:
    """A regular file at the socket path is a precise error, and is left alone."""
    path = tmp_path / "run" / "d.sock"
    path.parent.mkdir()
    path.write_text("keep me")
    with pytest.raises(DaemonError, match="exists and is not a socket"):
        await Daemon(parse_config(CONFIG), tmp_path).run()
    assert path.read_text() == "keep me"


@pytest.mark.parametrize("mode", [0o777, 0o1777, 0o775], ids=oct)
async def test_socket_folder_others_can_write_is_refused(tmp_path: Path, mode: int) -> None:
    """Another user who can write the socket's folder could put their own socket there."""
    folder = tmp_path / "run"
    folder.mkdir()
    os.chmod(folder, mode)
    with pytest.raises(DaemonError, match=r"socket folder .* writable by other users"):
        await Daemon(parse_config(CONFIG), tmp_path).run()
    assert list(folder.iterdir()) == []


async def test_stop_drains_in_flight_requests(tmp_path: Path) -> None:
    """After stop() nothing new is accepted, but the request in flight is answered."""
    fake = OpenAIFake(api_key="sk-fake")
    release = anyio.Event()
    fake.script(wait(release))
    async with serve_app(fake) as url:
        text = (
            CONFIG
            + f"""
[[deployment]]
name = "upstream"
group = "real"
provider = "openai-compatible"
model = "gpt-4o-mini"
api_base = "{url}/v1"
api_key = "sk-fake"
"""
        )
        responses: list[httpx.Response] = []
        daemon = Daemon(parse_config(text), tmp_path)
        async with uds_client(daemon) as client, anyio.create_task_group() as tg:
            await tg.start(daemon.run)

            async def ask() -> None:
                body = {"model": "real", "messages": [{"role": "user", "content": "x"}]}
                responses.append(await client.post("/v1/chat/completions", json=body))

            tg.start_soon(ask)
            await fake.wait_for_requests(1)
            daemon.stop()
            with pytest.raises(httpx.ConnectError):
                async with uds_client(daemon) as late:
                    await late.get("/health")
            release.set()
        [response] = responses
        assert response.status_code == 200
        assert not daemon.socket_path.exists()


async def test_reload_keeps_unchanged_actors_and_finishes_in_flight_work(tmp_path: Path) -> None:
    """Reload: unchanged deployments keep their actor; a retired one finishes its request."""
    fake = OpenAIFake(api_key="sk-fake")
    release = anyio.Event()
    fake.script(wait(release))
    async with serve_app(fake) as url:
        upstream = f"""
[[deployment]]
name = "upstream"
group = "real"
provider = "openai-compatible"
model = "gpt-4o-mini"
api_base = "{url}/v1"
api_key = "sk-fake"
"""
        daemon = Daemon(parse_config(CONFIG + upstream), tmp_path)
        responses: list[httpx.Response] = []
        async with uds_client(daemon) as client, anyio.create_task_group() as tg:
            await tg.start(daemon.run)
            kept = next(a for a in daemon.actors if a.name == "mini-a")

            async def ask() -> None:
                body = {"model": "real", "messages": [{"role": "user", "content": "x"}]}
                responses.append(await client.post("/v1/chat/completions", json=body))

            tg.start_soon(ask)
            await fake.wait_for_requests(1)
            added = (
                '[[deployment]]\nname = "new"\ngroup = "fresh"\nprovider = "mock"\nmodel = "m"\n'
            )
            await daemon.reload(parse_config(CONFIG + added))
            assert {a.name for a in daemon.actors} == {"mini-a", "broken", "new"}
            assert next(a for a in daemon.actors if a.name == "mini-a") is kept
            models = (await client.get("/v1/models")).json()
            assert sorted(m["id"] for m in models["data"]) == ["flaky", "fresh", "mini"]
            fresh = {"model": "fresh", "messages": [{"role": "user", "content": "y"}]}
            assert (await client.post("/v1/chat/completions", json=fresh)).status_code == 200
            release.set()
            await anyio.wait_all_tasks_blocked()
            daemon.stop()
        [response] = responses
        assert response.status_code == 200


async def test_client_that_leaves_cancels_the_upstream_call(tmp_path: Path) -> None:
    """A non-streamed request whose client disconnects stops its upstream call at once."""
    fake = OpenAIFake(api_key="sk-fake")
    fake.script(hang())
    async with serve_app(fake) as url:
        text = CONFIG + (
            '[[deployment]]\nname = "up"\ngroup = "real"\nprovider = "openai-compatible"\n'
            f'model = "gpt-4o-mini"\napi_base = "{url}/v1"\napi_key = "sk-fake"\n'
        )
        async with running(tmp_path, text) as daemon:
            async with uds_client(daemon) as client, anyio.create_task_group() as tg:
                body = {"model": "real", "messages": [{"role": "user", "content": "x"}]}
                tg.start_soon(partial(client.post, "/v1/chat/completions", json=body))
                [record] = await fake.wait_for_requests(1)
                tg.cancel_scope.cancel()  # the client gives up and closes its connection
            with anyio.fail_after(10):
                await record.wait_finished()
            assert record.disconnected
            await anyio.wait_all_tasks_blocked()
            cancelled = daemon.registry.get_sample_value(
                "dispatcher_requests_total", {"group": "real", "outcome": "cancelled"}
            )
            assert cancelled == 1


async def test_optional_tcp_listener_serves_the_same_routes(tmp_path: Path) -> None:
    """[server].listen adds a TCP listener with the socket's routes."""
    text = CONFIG.replace('metrics = "127.0.0.1:0"', 'metrics = ""\nlisten = "127.0.0.1:0"')
    async with running(tmp_path, text) as daemon:
        assert daemon.tcp_address is not None
        host, port = daemon.tcp_address
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as client:
            body = {"model": "mini", "messages": [{"role": "user", "content": "over tcp"}]}
            response = await client.post("/v1/chat/completions", json=body)
    assert response.json()["choices"][0]["message"]["content"] == "mock: over tcp"
    assert daemon.metrics_address is None
