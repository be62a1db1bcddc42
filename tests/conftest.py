"""Shared fixtures: every async test runs on asyncio (aiohttp and uvloop need it); cluster
tests share one real redis-server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .cluster_support import RedisServer


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real redis-server on a free loopback port, for the whole session (cluster tests)."""
    with RedisServer(tmp_path_factory.mktemp("redis")).running() as server:
        yield server
