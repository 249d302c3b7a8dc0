"""The commands run many times a day import no torch (issue 20): each runs in a fresh
interpreter on tiny real data (benchmarks/startup.py, one run of each) and what it imported is
read from ``sys.modules`` at its exit. Loading a recipe reads each method's section from
:mod:`cltt.recipe.methods`, never the method."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_everyday_commands_import_no_torch_and_only_extract_imports_opencv(tmp_path):
    rows = tmp_path / "startup.json"
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "startup.py"), "--repeats", "1", "--json", str(rows)],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    measured = {row["command"]: row for row in json.loads(rows.read_text())}
    assert set(measured) == {"python -c pass", "cltt --help", "cltt index FRAMES", "cltt runs RUNS",
                             "cltt sweep status SWEEP", "cltt extract VIDEO --out NEW", "cltt train RECIPE --show"}
    assert [name for name, row in measured.items() if row["torch"]] == []
    assert [name for name, row in measured.items() if row["cv2"]] == ["cltt extract VIDEO --out NEW"]


def test_a_recipe_of_every_built_in_method_loads_without_the_methods():
    script = """
import json
import sys
from cltt.recipe import dump_recipe, load_recipe
from cltt.recipe.methods import method_sections

for name, section in method_sections().items():
    overrides = [f"method.name={name}"]
    if section.config is not None:
        key = next(iter(section.config.__dataclass_fields__))
        overrides.append(f"method.{name}.{key}={getattr(section.config(), key)!r}")
    assert load_recipe(overrides=overrides).method.name == name
    dump_recipe(load_recipe(overrides=overrides))
print(json.dumps([sorted(method_sections()), sorted(m for m in sys.modules if m == "torch" or m.startswith("cltt.methods"))]))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    names, imported = json.loads(done.stdout)
    assert {"cltt", "simclr", "byol", "carl", "slotcontrast"} <= set(names) and imported == []


def test_train_help_lists_every_method_without_importing_one():
    """``cltt train --help`` lists each method with its description; it read them by importing
    every method, torch with them (4 s of a cold start). Now they are read from the methods'
    source, and they are the registry's own descriptions."""
    script = """
import json, runpy, sys
sys.argv = ["cltt", "train", "--help"]
try:
    runpy.run_module("cltt", run_name="__main__", alter_sys=True)
except SystemExit as stop:
    assert not stop.code, stop.code
from cltt.methods.registry import method_descriptions
imported = sorted(m for m in sys.modules if m == "torch" or m.startswith("cltt.methods."))
print(json.dumps([imported, method_descriptions()]), file=sys.stderr)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "COLUMNS": "300"})
    assert done.returncode == 0, done.stderr[-2000:]
    imported, descriptions = json.loads(done.stderr.splitlines()[-1])
    assert imported == ["cltt.methods.registry"]  # no torch, no method
    from cltt.methods import registered_methods

    registry = {name: entry.description for name, entry in registered_methods().items()}
    assert descriptions == registry
    shown = " ".join(done.stdout.split())
    assert all(f"{name} {description}" in shown for name, description in registry.items()), done.stdout
