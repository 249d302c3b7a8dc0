"""benchmarks/recipe_seeds.py figures(): every task whose report is a ProbeReport (classes, frames,
image_set) gives its readouts' test figures with their intervals, by "<features> <readout>"."""

from __future__ import annotations

from pathlib import Path

import pytest

from cltt.engine import run_files
from cltt.eval.tasks import probe_task
from cltt.recipe import load_recipe
from tests.helpers.benchmarks import load_benchmark
from tests.helpers.training import tiny_run

PROBE = ["probe.bootstrap_rounds=100", "probe.logistic_c=[1.0]", "probe.ridge=[1.0]", "probe.knn_k=3"]


@pytest.fixture
def recipe_seeds(monkeypatch):
    """The benchmark as a module."""
    return load_benchmark("recipe_seeds", monkeypatch)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """One epoch of tiny_cnn at 32 px on 12 playroom clips of 8 frames (2 kinds of toy)."""
    return tiny_run(tmp_path_factory.mktemp("run"), "playroom", max_objects=2)


@pytest.mark.parametrize("task", ["frames", "classes"])
def test_figures_of_a_probe_report_are_its_readouts_with_intervals(recipe_seeds, run_dir, task):
    """probe.task=frames was an AttributeError (figures read .metrics, which only TaskReport has)."""
    recipe = load_recipe(run_dir / run_files.RECIPE_FILE, [f"probe.task={task}", *PROBE])
    checkpoint = run_dir / run_files.FINAL_CHECKPOINT
    found = recipe_seeds.figures(recipe, checkpoint)
    report = probe_task(recipe, checkpoint)  # features cached by the call above
    assert found == {f"{s.features} {s.probe}": (s.test, s.intervals["test"]) for s in report.scores}
    assert {"trained logistic", "random_init logistic", "pixels logistic"} <= set(found)
    for value, (low, high) in found.values():
        assert 0 <= low <= value <= high <= 1


def test_figures_of_the_label_free_task_are_every_measure_with_its_interval(recipe_seeds, run_dir):
    """probe.task=label_free gave {} (none of the slot metric names): an empty table from recipe_seeds."""
    recipe = load_recipe(run_dir / run_files.RECIPE_FILE, ["probe.task=label_free", "probe.bootstrap_rounds=100",
                                                             "probe.label_free.gaps=[0.1]"])
    found = recipe_seeds.figures(recipe, run_dir / run_files.FINAL_CHECKPOINT)
    assert {"trained rankme", "random_init alignment", "pixels uniformity", "trained mAP_0.1s"} <= set(found)
    assert not any(name.endswith(("_low", "_high")) for name in found)
    value, (low, high) = found["trained alignment"]
    assert low <= high and value is not None


def test_a_run_another_writer_holds_is_refused_not_trained_beside_it(recipe_seeds, tmp_path):
    """Two benchmarks on one out dir trained the same run side by side (two positives studies
    did, unseen, until each took the run dir's one-writer lock as cltt train does)."""
    from cltt.engine.run_lock import hold_run_dir
    from cltt.errors import CLTTError
    from tests.helpers.training import write_recipe

    recipe_path = write_recipe(tmp_path, tmp_path / "frames", train={"epochs": 1})
    run_dir = tmp_path / "runs" / "held"
    with hold_run_dir(run_dir, "another writer"):
        with pytest.raises(CLTTError, match=r"wait for it to finish, or give this benchmark another --out-dir"):
            recipe_seeds.train_or_reuse(recipe_path, ["train.name=held"])
    assert not (run_dir / run_files.FINAL_CHECKPOINT).exists()
