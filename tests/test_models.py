"""Backbones, projection head, encoder and weight loading: shapes, errors, round trips (CPU)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision
from safetensors.torch import save_file

from cltt.errors import CLTTError
from cltt.models import (
    BACKBONES,
    Backbone,
    ContrastiveEncoder,
    LoadReport,
    ProjectionHead,
    TinyCNN,
    backbones,
    build_backbone,
    build_encoder,
    load_backbone_weights,
    register_backbone,
)

EXPECTED_FEATURE_DIMS = {
    "resnet18": 512,
    "resnet34": 512,
    "resnet50": 2048,
    "vit_s16": 384,
    "vit_b16": 768,
    "tiny_cnn": 128,
}


def frames(n: int = 2, size: int = 32) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(0))


def one_line_error(info: pytest.ExceptionInfo[CLTTError]) -> str:
    message = str(info.value)
    assert "\n" not in message
    return message


# --- backbones


def test_registry_holds_the_documented_backbones():
    assert set(EXPECTED_FEATURE_DIMS) <= set(BACKBONES)


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_every_backbone_maps_frames_to_feature_dim(name):
    backbone = build_backbone(name, image_size=32)
    assert isinstance(backbone, Backbone)
    if name in EXPECTED_FEATURE_DIMS:
        assert backbone.feature_dim == EXPECTED_FEATURE_DIMS[name]
    backbone.module.eval()
    with torch.no_grad():
        features = backbone.module(frames(2, 32))
    assert features.shape == (2, backbone.feature_dim)
    assert torch.isfinite(features).all()


def test_tiny_cnn_at_64_px_and_no_batchnorm():
    backbone = build_backbone("tiny_cnn", image_size=64)
    assert isinstance(backbone.module, TinyCNN)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in backbone.module.modules())
    assert backbone.module(frames(2, 64)).shape == (2, 128)


def test_tiny_cnn_encodes_a_batch_in_pieces_as_whole():
    torch.manual_seed(0)
    model = build_backbone("tiny_cnn", image_size=32).module.train()
    batch = frames(4, 32)
    whole = model(batch)
    pieces = torch.cat([model(batch[:1]), model(batch[1:3]), model(batch[3:])])
    # Equal up to float32 rounding: CPU convolution kernels block the batch differently by size.
    torch.testing.assert_close(pieces, whole)


@pytest.mark.parametrize("name", ["vit_s16", "vit_b16"])
def test_vit_rejects_image_size_not_multiple_of_16(name):
    with pytest.raises(CLTTError) as info:
        build_backbone(name, image_size=40)
    message = one_line_error(info)
    assert "multiple of 16" in message and "40" in message


def test_vit_image_size_sets_position_embeddings():
    module = build_backbone("vit_s16", image_size=48).module
    assert module.encoder.pos_embedding.shape == (1, 9 + 1, 384)


def test_unknown_backbone_names_the_valid_ones():
    with pytest.raises(CLTTError) as info:
        build_backbone("resnet19", image_size=32)
    message = one_line_error(info)
    assert "resnet19" in message
    for name in EXPECTED_FEATURE_DIMS:
        assert name in message


def test_register_backbone_adds_a_factory(monkeypatch):
    monkeypatch.setattr(backbones, "BACKBONES", dict(BACKBONES))

    @register_backbone("flat_linear")
    def _flat(image_size: int) -> Backbone:
        return Backbone(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * image_size**2, 7)), 7)

    backbone = build_backbone("flat_linear", image_size=8)
    assert backbone.module(frames(2, 8)).shape == (2, 7)
    with pytest.raises(ValueError):
        register_backbone("flat_linear")(_flat)


# --- projection head and encoder


@pytest.mark.parametrize("batchnorm", [True, False])
def test_projection_head_shapes(batchnorm):
    head = ProjectionHead(in_dim=16, hidden_dim=32, out_dim=8, batchnorm=batchnorm)
    has_bn = any(isinstance(m, torch.nn.BatchNorm1d) for m in head.modules())
    assert has_bn is batchnorm
    assert head(torch.randn(2, 16)).shape == (2, 8)
    assert ProjectionHead(16, 32).out_dim == 128


def test_projection_head_layer_order():
    names = [type(m).__name__ for m in ProjectionHead(4, 5, 6, batchnorm=True).net]
    assert names == ["Linear", "BatchNorm1d", "ReLU", "Linear"]
    names = [type(m).__name__ for m in ProjectionHead(4, 5, 6, batchnorm=False).net]
    assert names == ["Linear", "ReLU", "Linear"]


def test_encoder_forward_and_represent_shapes():
    encoder = build_encoder("tiny_cnn", image_size=32, projection_hidden=None, projection_dim=16,
                            head_batchnorm=True, weights=None)
    assert isinstance(encoder, ContrastiveEncoder)
    assert encoder.head.net[0].out_features == encoder.feature_dim == 128
    assert encoder.load_report is None
    batch = frames(2, 32)
    assert encoder(batch).shape == (2, 16)
    assert encoder.represent(batch).shape == (2, 128)
    windows = torch.rand(2, 3, 3, 32, 32)  # [B, T, C, H, W]
    assert encoder(windows).shape == (2, 3, 16)
    assert encoder.represent(windows).shape == (2, 3, 128)


def test_encoder_represent_is_the_backbone_output():
    encoder = build_encoder("tiny_cnn", 32, projection_hidden=64, projection_dim=8,
                            head_batchnorm=False, weights=None).eval()
    batch = frames(2, 32)
    assert encoder.head.net[0].out_features == 64
    torch.testing.assert_close(encoder.represent(batch), encoder.backbone(batch))
    torch.testing.assert_close(encoder(batch), encoder.head(encoder.backbone(batch)))


# --- weights


@pytest.fixture(scope="module")
def resnet18_state() -> dict[str, torch.Tensor]:
    """A random torchvision resnet18's full state dict, classifier included."""
    torch.manual_seed(1)
    return torchvision.models.resnet18(weights=None).state_dict()


