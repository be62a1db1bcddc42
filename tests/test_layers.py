"""Layers point one way, no module imports itself back, and each package's public surface is
its sorted __all__."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("config", "actors", "dispatcher")
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
    "package",
    [
        "config",
        "actors",
        "actors.providers",
        "dispatcher",
        "dispatcher.cli",
        "dispatcher.cluster",
        "dispatcher.jobs",
    ],
)
def test_public_names_are_sorted_and_exported(package: str) -> None:
    """__all__ is sorted (isort-style, as ruff keeps it) and names only what the package has."""
    module = importlib.import_module(package)
    names = module.__all__
    assert names == sorted(names, key=isort_key)
    for name in names:
        assert hasattr(module, name), name


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph(*, module_level: bool = False) -> dict[str, set[str]]:
    """Module -> the modules of ours it imports: every import statement, at any depth
    (under `if TYPE_CHECKING:` and inside functions too, unless `module_level`), relative
    ones resolved, a `from package import name` counted as an import of the submodule
    `name` when it is one."""
    files = {module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found: set[str] = set()
        tree = ast.parse(path.read_text())
        for node in tree.body if module_level else ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    base = ".".join([*parts[: len(parts) - node.level + 1], *filter(None, [base])])
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in files else base
                    for alias in node.names
                ]
            else:
                continue
            for target in targets:
                while target and target not in files:  # a name inside a module of ours
                    target = target.rpartition(".")[0]
                if target and target != name:
                    found.add(target)
        graph[name] = found
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles: strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in graph[module]:
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = [stack.pop()]
            while component[-1] != module:
                component.append(stack.pop())
            if len(component) > 1:
                found.append(sorted(component))

    for module in graph:
        if module not in index:
            visit(module)
    return found


def test_the_cycle_finder_finds_a_circle() -> None:
    """The check below can fail: a two-module circle and a longer one are found."""
    graph = {"a": {"b"}, "b": {"a", "c"}, "c": set(), "d": {"e"}, "e": {"f"}, "f": {"d"}}
    assert sorted(cycles(graph)) == [["a", "b"], ["d", "e", "f"]]


def test_no_import_cycles() -> None:
    """No module of ours imports itself back, through any chain (TYPE_CHECKING included)."""
    graph = import_graph()
    assert "dispatcher._http" in graph.get("dispatcher._api", set())  # the graph is real
    assert cycles(graph) == []


def test_no_module_borrows_another_modules_private_names() -> None:
    """`from x import _name` only names a module: private helpers stay where they are."""
    modules = set(import_graph())
    borrowed = []
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.ImportFrom):
                    continue
                for alias in node.names:
                    private = alias.name.startswith("_") and not alias.name.startswith("__")
                    if private and not any(m.endswith("." + alias.name) for m in modules):
                        borrowed.append(f"{module_name(path)}: {alias.name}")
    assert borrowed == []


STORAGE = {"_model", "_store", "_sqlite", "_sql", "_writer", "_memory", "_redis", "_redis_lua"}
"""The job package's storage half: the model, the contract and the stores."""


def ours(modules: set[str], prefix: str) -> set[str]:
    return {m for m in modules if m == prefix or m.startswith(prefix + ".")}


def test_job_stores_know_nothing_of_http_or_dispatch() -> None:
    """The model, the contract and the stores import only the error types and file modes."""
    graph = import_graph()
    allowed = {"dispatcher._exceptions", "dispatcher._private"}
    allowed |= {f"dispatcher.jobs.{name}" for name in STORAGE}
    for name in STORAGE:
        module = f"dispatcher.jobs.{name}"
        assert module in graph
        assert ours(graph[module], "dispatcher") <= allowed, module


def test_the_core_does_not_reach_into_jobs_or_the_cli() -> None:
    """Only the daemon (which composes the routes) and the package's re-exports import the job
    package; no server module imports the command line."""
    graph = import_graph()
    composers = {"dispatcher", "dispatcher._daemon", "dispatcher.__main__"}
    for module, imported in graph.items():
        if not module.startswith("dispatcher") or module.startswith(("dispatcher.jobs",)):
            continue
        if module.startswith("dispatcher.cli") or module in composers:
            continue
        assert not ours(imported, "dispatcher.jobs"), module
        assert not ours(imported, "dispatcher.cli"), module


def test_socket_clients_import_nothing_of_the_server() -> None:
    """chat, status, jobs and submit speak HTTP over the socket: of the dispatcher they import
    only its exceptions; `serve` loads the daemon inside the command, not with the module."""
    graph = import_graph()
    at_load = import_graph(module_level=True)
    clients = [m for m in graph if m.startswith("dispatcher.cli")]
    assert {"dispatcher.cli._clients", "dispatcher.cli._batch", "dispatcher.cli._main"} <= set(
        clients
    )
    for module in clients:
        server = ours(at_load[module], "dispatcher") - ours(at_load[module], "dispatcher.cli")
        assert server <= {"dispatcher._exceptions"}, module
    lazy = ours(graph["dispatcher.cli._main"], "dispatcher") - ours(
        graph["dispatcher.cli._main"], "dispatcher.cli"
    )
    assert lazy == {
        "dispatcher._exceptions",
        "dispatcher._daemon",
        "dispatcher._logging",
        "dispatcher._workers",
    }
