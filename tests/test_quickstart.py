"""The README's two commands, as a new user runs them: the quickstart visibly learns."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cltt.cli import main
from tests.conftest import invoke_in_process

REPO = Path(__file__).parent.parent


@pytest.mark.slow
def test_the_quickstart_beats_random_init_and_pixels_with_intervals_apart(tmp_path):
    """``cltt train recipes/quickstart.yaml && cltt probe runs/quickstart`` from an empty folder:
    the trained logistic probe's 95% interval lies above both baselines'. (How long it takes is
    measured, not asserted: the README's figures and benchmarks/recipe_seeds.py recipes/quickstart.yaml --threads 1 2.)"""
    shutil.copytree(REPO / "recipes", tmp_path / "recipes")
    trained = invoke_in_process(main, ["train", "recipes/quickstart.yaml"], tmp_path)
    assert trained.exit_code == 0, trained.output
    probed = invoke_in_process(main, ["probe", "runs/quickstart"], tmp_path)
    assert probed.exit_code == 0, probed.output
    scores = {s["features"]: s for s in json.loads((tmp_path / "runs/quickstart/probe.json").read_text())["scores"]
              if s["probe"] == "logistic"}
    low = scores["trained"]["intervals"]["test"][0]
    assert low > scores["random_init"]["intervals"]["test"][1] and low > scores["pixels"]["intervals"]["test"][1], scores
    assert "logistic test trained" in probed.output and "[" in probed.output
