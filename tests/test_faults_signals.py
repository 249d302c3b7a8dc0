"""Issue 24, the runs that used to end in a traceback or say nothing: a batch of one sample
(case 10), a full disk (12), Ctrl-C twice or while importing (14), TensorBoard's tags (23), and
a Ctrl-C recorded as "interrupted" (24).

Every run here is a real ``cltt`` process or the real CLI in this process, on real JPEG frames;
signals are real and sent at a point the run has reached (a line it printed, a file it wrote),
never after a guessed delay. The full disk is a real 2 MiB tmpfs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cltt.cli import main
from cltt.engine import checkpoint as ckpt
from tests.conftest import invoke_in_process

QUICKSTART = Path(__file__).parent.parent / "recipes" / "quickstart.yaml"
TINY = ["data.image_size=32", "data.num_workers=0", "train.batch_size=4", "train.epochs=1", "train.device=cpu",
        "model.backbone=tiny_cnn", "model.projection_dim=16", "train.max_batches_per_epoch=2"]


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


def train(tmp_path: Path, frames_root: Path, *overrides: str):
    return invoke_in_process(main, ["train", QUICKSTART, f"data.root={frames_root}", *TINY, *overrides], tmp_path)


# --------------------------------------------------------------------------- case 10


@pytest.mark.parametrize("method, overrides, why", [
    ("cltt", [], "no negatives"),  # every frame of the one window is a positive of every other
    ("simclr", ["method.positives=augment", "data.window_size=1"], "no negatives"),  # one pair, nothing else
    ("clip_simclr", ["data.augment.consistent=true", "model.head_batchnorm=false"], "no negatives"),
    ("vicreg", ["method.positives=augment"], "statistics over the samples"),
    ("barlow_twins", ["method.positives=augment"], "statistics over the samples"),
])
def test_case_10_a_batch_of_one_without_negatives_is_refused_in_one_line(tmp_path, frames_root, method, overrides, why):
    result = train(tmp_path, frames_root, f"method.name={method}", "train.batch_size=1", *overrides)
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    (line,) = error_lines(result.output)
    assert "train.batch_size=1" in line and why in line and "train.batch_size=2 or more" in line, line
    assert not list((tmp_path / "runs").glob("*/*.pth"))  # refused before any training


def test_case_10_a_batch_of_one_with_negatives_inside_the_sample_trains_and_says_so(tmp_path, frames_root):
    """SimCLR over windows of 4 frames: each pair's negatives are then the other 3 pairs of the
    same window (temporal neighbours), so a batch of one still contrasts, but only inside it."""
    result = train(tmp_path, frames_root, "method.name=simclr", "method.positives=augment", "train.batch_size=1",
                   "train.name=one")
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning: train.batch_size=1")]
    assert len(warnings) == 1 and "only negatives are the other frames" in warnings[0], result.output
    assert ckpt.load_checkpoint(tmp_path / "runs" / "one" / ckpt.FINAL_NAME)["progress"]["step"] == 2


def test_case_10_methods_without_negatives_train_a_batch_of_one_silently(tmp_path, frames_root):
    result = train(tmp_path, frames_root, "method.name=byol", "method.positives=augment", "train.batch_size=1",
                   "train.name=byol")
    assert result.exit_code == 0 and "train.batch_size=1" not in result.output, result.output
