"""clip_simclr: ViViT, the frame-mean window encoder, the window NT-Xent, training and clip-level probes
on tiny real data (JPEG clips on disk, random init, CPU)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from cltt.data.stores import open_store
from cltt.data.windows import WindowSpec
from cltt.engine import checkpoint as ckpt
from cltt.engine import run_files
from cltt.errors import CLTTError
from cltt.eval.features import FrameSet, encoder_source, extract_features, pixel_source
from cltt.eval.probe import evaluate_method, prepare_probe, probe_checkpoint
from cltt.eval.samples import pool_samples
from cltt.eval.window_features import (
    WINDOWS_PER_CLIP,
    WindowSource,
    extract_window_features,
    pool_windows,
    probe_windows,
    source_for,
)
from cltt.methods import build_method
from cltt.methods.clip_simclr import ClipSimCLR
from cltt.models.representation import FrameRepresentation, WindowRepresentation
from cltt.models.vivit import SIZES, ViViT, build_vivit
from cltt.objectives import nt_xent
from cltt.recipe import ViViTConfig, load_recipe
from tests.helpers.datasets import synthetic
from tests.helpers.training import train_in_process, write_recipe

RECIPES = Path(__file__).resolve().parent.parent / "recipes"
TINY_VIVIT = {"backbone": "vivit", "projection_dim": 16,
              "vivit": {"size": "tiny", "patch_size": 8, "tubelet": 1, "spatial_depth": 1, "temporal_depth": 1}}


def recipe_of(*overrides: str):
    base = ["method.name=clip_simclr", "data.window_size=4", "data.image_size=32", "model.projection_dim=16"]
    return load_recipe(None, base + list(overrides))


# --------------------------------------------------------------------------- ViViT


@pytest.mark.parametrize("size", ["tiny", "small", "base"])
def test_vivit_sizes_and_shapes(size):
    config = ViViTConfig(size=size, patch_size=8, tubelet=2, spatial_depth=1, temporal_depth=1)
    vivit = build_vivit(config, frames=4, image_size=16)
    width, heads = {"tiny": (192, 3), "small": (384, 6), "base": (768, 12)}[size]
    assert SIZES[size] == (width, heads) and vivit.feature_dim == width
    block = vivit.spatial.layers[0]
    assert block.self_attn.num_heads == heads and block.linear1.out_features == 4 * width and block.norm_first
    assert vivit.time_steps == 2 and vivit.patches == 4
    assert vivit.spatial_positions.shape == (1, 5, width) and vivit.temporal_positions.shape == (1, 3, width)
    assert vivit(torch.randn(3, 4, 3, 16, 16)).shape == (3, width)


def test_tubelet_embedding_is_a_conv3d():
    torch.manual_seed(0)
    vivit = ViViT(frames=4, image_size=16, width=12, heads=2, patch_size=4, tubelet=2, spatial_depth=1, temporal_depth=1)
    conv3d = nn.Conv3d(3, 12, kernel_size=(2, 4, 4), stride=(2, 4, 4))
    with torch.no_grad():
        conv3d.weight.copy_(vivit.embed.weight.view(12, 3, 2, 4, 4))
        conv3d.bias.copy_(vivit.embed.bias)
    clips = torch.randn(2, 4, 3, 16, 16)
    expected = conv3d(clips.transpose(1, 2))  # [N, width, n_t, 4, 4]
    expected = expected.flatten(3).permute(0, 2, 3, 1)  # [N, n_t, n_s, width], patches row by row
    torch.testing.assert_close(vivit.tubelets(clips), expected, rtol=1e-5, atol=1e-5)


def test_vivit_clip_vector_depends_on_its_clip_alone_and_on_frame_order():
    torch.manual_seed(1)
    vivit = ViViT(frames=4, image_size=16, width=24, heads=3, patch_size=8, tubelet=2, spatial_depth=2,
                  temporal_depth=1).train()
    clips = torch.randn(3, 4, 3, 16, 16)
    together = vivit(clips)
    one_by_one = torch.cat([vivit(clips[i:i + 1]) for i in range(3)])
    torch.testing.assert_close(together, one_by_one, rtol=1e-4, atol=1e-5)  # LayerNorm only: no batch coupling
    reversed_time = vivit(clips.flip(1))
    assert not torch.allclose(reversed_time, together, atol=1e-3)  # temporal positions see the order


def test_vivit_errors_name_the_keys():
    with pytest.raises(CLTTError, match=r"data.image_size.*model.vivit.patch_size"):
        build_vivit(ViViTConfig(patch_size=16), frames=4, image_size=40)
    with pytest.raises(CLTTError, match=r"data.window_size.*model.vivit.tubelet"):
        build_vivit(ViViTConfig(patch_size=8, tubelet=2), frames=5, image_size=32)
    vivit = build_vivit(ViViTConfig(patch_size=8, tubelet=1, spatial_depth=1, temporal_depth=1), frames=3, image_size=32)
    with pytest.raises(CLTTError, match="built for windows"):
        vivit(torch.randn(1, 4, 3, 32, 32))
    with pytest.raises(CLTTError, match="model.vivit.tubelet"):
        ClipSimCLR(recipe_of("model.backbone=vivit", "model.vivit.patch_size=8", "data.window_size=3"))


# --------------------------------------------------------------------------- method


def test_frame_mean_encoder_is_the_mean_of_per_frame_backbone_features():
    torch.manual_seed(2)
    method = ClipSimCLR(recipe_of("model.backbone=tiny_cnn")).eval()
    assert isinstance(method.encoder, WindowRepresentation) and isinstance(method.encoder, FrameRepresentation)
    clips = torch.randn(3, 4, 3, 32, 32)
    frame_module = method.encoder.backbone.backbone  # the TinyCNN itself
    per_frame = torch.stack([frame_module(clips[:, t]) for t in range(4)], dim=1)  # [N, T, F], time step by step
    torch.testing.assert_close(method.encoder.represent_windows(clips), per_frame.mean(dim=1), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(method.encoder.represent(clips[:, 2]), per_frame[:, 2], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(method.encoder(clips), method.encoder.head(per_frame.mean(dim=1)), rtol=1e-5, atol=1e-5)
    frame_encoder = method.encoder.frame_encoder()  # what export would write: the same weights, per frame
    torch.testing.assert_close(frame_encoder.represent(clips[:, 2]), per_frame[:, 2], rtol=1e-5, atol=1e-6)
    assert frame_encoder.backbone is frame_module and frame_encoder.head is method.encoder.head
    with pytest.raises(CLTTError, match="takes windows"):
        method.encoder.represent_windows(clips[:, 0])


def test_embed_gives_one_projection_per_view():
    torch.manual_seed(3)
    method = ClipSimCLR(recipe_of("model.backbone=tiny_cnn")).eval()
    views = torch.randn(5, 2, 4, 3, 32, 32)
    embeddings = method.embed(views)
    assert embeddings.shape == (5, 2, 16)
    torch.testing.assert_close(embeddings[:, 1], method.encoder(views[:, 1]), rtol=1e-5, atol=1e-5)
    assert ClipSimCLR.dataset_views(recipe_of()) == 2


def nt_xent_by_loop(a: torch.Tensor, b: torch.Tensor, temperature: float) -> float:
    """SimCLR's loss written out: every row of [a; b] against its twin, over all other rows."""
    rows = torch.cat([a, b]).double()
    rows = rows / rows.norm(dim=1, keepdim=True)
    n = a.shape[0]
    total = 0.0
    for i in range(2 * n):
        twin = (i + n) % (2 * n)
        others = sum(math.exp(float(rows[i] @ rows[k]) / temperature) for k in range(2 * n) if k != i)
        total += -(float(rows[i] @ rows[twin]) / temperature - math.log(others))
    return total / (2 * n)


