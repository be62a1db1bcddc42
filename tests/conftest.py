"""Shared fixtures: every async test runs on asyncio (aiohttp and uvloop need it)."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
