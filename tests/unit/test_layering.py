"""Imports point one way: storage <- kraft <- broker <- tools (docs/architecture.md).

``storage`` may import nothing of ours above it, ``kraft`` only ``storage``, ``broker`` only
``storage`` and ``kraft``; nothing imports ``tests`` or ``jepsen-style``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ["storage", "kraft", "broker", "tools"]
OURS = set(LAYERS) | {"tests"}


def _imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & OURS


@pytest.mark.parametrize("layer", LAYERS)
def test_imports_point_down(layer: str) -> None:
    allowed = set(LAYERS[: LAYERS.index(layer) + 1])
    files = sorted((ROOT / layer).rglob("*.py"))
    assert files, f"{layer}/ has no Python files"
    violations = [
        f"{path.relative_to(ROOT)} imports {sorted(_imported_packages(path) - allowed)}"
        for path in files
        if _imported_packages(path) - allowed
    ]
    assert not violations, "\n".join(violations)
