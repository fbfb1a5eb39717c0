"""Imports flow one way, down the layers below; a module may import its own layer or lower
ones, never a higher one, and no two packages import each other, however indirectly.

    base (io, integrity, metrics, config, hardware) -> data -> features -> models ->
    training -> evaluation/index -> pipeline/retriever/ingest -> cluster -> service -> cli

Imports inside functions and under ``TYPE_CHECKING`` count too: a lazy import is still an
arrow."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

import fglab

LAYERS = [
    ("fglab.io", "fglab.integrity", "fglab.metrics", "fglab.config", "fglab.hardware"),
    ("fglab.data",),
    ("fglab.features",),
    ("fglab.models", "fglab.method", "fglab.labels", "fglab.losses", "fglab.baselines"),
    ("fglab.training", "fglab.registry"),
    ("fglab.evaluation", "fglab.experiments", "fglab.index"),
    ("fglab.pipeline", "fglab.retriever", "fglab.ingest"),
    ("fglab.cluster",),
    ("fglab.service",),
    ("fglab.cli", "fglab.__main__"),
]


def layer_of(module: str) -> int | None:
    for rank, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return rank
    return None


def unit_of(module: str) -> str:
    """The package (``fglab.index``) or top-level module (``fglab.retriever``) a module is in."""
    return ".".join(module.split(".")[:2])


@functools.cache
def package_modules() -> dict[str, Path]:
    root = Path(fglab.__file__).parent
    modules = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


def imported_fglab_modules(source: str) -> set[str]:
    """Modules a source imports; ``from P import m`` counts as ``P.m`` where ``m`` is a
    module of package ``P``."""
    modules = package_modules()
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                found.add(child if child in modules else node.module)
    return {name for name in found if name.startswith("fglab.")}


def upward_imports(sources: dict[str, str]) -> list[str]:
    violations = []
    for name, source in sources.items():
        own = layer_of(name)
        if own is None:
            continue
        for imported in imported_fglab_modules(source):
            target = layer_of(imported)
            if target is not None and target > own:
                violations.append(f"{name} (layer {own}) imports {imported} (layer {target})")
    return violations


def unit_cycles(sources: dict[str, str], unit=unit_of) -> list[list[str]]:
    """Cycles among packages/top-level modules (or among modules, with ``unit=str``), each
    found once, from its smallest unit."""
    arrows: dict[str, set[str]] = {}
    for name, source in sources.items():
        for imported in imported_fglab_modules(source):
            imported = imported if imported in sources else imported.rpartition(".")[0]
            if unit(imported) != unit(name):
                arrows.setdefault(unit(name), set()).add(unit(imported))
    cycles = []

    def walk(start: str, node: str, path: list[str]) -> None:
        for nxt in sorted(arrows.get(node, ())):
            if nxt == start:
                cycles.append([*path, start])
            elif nxt > start and nxt not in path:
                walk(start, nxt, [*path, nxt])

    for start in sorted(arrows):
        walk(start, start, [start])
    return cycles


def real_sources() -> dict[str, str]:
    return {name: path.read_text(encoding="utf-8") for name, path in package_modules().items()}


def test_every_module_has_a_layer():
    unplaced = [name for name in package_modules() if name != "fglab" and layer_of(name) is None]
    assert not unplaced, f"add these modules to LAYERS: {unplaced}"


def test_no_module_imports_a_higher_layer():
    violations = upward_imports(real_sources())
    assert not violations, "\n".join(violations)


def test_no_import_cycle_between_packages():
    cycles = unit_cycles(real_sources())
    assert not cycles, "\n".join(" -> ".join(cycle) for cycle in cycles)


def test_no_import_cycle_between_modules():
    cycles = unit_cycles(real_sources(), unit=str)
    assert not cycles, "\n".join(" -> ".join(cycle) for cycle in cycles)


@pytest.mark.parametrize(
    "planted",
    [
        ("fglab.index.planted", "from fglab.retriever import Retriever\n"),
        ("fglab.data.planted", "def late():\n    from fglab.features.views import text_rows\n"),
    ],
)
def test_a_planted_upward_import_is_caught(planted):
    name, source = planted
    sources = {**real_sources(), name: source}
    assert any(v.startswith(f"{name} ") for v in upward_imports(sources))
    assert unit_cycles(sources)  # and both plants close a circle (the other way runs down)


def test_nothing_imports_the_cli():
    importers = [
        name
        for name, source in real_sources().items()
        if not name.startswith("fglab.cli") and name != "fglab.__main__"
        and any(m.startswith("fglab.cli") for m in imported_fglab_modules(source))
    ]
    assert not importers
