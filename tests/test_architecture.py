"""The package's layering, read from its imports (README, "Architecture"): each module imports only its own layer
and the layers below, no module imports the root package (the facade users import), and no import circle exists
between modules, lazy imports inside functions included."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "dualseg"

# bottom to top; a module belongs to the first layer naming its top-level name (dualseg.<name>...)
LAYERS: list[tuple[str, set[str]]] = [
    ("foundations", {"errors", "version", "registry", "progress", "safety", "config", "checkpoint", "runtime"}),
    ("data", {"data"}),
    ("metrics", {"metrics"}),
    ("models", {"models"}),
    ("losses", {"losses"}),
    ("inference core", {"inference"}),
    ("engine", {"engine"}),
    ("apps", {"deploy", "report", "benchmark", "planning"}),
    ("cli", {"cli", "__main__"}),
]
# the four foundation-level packages of one kind sit side by side: none of them imports another
SIDE_BY_SIDE = {"data", "metrics", "models", "losses"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The dualseg modules ``path`` imports (``from a.b import c`` -> ``a.b.c`` when that is a module, else ``a.b``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name.startswith("dualseg"):
                found.add(name)
    return found


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(files)
    edges = {}
    for name, path in files.items():
        targets = imports_of(path, modules) - {name}
        # importing a submodule runs its packages' __init__ files, which are not dependencies of the importer
        edges[name] = {t for t in targets if not (t != "dualseg" and name.startswith(t + "."))}
    return edges


def layer_of(module: str) -> int:
    top = module.split(".")[1] if "." in module else ""
    for i, (_, names) in enumerate(LAYERS):
        if top in names:
            return i
    raise AssertionError(f"{module} belongs to no layer: add its package to LAYERS (and the README's drawing)")


def test_every_module_has_a_layer() -> None:
    for module in graph():
        if module != "dualseg":
            layer_of(module)


def test_no_module_imports_a_layer_above_it() -> None:
    upward = []
    for module, targets in graph().items():
        if module == "dualseg":
            continue
        for target in targets:
            if target == "dualseg":
                upward.append(f"{module} -> dualseg (the root facade; import the module that defines the name)")
                continue
            own, other = layer_of(module), layer_of(target)
            own_top, other_top = module.split(".")[1], target.split(".")[1]
            if other > own or (own == other and own_top != other_top and own_top in SIDE_BY_SIDE
                               and other_top in SIDE_BY_SIDE):
                upward.append(f"{module} ({LAYERS[own][0]}) -> {target} ({LAYERS[other][0]})")
    assert sorted(upward) == []


def test_no_import_circle() -> None:
    edges = graph()
    edges.pop("dualseg")  # the facade imports lazily from everything and nothing imports it
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    assert circles == []


def test_the_checker_sees_an_upward_edge(tmp_path: Path) -> None:
    """The parser itself: a lazy ``from dualseg.engine.trainer import train`` inside a function counts."""
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from dualseg.engine.trainer import train\n    return train\n")
    assert imports_of(source, {"dualseg.engine", "dualseg.engine.trainer"}) == {"dualseg.engine.trainer"}
