"""Layers point one way, and each package's public surface is its sorted __all__."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {"config": {"actors", "dispatcher"}, "actors": {"dispatcher"}}


def imported_packages(package: str) -> set[str]:
    found: set[str] = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_lower_layers_do_not_import_higher_ones(package: str) -> None:
    """config imports neither sibling; actors never imports dispatcher."""
    assert not imported_packages(package) & FORBIDDEN[package]


def isort_key(name: str) -> tuple[int, str]:
    kind = 0 if name.isupper() else 1 if name[:1].isupper() else 2
    return kind, name


@pytest.mark.parametrize(
    "package", ["config", "actors", "actors.providers", "dispatcher", "dispatcher.cluster"]
)
def test_public_names_are_sorted_and_exported(package: str) -> None:
    """__all__ is sorted (isort-style, as ruff keeps it) and names only what the package has."""
    module = importlib.import_module(package)
    names = module.__all__
    assert names == sorted(names, key=isort_key)
    for name in names:
        assert hasattr(module, name), name
