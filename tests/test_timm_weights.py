"""timm backbones and the checkpoint layouts of the field: DINO, DINOv2, silicon-menagerie, safetensors.

The weights files are built here from random-init timm models and saved in each project's
layout; loading one through ``model.weights`` must give the features of the model it came from.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import save_file

from cltt.cli import main
from cltt.engine import run_files
from cltt.errors import CLTTError
from cltt.models.backbones import backbone_from_model, build_backbone
from cltt.models.weights import load_backbone_weights
from cltt.recipe import load_recipe
from tests.conftest import invoke_in_process, write_clip

VIT_B14 = ["model.backbone=timm/vit_base_patch16_224", "model.timm.patch_size=14"]  # DINO v1 / menagerie ViT-B/14


def model_config(*overrides):
    return load_recipe(None, list(overrides)).model


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def dino_head(width: int) -> dict:
    """The keys of DINO's projection head, which a backbone has no use for."""
    return {"head.mlp.0.weight": torch.randn(32, width), "head.mlp.0.bias": torch.randn(32),
            "head.last_layer.weight_g": torch.randn(64, 1), "head.last_layer.weight_v": torch.randn(64, 32)}


@pytest.fixture(scope="module")
def vit_b14():
    """A random-init timm ViT-B/14 at 224 px (DINO v1's architecture: no layer scale) and two frames."""
    torch.manual_seed(0)
    built = build_backbone("timm/vit_base_patch16_224", 224, timm_args={"patch_size": 14})
    built.module.eval()
    return built, torch.randn(2, 3, 224, 224)


@pytest.mark.parametrize("layout", ["dino", "menagerie"])
def test_a_vit_b14_in_dino_checkpoint_layout_gives_the_features_it_came_from(tmp_path, vit_b14, layout):
    source, frames = vit_b14
    state = source.module.state_dict()
    if layout == "dino":  # DINO's checkpoint.pth: teacher and student dicts, backbone. prefixes, training args
        teacher = {**{f"backbone.{k}": v for k, v in state.items()}, **dino_head(768)}
        content = {"teacher": teacher, "student": {k: v + 1 for k, v in teacher.items()},
                   "args": argparse.Namespace(arch="vit_base", patch_size=14), "epoch": 100}
    else:  # silicon-menagerie: the teacher of a DDP run, module.backbone. and module.head.
        content = {"teacher": {**{f"module.backbone.{k}": v for k, v in state.items()},
                               **{f"module.{k}": v for k, v in dino_head(768).items()}}}
    path = tmp_path / "dino_say_vitb14.pth"
    torch.save(content, path)

    torch.manual_seed(1)  # another random init: everything must come from the file
    loaded, report = backbone_from_model(model_config(*VIT_B14, f"model.weights={path}"), 224)
    loaded.module.eval()
    assert report.loaded == len(state) and report.source == "teacher"
    assert report.stripped_prefix == ("backbone." if layout == "dino" else "module.backbone.")
    assert len(report.ignored) == 4 and "0 missing" in report.summary()
    with torch.no_grad():
        assert torch.equal(loaded.module(frames), source.module(frames))  # the class token
        tokens = loaded.patches.read(loaded.module, frames, -1)
        assert torch.equal(tokens, source.patches.read(source.module, frames, -1))
    assert tokens.shape == (2, 256, 768)  # 16 x 16 patches at 224 px
    path.unlink()  # 350 MB


def small_vit(image_size: int, **timm_args):
    torch.manual_seed(0)
    return build_backbone("timm/vit_small_patch14_dinov2", image_size,
                          timm_args={"depth": 2, "embed_dim": 48, "num_heads": 2, **timm_args})


