"""TensorBoard and W&B: real event files of tiny runs, read back with TensorBoard's own reader."""

from __future__ import annotations

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from cltt.engine import checkpoint as ckpt
from cltt.engine import run_files
from cltt.engine.monitor import TENSORBOARD_DIR
from tests.helpers.training import (
    Recorder,
    assert_same_weights,
    final_weights,
    method_recipe,
    resume_in_process,
    train_in_process,
    write_recipe,
)
from tests.helpers.wandb_files import wandb_history


def events(run_dir) -> EventAccumulator:
    reader = EventAccumulator(str(run_dir / TENSORBOARD_DIR), size_guidance={"scalars": 0, "images": 0})
    reader.Reload()
    return reader


def test_tensorboard_holds_the_scalars_probe_accuracy_and_batch_images(tmp_path):
    root = tmp_path / "balls"
    recipe = write_recipe(tmp_path, root, data={"synthetic": "bouncing-balls"},
                          train={"epochs": 2, "max_batches_per_epoch": 3}, probe={"every": 1},
                          log={"tensorboard": True, "step_every": 1, "images_every": 2},
                          extract={"synthetic": {"clips": 12, "frames": 8, "size": 32}})
    assert train_in_process(recipe).status == "finished"
    reader = events(tmp_path / "runs" / "tiny")
    scalars = set(reader.Tags()["scalars"])
    assert {"train/loss", "train/lr", "train/frames_per_second", "train/data_wait", "epoch/loss",
            "epoch/learning_rate", "probe/test_acc", "probe/train_acc"} <= scalars
    assert [event.step for event in reader.Scalars("train/loss")] == [1, 2, 3, 4, 5, 6]
    steps_csv = (tmp_path / "runs" / "tiny" / "metrics_steps.csv").read_text().splitlines()[1:]
    assert [e.value for e in reader.Scalars("train/loss")] == pytest.approx([float(r.split(",")[2]) for r in steps_csv])
    assert [event.step for event in reader.Scalars("probe/test_acc")] == [3, 6]  # after each epoch
    images = reader.Images("images/batch")
    assert [image.step for image in images] == [2, 4, 6]
    assert images[0].width > 32 * 3 and images[0].height > 32 * 4  # 4 samples of 3 frames, enlarged


def test_slotcontrast_logs_its_loss_terms_and_slot_masks(tmp_path, frames_root):
    recipe = method_recipe(tmp_path, frames_root, "slotcontrast", epochs=1, max_batches_per_epoch=2)
    recipe.write_text(recipe.read_text() + "log: {tensorboard: true, step_every: 1, images_every: 1}\n")
    assert train_in_process(recipe).status == "finished"
    reader = events(tmp_path / "runs" / "tiny")
    total, recon, contrast = (reader.Scalars(f"train/{name}")
                              for name in ("loss", "loss_reconstruction", "loss_slot_contrast"))
    for whole, a, b in zip(total, recon, contrast):
        assert whole.value == pytest.approx(a.value + b.value, rel=1e-5)
    assert [image.step for image in reader.Images("images/slot_masks")] == [1, 2]


def test_carl_draws_the_alignment_of_two_sequences(tmp_path, frames_root):
    recipe = method_recipe(tmp_path, frames_root, "carl", epochs=1, max_batches_per_epoch=1)
    recipe.write_text(recipe.read_text() + "log: {tensorboard: true, images_every: 1}\n")
    assert train_in_process(recipe).status == "finished"
    reader = events(tmp_path / "runs" / "tiny")
    assert {"images/alignment", "images/batch"} <= set(reader.Tags()["images"])


def test_drawing_images_does_not_change_training(tmp_path, frames_root):
    """The default model (resnet18, BatchNorm head): the images run the model in eval mode and
    restore torch's random state, so the weights are those of a run without them."""
    model = {"backbone": "resnet18", "projection_dim": 16}
    train = {"epochs": 1, "max_batches_per_epoch": 3}
    plain = write_recipe(tmp_path, frames_root, model=model, train={**train, "name": "plain"})
    train_in_process(plain)
    drawn = write_recipe(tmp_path, frames_root, model=model, train={**train, "name": "drawn"},
                         log={"tensorboard": True, "images_every": 1, "step_every": 1})
    train_in_process(drawn)
    assert_same_weights(final_weights(tmp_path / "runs" / "plain"), final_weights(tmp_path / "runs" / "drawn"))
    assert len(events(tmp_path / "runs" / "drawn").Images("images/batch")) == 3


def test_a_resumed_run_continues_the_same_curves(tmp_path, frames_root, preemption_handlers):
    recipe = write_recipe(tmp_path, frames_root, train={"epochs": 2, "max_batches_per_epoch": 3},
                          log={"tensorboard": True, "step_every": 1})
    assert train_in_process(recipe, reporter=Recorder(signal_at_steps={2})).status == "preempted"
    resume_in_process(tmp_path / "runs" / "tiny")
    steps = [event.step for event in events(tmp_path / "runs" / "tiny").Scalars("train/loss")]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_wandb_offline_gets_the_same_scalars_and_images(tmp_path, frames_root):
    recipe = write_recipe(tmp_path, frames_root, train={"epochs": 1, "max_batches_per_epoch": 2},
                          log={"tensorboard": True, "step_every": 1, "images_every": 1,
                               "wandb": {"enabled": True, "mode": "offline"}})
    assert train_in_process(recipe).status == "finished"
    run_dir = tmp_path / "runs" / "tiny"
    run_id = ckpt.load_checkpoint(run_dir / run_files.FINAL_CHECKPOINT)["wandb_id"]
    (offline,) = (run_dir / "wandb").glob(f"offline-run-*-{run_id}")
    history = wandb_history(offline / f"run-{run_id}.wandb")
    reader = events(run_dir)
    tags = [tag for tag in reader.Tags()["scalars"] if "/" in tag]
    assert {"train/loss", "train/lr", "train/frames_per_second", "train/data_wait", "epoch/loss"} <= set(tags)
    for tag in tags:
        for event in reader.Scalars(tag):
            assert history[event.step][tag] == pytest.approx(event.value, rel=1e-6), (tag, event.step)
    images = sorted((offline / "files" / "media" / "images" / "images").glob("batch_*.png"))
    assert len(images) == 2 and [image.step for image in reader.Images("images/batch")] == [1, 2]
    assert all(history[step]["images/batch/_type"] == "image-file" for step in (1, 2))
