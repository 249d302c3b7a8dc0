"""Tiny real training runs in this process: tests/test_train.py's recipe on the 32 px clips of
``frames_root`` (tiny_cnn, CPU), each registered method at its ``example`` size, and what a test
compares after a run (final weights).

    recipe = write_recipe(tmp_path, frames_root, train={"epochs": 1})
    outcome = train_in_process(recipe)            # as `cltt train`, without a subprocess
    weights = final_weights(tmp_path / "runs" / "tiny")
    run_dir = tiny_run(tmp_path, "playroom", max_objects=2)   # one epoch on built-in clips in tmp_path/data
"""

from __future__ import annotations

import copy
import os
import signal
from pathlib import Path

import torch
import yaml

from cltt.engine import checkpoint as ckpt
from cltt.engine import preemption, run_files
from cltt.engine.events import Reporter
from cltt.engine.run_dir import prepare_resume, prepare_training
from cltt.engine.trainer import Trainer
from cltt.eval.tasks import training_probe
from cltt.methods import registered_methods
from cltt.recipe import load_recipe
from tests.helpers.datasets import synthetic


def write_recipe(tmp_path: Path, frames_root: Path, **sections) -> Path:
    """``tmp_path/tiny.yaml``: 2 epochs of tiny_cnn at 32 px on ``frames_root``, runs under
    ``tmp_path/runs``; each ``sections`` entry updates that section (``train={"epochs": 1}``)."""
    tree = {
        "data": {"root": str(frames_root), "window_size": 3, "window_stride": 1, "image_size": 32, "num_workers": 0},
        "model": {"backbone": "tiny_cnn", "projection_dim": 16},
        "train": {"epochs": 2, "batch_size": 8, "lr": 1e-3, "warmup_epochs": 0.5, "out_dir": str(tmp_path / "runs"),
                  "device": "cpu"},
    }
    for section, values in sections.items():
        tree.setdefault(section, {}).update(values)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tree))
    return path


class Recorder(Reporter):
    """Records each step's learning rate and loss; may send itself a signal at given steps."""

    def __init__(self, signal_at_steps=()):
        self.lrs, self.losses, self.signal_at = [], [], set(signal_at_steps)

    def step(self, event) -> None:
        self.lrs.append(event.lr)
        self.losses.append(event.loss)
        if event.step in self.signal_at:
            os.kill(os.getpid(), signal.SIGUSR1)


def tiny_run(tmp_path: Path, kind: str, **generator) -> Path:
    """The run dir of one epoch of the test recipe (tiny_cnn, 32 px) on built-in ``kind`` clips
    written to ``tmp_path/data`` (``generator``: their options, as :func:`synthetic` takes)."""
    train_in_process(write_recipe(tmp_path, synthetic(tmp_path / "data", kind, **generator), train={"epochs": 1}))
    return tmp_path / "runs" / "tiny"


def train_in_process(recipe_path: Path, overrides=(), reporter=None, change_length=False):
    recipe = load_recipe(recipe_path, list(overrides))
    recipe, run_dir, resume, _ = prepare_training(recipe, recipe_path, change_length)
    return Trainer(recipe, run_dir, reporter, resume, training_probe(recipe, run_dir)).run()  # as cltt train does


def resume_in_process(target: Path, reporter=None, overrides=()):
    preemption.reset()
    recipe, run_dir, resume, _ = prepare_resume(target, list(overrides), False)
    return Trainer(recipe, run_dir, reporter, resume, training_probe(recipe, run_dir)).run()


def final_weights(run_dir: Path) -> dict:
    return ckpt.load_checkpoint(run_dir / run_files.FINAL_CHECKPOINT)["model"]


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=key)


def merged(base: dict, top: dict) -> dict:
    """``base`` with ``top``'s values over it, nested sections merged key by key (a new dict)."""
    out = copy.deepcopy(base)
    for key, value in top.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) \
            else copy.deepcopy(value)
    return out


def method_recipe(tmp_path, frames_root, name: str, model=None, variant: str | None = None, **train):
    """:func:`write_recipe` for registered method ``name`` at its smallest (its ``example`` sections,
    and its ``variants[variant]`` over them), with ``model`` and ``train`` values on top."""
    cls = registered_methods()[name].cls
    sections = merged(cls.example, cls.variants[variant]) if variant else copy.deepcopy(cls.example)
    sections.setdefault("method", {})["name"] = name
    sections.setdefault("train", {}).update(train)
    sections.setdefault("model", {}).update(model or {})
    return write_recipe(tmp_path, frames_root, **sections)
