"""The scripts of ``benchmarks/`` as modules, for tests of their functions.

    module = load_benchmark("recipe_seeds", monkeypatch)   # benchmarks/recipe_seeds.py
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def load_benchmark(name: str, monkeypatch) -> ModuleType:
    """``benchmarks/<name>.py`` loaded as a module; ``benchmarks/`` goes on ``sys.path`` for this
    test only (``monkeypatch``), as the scripts import their siblings (``from recipe_seeds import ...``)."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
