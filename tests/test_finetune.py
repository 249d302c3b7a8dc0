"""Fine-tuning and second stages: model.freeze, train.param_groups, model.init_from.

Run with the default recipe's model (resnet18 and its BatchNorm projection head) where the
behaviour depends on it: frozen BatchNorm statistics, groups over a real backbone's names.
"""

from __future__ import annotations

import argparse

import pytest
import torch
import yaml

from cltt.engine import checkpoint as ckpt
from cltt.engine import run_files
from cltt.engine.run_dir import prepare_training
from cltt.engine.trainer import Trainer
from cltt.models.backbones import build_backbone
from cltt.recipe import load_recipe
from tests.conftest import write_clip
from tests.helpers.commands import cltt
from tests.helpers.training import Recorder, train_in_process, write_recipe

RESNET = {"backbone": "resnet18", "projection_dim": 16}  # the default recipe's model, head with BatchNorm
TINY = {"backbone": "tiny_cnn", "projection_dim": 16}  # for what does not depend on the backbone (120 MB less a run)


def trainer_for(recipe_path, *overrides) -> Trainer:
    recipe = load_recipe(recipe_path, list(overrides))
    recipe, run_dir, resume, _ = prepare_training(recipe, recipe_path, False)
    return Trainer(recipe, run_dir, None, resume)


def backbone_state(state: dict) -> dict:
    return {k: v for k, v in state.items() if k.startswith("encoder.backbone.")}


def test_a_frozen_resnet18_backbone_is_bit_identical_after_training(tmp_path, frames_root):
    torch.manual_seed(3)
    weights = tmp_path / "resnet18.pth"
    torch.save(build_backbone("resnet18", 32).module.state_dict(), weights)
    recipe = write_recipe(tmp_path, frames_root, model={**RESNET, "weights": str(weights), "freeze": "backbone"},
                          train={"epochs": 2, "max_batches_per_epoch": 3})
    recorder = Recorder()
    outcome = train_in_process(recipe, reporter=recorder)
    assert outcome.status == "finished" and len(recorder.losses) == 6
    final = ckpt.load_checkpoint(tmp_path / "runs" / "tiny" / run_files.FINAL_CHECKPOINT)["model"]
    saved = torch.load(weights, weights_only=True)
    frozen = backbone_state(final)
    assert len(frozen) == len(saved)  # weights and BatchNorm running statistics, all of them
    for key, value in frozen.items():
        assert torch.equal(value, saved[key.removeprefix("encoder.backbone.")]), key
    head = {k: v for k, v in final.items() if k.startswith("encoder.head.") and v.is_floating_point()}
    assert head and any(not torch.equal(v, torch.zeros_like(v)) for v in head.values())


def test_param_groups_set_each_groups_rate_and_the_schedule_scales_them_all(tmp_path, frames_root):
    groups = [{"match": r"^encoder\.backbone\.", "lr": 1e-5, "weight_decay": 0.0},
              {"match": r"^encoder\.head\.", "lr": 2e-4}]
    recipe = write_recipe(tmp_path, frames_root, model=RESNET,
                          train={"epochs": 1, "lr": 4e-4, "weight_decay": 1e-4, "param_groups": groups, "warmup_epochs": 0.5})
    trainer = trainer_for(recipe)
    by_group = {}
    for group in trainer.optimizer.param_groups:
        by_group.setdefault(group["group"], []).append(group)
    assert set(by_group) == {r"^encoder\.backbone\.", r"^encoder\.head\."}  # nothing is left for the default group
    names = {id(p): n for n, p in trainer.method.named_parameters()}
    for pattern, lr, decay in ((r"^encoder\.backbone\.", 1e-5, 0.0), (r"^encoder\.head\.", 2e-4, 1e-4)):
        for group in by_group[pattern]:
            assert group["base_lr"] == lr
            assert group["weight_decay"] == (decay if group["kind"] == "decayed" else 0.0)
            assert all(names[id(p)].startswith(pattern.strip("^").replace("\\", "")) for p in group["params"])
    trainer.run()
    rate = trainer.schedule.decay_rate(trainer.total_steps - 1)  # the last step's factor
    for group in trainer.optimizer.param_groups:
        assert group["lr"] == pytest.approx(group["base_lr"] * rate)
    saved = yaml.safe_load((trainer.run_dir / "recipe.yaml").read_text())["train"]["param_groups"]
    assert saved == [{"match": r"^encoder\.backbone\.", "lr": 1e-5, "weight_decay": 0.0},
                     {"match": r"^encoder\.head\.", "lr": 2e-4, "weight_decay": 1e-4}]


def test_the_start_lines_name_each_groups_rate(tmp_path, frames_root):
    recipe = write_recipe(tmp_path, frames_root, model={**RESNET, "freeze": [r"\.layer1\."]},
                          train={"epochs": 1, "max_batches_per_epoch": 1,
                                 "param_groups": [{"match": "backbone", "lr": 1e-5}]})
    result = cltt("train", recipe, cwd=tmp_path)
    assert result.returncode == 0, result.stdout
    lines = result.stdout.splitlines()
    assert any(line.startswith("model.freeze: froze '\\.layer1\\.': 12 tensors") for line in lines), lines
    rates = next(line for line in lines if line.startswith("learning rates:"))
    assert "'backbone' lr 1e-05 wd 1e-06" in rates and "the rest lr 0.001" in rates


