"""cltt's packages import down their layers only, and no two modules import each other.

Layers, top to bottom (a module may import its own layer or any lower one):

    7  cli (and ``python -m cltt``)
    6  eval, export, sweep, visualize
    5  engine
    4  methods
    3  data, models, objectives
    2  recipe, errors, the ``cltt`` package itself (``__version__``)

Every ``import`` and ``from ... import`` counts, at any depth: a function-level import runs up
a layer as surely as a top-level one, only later. The walk reads the source with :mod:`ast`,
so it imports nothing and sees every file, whichever optional packages are installed.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "cltt"

LEVEL = {"cli": 7, "__main__": 7, "eval": 6, "export": 6, "sweep": 6, "visualize": 6, "engine": 5, "methods": 4,
         "data": 3, "models": 3, "objectives": 3, "recipe": 2, "errors": 2, "": 2}


def module_name(path: Path) -> str:
    """``cltt/data/tiles.py`` -> ``cltt.data.tiles``; a package's ``__init__.py`` is the package."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def layer_name(module: str) -> str:
    """The layer a cltt module belongs to: its top-level name under ``cltt`` ("" for ``cltt`` itself)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def imported_modules(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The cltt modules an import statement in ``module`` loads: relative imports resolved, and
    ``from package import name`` meaning the submodule when ``name`` is one."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            is_package = MODULES[module].name == "__init__.py"
            anchor = module.split(".")[:len(module.split(".")) - node.level + is_package]
            base = ".".join(anchor + ([base] if base else []))
        names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
    found = []
    for name in names:
        while name and name not in MODULES:  # import a.b.c of a name inside a.b
            name = name.rpartition(".")[0]
        if name.split(".")[0] == "cltt" and name not in found:
            found.append(name)
    return found


def edges_of(module: str, tree: ast.AST) -> list[tuple[str, int, str, bool]]:
    """The cltt imports in ``module``'s syntax ``tree``: ``(module, line, imported, at module level)``."""
    edges = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                edges.extend((module, child.lineno, target, not in_function) for target in imported_modules(module, child))
            visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(tree, False)
    return edges


EDGES = [edge for module, path in MODULES.items()
         for edge in edges_of(module, ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))]


def module_cycles(edges: list[tuple[str, str]]) -> list[list[str]]:
    """Import cycles of the directed graph ``edges`` (importer, imported): one cycle through each
    strongly connected component of more than one module (Tarjan's algorithm)."""
    graph: dict[str, list[str]] = {}
    for source, target in edges:
        if source != target:
            graph.setdefault(source, []).append(target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, []):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(set(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return [cycle_through(graph, component) for component in components]


def cycle_through(graph: dict[str, list[str]], component: set[str]) -> list[str]:
    """One cycle inside a strongly connected ``component``: a shortest path back to its first module."""
    start = min(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in sorted(graph.get(node, [])):
                if target == start:
                    return paths[node] + [start]
                if target in component and target not in paths:
                    paths[target] = paths[node] + [target]
                    following.append(target)
        frontier = following
    raise AssertionError(f"{sorted(component)} is not strongly connected")


def test_every_module_has_a_layer():
    """A new top-level package or module must be placed in the table, not skipped by the checks."""
    unplaced = sorted({layer_name(module) for module in MODULES} - set(LEVEL))
    assert not unplaced, f"cltt/{unplaced[0]} has no layer; add it to LEVEL in tests/test_layers.py"


def test_imports_run_down_the_layers():
    upward = sorted({f"cltt/{MODULES[source].relative_to(PACKAGE).as_posix()}:{line} "
                     f"{layer_name(source)} -> {layer_name(target)} ({target})"
                     for source, line, target, _ in EDGES
                     if LEVEL.get(layer_name(target), 0) > LEVEL.get(layer_name(source), 0)})
    assert not upward, f"{len(upward)} import(s) up the layers:\n" + "\n".join(upward)


@pytest.mark.parametrize("level", ["module", "any"])
def test_no_import_cycles(level):
    """No cycle at module level (one would break at import time), nor counting function-level
    imports (those only hide a cycle: two modules that need each other are one job, or one of
    them holds what should sit below both)."""
    # A module's own packages are loaded before it whatever it imports, so importing one (a
    # registry walking its package's __path__) adds no dependency and closes no cycle.
    edges = [(source, target) for source, _, target, top in EDGES
             if (top or level == "any") and not source.startswith(target + ".")]
    cycles = module_cycles(edges)
    assert not cycles, f"{len(cycles)} import cycle(s):\n" + "\n".join(" -> ".join(cycle) for cycle in cycles)


def test_the_walk_sees_what_it_must():
    """The walk itself: a function-level import is found, a relative one is resolved, and a
    cycle and an upward import are caught, so the three tests above can fail."""
    source = "import os\nimport cltt.models.backbones\nclass A:\n    def f(self):\n        from cltt.engine import device\n"
    assert edges_of("cltt.data.decode", ast.parse(source)) == [("cltt.data.decode", 2, "cltt.models.backbones", True),
                                                               ("cltt.data.decode", 5, "cltt.engine.device", False)]
    tree = ast.parse("from . import tiles\nfrom ..models import backbones\nfrom .model_input import IMAGENET_MEAN")
    resolved = [imported_modules("cltt.data.decode", node) for node in tree.body]
    assert resolved == [["cltt.data.tiles"], ["cltt.models.backbones"], ["cltt.data.model_input"]]
    assert imported_modules("cltt.data", ast.parse("from . import tiles").body[0]) == ["cltt.data.tiles"]
    assert module_cycles([("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")]) == [["a", "b", "c", "a"]]
    assert module_cycles([("a", "b"), ("b", "c"), ("a", "c")]) == []
    assert LEVEL[layer_name("cltt.methods.dino")] < LEVEL[layer_name("cltt.engine.device")]
