"""The package's layers, read from the source: who may import whom.

A layer imports only the layers below it, so that the parts that run without Blender
(the scene model, the wire protocol, the reward, the farm) never pull in bpy, and the
client side installs anywhere. docs/architecture.md draws the same picture.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# What each top-level package may import from the others (derender's own modules).
ALLOWED: dict[str, frozenset[str]] = {
    "scenes": frozenset(),
    "protocol": frozenset({"scenes"}),
    "reward": frozenset({"scenes", "protocol"}),
    "svg": frozenset({"scenes", "protocol", "reward"}),
    "farm": frozenset({"scenes", "protocol", "reward", "svg"}),
    "addon": frozenset({"scenes", "protocol", "reward", "svg", "farm"}),
    "rl": frozenset({"scenes", "protocol", "reward", "svg", "farm"}),
    "jobs": frozenset({"scenes", "protocol", "reward", "svg", "farm", "rl"}),
    "bench": frozenset({"scenes", "protocol", "reward", "svg", "farm", "addon", "rl", "jobs"}),
    "cli": frozenset(
        {"scenes", "protocol", "reward", "svg", "farm", "addon", "rl", "jobs", "bench"}
    ),
}
# Blender's own modules: only the add-on (and the tools that drive it) import them.
BLENDER = frozenset({"bpy", "bmesh", "mathutils", "gpu", "bpy_extras", "addon_utils"})
MAY_IMPORT_BLENDER = frozenset({"addon", "bench", "cli"})
# Test-only: the sandbox's own policy replaced it; product code must not depend on it.
FORBIDDEN = frozenset({"RestrictedPython"})


def _modules() -> list[Path]:
    return sorted(p for layer in ALLOWED for p in (ROOT / layer).rglob("*.py"))


def _imports(source: str, package: list[str]) -> list[tuple[str, int]]:
    """Every module an import statement in ``source`` names, absolute, with its line;
    ``package``: where the module lies (["farm"] for farm/broker.py)."""
    out: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                out.append((node.module or "", node.lineno))
                continue
            base = ["derender", *package[: len(package) - (node.level - 1)]]
            if node.level - 1 > len(package):
                raise AssertionError(f"line {node.lineno} imports above the package")
            if node.module:
                out.append((".".join([*base, node.module]), node.lineno))
            else:  # from .. import x: each name may be a module
                out += [(".".join([*base, a.name]), node.lineno) for a in node.names]
    return out


def _layer_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] == "derender" and len(parts) > 1 and parts[1] in ALLOWED:
        return parts[1]
    return None


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_each_module_imports_only_the_layers_below_it(path: Path) -> None:
    layer = path.relative_to(ROOT).parts[0]
    bad = []
    for module, line in _imports(path.read_text(), list(path.relative_to(ROOT).parts[:-1])):
        top = module.split(".")[0]
        target = _layer_of(module)
        if target is not None and target != layer and target not in ALLOWED[layer]:
            bad.append(f"line {line}: {layer} imports {module}")
        if top in BLENDER and layer not in MAY_IMPORT_BLENDER:
            bad.append(f"line {line}: {layer} imports Blender's {module}")
        if top in FORBIDDEN:
            bad.append(f"line {line}: product code imports {module}")
    assert not bad, bad


def test_the_reader_resolves_relative_imports() -> None:
    """A breach is found however it is written: relative, absolute, or ``from .. import``."""
    source = (
        "from ..addon import service\n"
        "from ..scenes.frame import FrameSpec\n"
        "from .. import rl\n"
        "import derender.jobs.demo\n"
    )
    names = [m for m, _ in _imports(source, ["farm"])]
    assert names == [
        "derender.addon",
        "derender.scenes.frame",
        "derender.rl",
        "derender.jobs.demo",
    ]
    assert [_layer_of(n) for n in names] == ["addon", "scenes", "rl", "jobs"]