@pytest.mark.parametrize("temperature", [0.1, 0.5])
def test_loss_is_nt_xent_over_clips(temperature):
    method = ClipSimCLR(recipe_of(f"method.temperature={temperature}"))
    embeddings = torch.randn(6, 2, 8, generator=torch.Generator().manual_seed(4))
    total, units = method.loss_terms(embeddings, 0, 6)
    assert units == 12
    expected = nt_xent(embeddings[:, 0], embeddings[:, 1], temperature=temperature)
    torch.testing.assert_close(total / units, expected, rtol=1e-5, atol=1e-6)
    assert float(total / units) == pytest.approx(nt_xent_by_loop(embeddings[:, 0], embeddings[:, 1], temperature),
                                                 rel=1e-5)
    # a process scoring samples 2..5 against everyone's: the parts add up to the whole
    first_total, first_units = method.loss_terms(embeddings, 0, 2)
    rest_total, rest_units = method.loss_terms(embeddings, 2, 4)
    torch.testing.assert_close(first_total + rest_total, total)
    assert first_units + rest_units == units


def test_recipe_errors_are_one_clear_line():
    with pytest.raises(CLTTError, match="two_view_offset=0"):
        ClipSimCLR(recipe_of("data.two_view_offset=2"))
    with pytest.raises(CLTTError, match="augment.consistent=true"):
        ClipSimCLR(recipe_of("data.augment.consistent=false"))


