"""fglab reaches Ray through its public API only: no name of Ray's with a component starting
with ``_`` (``ray._private``, ``ray.serve.context._get_global_client``, a ``_blocking=``
argument) anywhere under fglab/. Needs no Ray: it reads the sources."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import fglab

ROOT = Path(fglab.__file__).parent
#: ``ray.a.b`` written out anywhere (code, docstrings, comments, other files).
DOTTED = re.compile(r"\bray(?:\.\w+)+")


def is_private(dotted: str) -> bool:
    """Whether a dotted name has a component that starts with ``_`` (dunders are public)."""
    return any(p.startswith("_") and not (p.startswith("__") and p.endswith("__"))
               for p in dotted.split("."))


def _ray_aliases(tree: ast.AST) -> tuple[dict[str, str], list[str]]:
    """Local names bound to Ray modules or objects (``serve`` -> ``ray.serve``), and the
    imports that name a private part of Ray."""
    aliases, found = {}, []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "ray" or alias.name.startswith("ray."):
                    aliases[alias.asname or "ray"] = alias.name if alias.asname else "ray"
                    found += [f"import {alias.name}"] if is_private(alias.name) else []
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and (
                node.module == "ray" or node.module.startswith("ray.")):
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                aliases[alias.asname or alias.name] = full
                found += [f"from {node.module} import {alias.name}"] if is_private(full) else []
    return aliases, found


def _dotted(node: ast.AST) -> list[str] | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    return [node.id, *reversed(parts)] if isinstance(node, ast.Name) else None


def private_ray_uses(source: str) -> list[str]:
    """Private Ray names a Python source imports, reads, or passes as keywords to Ray."""
    tree = ast.parse(source)
    aliases, found = _ray_aliases(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and (parts := _dotted(node)) and parts[0] in aliases:
            full = ".".join([aliases[parts[0]], *parts[1:]])
            found += [full] if is_private(full) else []
        if isinstance(node, ast.Call) and (parts := _dotted(node.func)) and parts[0] in aliases:
            call = ".".join([aliases[parts[0]], *parts[1:]])
            found += [f"{call}({k.arg}=...)" for k in node.keywords
                      if k.arg and is_private(k.arg)]
    return found


def private_ray_text(text: str) -> list[str]:
    """``ray.…`` dotted names written out in any text that name a private part of Ray."""
    return [m.group(0) for m in DOTTED.finditer(text) if is_private(m.group(0))]


def test_fglab_uses_only_public_ray_names():
    found = []
    for path in sorted(p for p in ROOT.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        text = path.read_bytes().decode("utf-8", errors="ignore")
        uses = private_ray_text(text) + (private_ray_uses(text) if path.suffix == ".py" else [])
        found += [f"{path.relative_to(ROOT.parent)}: {use}" for use in dict.fromkeys(uses)]
    assert not found, "private Ray API used:\n" + "\n".join(found)


@pytest.mark.parametrize("source", [
    "def f():\n    from ray.serve.context import _get_global_client\n",
    "import ray._private.worker\n",
    "import ray\nray._private.worker.global_worker\n",
    "from ray.serve import context\ncontext._get_global_client().get_serve_details()\n",
    "from ray import serve as s\ns.delete('app', _blocking=True)\n",
    "from ray._private import services\n",
])
def test_a_planted_private_use_is_caught(source):
    assert private_ray_uses(source) or private_ray_text(source)


def test_public_uses_pass():
    source = ("import ray\nfrom ray import serve\nfrom ray.util.state import list_actors\n"
              "ray.get(ray.put(1))\nserve.delete('app')\nray.__version__\narray._x = 1\n"
              "list_actors(filters=[('state', '=', 'ALIVE')])\n")
    assert private_ray_uses(source) == [] and private_ray_text(source) == []
