"""The probe-task and readout registries: every registered task trains and probes its smallest
case, every readout scores a tiny feature set, a task or readout dropped in (its implementation
in cltt/eval/, its declaration in cltt/recipe/probes/) is seen by the recipe, --help and these
tests with no other edit, and recipes saved before the registry (probe.ap_k in the shared
section) still load."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml

import cltt.eval.readouts as readouts_package
import cltt.eval.tasks as tasks_package
import cltt.recipe.probes.readouts as readout_declarations
import cltt.recipe.probes.tasks as task_declarations
from cltt.cli import main
from cltt.errors import CLTTError, RecipeError
from cltt.eval.readouts import READOUTS, ReadoutData, registered_readouts
from cltt.eval.tasks import TASKS, registered_tasks
from cltt.recipe import dump_recipe, load_recipe, recipe_from_dict, recipe_to_dict
from cltt.recipe.probes import READOUT_SECTIONS, TASK_SECTIONS
from tests.conftest import invoke_in_process


def merged(base: dict, over: dict) -> dict:
    """``base`` with ``over`` laid on top, section by section."""
    out = dict(base)
    for key, value in over.items():
        out[key] = merged(out.get(key, {}), value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def train_and_probe_smallest_case(name: str, tmp_path: Path) -> tuple[Path, dict]:
    """``cltt train`` the task's smallest case for its one epoch, then ``cltt probe RUN_DIR``:
    (the run dir, the report as written)."""
    task = registered_tasks()[name].cls
    tree = merged(task.smallest_case, {"data": {"root": str(tmp_path / "data")},
                                       "train": {"out_dir": str(tmp_path / "runs"), "name": name}})
    recipe_path = tmp_path / f"{name}.yaml"
    recipe_path.write_text(yaml.safe_dump(tree))
    trained = invoke_in_process(main, ["train", recipe_path], cwd=tmp_path)
    assert trained.exit_code == 0, trained.output
    run_dir = tmp_path / "runs" / name
    probed = invoke_in_process(main, ["probe", run_dir], cwd=tmp_path)
    assert probed.exit_code == 0, probed.output
    return run_dir, json.loads((run_dir / task.report_file()).read_text())


@pytest.mark.parametrize("name", sorted(registered_tasks()))
def test_every_task_trains_and_probes_its_smallest_case(name, tmp_path):
    task = registered_tasks()[name].cls
    run_dir, report = train_and_probe_smallest_case(name, tmp_path)
    assert report["format"].startswith("cltt-probe")
    assert report["epoch"] == 1
    numbers = [v for row in report.get("rows", []) for v in row[1:] if isinstance(v, float)] + \
              [s["test"] for s in report.get("scores", []) if s["test"] is not None]
    assert numbers and all(np.isfinite(numbers))  # it measured something
    if task.runs_during_training and task.smallest_case["probe"].get("every"):  # the callback cltt train handed the trainer
        assert "probe after epoch 1: " in (run_dir / "train.log").read_text()


def separable_features(rng: np.random.Generator) -> ReadoutData:
    """3 classes x 4 clips x 5 frames of 3-d features: each class a far-apart corner plus noise,
    clips split 2 train, 1 val, 1 test per class."""
    classes, clips_per_class, frames = 3, 4, 5
    clip_class = np.repeat(np.arange(classes), clips_per_class)
    clip_split = np.tile(["train", "train", "val", "test"], classes)
    clips = np.repeat(np.arange(len(clip_class)), frames)
    targets = clip_class[clips]
    features = np.eye(classes)[targets] * 10 + rng.normal(scale=0.1, size=(len(clips), classes))
    splits = clip_split[clips]
    rows = {s: np.flatnonzero(splits == s) for s in ("train", "val", "test")}
    config = load_recipe(None, ["probe.knn_k=3", "probe.logistic_c=[1.0]"]).probe
    return ReadoutData(features, targets, clips, rows, classes, config, seed=0)


@pytest.mark.parametrize("name", sorted(registered_readouts()))
def test_every_readout_is_right_on_separable_features(name):
    data = separable_features(np.random.default_rng(0))
    found = registered_readouts()[name].cls.score(data)
    assert found
    for scores in found:
        assert set(scores.per_sample) == {"train", "val", "test"}
        for split in ("val", "test"):  # every readout scores the held-out samples, one figure each
            assert len(scores.per_sample[split]) == len(data.rows[split])
            assert np.mean(scores.per_sample[split]) == pytest.approx(1.0), (scores.probe, split)


def test_a_readout_not_registered_is_refused_naming_every_one():
    with pytest.raises(RecipeError) as err:
        load_recipe(None, ["probe.probes=[linear, svm]"])
    assert "'svm'" in str(err.value) and all(name in str(err.value) for name in registered_readouts())


def test_help_lists_every_task_and_readout_from_the_registries(tmp_path):
    text = invoke_in_process(main, ["probe", "--help"], cwd=tmp_path).output
    for entry in [*registered_tasks().values(), *registered_readouts().values()]:
        assert entry.name in text and entry.description[:40] in " ".join(text.split())


TOY_TASK_DECLARATION = '''
    """What the recipe knows of the test's task: its section probe.toy.*."""
    from dataclasses import dataclass

    from cltt.recipe.probes import TaskSection, declare_task


    @dataclass
    class ToyConfig:
        threshold: float = 0.5


    @declare_task("toy", config=ToyConfig)
    class Toy(TaskSection):
        """The share of bright frames."""
