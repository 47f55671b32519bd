"""The house's import rules (shared DESIGN.md), read from the source with `ast` so a slip fails in CI.

Imports inside functions count: a lazy upward import is still a cycle in the design, only a hidden one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "speedy"

#: package → packages it must never import (the layers above it).
FORBIDDEN = {
    "speedy.runtime": ("speedy.stages", "speedy.commands", "speedy.serve", "speedy.bench", "speedy.prune"),
    "speedy.stages": ("speedy.commands", "speedy.serve"),
    "speedy.frontend": ("speedy.runtime", "speedy.stages", "speedy.commands", "speedy.serve", "speedy.synth"),
    "speedy.artifacts": ("speedy.runtime", "speedy.stages", "speedy.commands", "speedy.serve", "speedy.synth"),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[int, str, tuple[str, ...]]]:
    """(line, module, imported names) of every `import` / `from … import` in the file, at any depth."""
    out: list[tuple[int, str, tuple[str, ...]]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.extend((node.lineno, a.name, ()) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module, tuple(a.name for a in node.names)))
    return out


SOURCES = sorted(ROOT.rglob("*.py"))


def test_the_rules_see_the_tree() -> None:
    """The walk finds the packages the rules name (a renamed package would make every rule pass vacuously)."""
    names = {module_name(p) for p in SOURCES}
    for package in FORBIDDEN:
        assert any(n == package or n.startswith(package + ".") for n in names), package


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_point_down(path: Path) -> None:
    me = module_name(path)
    bad = []
    for package, above in FORBIDDEN.items():
        if me == package or me.startswith(package + "."):
            bad += [(line, mod) for line, mod, _ in imports(path) if any(mod == a or mod.startswith(a + ".") for a in above)]
    assert not bad, f"{me} imports a layer above it: {bad}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_private_names_across_modules(path: Path) -> None:
    me = module_name(path)
    bad = [(line, mod, n) for line, mod, names in imports(path) if mod.startswith("speedy") and mod != me
           for n in names if n.startswith("_") and not n.startswith("__")]
    assert not bad, f"{me} imports private names of other modules: {bad}"
