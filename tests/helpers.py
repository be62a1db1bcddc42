"""Building blocks for tests: a supervisor over actors with scripted transports."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any

import anyio
import httpx
import msgspec
from prometheus_client import CollectorRegistry

from actors import DeploymentActor
from config import Config, parse_config
from dispatcher import Daemon, Metrics, Router, Supervisor

Handler = Callable[[httpx.Request], Coroutine[Any, Any, httpx.Response]]


def chat_json(model: str = "g", text: str = "hi", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


def completion(text: str = "ok", model: str = "m", **usage: int) -> httpx.Response:
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5, **usage},
    }
    return httpx.Response(
        200, content=msgspec.json.encode(body), headers={"content-type": "application/json"}
    )


def error(
    status: int, code: str | None = None, message: str = "boom", **headers: str
) -> httpx.Response:
    body = {"error": {"message": message, "type": "x", "code": code, "param": None}}
    return httpx.Response(status, content=msgspec.json.encode(body), headers=headers)


class Stack:
    """A supervisor, its router, metrics and running actors, with no sockets."""

    def __init__(self, config: Config, supervisor: Supervisor, actors: dict[str, DeploymentActor]):
        self.config = config
        self.supervisor = supervisor
        self.actors = actors
        self.metrics = supervisor.metrics
        self.registry = supervisor.metrics.registry

    def sample(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


@contextlib.asynccontextmanager
async def stack(
    config_text: str,
    handlers: Mapping[str, Handler] | None = None,
    *,
    backoff: Callable[[int], float] = lambda retry: 0.0,
) -> AsyncIterator[Stack]:
    """Run the deployments of `config_text`; `handlers[name]` answers for deployment `name`."""
    config = parse_config(config_text)
    handlers = handlers or {}
    actors = {
        d.name: DeploymentActor(
            d,
            config.router.cooldown,
            transport=httpx.MockTransport(handlers[d.name]) if d.name in handlers else None,
        )
        for d in config.deployment
    }
    registry = CollectorRegistry()
    metrics = Metrics(registry, lambda: actors.values())
    router = Router(config.router, actors.values())
    supervisor = Supervisor(config.router, router, metrics, backoff=backoff)
    async with anyio.create_task_group() as tg:
        for actor in actors.values():
            await tg.start(actor.run)
        try:
            yield Stack(config, supervisor, actors)
        finally:
            for actor in actors.values():
                actor.close()
            tg.cancel_scope.deadline = anyio.current_time() + 5


def deployments(*specs: str, router: str = "") -> str:
    """Config text: `router` lines, then a [[deployment]] per 'name group [key=value ...]'."""
    out = ["[router]", "num_retries = 0", router]
    for spec in specs:
        name, group, *rest = spec.split()
        out += [
            "[[deployment]]",
            f'name = "{name}"',
            f'group = "{group}"',
            'provider = "openai-compatible"',
            'model = "m"',
            'api_base = "http://up.invalid/v1"',
            'api_key = "sk-test-secret"',
            *rest,
        ]
    return "\n".join(out)


@contextlib.asynccontextmanager
async def running_daemon(config_text: str, base_dir: Path) -> AsyncIterator[Daemon]:
    """A `Daemon` serving `config_text` in this event loop (stopped on exit)."""
    daemon = Daemon(parse_config(config_text), base_dir)
    async with anyio.create_task_group() as tg:
        await tg.start(daemon.run)
        try:
            yield daemon
        finally:
            daemon.stop()


def uds_client(daemon: Daemon, **kwargs: Any) -> httpx.AsyncClient:
    """An httpx client for a daemon's Unix socket."""
    transport = httpx.AsyncHTTPTransport(uds=os.fspath(daemon.socket_path))
    return httpx.AsyncClient(transport=transport, base_url="http://dispatcher", **kwargs)


def openai_deployment(name: str, group: str, url: str, key: str, *extra: str) -> str:
    """A [[deployment]] of an OpenAI-compatible server at `url` (a fake's base URL)."""
    lines = [
        "[[deployment]]",
        f'name = "{name}"',
        f'group = "{group}"',
        'provider = "openai-compatible"',
        'model = "gpt-4o-mini"',
        f'api_base = "{url}/v1"',
        f'api_key = "{key}"',
        *extra,
    ]
    return "\n".join(lines) + "\n"