def test_a_dinov2_training_checkpoint_loads_its_teacher(tmp_path):
    """DINOv2's checkpointer: one ``model`` dict with teacher./student. prefixes, chunked blocks,
    register tokens and a mask token, saved at 518 px (here a 5 x 5 grid loaded at 4 x 4)."""
    source = small_vit(70, reg_tokens=4)
    state = source.module.state_dict()
    def dinov2_name(key):
        key = key.replace("reg_token", "register_tokens")
        return key.replace("blocks.1.", "blocks.0.1.").replace("blocks.0.", "blocks.0.0.", 1) \
            if key.startswith("blocks.0.") else key.replace("blocks.1.", "blocks.0.1.")
    backbone = {f"backbone.{dinov2_name(k)}": v for k, v in state.items()}
    backbone["backbone.mask_token"] = torch.zeros(1, 48)
    content = {"model": {**{f"teacher.{k}": v for k, v in backbone.items()},
                         **{f"student.{k}": v * 0 for k, v in backbone.items()},
                         "teacher.dino_head.mlp.0.weight": torch.zeros(8, 48)}, "iteration": 7}
    path = tmp_path / "dinov2.pth"
    torch.save(content, path)
    target = small_vit(56, reg_tokens=4)
    report = load_backbone_weights(target.module, path)
    summary = report.summary()
    assert report.source == "teacher" and "chunked blocks renamed" in summary
    assert "pos_embed resampled from 5x5 to 4x4 patches" in summary
    loaded = target.module.state_dict()
    for key, value in state.items():
        if key != "pos_embed":
            assert torch.equal(loaded[key], value), key
    assert loaded["pos_embed"].shape == (1, 5 + 16, 48)  # class and 4 register positions, then 4 x 4
    assert torch.equal(loaded["pos_embed"][:, :5], state["pos_embed"][:, :5])


def test_layer_scale_mismatches_are_refused_with_the_fix(tmp_path):
    with_scale = small_vit(28)  # timm's DINOv2 ViTs have layer scale (ls1.gamma, ls2.gamma)
    path = tmp_path / "dinov2.safetensors"
    save_file({k: v.contiguous() for k, v in with_scale.module.state_dict().items()}, str(path))
    without = small_vit(28, init_values=0.0)
    with pytest.raises(CLTTError, match="layer scale") as info:
        load_backbone_weights(without.module, path)
    assert "inside the backbone's own modules" in one_line(info)
    save_file({k: v.contiguous() for k, v in without.module.state_dict().items()}, str(path))
    with pytest.raises(CLTTError, match="layer scale") as info:
        load_backbone_weights(with_scale.module, path)
    assert "lacks" in one_line(info) and "timm/vit_base_patch16_224" in one_line(info)


def test_timm_cnns_pool_and_give_feature_maps_as_tokens():
    built = build_backbone("timm/resnet18", 64)
    frames = torch.randn(2, 3, 64, 64)
    assert built.module(frames).shape == (2, 512) and not built.fixed_size
    assert built.patches.read(built.module, frames, -1).shape == (2, 4, 512)  # the 2 x 2 map of layer4
    assert built.patches.read(built.module, frames, 3).shape == (2, 16, 256)  # layer3
    pooled = build_backbone("timm/vit_small_patch16_224", 64, pool="avg")
    tokens = pooled.patches.read(pooled.module, frames, -1)
    assert pooled.fixed_size and tokens.shape == (2, 16, 384)


def test_timm_backbone_refusals_are_one_line():
    with pytest.raises(CLTTError, match="closest: timm/resnet18") as info:
        build_backbone("timm/resnet1", 32)
    one_line(info)
    with pytest.raises(CLTTError, match="multiple of 16"):
        build_backbone("timm/vit_small_patch16_224", 60)
    with pytest.raises(CLTTError, match="model.timm.num_classes is set by cltt"):
        build_backbone("timm/resnet18", 32, timm_args={"num_classes": 3})
    with pytest.raises(CLTTError, match="unexpected keyword argument 'nonsense'"):
        build_backbone("timm/resnet18", 32, timm_args={"nonsense": 3})
    with pytest.raises(CLTTError, match="applies to timm"):
        build_backbone("resnet18", 32, pool="avg")