def assert_loaded(module: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    for key, value in module.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_weights_round_trip_bare_pth(tmp_path: Path, resnet18_state):
    path = tmp_path / "bare.pth"
    torch.save(resnet18_state, path)
    module = build_backbone("resnet18", 32).module
    report = load_backbone_weights(module, str(path))
    assert isinstance(report, LoadReport)
    assert_loaded(module, resnet18_state)
    assert report.loaded == len(module.state_dict())
    assert set(report.ignored) == {"fc.weight", "fc.bias"}
    assert report.stripped_prefix == ""
    assert "ignored 2" in report.summary()


def test_weights_round_trip_nested_with_module_prefix(tmp_path: Path, resnet18_state):
    path = tmp_path / "ddp.pt"
    wrapped = {f"module.{key}": value for key, value in resnet18_state.items()}
    torch.save({"state_dict": wrapped, "epoch": 3}, path)
    module = build_backbone("resnet18", 32).module
    report = load_backbone_weights(module, path)
    assert_loaded(module, resnet18_state)
    assert report.stripped_prefix == "module."


def test_weights_round_trip_safetensors(tmp_path: Path, resnet18_state):
    path = tmp_path / "weights.safetensors"
    save_file({key: value.contiguous() for key, value in resnet18_state.items()}, str(path))
    module = build_backbone("resnet18", 32).module
    report = load_backbone_weights(module, path)
    assert_loaded(module, resnet18_state)
    assert set(report.ignored) == {"fc.weight", "fc.bias"}


def test_weights_from_a_contrastive_encoder_checkpoint(tmp_path: Path):
    source = build_encoder("tiny_cnn", 32, projection_dim=8)
    torch.save({"model": {f"module.{k}": v for k, v in source.state_dict().items()}, "step": 7},
               tmp_path / "run.pt")
    target = build_encoder("tiny_cnn", 32, projection_dim=8, weights=str(tmp_path / "run.pt"))
    assert_loaded(target.backbone, source.backbone.state_dict())
    assert target.load_report is not None
    assert target.load_report.stripped_prefix == "module.backbone."
    assert all(key.startswith("head.") for key in target.load_report.ignored)


def test_vit_keeps_its_own_encoder_prefix(tmp_path: Path):
    source = build_backbone("vit_s16", 32).module
    path = tmp_path / "vit.pth"
    torch.save({f"module.{k}": v for k, v in source.state_dict().items()}, path)
    target = build_backbone("vit_s16", 32).module
    report = load_backbone_weights(target, path)
    assert report.stripped_prefix == "module." and report.ignored == ()
    assert_loaded(target, source.state_dict())


def test_wrong_architecture_names_the_shape_mismatch(tmp_path: Path):
    path = tmp_path / "resnet50.pth"
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), path)
    with pytest.raises(CLTTError) as info:
        load_backbone_weights(build_backbone("resnet18", 32).module, path)
    message = one_line_error(info)
    assert "shape" in message and "architecture" in message
    assert "[64, 64, 1, 1]" in message and "[64, 64, 3, 3]" in message


