"""The package's layers: the inference core and the engine never import what is built on top of them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "dualseg"
FORBIDDEN = {
    "inference": ("engine", "report", "deploy", "cli"),  # the core: foundations, data, metrics, models only
    "engine": ("report", "deploy", "cli"),
}


def imported_packages(path: Path) -> set[str]:
    """The ``dualseg.<name>`` packages a module imports, at the top or inside functions."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        modules = [a.name for a in node.names] if isinstance(node, ast.Import) else (
            [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
        names |= {m.split(".")[1] for m in modules if m.startswith("dualseg.") and m.count(".") >= 1}
    return names


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_a_layer_imports_nothing_above_it(layer: str) -> None:
    wrong = {f"{p.relative_to(PACKAGE)} -> dualseg.{name}" for p in (PACKAGE / layer).rglob("*.py")
             for name in imported_packages(p) & set(FORBIDDEN[layer])}
    assert not wrong, sorted(wrong)


def test_the_check_sees_imports() -> None:
    assert {"inference", "report"} <= imported_packages(PACKAGE / "report" / "overlays.py")