@pytest.mark.parametrize("setting, message", [
    ("train.param_groups=[{match: nothing_is_called_this, lr: 1.0e-4}]", "matches no parameter"),
    ("train.param_groups=[{match: backbone, lr: 1.0e-4}, {match: backbone.features.0, lr: 1.0e-3}]",
     "only parameters an earlier group already took"),
    ("model.freeze=[nothing_is_called_this]", "matches no trainable parameter"),
    ("train.param_groups=[{match: '[unclosed', lr: 1.0e-4}]", "not a regular expression"),
    ("model.freeze=everything", "must be one of none, backbone"),
])
def test_bad_groups_and_freezes_exit_2_in_one_line(tmp_path, frames_root, setting, message):
    recipe = write_recipe(tmp_path, frames_root)
    result = cltt("train", recipe, setting, cwd=tmp_path)
    assert result.returncode == 2 and message in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_a_second_stage_starts_from_the_first_stages_weights_under_its_own_schedule(tmp_path, frames_root):
    recipe = write_recipe(tmp_path, frames_root, model=TINY, train={"epochs": 2, "max_batches_per_epoch": 2})
    train_in_process(recipe, ["train.name=stage1"])
    stage1 = ckpt.load_checkpoint(tmp_path / "runs" / "stage1" / run_files.FINAL_CHECKPOINT)

    overrides = ["train.name=stage2", f"model.init_from={tmp_path / 'runs' / 'stage1'}", "train.lr=1e-4",
                 "train.epochs=3", "train.warmup_epochs=0"]
    trainer = trainer_for(recipe, *overrides)
    assert trainer.progress.step == 0 and trainer.total_steps == 6
    for key, value in trainer.method.state_dict().items():
        assert torch.equal(value, stage1["model"][key]), key
    recorder = Recorder()
    trainer.reporter = recorder
    trainer.run()
    assert len(recorder.lrs) == 6 and recorder.lrs[0] == pytest.approx(1e-4)  # stage 2's rate, from step 0
    assert recorder.lrs == pytest.approx([trainer.schedule.lr_at(step) for step in range(6)])
    final = ckpt.load_checkpoint(tmp_path / "runs" / "stage2" / run_files.FINAL_CHECKPOINT)
    assert final["progress"]["step"] == 6 and final["progress"]["epoch"] == 3
    result = cltt("train", recipe, "train.name=stage3", f"model.init_from={tmp_path / 'runs' / 'stage1' / run_files.FINAL_CHECKPOINT}",
                  "train.epochs=1", "train.max_batches_per_epoch=1", cwd=tmp_path)
    assert result.returncode == 0
    assert f"model.init_from: initialised from {tmp_path / 'runs' / 'stage1' / run_files.FINAL_CHECKPOINT} (its epoch 2, step 4)" \
        in result.stdout


@pytest.mark.parametrize("setting, message", [
    ("model.backbone=resnet18", "is a run of another architecture: its model.backbone is 'tiny_cnn'"),
    ("method.name=simclr", "is a cltt run, this recipe trains simclr"),
    ("model.projection_dim=32", "'encoder.head.net.3.weight' is [16, 128]"),
])
def test_init_from_another_architecture_method_or_size_exits_2(tmp_path, frames_root, setting, message):
    recipe = write_recipe(tmp_path, frames_root, model=TINY, train={"epochs": 1, "max_batches_per_epoch": 1})
    train_in_process(recipe, ["train.name=stage1"])
    result = cltt("train", recipe, "train.name=stage2", f"model.init_from={tmp_path / 'runs' / 'stage1'}", setting,
                  cwd=tmp_path)
    assert result.returncode == 2, result.stdout
    assert message in result.stdout + result.stderr and "Traceback" not in result.stdout + result.stderr


def test_slotcontrast_trains_on_vit_b14_patch_tokens_from_a_dino_checkpoint(tmp_path):
    """The lab's configuration (recipes/slotcontrast_saycam.yaml): a frozen ViT-B/14 at 224 px
    (16 x 16 patches) in DINO's checkpoint layout, 7 slots of 128, decoder [1024, 1024, 1024]."""
    root = tmp_path / "frames"
    for c in range(2):
        write_clip(root, f"clip{c}", 4)
    torch.manual_seed(0)
    vit = build_backbone("timm/vit_base_patch16_224", 224, timm_args={"patch_size": 14}).module
    weights = tmp_path / "dino_say_vitb14.pth"
    torch.save({"teacher": {f"module.backbone.{k}": v for k, v in vit.state_dict().items()},
                "args": argparse.Namespace(arch="vit_base")}, weights)
    recorder = Recorder()
    recipe = load_recipe("recipes/slotcontrast_saycam.yaml", [
        f"data.root={root}", "data.synthetic=null", "data.window_size=2", "data.num_workers=0", f"model.weights={weights}",
        "train.batch_size=2", "train.epochs=1", "train.max_batches_per_epoch=2", "train.device=cpu",
        f"train.out_dir={tmp_path / 'runs'}", "log.tensorboard=false"])
    recipe, run_dir, _, _ = prepare_training(recipe, None, False)
    trainer = Trainer(recipe, run_dir, recorder)
    weights.unlink()  # read at build; checkpoints hold every tensor (350 MB less on the disk at once)
    features = trainer.method.encoder.features
    assert (features.grid, features.feature_dim) == (16, 768) and trainer.method.num_slots == 7
    assert trainer.method.decoder.mlp[2].in_features == 1024 and trainer.method.encoder.slot_attention.slot_dim == 128
    trainer.run()
    assert len(recorder.losses) == 2 and all(torch.isfinite(torch.tensor(recorder.losses)))
    final = ckpt.load_checkpoint(run_dir / run_files.FINAL_CHECKPOINT)["model"]
    for key, value in vit.state_dict().items():  # frozen: exactly the file's
        assert torch.equal(final[f"encoder.features.vit.{key}"], value), key
