"""The masked autoencoder (``method.name=mae``): patches, masking and loss against hand-worked
cases and lightly's independent utilities, a ViT that encodes only its visible patches, and
the recipe's refusals. The engine tests (train, round trip, exact resume, two processes) run
for mae through the registry in tests/test_methods_engine.py."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from lightly.models import utils as lightly_utils

from cltt.cli import main
from cltt.errors import CLTTError, RecipeError
from cltt.methods import build_method, method_class
from cltt.methods.mae import MaskSeeds, mask_noise
from cltt.models.backbones import build_backbone
from cltt.models.masked_vit import VisibleTokens, sincos_position_code
from cltt.objectives.mae import kept_count, masked_patch_loss, patch_targets, patchify, split_patches
from cltt.recipe import load_recipe
from tests.conftest import invoke_in_process
from tests.helpers.commands import one_line_error, run_cli
from tests.helpers.training import Recorder, method_recipe, train_in_process

# ---------------------------------------------------------------- patches and masks


def test_patchify_by_hand_and_against_lightly():
    # one 2-channel 4 x 4 image, 2 x 2 patches: patch 1 is the top-right block, values (row, col, channel)
    image = torch.arange(32, dtype=torch.float32).reshape(1, 2, 4, 4)
    patches = patchify(image, 2)
    assert patches.shape == (1, 4, 8)
    # channel 0 top-right block: 2, 3, 6, 7; channel 1 adds 16
    assert patches[0, 1].tolist() == [2, 18, 3, 19, 6, 22, 7, 23]
    for size, patch in ((32, 8), (48, 8), (32, 16), (12, 3)):
        images = torch.randn(3, 3, size, size)
        torch.testing.assert_close(patchify(images, patch), lightly_utils.patchify(images, patch), rtol=0, atol=0)


def test_masking_by_hand_and_against_lightly():
    visible, masked = split_patches(torch.tensor([[0.3, 0.1, 0.9, 0.5]]), 0.5)
    assert visible.tolist() == [[1, 0]] and masked.tolist() == [[3, 2]]
    assert kept_count(36, 0.75) == 9 and kept_count(16, 0.75) == 4 and kept_count(4, 0.9) == 1
    for patches, ratio in ((16, 0.75), (36, 0.75), (49, 0.6), (64, 0.9)):
        # lightly draws rand(N, 1 + P) and pins the class token (column 0) as visible
        torch.manual_seed(patches)
        lightly_keep, lightly_mask = lightly_utils.random_token_mask((5, patches + 1), ratio)
        torch.manual_seed(patches)
        noise = torch.rand(5, patches + 1)[:, 1:]
        visible, masked = split_patches(noise, ratio)
        assert torch.equal(visible + 1, lightly_keep[:, 1:])
        assert torch.equal(masked + 1, lightly_mask)
        assert torch.equal(torch.sort(torch.cat([visible, masked], 1)).values, torch.arange(patches).expand(5, -1))


def test_a_samples_mask_depends_on_its_seed_alone():
    rng = np.random.default_rng([0, 1, 2])
    seeds = torch.stack([MaskSeeds()([], rng)["mask_seed"] for _ in range(3)])
    assert seeds.dtype == torch.int64 and len(set(seeds.tolist())) == 3
    together = mask_noise(seeds, 4, 16)
    alone = mask_noise(seeds[1:2], 4, 16)
    assert torch.equal(together[4:8], alone)
    assert not torch.equal(together[:4], together[4:8])


# ---------------------------------------------------------------- the loss


def test_loss_by_hand():
    # one 3-channel 2 x 2 patch, half 0 and half 2: mean 1, unbiased variance 12/11;
    # predicting 0 leaves each normalised value at +-1/sqrt(12/11 + 1e-6): error 1 / (12/11 + 1e-6)
    patch = torch.tensor([[[0.0] * 6 + [2.0] * 6]])
    total, units = masked_patch_loss(torch.zeros(1, 1, 12), patch, torch.tensor([[0]]))
    assert float(total) == pytest.approx(1 / (12 / 11 + 1e-6), rel=1e-6) and float(units) == 1
    # without normalisation the error is the pixels' mean square: 6 * 4 / 12 = 2
    total, _ = masked_patch_loss(torch.zeros(1, 1, 12), patch, torch.tensor([[0]]), normalize=False)
    assert float(total) == pytest.approx(2.0)
    # a visible patch's error does not count, however large
    patches = torch.cat([patch, patch + 100.0], dim=1)
    predicted = torch.tensor([[[0.0] * 12, [1e6] * 12]])
    total, units = masked_patch_loss(predicted, patches, torch.tensor([[0]]))
    assert float(total) == pytest.approx(1 / (12 / 11 + 1e-6), rel=1e-6) and float(units) == 1


def _numpy_loss(predicted, patches, masked, normalize):
    """The masked-patch loss by loops over images and masked patches (float64)."""
    total = 0.0
    for n in range(patches.shape[0]):
        for j in masked[n]:
            x = patches[n, j].astype(np.float64)
            if normalize:
                x = (x - x.mean()) / math.sqrt(x.var(ddof=1) + 1e-6)
            total += float(np.mean((predicted[n, j].astype(np.float64) - x) ** 2))
    return total, sum(len(m) for m in masked)


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("images, size, patch, ratio", [(2, 16, 8, 0.75), (3, 32, 8, 0.75), (4, 24, 4, 0.5)])
def test_loss_against_an_independent_computation(normalize, images, size, patch, ratio):
    generator = torch.Generator().manual_seed(size + images)
    frames = torch.randn(images, 3, size, size, generator=generator)
    patches = lightly_utils.patchify(frames, patch)
    predicted = torch.randn(patches.shape, generator=generator)
    _, masked = split_patches(torch.rand(images, patches.shape[1], generator=generator), ratio)
    total, units = masked_patch_loss(predicted, patchify(frames, patch), masked, normalize)
    expected, count = _numpy_loss(predicted.numpy(), patches.numpy(), masked.numpy(), normalize)
    assert float(units) == count == images * (patches.shape[1] - kept_count(patches.shape[1], ratio))
    assert float(total) == pytest.approx(expected, rel=1e-5)
    if normalize:
        targets = patch_targets(patches, True)
        torch.testing.assert_close(targets.mean(-1), torch.zeros(targets.shape[:2]), atol=1e-5, rtol=0)


# ---------------------------------------------------------------- the ViT on visible patches

BACKBONES = [("vit_t8", None, None), ("timm/vit_tiny_patch16_224", "token", {"patch_size": 8, "depth": 2}),
             ("timm/vit_tiny_patch16_224", "avg", {"patch_size": 8, "depth": 2})]


@pytest.mark.parametrize("name, pool, timm_args", BACKBONES)
def test_all_patches_visible_is_the_backbones_own_forward(name, pool, timm_args):
    backbone = build_backbone(name, 32, pool=pool, timm_args=timm_args)
    vit = VisibleTokens(backbone.module, name)
    backbone.module.eval()
    frames = torch.randn(3, 3, 32, 32)
    prefix, patches = vit.tokens(frames)
    assert prefix.shape == (3, 1, 192) and patches.shape == (3, 16, 192) and vit.patch_size == 8
    torch.testing.assert_close(vit.pool(vit.encode(prefix, patches)), backbone.module(frames))


@pytest.mark.parametrize("name, pool, timm_args", BACKBONES)
def test_the_encoder_sees_only_the_visible_patches(name, pool, timm_args):
    backbone = build_backbone(name, 32, pool=pool, timm_args=timm_args)
    vit = VisibleTokens(backbone.module, name)
    frames = torch.randn(2, 3, 32, 32)
    visible, masked = split_patches(torch.rand(2, 16), 0.75)
    changed = frames.clone()
    for n in range(2):  # repaint every masked 8 x 8 patch of each frame
        for j in masked[n].tolist():
            row, col = divmod(j, 4)
            changed[n, :, 8 * row:8 * row + 8, 8 * col:8 * col + 8] = torch.randn(3, 8, 8)

    def latent(x):
        prefix, patches = vit.tokens(x)
        return vit.encode(prefix, patches.gather(1, visible.unsqueeze(-1).expand(-1, -1, patches.shape[-1])))

    assert latent(frames).shape == (2, 1 + 4, 192)
    torch.testing.assert_close(latent(changed), latent(frames), rtol=0, atol=0)
    assert not torch.equal(vit.pool(vit.encode(*vit.tokens(changed))), vit.pool(vit.encode(*vit.tokens(frames))))


def test_decoder_position_code_by_hand():
    code = sincos_position_code(2, 4)  # one frequency (1): [sin col, cos col, sin row, cos row], row-major
    expected = [[0, 1, 0, 1], [math.sin(1), math.cos(1), 0, 1], [0, 1, math.sin(1), math.cos(1)],
                [math.sin(1), math.cos(1), math.sin(1), math.cos(1)]]
    torch.testing.assert_close(code, torch.tensor(expected, dtype=torch.float32))


def test_a_few_steps_on_one_batch_lower_the_reconstruction_error(tmp_path, frames_root):
    torch.manual_seed(0)
    method = build_method(load_recipe(method_recipe(tmp_path, frames_root, "mae")))
    views = torch.rand(4, 1, 3, 3, 32, 32)
    extras = {"mask_seed": torch.arange(4)}
    optimizer = torch.optim.Adam(method.parameters(), lr=1e-3)
    losses = []
    for _ in range(15):
        forward = method.forward_step(views, extras)
        loss = forward.local_total / forward.local_units
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert float(forward.local_units) == 4 * 3 * (16 - 4)
    assert forward.embeddings.shape == (4, 3, 192)
    assert losses[-1] < 0.8 * losses[0], losses


# ---------------------------------------------------------------- the later target


def _repaint(frames: torch.Tensor, patches_of: list[list[int]], grid: int = 4, size: int = 8) -> torch.Tensor:
    """``frames [N, 3, S, S]`` with the listed patches of each frame filled with new noise."""
    out = frames.clone()
    for n, patches in enumerate(patches_of):
        for j in patches:
            row, col = divmod(j, grid)
            out[n, :, size * row:size * row + size, size * col:size * col + size] = torch.rand(3, size, size)
    return out


def test_the_later_target_scores_the_hidden_positions_of_the_later_frame(tmp_path, frames_root):
    """target=later: frame 0's visible patches in, frame 1's patches at the hidden positions out."""
    recipe = load_recipe(method_recipe(tmp_path, frames_root, "mae", variant="later"))
    later = build_method(recipe)
    # one frame of each two-frame window goes through the encoder: the study's budget counts one
    assert later.options.target == "later" and method_class("mae").encoded_frames(recipe) == 1
    own = build_method(load_recipe(method_recipe(tmp_path, frames_root, "mae")))
    own.load_state_dict(later.state_dict())
    torch.manual_seed(0)
    first, second = torch.rand(3, 3, 32, 32), torch.rand(3, 3, 32, 32)
    extras = {"mask_seed": torch.tensor([5, 6, 7])}
    visible, masked = split_patches(mask_noise(extras["mask_seed"], 1, 16), 0.75)

    @torch.no_grad()
    def loss(frame0, frame1):
        forward = later.forward_step(torch.stack([frame0, frame1], 1).unsqueeze(1), extras)  # [3, 1, 2, ...]
        assert forward.embeddings.shape == (3, 1, 192) and float(forward.local_units) == 3 * 12
        return float(forward.local_total)

    # a still scene: the later target is the frame's own, so the loss is the paper's MAE on frame 0
    with torch.no_grad():
        still = own.forward_step(first.unsqueeze(1).unsqueeze(1), extras)  # [3, 1, 1, ...]
    assert loss(first, first) == pytest.approx(float(still.local_total), rel=1e-6)
    base = loss(first, second)
    assert base != pytest.approx(float(still.local_total), rel=1e-3)
    # the later frame's visible positions are not scored; the first frame's hidden patches are never seen
    assert loss(first, _repaint(second, visible.tolist())) == pytest.approx(base, rel=1e-6)
    assert loss(_repaint(first, masked.tolist()), second) == pytest.approx(base, rel=1e-6)
    assert loss(first, _repaint(second, masked.tolist())) != pytest.approx(base, rel=1e-3)


def test_the_later_target_refuses_data_it_cannot_read_in_one_line(tmp_path, frames_root):
    path = method_recipe(tmp_path, frames_root, "mae", variant="later")
    cases = [(["data.window_size=3"], "set data.window_size=2 (got 3)"),
             (["data.two_view_offset=2"], "not two windows; set data.two_view_offset=0 (got 2)"),
             (["data.augment.enabled=true", "data.augment.consistent=false"], "set data.augment.consistent=true")]
    for overrides, says in cases:
        recipe = load_recipe(path, overrides)
        with pytest.raises(CLTTError, match=r"^method.mae.target=later ") as raised:
            method_class("mae").check_training(recipe)
        assert says in str(raised.value) and "\n" not in str(raised.value)
        build_method(recipe)  # a probe builds it with the windows it reads: only training is refused
    with pytest.raises(RecipeError, match=r"method.mae.target' must be one of self, later, got 'future'"):
        load_recipe(path, ["method.mae.target=future"])
    one_line_error(invoke_in_process(main, ["train", path, "data.window_size=1"], tmp_path),
                   "method.mae.target=later reads windows of two frames")


def test_a_later_run_is_probed_at_the_windows_the_probe_reads(tmp_path, frames_root):
    """Two-frame windows are the later target's training samples, not the probe's: a probe at
    one-frame windows builds the method and scores it (it refused once, telling the user to
    change a training key)."""
    path = method_recipe(tmp_path, frames_root, "mae", variant="later", epochs=1)
    assert train_in_process(path).status == "finished"
    labels = tmp_path / "labels.csv"
    labels.write_text("clip,label,split\nclip0,a,train\nclip1,b,train\nclip2,a,test\n")
    result = run_cli("probe", tmp_path / "runs" / "tiny", "data.window_size=1", f"probe.labels={labels}",
                     "probe.probes=[logistic]", "probe.baselines=[]", "-o", tmp_path / "probe.json")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "probe.json").is_file()


# ---------------------------------------------------------------- refusals


def test_a_cnn_backbone_is_refused_in_one_line(tmp_path, frames_root):
    recipe = load_recipe(method_recipe(tmp_path, frames_root, "mae", model={"backbone": "tiny_cnn"}))
    with pytest.raises(CLTTError, match=r"^method.name=mae masks the patches of a vision transformer; "
                                        r"model.backbone=tiny_cnn is not one \(use vit_t8") as raised:
        build_method(recipe)
    assert "\n" not in str(raised.value)
    timm_cnn = load_recipe(method_recipe(tmp_path, frames_root, "mae", model={"backbone": "timm/resnet10t"}))
    with pytest.raises(CLTTError, match="model.backbone=timm/resnet10t is not one"):
        build_method(timm_cnn)


def test_positives_are_refused_in_one_line(tmp_path, frames_root):
    path = method_recipe(tmp_path, frames_root, "mae")
    with pytest.raises(RecipeError, match=r"^recipe key 'method.positives' is not read by method mae \(it is read by .*\); remove it$"):
        load_recipe(path, ["method.positives=time"])
    with pytest.raises(RecipeError, match="method.mae.mask_ratio' must be in"):
        load_recipe(path, ["method.mae.mask_ratio=1.0"])


def test_the_cli_refuses_a_cnn_and_positives_with_exit_2(tmp_path, frames_root):
    path = method_recipe(tmp_path, frames_root, "mae")
    one_line_error(invoke_in_process(main, ["train", path, "model.backbone=tiny_cnn"], tmp_path),
                   "method.name=mae masks the patches of a vision transformer")
    one_line_error(invoke_in_process(main, ["train", path, "method.positives=time"], tmp_path),
                   "is not read by method mae")


@pytest.mark.slow
def test_the_checked_in_recipe_trains_and_exports_its_mean_patch_token(tmp_path, frames_root):
    from cltt.export import open_checkpoint

    recipe_path = Path(__file__).parent.parent / "recipes" / "mae.yaml"
    overrides = [f"data.root={frames_root}", "data.synthetic=null", "data.image_size=32", "data.num_workers=0",
                 "train.batch_size=4", "train.epochs=1", "train.max_batches_per_epoch=2", f"train.out_dir={tmp_path}",
                 "train.device=cpu", "train.name=run"]
    recipe = load_recipe(recipe_path, overrides)
    assert recipe.model.backbone.startswith("timm/vit") and recipe.model.pool == "avg"
    assert recipe.method.mae.mask_ratio == 0.75
    recorder = Recorder()
    assert train_in_process(recipe_path, overrides, reporter=recorder).status == "finished"
    assert len(recorder.losses) == 2 and all(math.isfinite(loss) for loss in recorder.losses)
    source = open_checkpoint(tmp_path / "run")
    frames = torch.randn(2, 3, 32, 32)
    vit = VisibleTokens(source.encoder.backbone, recipe.model.backbone)
    with torch.no_grad():
        prefix, patches = vit.tokens(frames)
        tokens = vit.encode(prefix, patches)[:, 1:]  # timm's avg pool: the patch tokens' mean, then fc_norm
        expected = source.encoder.backbone.fc_norm(tokens.mean(dim=1))
        torch.testing.assert_close(source.frame_encoder(False)(frames), expected)
    with pytest.raises(CLTTError, match="without --with-head"):
        source.frame_encoder(True)
