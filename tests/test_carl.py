"""CARL: the sequence contrastive loss, its two-view samples of whole videos, its model and method."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from cltt.data.build import open_frames
from cltt.data.model_input import to_model_input
from cltt.data.sequences import PAD_TIME, SequenceDataset, sample_region, sample_times
from cltt.engine import checkpoint as ckpt
from cltt.engine import run_files
from cltt.engine.device import resolve_placement
from cltt.engine.step import accumulate_gradients
from cltt.methods import build_method, method_class
from cltt.models.sequence import SequenceEncoder, sinusoidal_encoding
from cltt.objectives import sequence_contrast_loss
from cltt.recipe import AugmentConfig, load_recipe
from tests.conftest import write_clip
from tests.helpers.training import train_in_process, write_recipe

# --------------------------------------------------------------------------- the loss


def loop_loss(z1, z2, t1, t2, v1, v2, tau, sigma2):
    """The loss written out frame by frame in plain Python floats: (total, units)."""
    def cos(a, b):
        return sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))

    total, units = 0.0, 0
    for za, zb, ta, tb, va, vb in ((z1, z2, t1, t2, v1, v2), (z2, z1, t2, t1, v2, v1)):
        for b in range(len(za)):
            keys = [j for j in range(len(zb[b])) if vb[b][j]]
            for i in range(len(za[b])):
                if not va[b][i] or not keys:
                    continue
                logits = [cos(za[b][i], zb[b][j]) / tau for j in keys]
                top = max(logits)
                q = [math.exp(s - top) for s in logits]
                q = [x / sum(q) for x in q]
                closeness = [-(ta[b][i] - tb[b][j]) ** 2 / (2 * sigma2) for j in keys]
                g = [math.exp(c - max(closeness)) for c in closeness]  # normalised in log space, as the loss is
                p = [x / sum(g) for x in g]
                total += sum(pj * math.log(pj / qj) for pj, qj in zip(p, q) if pj > 0)
                units += 1
    return total, units


def random_case(seed: int, batch=3, frames=5, dim=4):
    """Embeddings and sorted times with padding at the end of some views (one view has a single frame)."""
    g = torch.Generator().manual_seed(seed)
    z1, z2 = torch.randn(batch, frames, dim, generator=g), torch.randn(batch, frames, dim, generator=g)
    counts = [[frames, 3], [2, frames], [1, 4]][:batch]
    times = torch.full((2, batch, frames), PAD_TIME, dtype=torch.int64)
    for b, (n1, n2) in enumerate(counts):
        for view, n in enumerate((n1, n2)):
            times[view, b, :n] = torch.sort(torch.randperm(30, generator=g)[:n]).values
    return z1, z2, times[0], times[1], times[0] >= 0, times[1] >= 0


def test_loss_matches_a_direct_double_loop():
    for seed in range(3):
        z1, z2, t1, t2, v1, v2 = random_case(seed)
        for tau, sigma2 in ((0.1, 10.0), (0.5, 2.0)):
            total, units = sequence_contrast_loss(z1, z2, t1, t2, v1, v2, tau, sigma2)
            expected, expected_units = loop_loss(z1.tolist(), z2.tolist(), t1.tolist(), t2.tolist(), v1.tolist(),
                                                 v2.tolist(), tau, sigma2)
            assert total.dtype == torch.float32 and float(units) == expected_units == int(v1.sum() + v2.sum())
            assert float(total) == pytest.approx(expected, rel=1e-4, abs=1e-5)


def test_loss_is_zero_when_prediction_equals_target():
    """Two frames per view at times 0 and 1; a third, padded. The target row of frame 0 is
    proportional to [1, exp(-1/(2 s2))], so its log-odds are 1/(2 s2); unit vectors at angle
    phi with 1 - cos(phi) = tau / (2 s2) give exactly those log-odds through softmax(cos / tau)."""
    tau, sigma2 = 0.1, 0.5
    phi = math.acos(1 - tau / (2 * sigma2))
    frames = torch.tensor([[1.0, 0.0], [math.cos(phi), math.sin(phi)], [-3.0, 7.0]])  # row 2: padding
    z = frames[None]
    times = torch.tensor([[0, 1, PAD_TIME]])
    valid = times >= 0
    total, units = sequence_contrast_loss(z, z.clone(), times, times.clone(), valid, valid.clone(), tau, sigma2)
    assert float(units) == 4 and abs(float(total)) < 1e-6
    off, _ = sequence_contrast_loss(z, z.flip(1), times, times, valid, valid, tau, sigma2)  # a wrong match
    assert float(off) > 0.1


def test_loss_is_non_negative_and_symmetric():
    for seed in range(8):
        z1, z2, t1, t2, v1, v2 = random_case(seed)
        total, units = sequence_contrast_loss(z1, z2, t1, t2, v1, v2, 0.1, 10.0)
        swapped, swapped_units = sequence_contrast_loss(z2, z1, t2, t1, v2, v1, 0.1, 10.0)
        assert float(total) >= 0
        assert float(swapped) == pytest.approx(float(total), rel=1e-6) and float(swapped_units) == float(units)


def test_padding_frames_are_ignored():
    z1, z2, t1, t2, v1, v2 = random_case(5)
    z1 = z1.clone().requires_grad_()
    total, units = sequence_contrast_loss(z1, z2, t1, t2, v1, v2, 0.1, 10.0)
    total.backward()
    total = total.detach()
    assert (z1.grad[~v1] == 0).all() and z1.grad[v1].abs().sum() > 0
    changed_z1, changed_z2 = z1.detach().clone(), z2.clone()
    changed_z1[~v1] = 100.0
    changed_z2[~v2] = -5.0
    changed_t1, changed_t2 = t1.masked_fill(~v1, 3), t2.masked_fill(~v2, 1000)
    again, again_units = sequence_contrast_loss(changed_z1, changed_z2, changed_t1, changed_t2, v1, v2, 0.1, 10.0)
    assert float(again) == pytest.approx(float(total), rel=1e-6) and float(again_units) == float(units)


def test_far_apart_frames_and_empty_views_stay_finite():
    z1 = torch.randn(2, 3, 4, requires_grad=True)
    z2 = torch.randn(2, 3, 4)
    t1 = torch.tensor([[0, 1, 2], [0, 1, 2]])
    t2 = torch.tensor([[0, 5000, 10000], [-1, -1, -1]])  # Gaussian weights underflow; sample 1: no frame
    v1, v2 = t1 >= 0, t2 >= 0
    total, units = sequence_contrast_loss(z1, z2, t1, t2, v1, v2, 0.1, 10.0)
    total.backward()
    total = total.detach()
    assert torch.isfinite(total) and torch.isfinite(z1.grad).all()
    assert float(units) == 6, "sample 1 has no frame to match in view 2, so neither direction counts"
    expected, _ = loop_loss(z1.tolist(), z2.tolist(), t1.tolist(), t2.tolist(), v1.tolist(), v2.tolist(), 0.1, 10.0)
    assert float(total) == pytest.approx(expected, rel=1e-4)


def test_half_precision_inputs_are_scored_in_float32():
    z1, z2, t1, t2, v1, v2 = random_case(2)
    low1, low2 = z1.bfloat16(), z2.bfloat16()
    total, _ = sequence_contrast_loss(low1, low2, t1, t2, v1, v2, 0.1, 10.0)
    reference, _ = sequence_contrast_loss(low1.float(), low2.float(), t1, t2, v1, v2, 0.1, 10.0)
    assert total.dtype == torch.float32 and float(total) == float(reference)


# --------------------------------------------------------------------------- the samples


@pytest.fixture
def videos(tmp_path) -> Path:
    """Clips of 40 and 5 moving-square frames and one of 10 identical frames, 32x32."""
    root = tmp_path / "videos"
    write_clip(root, "a_long", 40, size=(32, 32))
    write_clip(root, "b_short", 5, size=(32, 32))
    still = root / "c_still"
    still.mkdir()
    image = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    for i in range(1, 11):
        cv2.imwrite(str(still / f"frame_{i}.jpg"), image)
    return root


def dataset(root: Path, frames=8, region=(0.5, 1.0), augment=None, seed=0, samples_per_clip=1) -> SequenceDataset:
    manifest = open_frames_root(root)
    return SequenceDataset(manifest, frames, region, 32, augment or AugmentConfig(), seed=seed,
                           samples_per_clip=samples_per_clip)


def open_frames_root(root: Path):
    from cltt.data.stores import open_store

    return open_store(root)


def test_samples_are_two_sorted_views_of_one_clip(videos):
    data = dataset(videos, samples_per_clip=2)
    assert len(data) == 6 and data.clip_of(5) == 2
    for index in range(len(data)):
        for epoch in range(3):
            item = data[(index, epoch)]
            views, times, valid = item["views"], item["times"], item["valid"]
            assert views.shape == (2, 8, 3, 32, 32) and views.dtype == torch.uint8
            assert times.shape == (2, 8) and times.dtype == torch.int64 and valid.dtype == torch.bool
            n = int(data.store.frame_counts[data.clip_of(index)])
            assert torch.equal(valid, times != PAD_TIME)
            for view in range(2):
                kept = times[view][valid[view]]
                assert len(kept) == min(8, len(kept)) and (kept[1:] > kept[:-1]).all(), "sorted, no repeats"
                assert kept.min() >= 0 and kept.max() < n
                assert kept.max() - kept.min() + 1 <= n
                assert not valid[view][len(kept):].any(), "padding only at the end"
                assert (views[view][~valid[view]] == 0).all()
            assert item["replaced"] == 0 and item["index"] == index


def test_a_short_clip_is_taken_whole_and_padded(videos):
    data = dataset(videos, region=(1.0, 1.0))
    item = data[(1, 0)]  # b_short: 5 frames < T = 8
    assert item["times"].tolist() == [[0, 1, 2, 3, 4, -1, -1, -1]] * 2
    assert item["valid"].tolist() == [[True] * 5 + [False] * 3] * 2
    assert (item["views"][:, :5].flatten(1).amax(dim=1) > 0).all()
    long = data[(0, 0)]["times"]  # a_long: 40 frames, T = 8 of them drawn from the whole clip
    assert (long >= 0).all() and not torch.equal(long[0], long[1])


def test_the_two_regions_overlap_and_differ():
    rng = np.random.default_rng(0)
    starts = set()
    for _ in range(500):
        first = sample_region(rng, 50, (0.2, 0.4))
        second = sample_region(rng, 50, (0.2, 0.4), overlap=first)
        for start, length in (first, second):
            assert 10 <= length <= 20 and 0 <= start and start + length <= 50
        assert max(first[0], second[0]) < min(first[0] + first[1], second[0] + second[1]), "they share a frame"
        starts.add(second[0] - first[0])
    assert len(starts) > 10
    times, valid = sample_times(rng, 7, 3, 5)
    assert times.tolist() == [7, 8, 9, -1, -1] and valid.tolist() == [True] * 3 + [False] * 2


def test_samples_depend_only_on_seed_epoch_and_index(videos):
    a, b = dataset(videos), dataset(videos)
    for index in range(3):
        first, again = a[(index, 4)], b[(index, 4)]
        for key in ("views", "times", "valid"):
            assert torch.equal(first[key], again[key])
    assert any(not torch.equal(a[(0, 0)]["times"], a[(0, e)]["times"]) for e in range(1, 4)), "epochs differ"
    assert not torch.equal(a[(0, 0)]["views"], dataset(videos, seed=1)[(0, 0)]["views"]), "seeds differ"


def test_one_augmentation_per_view(videos):
    strong = AugmentConfig(crop_scale=[0.2, 0.5], jitter_p=1.0, flip_p=0.5)
    item = dataset(videos, augment=strong, region=(1.0, 1.0))[(2, 0)]  # c_still: 10 identical frames
    views = item["views"]
    for view in range(2):
        assert all(torch.equal(views[view, 0], views[view, t]) for t in range(1, 8)), "one crop and colour per view"
    assert not torch.equal(views[0, 0], views[1, 0]), "the two views are augmented differently"


def test_a_corrupt_frame_replaces_the_sample(videos, caplog):
    (videos / "b_short" / "frame_3.jpg").write_bytes(b"not a jpeg")
    data = dataset(videos, region=(1.0, 1.0))  # b_short is taken whole, so its bad frame is read
    item = data[(1, 0)]
    assert item["index"] == 2 and item["replaced"] == 1
    assert "frame_3.jpg" in caplog.text


# --------------------------------------------------------------------------- model and method

TINY_CARL = {"frames": 4, "layers": 1, "heads": 2, "embedding_dim": 16}


def carl_recipe(tmp_path: Path, root: Path, **train):
    return write_recipe(tmp_path, root, method={"name": "carl", "carl": TINY_CARL},
                        model={"projection_dim": 8}, train={"batch_size": 3, **train})


def test_sinusoidal_encoding_is_the_transformer_formula():
    codes = sinusoidal_encoding(torch.tensor([0, 1, 5]), 6)
    for row, p in enumerate((0, 1, 5)):
        for i in range(3):
            angle = p / 10000 ** (2 * i / 6)
            assert float(codes[row, 2 * i]) == pytest.approx(math.sin(angle), abs=1e-6)
            assert float(codes[row, 2 * i + 1]) == pytest.approx(math.cos(angle), abs=1e-6)
    assert sinusoidal_encoding(torch.arange(4), 5).shape == (4, 5)


def test_padding_frames_do_not_change_the_valid_embeddings():
    torch.manual_seed(0)
    encoder = SequenceEncoder(in_dim=6, dim=8, layers=2, heads=2).eval()
    features = torch.randn(2, 5, 6)
    valid = torch.tensor([[True] * 3 + [False] * 2, [True] * 5])
    out = encoder(features, valid)
    changed = features.clone()
    changed[0, 3:] = 50.0
    again = encoder(changed, valid)
    torch.testing.assert_close(again[valid], out[valid])
    assert not torch.allclose(encoder(changed)[0, :3], out[0, :3]), "without the mask the padding would leak in"
    assert out.shape == (2, 5, 8)


def test_method_embeds_views_and_scores_each_sample_alone(tmp_path, videos):
    recipe = load_recipe(carl_recipe(tmp_path, videos))
    method = build_method(recipe)
    assert method_class("carl").extra_keys == ("times", "valid")
    data = method_class("carl").training_dataset(recipe, open_frames(recipe.data), seed=0)
    items = [data[(i, 0)] for i in range(3)]
    views = to_model_input(torch.stack([it["views"] for it in items]), torch.device("cpu"))
    extras = {key: torch.stack([it[key] for it in items]) for key in ("times", "valid")}
    embeddings = method.forward_step(views, extras).embeddings.detach()
    assert embeddings.shape == (3, 8, 8)  # [b, 2T, projection_dim]
    total, units = method.loss_terms(embeddings, 1, 1, extras)
    alone, alone_units = sequence_contrast_loss(embeddings[1:2, :4], embeddings[1:2, 4:], extras["times"][1:2, 0],
                                                extras["times"][1:2, 1], extras["valid"][1:2, 0],
                                                extras["valid"][1:2, 1], 0.1, 10.0)
    assert float(total) == pytest.approx(float(alone)) and float(units) == float(alone_units)
    frames = method.frame_embeddings(views[:, 0], extras["valid"][:, 0])
    assert frames.shape == (3, 4, 16)
    assert method.encoder.represent(views[:, 0]).shape == (3, 4, 128)  # tiny_cnn features per frame


def test_sub_batches_give_the_full_batch_gradient(tmp_path, videos):
    recipe = load_recipe(carl_recipe(tmp_path, videos))
    data = method_class("carl").training_dataset(recipe, open_frames(recipe.data), seed=0)
    items = [data[(i, 0)] for i in range(3)]
    views = torch.stack([it["views"] for it in items])
    extras = {key: torch.stack([it[key] for it in items]) for key in ("times", "valid")}
    placement = resolve_placement("cpu", "fp32", False)
    grads, losses = [], []
    for sub_batch_size in (None, 1):
        torch.manual_seed(0)
        method = build_method(recipe).train()
        losses.append(accumulate_gradients(method, views, placement, placement.scaler(), sub_batch_size, "exact", extras))
        grads.append(torch.cat([p.grad.reshape(-1) for p in method.parameters() if p.grad is not None]))
    assert losses[0] == pytest.approx(losses[1], rel=1e-5) and grads[0].abs().max() > 0
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-4, atol=1e-6)


def test_carl_trains_end_to_end(tmp_path, videos):
    outcome = train_in_process(carl_recipe(tmp_path, videos, epochs=2))
    assert outcome.status == "finished" and outcome.step == 2 and math.isfinite(outcome.loss)
    state = ckpt.load_checkpoint(tmp_path / "runs" / "tiny" / run_files.FINAL_CHECKPOINT)
    assert state["method"] == "carl"
    build_method(load_recipe(carl_recipe(tmp_path, videos))).load_state_dict(state["model"])