def test_unrelated_file_reports_no_matching_keys(tmp_path: Path):
    path = tmp_path / "tiny.pth"
    torch.save(TinyCNN().state_dict(), path)
    with pytest.raises(CLTTError, match="no tensor") as info:
        load_backbone_weights(build_backbone("resnet18", 32).module, path)
    message = one_line_error(info)
    assert "features.0.weight" in message and "conv1.weight" in message


def test_partial_file_reports_missing_keys(tmp_path: Path, resnet18_state):
    path = tmp_path / "partial.pth"
    torch.save({k: v for k, v in resnet18_state.items() if not k.startswith("layer4.")}, path)
    with pytest.raises(CLTTError, match="lacks") as info:
        load_backbone_weights(build_backbone("resnet18", 32).module, path)
    assert "layer4." in one_line_error(info)


def test_missing_file(tmp_path: Path):
    with pytest.raises(CLTTError, match="not found") as info:
        load_backbone_weights(TinyCNN(), tmp_path / "nope.pth")
    one_line_error(info)


@pytest.mark.parametrize("name", ["garbage.pth", "garbage.safetensors"])
def test_garbage_file(tmp_path: Path, name: str):
    path = tmp_path / name
    path.write_bytes(b"this is not a tensor file \x00\x01\x02" * 10)
    with pytest.raises(CLTTError, match="accepted formats") as info:
        load_backbone_weights(TinyCNN(), path)
    one_line_error(info)


def test_unknown_suffix_and_non_state_dict(tmp_path: Path):
    (tmp_path / "weights.h5").write_bytes(b"x")
    with pytest.raises(CLTTError, match="accepted formats"):
        load_backbone_weights(TinyCNN(), tmp_path / "weights.h5")
    torch.save({"epoch": 3, "notes": "no tensors here"}, tmp_path / "meta.pth")
    with pytest.raises(CLTTError, match="no state dict"):
        load_backbone_weights(TinyCNN(), tmp_path / "meta.pth")


def test_vit_weights_for_another_image_size_are_resampled(tmp_path: Path):
    path = tmp_path / "vit64.pth"
    source = build_backbone("vit_s16", 64).module
    torch.save(source.state_dict(), path)
    target = build_backbone("vit_s16", 32).module
    report = load_backbone_weights(target, path)
    assert "encoder.pos_embedding resampled from 4x4 to 2x2 patches" in report.summary()
    saved = source.state_dict()["encoder.pos_embedding"]
    loaded = target.state_dict()["encoder.pos_embedding"]
    assert torch.equal(loaded[:, 0], saved[:, 0])  # the class token's own position is kept
    grid = saved[:, 1:].reshape(1, 4, 4, -1).permute(0, 3, 1, 2)
    expected = torch.nn.functional.interpolate(grid, size=(2, 2), mode="bicubic").permute(0, 2, 3, 1).reshape(1, 4, -1)
    torch.testing.assert_close(loaded[:, 1:], expected)


def test_a_deeper_resnet_is_refused_not_loaded_in_part(tmp_path: Path):
    path = tmp_path / "resnet34.pth"
    torch.save(torchvision.models.resnet34(weights=None).state_dict(), path)
    with pytest.raises(CLTTError, match="inside the backbone's own modules") as info:
        load_backbone_weights(build_backbone("resnet18", 32).module, path)
    assert "layer1.2." in one_line_error(info)
