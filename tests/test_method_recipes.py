"""The SSL family's checked-in recipes, as users run them: ResNet-18 with its BatchNorm
projection head (and BYOL's BatchNorm predictor, DINO's local crops), not tiny_cnn. Each trains
on real JPEGs, is stopped by a real SIGUSR1 inside epoch 2 and resumed, and must equal the
uninterrupted run step for step and weight for weight (teachers and DINO's centre included)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cltt.engine import checkpoint as ckpt
from cltt.engine import run_files
from cltt.recipe import load_recipe
from tests.helpers.training import Recorder, assert_same_weights, final_weights, resume_in_process, train_in_process

RECIPES = Path(__file__).parent.parent / "recipes"


def small(frames_root: Path, out: Path) -> list[str]:
    """Only the data size and length shrink; model, method, optimizer stay the recipe's."""
    return [f"data.root={frames_root}", "data.synthetic=null", "data.image_size=32", "data.num_workers=0",
            "train.batch_size=8", "train.epochs=2", "train.max_batches_per_epoch=2", f"train.out_dir={out}",
            "train.device=cpu", "train.name=run"]


@pytest.mark.parametrize("name", ["byol", "vicreg", "barlow_twins", "dino"])
def test_recipe_with_resnet18_resumes_exactly(tmp_path, frames_root, preemption_handlers, name):
    recipe_path = RECIPES / f"{name}.yaml"
    recipe = load_recipe(recipe_path, small(frames_root, tmp_path))
    assert recipe.model.backbone == "resnet18" and recipe.model.head_batchnorm

    straight = Recorder()
    train_in_process(recipe_path, small(frames_root, tmp_path / "straight"), reporter=straight)
    assert len(straight.losses) == 4 and all(torch.isfinite(torch.tensor(straight.losses)))

    first = Recorder(signal_at_steps={3})  # inside epoch 2
    outcome = train_in_process(recipe_path, small(frames_root, tmp_path / "broken"), reporter=first)
    assert outcome.status == "preempted"
    second = Recorder()
    assert resume_in_process(tmp_path / "broken" / "run", second).status == "finished"
    torch.testing.assert_close(torch.tensor(first.losses + second.losses), torch.tensor(straight.losses),
                               rtol=1e-5, atol=1e-6)
    weights = final_weights(tmp_path / "straight" / "run")
    assert_same_weights(final_weights(tmp_path / "broken" / "run"), weights)
    if name in ("byol", "dino"):  # the teacher moved, and not onto the student
        start = ckpt.load_checkpoint(tmp_path / "straight" / "run" / run_files.epoch_checkpoint(1))["model"]
        teacher = [k for k in weights if k.startswith("teacher.")]
        assert teacher and any(not torch.equal(weights[k], start[k]) for k in teacher)
        assert any(not torch.equal(weights[k], weights["encoder." + k.removeprefix("teacher.")]) for k in teacher)
    if name == "dino":
        assert weights["center"].abs().sum() > 0