'''

TOY_TASK = '''
    """A task defined by the test: the share of frames whose mean pixel is above a threshold."""
    from cltt.eval.tasks import ProbeTask, register_task


    @register_task("toy")
    class Toy(ProbeTask):
        """Share of frames brighter than probe.toy.threshold (a test's task)."""

        smallest_case = {
            "data": {"synthetic": "bouncing-balls", "window_size": 3, "image_size": 32, "num_workers": 0},
            "extract": {"synthetic": {"clips": 4, "frames": 6, "size": 32}},
            "model": {"backbone": "tiny_cnn", "projection_dim": 8},
            "train": {"epochs": 1, "batch_size": 4, "device": "cpu"},
            "probe": {"task": "toy", "toy": {"threshold": 0.1}},
        }

        @staticmethod
        def run(recipe, checkpoint, state=None, cache_dir=None, on_progress=None):
            from cltt.data.build import open_frames
            from cltt.eval.report import TaskReport

            store = open_frames(recipe.data)
            means = [frame.mean() / 255 for frame in store.read_many(range(store.num_frames))]
            share = float(sum(m > recipe.probe.toy.threshold for m in means) / len(means))
            return TaskReport("toy", str(checkpoint), (state or {}).get("progress", {}).get("epoch"),
                              ["features", "bright"], [["pixels", share]], {"pixels": {"bright": share}})
'''


def drop_into(package, registry, name: str, source: str, folder: Path, monkeypatch) -> None:
    """Put module ``name`` into ``package`` (a folder on its path, as a new file there would be)
    and make ``registry`` walk the package again; monkeypatch puts both back afterwards."""
    folder.mkdir()
    (folder / f"{name}.py").write_text(textwrap.dedent(source))
    monkeypatch.setattr(package, "__path__", [*package.__path__, str(folder)])
    monkeypatch.setattr(registry, "_entries", dict(registry._entries))
    monkeypatch.setattr(registry, "_loaded", False)
    monkeypatch.delitem(sys.modules, f"{package.__name__}.{name}", raising=False)


@pytest.fixture
def toy_task(tmp_path, monkeypatch):
    drop_into(task_declarations, TASK_SECTIONS, "toy", TOY_TASK_DECLARATION, tmp_path / "declared", monkeypatch)
    drop_into(tasks_package, TASKS, "toy", TOY_TASK, tmp_path / "dropped", monkeypatch)
    yield registered_tasks()["toy"]
    sys.modules.pop("cltt.eval.tasks.toy", None)
    sys.modules.pop("cltt.recipe.probes.tasks.toy", None)


def test_every_declaration_has_an_implementation_and_back():
    assert set(registered_tasks()) == set(TASK_SECTIONS.entries())
    assert set(registered_readouts()) == set(READOUT_SECTIONS.entries())


def test_an_implementation_without_a_declaration_is_one_line_naming_where_to_add_it(tmp_path, monkeypatch):
    drop_into(tasks_package, TASKS, "toy", TOY_TASK, tmp_path / "dropped", monkeypatch)
    with pytest.raises(CLTTError, match="probe task 'toy' .cltt.eval.tasks.toy. is not declared for the recipe: "
                                        "add cltt/recipe/probes/tasks/toy.py"):
        registered_tasks()
    sys.modules.pop("cltt.eval.tasks.toy", None)


def test_a_task_dropped_in_is_in_the_recipe_help_and_tests(toy_task, tmp_path):
    # the recipe: probe.task=toy and its own section probe.toy.*, dumped and read back
    recipe = load_recipe(None, ["probe.task=toy", "probe.toy.threshold=0.25"])
    assert recipe.probe.toy.threshold == 0.25
    assert recipe_to_dict(recipe)["probe"]["toy"] == {"threshold": 0.25}
    assert recipe_from_dict(yaml.safe_load(dump_recipe(recipe))) == recipe
    with pytest.raises(RecipeError, match="'probe.toy' belongs to probe.task=toy"):
        load_recipe(None, ["probe.toy.threshold=0.25"])  # task classes
    assert "toy" not in recipe_to_dict(load_recipe(None))["probe"]  # only the chosen task's section is saved
    # --help
    text = " ".join(invoke_in_process(main, ["probe", "--help"], cwd=tmp_path).output.split())
    assert "toy Share of frames brighter than probe.toy.threshold" in text
    # the registry-enumerated tests' path: train its smallest case, probe it, its report written
    assert "toy" in registered_tasks()
    _, report = train_and_probe_smallest_case("toy", tmp_path)
    assert report["format"] == "cltt-probe-toy/1" and 0 < report["rows"][0][1] <= 1


NEAREST_MEAN_DECLARATION = '''
    from cltt.recipe.probes import ReadoutSection, declare_readout


    @declare_readout("nearest_mean")
    class NearestMean(ReadoutSection):
        """Rows after the built-in readouts'."""

        order = 5
