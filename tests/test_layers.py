"""Imports flow one way: data -> features -> models -> training -> evaluation/index ->
service -> CLI. A module may import its own layer or lower ones, never a higher one."""

from __future__ import annotations

import ast
from pathlib import Path

import fglab

LAYERS = [
    ("fglab.io", "fglab.integrity", "fglab.metrics", "fglab.config", "fglab.hardware"),
    ("fglab.data",),
    ("fglab.features", "fglab.method"),
    ("fglab.baselines", "fglab.models", "fglab.labels", "fglab.losses"),
    ("fglab.training", "fglab.registry"),
    (
        "fglab.evaluation", "fglab.experiments", "fglab.pipeline", "fglab.index", "fglab.search",
        "fglab.cluster",
    ),
    ("fglab.service",),
    ("fglab.cli", "fglab.__main__"),
]


def layer_of(module: str) -> int | None:
    for rank, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return rank
    return None


def package_modules() -> dict[str, Path]:
    root = Path(fglab.__file__).parent
    modules = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


def imported_fglab_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return {name for name in found if name.startswith("fglab.")}


def test_every_module_has_a_layer():
    unplaced = [name for name in package_modules() if name != "fglab" and layer_of(name) is None]
    assert not unplaced, f"add these modules to LAYERS: {unplaced}"


def test_no_module_imports_a_higher_layer():
    violations = []
    for name, path in package_modules().items():
        own = layer_of(name)
        if own is None:
            continue
        for imported in imported_fglab_modules(path):
            target = layer_of(imported)
            if target is not None and target > own:
                violations.append(f"{name} (layer {own}) imports {imported} (layer {target})")
    assert not violations, "\n".join(violations)


def test_nothing_imports_the_cli():
    importers = [
        name
        for name, path in package_modules().items()
        if not name.startswith("fglab.cli") and name != "fglab.__main__"
        and any(m.startswith("fglab.cli") for m in imported_fglab_modules(path))
    ]
    assert not importers
