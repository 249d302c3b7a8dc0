"""SlotContrast: frozen ViT patches, slot modules, the slot-slot contrast, FG-ARI/mBO, visualize."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score

from cltt.cli import main
from cltt.data.synthetic import write_synthetic
from cltt.engine import run_files
from cltt.engine.device import Placement
from cltt.engine.optim import build_optimizer
from cltt.engine.step import accumulate_gradients, optimizer_step
from cltt.errors import CLTTError
from cltt.eval.report import TaskReport
from cltt.eval.slots import (
    adjusted_rand_index,
    mean_best_overlap,
    predicted_labels,
    probe_slots,
    video_fg_ari,
)
from cltt.methods import build_method
from cltt.models.patch_features import PatchFeatures
from cltt.models.slot_encoder import SoftPosition
from cltt.models.slots import SlotAttention, SlotDecoder
from cltt.objectives.slot_contrast import slot_contrast
from cltt.recipe import SyntheticConfig, load_recipe
from tests.conftest import invoke_in_process
from tests.helpers.training import train_in_process, write_recipe

CPU = Placement(torch.device("cpu"), None, False)


def slot_recipe(**slots):
    return load_recipe(None, slot_recipe_overrides() + [f"method.slotcontrast.{k}={v}" for k, v in slots.items()])


def slot_recipe_overrides():
    return ["method.name=slotcontrast", "model.backbone=vit_t8", "data.image_size=32", "data.window_size=3",
            "method.slotcontrast.num_slots=3", "method.slotcontrast.slot_dim=16", "method.slotcontrast.mlp_hidden=32",
            "method.slotcontrast.decoder_hidden=32", "method.slotcontrast.predictor_heads=2"]


def tiny_method(seed=0, **slots):
    torch.manual_seed(seed)
    return build_method(slot_recipe(**slots))


# --------------------------------------------------------------------------- frozen ViT


def model_config(*overrides):
    return load_recipe(None, list(overrides)).model


def test_patch_features_are_the_last_blocks_patch_tokens(tmp_path):
    torch.manual_seed(0)
    vit = PatchFeatures(model_config("model.backbone=vit_t8"), 32)
    frames = torch.randn(2, 3, 32, 32)
    tokens = vit(frames)
    assert tokens.shape == (2, 16, 192) and vit.grid == 4 and vit.feature_dim == 192
    # the same encoder pass gives torchvision's class token: our tokens are its siblings
    model = vit.vit
    x = torch.cat([model.class_token.expand(2, -1, -1), model._process_input(frames)], dim=1)
    torch.testing.assert_close(tokens, model.encoder(x)[:, 1:])
    torch.testing.assert_close(model(frames), model.encoder(x)[:, 0])
    # an earlier block: its output through the final LayerNorm
    first = PatchFeatures(model_config("model.backbone=vit_t8", "model.patch_block=0"), 32)
    first.load_state_dict(vit.state_dict())
    encoder = model.encoder
    expected = encoder.ln(encoder.layers[0](x + encoder.pos_embedding))[:, 1:]
    torch.testing.assert_close(first(frames), expected)
    # weights from a local file (the same format a vit_s16 backbone file has)
    path = tmp_path / "vit.pth"
    torch.save(model.state_dict(), path)
    torch.manual_seed(1)
    other = PatchFeatures(model_config("model.backbone=vit_t8", f"model.weights={path}"), 32)
    assert other.load_report is not None and other.load_report.loaded > 0
    torch.testing.assert_close(other(frames), tokens)


def test_slotcontrast_freezes_its_vit_by_default_and_fine_tunes_it_on_request():
    method = tiny_method()
    features = method.encoder.features
    assert not any(p.requires_grad for p in features.parameters())
    assert method.freeze_report.tensors == len(list(features.parameters()))
    method.train()
    assert not any(m.training for m in features.modules()) and method.decoder.training
    tuned = build_method(load_recipe(None, [*slot_recipe_overrides(), "model.freeze=none"]))
    assert all(p.requires_grad for p in tuned.encoder.features.parameters())
    tuned.train()
    assert tuned.encoder.features.vit.training


def test_patch_features_refuse_bad_sizes_blocks_and_backbones_without_patches():
    with pytest.raises(CLTTError, match="multiple of 8"):
        PatchFeatures(model_config("model.backbone=vit_t8"), 36)
    with pytest.raises(CLTTError, match="multiple of 16"):
        PatchFeatures(model_config("model.backbone=vit_s16"), 40)
    with pytest.raises(CLTTError, match="outside vit_t8's 2 blocks"):
        PatchFeatures(model_config("model.backbone=vit_t8", "model.patch_block=2"), 32)
    with pytest.raises(CLTTError, match="no patch tokens"):
        PatchFeatures(model_config("model.backbone=resnet18"), 32)
    with pytest.raises(CLTTError, match="no patch tokens"):
        build_method(load_recipe(None, ["method.name=slotcontrast", "model.backbone=tiny_cnn", "data.image_size=32"]))


# --------------------------------------------------------------------------- slot modules


def test_slot_attention_normalises_over_slots_and_starts_from_learned_slots():
    torch.manual_seed(0)
    attention = SlotAttention(input_dim=8, slot_dim=6, num_slots=4, hidden_dim=16)
    start = attention.initial(3)
    assert start.shape == (3, 4, 6)
    torch.testing.assert_close(start[0], start[2])  # learned, not sampled: the same for every sample
    slots, attn = attention(torch.randn(3, 10, 8), start, iterations=2)
    assert slots.shape == (3, 4, 6) and attn.shape == (3, 4, 10)
    torch.testing.assert_close(attn.sum(dim=1), torch.ones(3, 10))


def test_slot_decoder_mixes_slot_features_by_alpha_masks():
    torch.manual_seed(0)
    decoder = SlotDecoder(slot_dim=6, feature_dim=5, num_patches=9, hidden_dim=16)
    slots = torch.randn(2, 3, 6)
    recon, masks = decoder(slots)
    assert recon.shape == (2, 9, 5) and masks.shape == (2, 3, 9)
    torch.testing.assert_close(masks.sum(dim=1), torch.ones(2, 9))
    out = decoder.mlp(slots.unsqueeze(2) + decoder.position)  # [N, K, P, C + 1]
    expected = (torch.softmax(out[..., -1], dim=1).unsqueeze(-1) * out[..., :-1]).sum(dim=1)
    torch.testing.assert_close(recon, expected)


def test_soft_position_follows_the_vits_row_major_patch_order():
    position = SoftPosition(grid=3, width=4)
    coords = position.coords
    assert coords.shape == (9, 4)
    torch.testing.assert_close(coords[1], torch.tensor([0.5, 0.0, 0.5, 1.0]))  # second patch: one step right
    torch.testing.assert_close(coords[3], torch.tensor([0.0, 0.5, 1.0, 0.5]))  # fourth: one row down
    torch.testing.assert_close(position(), position.project(coords))


def test_first_frame_gets_first_iterations_and_later_frames_iterations():
    method = tiny_method(iterations=2, first_iterations=3)
    calls = []
    method.encoder.slot_attention.gru.register_forward_hook(lambda *args: calls.append(1))
    predictor_calls = []
    method.encoder.predictor.register_forward_hook(lambda *args: predictor_calls.append(1))
    forward = method.forward_step(torch.randn(2, 1, 4, 3, 32, 32), {})
    assert len(calls) == 3 + 3 * 2 and len(predictor_calls) == 3
    assert forward.embeddings.shape == (2, 4 * 3, 16)
    assert float(forward.local_units) == 2 * 4 * 16 * 192  # elements of the reconstructed features


# --------------------------------------------------------------------------- the loss


def loop_contrast(slots: torch.Tensor, first: int, count: int, tau: float) -> float:
    """Slot-slot InfoNCE by hand: anchor (i, t+1, k) against every (j, t, m); positive (i, t, k)."""
    b, frames, k, _ = slots.shape
    z = slots / slots.norm(dim=-1, keepdim=True)
    total = 0.0
    for i in range(first, first + count):
        for t in range(frames - 1):
            for s in range(k):
                sims = [float(z[i, t + 1, s] @ z[j, t, m]) / tau for j in range(b) for m in range(k)]
                total -= sims[i * k + s] - math.log(sum(math.exp(v) for v in sims))
    return total


@pytest.mark.parametrize("first,count,tau", [(0, 3, 0.1), (1, 2, 0.5), (2, 1, 1.0)])
def test_slot_contrast_matches_a_direct_loop(first, count, tau):
    slots = torch.randn(3, 3, 2, 4, generator=torch.Generator().manual_seed(first))
    total, units = slot_contrast(slots, first, count, tau)
    assert float(units) == count * 2 * 2
    assert float(total) == pytest.approx(loop_contrast(slots, first, count, tau), rel=1e-5)


def test_the_positive_is_the_same_slot_of_the_same_video():
    # slots that stay put are positives of themselves one frame later: with distinct slots and
    # a low temperature the loss is near zero, and swapping two slots at t+1 makes it large
    base = torch.eye(4).view(2, 2, 4)  # 2 videos x 2 slots, orthogonal
    still = base.unsqueeze(1).repeat(1, 2, 1, 1)  # [2, T=2, 2, 4]
    swapped = still.clone()
    swapped[0, 1] = still[0, 1].flip(0)
    assert float(slot_contrast(still, 0, 2, 0.05)[0]) < 1e-6
    assert float(slot_contrast(swapped, 0, 2, 0.05)[0]) > 10


def test_loss_terms_weight_the_contrast_and_weight_zero_leaves_reconstruction_alone():
    slots = torch.randn(3, 3 * 3, 16, requires_grad=True)
    method = tiny_method(contrast_weight=0.5)
    total, units = method.loss_terms(slots, 1, 2)
    expected, _ = slot_contrast(slots.detach().unflatten(1, (3, 3)), 1, 2, 0.1)
    assert float(units) == 2 * 2 * 3
    assert total.item() == pytest.approx(0.5 * expected.item(), rel=1e-5)

    zero = tiny_method(contrast_weight=0.0)
    total, units = zero.loss_terms(slots, 1, 2)
    assert total.item() == 0.0 and float(units) == 2 * 2 * 3
    total.backward()
    assert slots.grad is not None and not slots.grad.any()
    # same seed, same model: the reconstruction part does not see the contrast weight
    views = torch.randn(2, 1, 3, 3, 32, 32)
    a = method.forward_step(views, {})
    b = zero.forward_step(views, {})
    torch.testing.assert_close(a.local_total, b.local_total)


@pytest.mark.parametrize("weight", [0.5, 0.0])
def test_exact_sub_batches_give_the_full_batch_gradients(weight):
    views = torch.randint(0, 256, (4, 1, 3, 3, 32, 32), dtype=torch.uint8)
    grads = []
    for sub_batch in (None, 2):
        method = tiny_method(contrast_weight=weight)
        scaler = CPU.scaler()
        loss = accumulate_gradients(method, views, CPU, scaler, sub_batch_size=sub_batch)
        grads.append((loss, {n: p.grad.clone() for n, p in method.named_parameters() if p.grad is not None}))
    assert grads[0][0] == pytest.approx(grads[1][0], rel=1e-5)
    assert grads[0][1].keys() == grads[1][1].keys() and grads[0][1]
    for name in grads[0][1]:
        torch.testing.assert_close(grads[0][1][name], grads[1][1][name], rtol=1e-4, atol=1e-6, msg=name)


def test_a_train_step_leaves_the_vit_untouched_and_trains_the_rest():
    method = tiny_method()
    before = {n: p.detach().clone() for n, p in method.named_parameters()}
    optimizer = build_optimizer(method, slot_recipe().train)
    scaler = CPU.scaler()
    method.train()
    accumulate_gradients(method, torch.randint(0, 256, (2, 1, 3, 3, 32, 32), dtype=torch.uint8), CPU, scaler)
    assert all(p.grad is None for p in method.encoder.features.parameters())
    optimizer_step(method, optimizer, scaler, None)
    assert not method.encoder.features.training
    for name, p in method.named_parameters():
        if name.startswith("encoder.features."):
            assert torch.equal(p, before[name]), name
    moved = [n for n, p in method.named_parameters() if not torch.equal(p, before[n])]
    assert any(n.startswith("decoder.") for n in moved) and any(n.startswith("encoder.slot_attention.") for n in moved)


def test_slot_masks_in_chunks_equal_one_pass():
    method = tiny_method().eval()
    frames = torch.randn(2, 7, 3, 32, 32)
    for kind in ("decoder", "attention"):
        whole = method.slot_masks(frames, kind=kind)
        chunked = method.slot_masks(frames, chunk_size=3, kind=kind)
        assert whole.shape == (2, 7, 3, 4, 4)
        torch.testing.assert_close(chunked, whole, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(whole.sum(dim=2), torch.ones(2, 7, 4, 4))
    with pytest.raises(CLTTError, match="decoder, attention"):
        method.slot_masks(frames, kind="pixels")


def test_slotcontrast_refuses_two_views_and_single_frames():
    with pytest.raises(CLTTError, match="two_view_offset"):
        build_method(load_recipe(None, ["method.name=slotcontrast", "model.backbone=vit_t8", "data.image_size=32",
                                        "data.two_view_offset=2"]))
    with pytest.raises(CLTTError, match="window_size must be >= 2"):
        build_method(load_recipe(None, ["method.name=slotcontrast", "model.backbone=vit_t8", "data.image_size=32",
                                        "data.window_size=1"]))


# --------------------------------------------------------------------------- metrics


def test_ari_equals_scikit_learn_on_random_labellings():
    rng = np.random.default_rng(0)
    for _ in range(300):
        n = int(rng.integers(1, 60))
        true = rng.integers(0, int(rng.integers(1, 6)), n) * 3 + 1  # arbitrary label values
        pred = rng.integers(0, int(rng.integers(1, 6)), n)
        assert adjusted_rand_index(true, pred) == pytest.approx(adjusted_rand_score(true, pred), abs=1e-12)
    true = rng.integers(1, 4, 200_000)  # a whole clip's worth of pixels: no overflow
    pred = np.where(rng.random(200_000) < 0.8, true, rng.integers(0, 7, 200_000))
    assert adjusted_rand_index(true, pred) == pytest.approx(adjusted_rand_score(true, pred), abs=1e-9)


def test_video_fg_ari_ignores_background_and_scores_the_whole_clip():
    true = np.zeros((2, 4, 4), np.int64)
    true[:, :2, :2] = 1
    true[:, 2:, 2:] = 2
    pred = np.where(true == 1, 5, 7)
    pred[true == 0] = np.arange((true == 0).sum()) % 3  # background: anything
    assert video_fg_ari(true, pred) == 1.0
    swapped = pred.copy()
    swapped[1] = np.where(true[1] == 1, 7, 5)  # frame 1's slots swap objects: not consistent over time
    fg = true > 0
    assert video_fg_ari(true, swapped) == pytest.approx(adjusted_rand_score(true[fg], swapped[fg]))
    assert video_fg_ari(true, swapped) < 0.5


def test_mbo_hand_case():
    true = np.array([[[1, 1, 0, 0],
                      [1, 1, 0, 2]]])
    pred = np.array([[[3, 3, 3, 0],
                      [3, 3, 0, 0]]])
    # object 1 (4 px): best slot 3 (5 px, 4 shared), IoU 4/5; object 2 (1 px): best slot 0 (3 px), IoU 1/3
    assert mean_best_overlap(true, pred) == pytest.approx((4 / 5 + 1 / 3) / 2)
    assert math.isnan(mean_best_overlap(np.zeros((1, 2, 2), int), pred[:, :2, :2]))


def test_predicted_labels_upsample_bilinearly_then_take_the_strongest_slot():
    masks = torch.zeros(1, 2, 2, 2)
    masks[0, 0, :, 0] = 1  # slot 0 owns the left column of patches, slot 1 the right
    masks[0, 1, :, 1] = 1
    labels = predicted_labels(masks, 4, 4)
    assert labels.shape == (1, 4, 4)
    assert (labels[0, :, :2] == 0).all() and (labels[0, :, 2:] == 1).all()


# --------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def slot_run(tmp_path_factory):
    """A tiny slotcontrast run on 32 px bouncing balls: (run dir, frames root, recipe path)."""
    tmp = tmp_path_factory.mktemp("slots")
    root = tmp / "balls"
    config = SyntheticConfig(clips=4, frames=8, size=32, max_objects=2, seed=0)
    assert all(r.status == "done" for r in write_synthetic("bouncing-balls", root, config))
    recipe = write_recipe(
        tmp, root,
        data={"window_size": 3, "window_stride": 2, "augment": {"jitter_p": 0.0, "grayscale_p": 0.0}},
        model={"backbone": "vit_t8"},
        method={"name": "slotcontrast", "slotcontrast": {"num_slots": 3, "slot_dim": 16, "mlp_hidden": 32,
                                                  "decoder_hidden": 32, "predictor_heads": 2}},
        train={"epochs": 1, "batch_size": 4},
        probe={"task": "slots", "baselines": ["random_init"]},
    )
    outcome = train_in_process(recipe)
    assert outcome.exit_code == 0 and outcome.status == "finished"
    return tmp / "runs" / "tiny", root, recipe


def test_train_then_probe_slots(slot_run):
    run_dir, root, recipe_path = slot_run
    recipe = load_recipe(recipe_path)
    report = probe_slots(recipe, run_dir / run_files.FINAL_CHECKPOINT)
    assert isinstance(report, TaskReport) and report.task == "slots"
    assert [row[:3] for row in report.rows] == [["trained", "decoder", 1], ["trained", "attention", 1],
                                                ["random_init", "decoder", 1], ["random_init", "attention", 1]]
    assert len(report.columns) == len(report.rows[0])  # the test split of 4 clips: 1 clip
    for name in ("trained", "random_init"):
        m = report.metrics[name]
        assert m["clips"] == 1
        for prefix in ("", "attention_"):
            assert -1 <= m[f"{prefix}fg_ari"] <= 1 and 0 <= m[f"{prefix}mbo"] <= 1
    assert report.to_dict()["format"] == "cltt-probe-slots/1"


def test_probe_slots_needs_instance_masks(slot_run, tmp_path):
    run_dir, root, recipe_path = slot_run
    for masks in root.glob("*/masks.npz"):
        target = tmp_path / masks.parent.name
        target.mkdir()
        for frame in masks.parent.glob("*.jpg"):
            (target / frame.name).write_bytes(frame.read_bytes())
    recipe = load_recipe(recipe_path, [f"data.root={tmp_path}"])
    with pytest.raises(CLTTError, match="masks.npz"):
        probe_slots(recipe, run_dir / run_files.FINAL_CHECKPOINT)


def test_visualize_draws_slot_masks_over_frames(slot_run, tmp_path):
    run_dir, _, _ = slot_run
    out = tmp_path / "slots.png"
    result = invoke_in_process(main, ["visualize", run_dir, "--mode", "slots", "--clip", "clip_0001",
                                      "--frames", "5", "--out", out], tmp_path)
    assert result.exit_code == 0, result.output
    image = cv2.imread(str(out))
    assert image is not None
    side, caption, gap = 96, 14, 4  # cltt.data.tiles: 32 px frames enlarged to 96, captioned
    assert image.shape == (2 * (caption + side) + gap, 5 * side + 4 * gap, 3)
    frames_row, slots_row = image[caption:caption + side], image[2 * caption + side + gap:]
    assert not np.array_equal(frames_row, slots_row)  # the second row is tinted


def test_visualize_slots_says_what_is_wrong(slot_run, tmp_path):
    run_dir, _, _ = slot_run
    result = invoke_in_process(main, ["visualize", run_dir, "--mode", "slots", "--clip", "nope"], tmp_path)
    assert result.exit_code != 0 and "--clip nope is not a clip" in result.output
    result = invoke_in_process(main, ["visualize", tmp_path / "missing", "--mode", "slots"], tmp_path)
    assert result.exit_code != 0 and "does not exist" in result.output
