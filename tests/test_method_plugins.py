"""Methods from outside cltt: a plugin package registers through the ``cltt.methods`` entry-point
group, is installed for real (pip, into a target folder), and trains, resumes, probes and exports
with the cltt command, with no edit to cltt. The registry-enumerated engine tests then cover it
too. A plugin that fails to import is one clear line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers.commands import assert_one_line_error

PLUGINS = Path(__file__).parent / "plugins"
REPO = Path(__file__).parent.parent


def install_plugin(tmp_path: Path, name: str) -> Path:
    """``pip install --no-deps --no-build-isolation`` of tests/plugins/NAME into a fresh folder."""
    source = tmp_path / "src" / name
    shutil.copytree(PLUGINS / name, source)  # the build writes into its source folder
    site = tmp_path / f"site-{name}"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(site), str(source)], check=True, capture_output=True, text=True)
    assert any(site.glob("*.dist-info/entry_points.txt"))
    return site


def with_site(site: Path) -> dict:
    paths = [str(site), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "WANDB_MODE": "offline"}


def cltt(site: Path, *args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cltt", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=with_site(site))


def plugin_recipe(tmp_path: Path, name: str = "simsiam") -> Path:
    tree = {
        "data": {"root": str(tmp_path / "balls"), "synthetic": "bouncing-balls", "window_size": 1,
                 "two_view_offset": 2, "image_size": 32, "num_workers": 0},
        "model": {"backbone": "tiny_cnn", "projection_dim": 16},
        "method": {"name": name, name: {"predictor_hidden": 8}} if name == "simsiam" else {"name": name},
        "train": {"epochs": 1, "batch_size": 16, "out_dir": str(tmp_path / "runs"), "name": "plugin", "device": "cpu"},
        "probe": {"probes": ["logistic"], "baselines": ["random_init"]},
        "extract": {"synthetic": {"clips": 24, "frames": 8, "size": 32}},
    }
    path = tmp_path / "plugin.yaml"
    path.write_text(yaml.safe_dump(tree))
    return path


def test_an_installed_plugin_trains_resumes_probes_and_exports(tmp_path):
    site = install_plugin(tmp_path, "cltt_simsiam")
    recipe = plugin_recipe(tmp_path)
    run_dir = tmp_path / "runs" / "plugin"

    help_text = cltt(site, "train", "--help", cwd=tmp_path)
    assert "simsiam" in help_text.stdout and "stop-gradient projection" in " ".join(help_text.stdout.split())

    trained = cltt(site, "train", recipe, cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert "cltt_simsiam" in (run_dir / "recipe.yaml").read_text() or "simsiam" in (run_dir / "recipe.yaml").read_text()
    assert yaml.safe_load((run_dir / "recipe.yaml").read_text())["method"]["simsiam"] == {"predictor_hidden": 8}

    resumed = cltt(site, "resume", run_dir, "train.epochs=2", "--change-length", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "trained 2 epochs" in resumed.stdout

    probed = cltt(site, "probe", run_dir, cwd=tmp_path)
    assert probed.returncode == 0, probed.stderr
    assert (run_dir / "probe.json").is_file() and "random_init" in probed.stdout

    exported = cltt(site, "export", run_dir, "--out", tmp_path / "simsiam.safetensors", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    assert (tmp_path / "simsiam.safetensors").is_file()

    # without the plugin on the path the same run dir names a method that is not there
    missing = subprocess.run([sys.executable, "-m", "cltt", "resume", str(run_dir)], capture_output=True, text=True,
                             cwd=tmp_path)
    assert_one_line_error(missing, "method.name='simsiam' is not a registered method")


def test_the_registry_enumerated_engine_tests_cover_a_plugin(tmp_path):
    site = install_plugin(tmp_path, "cltt_simsiam")
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             str(REPO / "tests" / "test_methods_engine.py"), "-k", "simsiam"],
                            capture_output=True, text=True, cwd=REPO, env=with_site(site))
    assert result.returncode == 0, result.stdout[-3000:]
    assert "3 passed" in result.stdout  # smoke train + round trip + export, exact resume, two processes


def test_a_plugin_that_fails_to_import_is_one_line(tmp_path):
    site = install_plugin(tmp_path, "cltt_broken")
    result = cltt(site, "train", plugin_recipe(tmp_path, "cltt"), cwd=tmp_path)
    assert_one_line_error(result, "method plugin 'broken' from cltt-broken (cltt_broken.method) failed to import",
                          "ModuleNotFoundError: No module named 'cltt_missing_dependency'")


@pytest.fixture(autouse=True)
def _no_wandb_network(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