# --------------------------------------------------------------------------- clip features


def test_probe_windows_are_evenly_spaced_and_skip_short_clips():
    spec = WindowSpec(window_size=3, frame_step=2, window_stride=1)  # span 5
    counts = np.array([4, 5, 30, 9])
    windows = probe_windows(counts, spec, "window")
    assert np.bincount(windows.clip, minlength=4).tolist() == [0, 1, 26, 5]
    clips = probe_windows(counts, spec, "clip")
    assert np.bincount(clips.clip, minlength=4).tolist() == [0, 1, WINDOWS_PER_CLIP, 5]
    starts = clips.start[clips.clip == 2]
    assert starts[0] == 0 and starts[-1] == 25 and np.all(np.diff(starts) >= 3)
    with pytest.raises(CLTTError, match="probe.level=clip"):
        probe_windows(counts, spec, "frame")


def test_window_features_of_a_frame_mean_encoder_match_its_frame_features(tmp_path, frames_root):
    """Windows that tile a clip: the mean of their window vectors is the mean of all frame features."""
    torch.manual_seed(5)
    recipe = recipe_of("model.backbone=tiny_cnn", "data.window_size=3")
    encoder = ClipSimCLR(recipe).encoder
    frames = FrameSet(open_store(frames_root), [0, 1, 2])  # 12, 17 and 22 frames
    spec = WindowSpec(3, frame_step=1, window_stride=3)  # clip 0: starts 0, 3, 6, 9 tile all 12 frames
    table = probe_windows(frames.frame_counts, spec, "clip")
    window_source = WindowSource(name="trained", identity={"weights": 1}, decode_size=32, encoder=encoder)
    windowed = extract_window_features(frames, [window_source], table, cache_dir=tmp_path / "cache", batch_size=7)
    frame_source = source_for("trained", encoder, 32, torch.device("cpu"), None, "frame")
    assert frame_source.encoder is encoder  # a frame-mean encoder is probed per frame
    per_frame = extract_features(frames, [frame_source]).features["trained"]
    by_windows = pool_windows(windowed.features["trained"], table, "clip")
    by_frames = pool_samples(per_frame, frames.offsets, "clip")
    np.testing.assert_allclose(by_windows.features[0], by_frames.features[0], rtol=1e-4, atol=1e-5)
    one_window = pool_windows(windowed.features["trained"], table, "window")
    np.testing.assert_allclose(one_window.features[0], per_frame[0:3].mean(0), rtol=1e-4, atol=1e-5)
    again = extract_window_features(frames, [window_source], table, cache_dir=tmp_path / "cache")
    assert again.reused == ["trained"]
    np.testing.assert_array_equal(again.features["trained"], windowed.features["trained"])
    other = probe_windows(frames.frame_counts, WindowSpec(3, 1, 2), "clip")  # other windows: not the cached file
    assert extract_window_features(frames, [window_source], other, cache_dir=tmp_path / "cache").computed == ["trained"]


def test_pixels_do_not_depend_on_the_sources_beside_them(frames_root):
    """A ViViT's pixel baseline has its frame pass alone; it must equal the one other methods get."""
    frames = FrameSet(open_store(frames_root), [0])  # 48x64 JPEGs
    encoder = build_method(load_recipe(None, ["model.backbone=tiny_cnn", "data.image_size=32"])).encoder
    beside = extract_features(frames, [pixel_source(16), encoder_source("t", encoder, 32, torch.device("cpu"), None)])
    alone = extract_features(frames, [pixel_source(16)], decode_at_least=32)
    np.testing.assert_array_equal(alone.features["pixels"], beside.features["pixels"])
    smaller = extract_features(frames, [pixel_source(16)])  # decoded at half scale: other pixels
    assert not np.array_equal(smaller.features["pixels"], beside.features["pixels"])


