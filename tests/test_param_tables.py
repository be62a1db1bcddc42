"""The README's parameter tables are the adapters' own, rendered."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from actors.providers import (
    OPTIONAL_PARAMS,
    Handling,
    ParamRow,
    adapter_for,
    param_tables,
    supported_by,
    supported_providers,
    table_of,
)
from actors.providers._tables import BEGIN, END, cell, sample_deployment
from config import Deployment

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_holds_exactly_the_rendered_tables() -> None:
    """Regenerate with `python -m actors.providers` when an adapter's table changes."""
    text = README.read_text(encoding="utf-8")
    start, end = text.index(BEGIN), text.index(END) + len(END)
    assert text[start:end] == param_tables()


def test_every_provider_has_a_table_naming_every_parameter() -> None:
    """Each provider of the registry is rendered, with a row per optional parameter."""
    rendered = param_tables()
    for provider in supported_providers():
        assert f"#### `{provider}`" in rendered
        table = table_of(adapter_for(sample_deployment(provider)))
        assert set(table) == OPTIONAL_PARAMS
        assert adapter_for(sample_deployment(provider)).supported_params == supported_by(table)


@pytest.mark.parametrize(
    ("row", "text"),
    [
        pytest.param(ParamRow(Handling.SENT), "sent", id="sent"),
        pytest.param(ParamRow(Handling.SENT, "why"), "sent (why)", id="sent-note"),
        pytest.param(ParamRow(Handling.MAPPED, "`random_seed`"), "mapped to `random_seed`",
                     id="mapped"),
        pytest.param(ParamRow(Handling.DROPPED), "dropped", id="dropped"),
        pytest.param(ParamRow(Handling.DROPPED, "no field"), "dropped: no field",
                     id="dropped-note"),
    ],
)  # fmt: skip
def test_cells(row: ParamRow, text: str) -> None:
    assert cell(row) == text


class _Untabled:
    """An adapter that exposes only `supported_params` (the other adapters, for now)."""

    auth: httpx.Auth | None = None
    supported_params = frozenset({"temperature", "stop"})

    def __init__(self, spec: Deployment) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(name)