'''

NEAREST_MEAN_READOUT = '''
    """A readout defined by the test: the class whose train mean is nearest."""
    import numpy as np

    from cltt.eval.readouts import Readout, ReadoutScores, register_readout


    @register_readout("nearest_mean")
    class NearestMean(Readout):
        """Nearest class mean of the train samples, Euclidean (a test's readout)."""

        @staticmethod
        def score(data):
            train = data.train
            means = np.stack([data.features[train][data.targets[train] == c].mean(axis=0)
                              for c in range(data.num_classes)])
            nearest = lambda s, r: np.argmin(((data.features[r, None] - means) ** 2).sum(axis=2), axis=1)
            return [ReadoutScores("nearest_mean", data.right(nearest), "Euclidean")]
'''


def test_a_readout_dropped_into_the_package_runs_by_default_and_is_in_help(tmp_path, monkeypatch):
    drop_into(readout_declarations, READOUT_SECTIONS, "nearest_mean", NEAREST_MEAN_DECLARATION, tmp_path / "declared",
              monkeypatch)
    drop_into(readouts_package, READOUTS, "nearest_mean", NEAREST_MEAN_READOUT, tmp_path / "dropped", monkeypatch)
    probes = load_recipe(None).probe.probes
    assert probes == ["linear", "logistic", "knn", "retrieval", "nearest_mean"]  # every readout, in its order
    text = " ".join(invoke_in_process(main, ["probe", "--help"], cwd=tmp_path).output.split())
    assert "nearest_mean Nearest class mean of the train samples" in text
    # the registry-enumerated readout test's check, on the same separable features
    data = separable_features(np.random.default_rng(0))
    (found,) = registered_readouts()["nearest_mean"].cls.score(data)
    assert np.mean(found.per_sample["test"]) == 1.0
    sys.modules.pop("cltt.eval.readouts.nearest_mean", None)
    sys.modules.pop("cltt.recipe.probes.readouts.nearest_mean", None)


def test_a_task_that_cannot_run_during_training_refuses_probe_every():
    with pytest.raises(RecipeError, match="task slots does not .only classes"):
        load_recipe(None, ["probe.task=slots", "probe.every=1"])


def test_an_unknown_task_names_the_closest_and_every_choice():
    with pytest.raises(RecipeError) as err:
        load_recipe(None, ["probe.task=phase"])
    assert "did you mean 'phases'?" in str(err.value) and all(name in str(err.value) for name in registered_tasks())


# --------------------------------------------------------------------------- recipes saved before the registry

OLD_PROBE_SECTION = """\
probe:
  task: {task}
  level: frame
  labels: null
  split_fractions: [0.6, 0.2, 0.2]
  split_seed: 0
  probes: [linear, logistic, knn, retrieval]
  baselines: [random_init, pixels]
  logistic_c: [0.01, 0.1, 1.0, 10.0, 100.0]
  ridge: [0.0, 1.0, 10.0, 100.0, 1000.0, 10000.0]
  bootstrap_rounds: 2000
  knn_k: 20
  knn_temperature: 0.07
  standardise: true
  pixels_size: 16
  batch_size: 256
  every: null
  ap_k: {ap_k}
"""


@pytest.mark.parametrize("task, ap_k", [("phases", "[1, 3]"), ("classes", "[5, 10, 15]"), ("slots", "[2]")])
def test_a_recipe_saved_with_the_shared_ap_k_still_loads(task, ap_k, tmp_path):
    """The probe section as every run dir and checkpoint saved it before tasks had sections."""
    path = tmp_path / "recipe.yaml"
    path.write_text(OLD_PROBE_SECTION.format(task=task, ap_k=ap_k))
    recipe = load_recipe(path)
    assert recipe.probe.task == task
    expected = yaml.safe_load(ap_k) if task == "phases" else [5, 10, 15]  # read by phases only, so kept for it only
    assert recipe.probe.phases.ap_k == expected
    saved = recipe_to_dict(recipe)["probe"]
    assert "ap_k" not in saved and ("phases" in saved) == (task == "phases")


def test_old_and_new_places_of_ap_k_must_agree():
    with pytest.raises(RecipeError, match="'probe.ap_k' .* and 'probe.phases.ap_k' disagree"):
        recipe_from_dict({"probe": {"task": "phases", "ap_k": [1], "phases": {"ap_k": [2]}}})


def test_listing_the_registries_and_loading_a_recipe_import_no_torch():
    """The recipe reads both registries for its probe section: cltt train RECIPE --show and cltt
    index stay torch-free."""
    code = ("import sys; from cltt.eval.tasks import registered_tasks; from cltt.eval.readouts import "
            "registered_readouts; registered_tasks(); registered_readouts(); from cltt.recipe import load_recipe; "
            "load_recipe(None, ['probe.task=phases', 'probe.phases.ap_k=[2]', 'probe.probes=[knn]']); "
            "print(sorted(m for m in ('torch', 'sklearn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