def test_sources_by_encoder_kind():
    cpu = torch.device("cpu")
    vivit = ClipSimCLR(recipe_of(*[f"model.vivit.{k}={v}" for k, v in TINY_VIVIT["vivit"].items()],
                                 "model.backbone=vivit")).encoder
    assert isinstance(source_for("t", vivit, 32, cpu, None, "clip"), WindowSource)
    with pytest.raises(CLTTError, match="use probe.level=clip"):
        source_for("t", vivit, 32, cpu, None, "frame")
    assert isinstance(vivit, WindowRepresentation) and not isinstance(vivit, FrameRepresentation)
    with pytest.raises(CLTTError, match="no per-frame encoder to export"):
        ClipSimCLR(recipe_of(*[f"model.vivit.{k}={v}" for k, v in TINY_VIVIT["vivit"].items()],
                             "model.backbone=vivit")).export_encoder()
    plain = build_method(load_recipe(None, ["model.backbone=tiny_cnn", "data.image_size=32"])).encoder
    assert source_for("t", plain, 32, cpu, None, "frame").encoder is plain  # other methods: unchanged
    assert type(encoder_source("t", plain, 32, cpu, None)) is type(source_for("t", plain, 32, cpu, None, "clip"))


# --------------------------------------------------------------------------- end to end


@pytest.mark.parametrize("model", [{"backbone": "tiny_cnn", "projection_dim": 16}, TINY_VIVIT],
                         ids=["frame_mean", "vivit"])
def test_train_and_probe_clips_of_bouncing_balls(tmp_path, model):
    root = synthetic(tmp_path / "balls", "bouncing-balls")  # 12 clips of 8 frames, 32 px, 1-3 balls
    recipe_path = write_recipe(tmp_path, root, method={"name": "clip_simclr"}, model=model,
                               data={"window_size": 3, "frame_step": 2, "window_stride": 2},
                               train={"epochs": 2, "batch_size": 6, "sub_batch_size": 4},  # exact accumulation
                               probe={"level": "clip", "logistic_c": [1.0], "knn_k": 3})
    assert train_in_process(recipe_path).status == "finished"
    run_dir = tmp_path / "runs" / "tiny"
    losses = [float(row.split(",")[1]) for row in (run_dir / "metrics.csv").read_text().splitlines()[1:]]
    assert len(losses) == 2 and all(math.isfinite(x) and x > 0 for x in losses)

    recipe = load_recipe(run_dir / "recipe.yaml")
    state = ckpt.load_checkpoint(run_dir / run_files.FINAL_CHECKPOINT)
    assert state["method"] == "clip_simclr"
    report = probe_checkpoint(recipe, run_dir / run_files.FINAL_CHECKPOINT, state)
    assert report.level == "clip" and report.classes == ["1", "2", "3"]
    assert {(s.features, s.probe) for s in report.scores} == {
        (f, p) for f in ("trained", "random_init", "pixels")
        for p in ("linear", "logistic", "knn", "recall@1", "recall@5", "mAP")}
    assert sum(c["clips"] for c in report.counts.values()) == 12
    assert sum(c["samples"] for c in report.counts.values()) == 12  # one sample per clip
    width = 128 if model["backbone"] == "tiny_cnn" else 192
    assert report.feature_dims["trained"] == width == report.feature_dims["random_init"]
    assert all(0 <= s.test <= 1 for s in report.scores)
    again = probe_checkpoint(recipe, run_dir / run_files.FINAL_CHECKPOINT, state)
    assert all(how.startswith("reused") for how in again.cache.values())
    assert [(s.features, s.probe, s.test) for s in again.scores] == [(s.features, s.probe, s.test) for s in report.scores]

    windows = load_recipe(run_dir / "recipe.yaml", ["probe.level=window"])
    method = build_method(windows)
    method.load_state_dict(state["model"])
    row = evaluate_method(method, windows, torch.device("cpu"), epoch=2, setup=prepare_probe(windows))
    assert 0 <= row.test_acc <= 1
    if model["backbone"] == "vivit":
        with pytest.raises(CLTTError, match="use probe.level=clip"):
            prepare_probe(load_recipe(run_dir / "recipe.yaml", ["probe.level=frame"]))


@pytest.mark.parametrize("name, backbone", [("clip_simclr.yaml", "resnet18"), ("clip_simclr_vivit.yaml", "vivit")])
def test_recipes_build(name, backbone):
    recipe = load_recipe(RECIPES / name)
    assert recipe.method.name == "clip_simclr" and recipe.model.backbone == backbone
    assert recipe.probe.level == "clip" and recipe.data.synthetic == "bouncing-balls"
    augment = recipe.data.augment
    assert augment.consistent and augment.crop_scale == [0.5, 1.0] and augment.jitter == [0.8, 0.8, 0.8, 0.2]
    assert (augment.jitter_p, augment.grayscale_p) == (0.8, 0.2) and augment.blur_p > 0
    assert isinstance(ClipSimCLR(recipe).encoder, WindowRepresentation)
