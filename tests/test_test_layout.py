"""Test modules stand alone: none imports another test module.

Helpers that two test files share live in ``tests/helpers/`` (or ``conftest.py``,
``sweep_helpers.py``, ``slurm_cluster.py``), so running, reading or deleting one test file never
depends on another, and no two test files import each other. Every ``import`` in
``tests/**/*.py`` is read with ``ast``: function-level and relative imports included.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent


def imported_modules(source: str, package: str) -> list[tuple[int, str]]:
    """``(line, dotted module)`` of every import in ``source``, a module of ``package``
    (relative imports resolved against it; ``from pkg import name`` also gives ``pkg.name``)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(filter(None, (base, node.module)))
            found += [(node.lineno, module)] + [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def imported_test_modules(source: str, package: str) -> list[str]:
    """``line: module`` of each ``tests...test_*`` module that ``source`` imports."""
    return [f"{line}: {module}" for line, module in imported_modules(source, package)
            if module.startswith("tests.") and module.rpartition(".")[2].startswith("test_")]


def package_of(path: Path) -> str:
    return ".".join(("tests", *path.parent.relative_to(TESTS).parts))


@pytest.mark.parametrize("path", sorted(TESTS.rglob("*.py")), ids=lambda p: str(p.relative_to(TESTS)))
def test_no_test_module_imports_another_test_module(path):
    found = imported_test_modules(path.read_text(encoding="utf-8"), package_of(path))
    assert found == [], f"{path.name} imports test modules {found}; move what it needs to tests/helpers/"


def test_the_check_sees_every_way_of_importing_a_test_module():
    source = ("import tests.test_train\nfrom tests.test_store import QUICKSTART\nfrom tests import test_cli\n"
              "from ..test_probe import synthetic\n\ndef f():\n    from .test_x import y\n"
              "from tests.helpers.training import write_recipe\nfrom tests.conftest import write_clip\n"
              "from cltt.eval import test_like_name\n")
    found = [entry.split(": ")[1] for entry in imported_test_modules(source, "tests.helpers")]
    assert found == ["tests.test_train", "tests.test_store", "tests.test_cli", "tests.test_probe",
                     "tests.helpers.test_x"]