def run_cli(tmp_path: Path, *overrides):
    root = tmp_path / "frames"
    if not root.exists():
        for c in range(2):
            write_clip(root, f"clip{c}", 6)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({
        "data": {"root": str(root), "window_size": 2, "image_size": 32, "num_workers": 0},
        "model": {"backbone": "tiny_cnn", "projection_dim": 8},
        "train": {"epochs": 1, "batch_size": 2, "max_batches_per_epoch": 1, "device": "cpu", "out_dir": str(tmp_path / "runs")},
    }))
    return invoke_in_process(main, ["train", recipe, *overrides], tmp_path)


def test_cli_bad_backbones_and_weights_exit_2_in_one_line(tmp_path):
    result = run_cli(tmp_path, "model.backbone=timm/vit_smal_patch16_224")
    assert result.exit_code == 2 and "closest: timm/vit_small_patch16_224" in result.output
    assert "Traceback" not in result.output
    unrelated = tmp_path / "unrelated.pth"
    torch.save({"encoder.layer.weight": torch.zeros(3, 3), "other.bias": torch.zeros(3)}, unrelated)
    result = run_cli(tmp_path, f"model.weights={unrelated}")
    assert result.exit_code == 2 and "0 of the file's 2 keys match the model's" in result.output


def test_train_says_what_the_weights_file_loaded(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "tiny.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in build_backbone("tiny_cnn", 32).module.state_dict().items()}},
               path)
    result = run_cli(tmp_path, f"model.weights={path}")
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if line.startswith("model.weights:"))
    assert f"loaded 12 tensors from {path} (prefix 'module.'); 0 missing" in line  # 4 convs, 4 GroupNorms x 2


def test_a_torchvision_resnet_file_loads_into_timms_resnet_with_the_same_features(tmp_path):
    import torchvision

    torch.manual_seed(0)
    reference = torchvision.models.resnet18(weights=None).eval()
    path = tmp_path / "resnet18_torchvision.pth"
    torch.save(reference.state_dict(), path)
    built, report = backbone_from_model(model_config("model.backbone=timm/resnet18", f"model.weights={path}"), 64)
    assert report.loaded == 120 and set(report.ignored) == {"fc.weight", "fc.bias"}
    reference.fc = torch.nn.Identity()
    frames = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(built.module.eval()(frames), reference(frames))


def test_an_exported_timm_backbone_loads_back_with_its_timm_arguments(tmp_path):
    from cltt.export import load_encoder

    result = run_cli(tmp_path, "model.backbone=timm/vit_tiny_patch16_224", "model.timm.patch_size=8", "model.timm.depth=1",
                     "model.pool=avg")
    assert result.exit_code == 0, result.output
    exported = invoke_in_process(main, ["export", tmp_path / "runs" / "r", "--format", "safetensors", "--out",
                                        tmp_path / "export"], tmp_path)
    assert exported.exit_code == 0, exported.output
    (weights,) = (tmp_path / "export").glob("*.safetensors")
    encoder = load_encoder(weights)
    frames = torch.rand(2, 3, 32, 32)
    from cltt.engine import checkpoint as ckpt
    from cltt.eval.probe import load_trained_method

    recipe = load_recipe(tmp_path / "runs" / "r" / "recipe.yaml")
    assert recipe.model.timm == {"patch_size": 8, "depth": 1}
    final = tmp_path / "runs" / "r" / run_files.FINAL_CHECKPOINT
    trained = load_trained_method(recipe, ckpt.load_checkpoint(final), final).eval()
    with torch.no_grad():
        torch.testing.assert_close(encoder(frames), trained.encoder.represent(frames))


def test_dino_local_crops_are_refused_for_a_timm_vit_built_for_one_size():
    from cltt.methods import build_method

    recipe = load_recipe(None, ["method.name=dino", "method.dino.local_crops=2", "data.image_size=32",
                                "model.backbone=timm/vit_tiny_patch16_224", "model.timm.depth=1"])
    with pytest.raises(CLTTError, match="local_crops needs a backbone that takes any image size"):
        build_method(recipe)
