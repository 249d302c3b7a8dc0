"""One optimizer step on one process: exact and approximate sub-batches, non-finite losses,
the frames and groups each method scores, the epoch sampler and the learning-rate schedule.

Exactness is checked against an independent computation: the same method, same weights, the
whole batch in one forward and one backward pass. The tiny CNN normalises each frame on its
own (GroupNorm), so a sub-batch's embeddings are the full batch's rows up to float rounding in
the convolutions; gradients are compared with rtol 1e-4 and atol 1e-6 (observed differences
are below 3e-7 on gradients whose largest entries are about 3e-2).
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch

from cltt.data.model_input import to_model_input
from cltt.engine.device import resolve_placement
from cltt.engine.sampler import EpochBatchSampler
from cltt.engine.schedule import Schedule
from cltt.engine.step import NonFiniteLoss, accumulate_gradients
from cltt.methods import build_method
from cltt.methods.cltt import TemporalContrast
from cltt.methods.simclr import SimCLR
from cltt.objectives import infonce_loss
from cltt.recipe import recipe_from_dict

RTOL, ATOL = 1e-4, 1e-6
PLACEMENT = resolve_placement("cpu", "fp32", False)


def make_recipe(*, head_batchnorm: bool = False, window_size: int = 3, two_view_offset: int = 0,
                name: str = "cltt", pairing: str = "group", image_size: int = 32):
    return recipe_from_dict({
        "model": {"backbone": "tiny_cnn", "head_batchnorm": head_batchnorm},
        "data": {"image_size": image_size, "window_size": window_size, "two_view_offset": two_view_offset},
        "method": {"name": name, "pairing": pairing},
    })


def make_method(recipe, seed: int = 0):
    torch.manual_seed(seed)
    method = build_method(recipe)
    method.train()
    return method


def random_views(windows: int, views: int, frames: int, size: int = 32, seed: int = 1) -> torch.Tensor:
    """uint8 ``[windows, views, frames, 3, size, size]``, as the loader delivers them."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (windows, views, frames, 3, size, size), dtype=torch.uint8, generator=generator)


def step(method, views, sub_batch_size=None, accumulation="exact"):
    """(loss, {name: grad}) of one accumulate_gradients call on a copy of ``method``."""
    method = copy.deepcopy(method)
    loss = accumulate_gradients(method, views, PLACEMENT, PLACEMENT.scaler(), sub_batch_size, accumulation)
    return loss, {name: p.grad.clone() for name, p in method.named_parameters()}


def assert_same_step(expected, actual):
    expected_loss, expected_grads = expected
    actual_loss, actual_grads = actual
    assert actual_loss == pytest.approx(expected_loss, rel=1e-6)
    assert expected_grads.keys() == actual_grads.keys()
    for name, grad in expected_grads.items():
        assert grad.abs().max() > 0, f"{name} has an all-zero gradient; the comparison would say nothing"
        torch.testing.assert_close(actual_grads[name], grad, rtol=RTOL, atol=ATOL, msg=name)


# --------------------------------------------------------------------------- exact accumulation


@pytest.fixture(scope="module")
def cltt_case():
    """A tiny-CNN cltt method without batch norm and a batch of 64 one-view windows of 3 frames."""
    method = make_method(make_recipe())
    views = random_views(64, 1, 3)
    return method, views


@pytest.fixture(scope="module")
def cltt_full_step(cltt_case):
    """(loss, grads) of the 64 windows in one piece."""
    method, views = cltt_case
    return step(method, views)


def test_exact_sub_batches_equal_the_full_batch(cltt_case, cltt_full_step):
    method, views = cltt_case
    assert math.isfinite(cltt_full_step[0]) and cltt_full_step[0] > 0
    assert_same_step(cltt_full_step, step(method, views, sub_batch_size=16))


def test_exact_with_uneven_last_sub_batch_equals_the_full_batch(cltt_case):
    method, views = cltt_case
    views = views[:24]  # sub-batches of 16 and 8
    assert_same_step(step(method, views), step(method, views, sub_batch_size=16))


@pytest.mark.parametrize(
    "name, pairing, two_view_offset, num_views",
    [
        ("cltt", "group", 2, 2),
        ("cltt", "aligned", 2, 2),
        ("cltt", "first_last", 2, 2),
        ("cltt", "first_last", 0, 1),
        ("simclr", "group", 0, 2),
    ],
)
def test_exact_equals_full_batch_for_every_pairing(name, pairing, two_view_offset, num_views):
    recipe = make_recipe(name=name, pairing=pairing, two_view_offset=two_view_offset)
    method = make_method(recipe)
    assert method.dataset_views(recipe) in (1, num_views)
    views = random_views(16, num_views, 3, seed=2)
    full = step(method, views)
    assert math.isfinite(full[0]) and full[0] > 0
    assert_same_step(full, step(method, views, sub_batch_size=4))


def test_exact_with_batchnorm_is_exact_for_per_sub_batch_statistics():
    """With a batch-norm head the encoder's output depends on the sub-batch, so exact mode cannot
    equal the full batch. What it must equal: the full-batch loss of embeddings computed sub-batch
    by sub-batch (as under DDP, one sub-batch per GPU), and running statistics updated once per
    sub-batch - the no-graph embedding pass must leave no trace."""
    method = make_method(make_recipe(head_batchnorm=True))
    views = random_views(32, 1, 3, seed=3)
    sub = 8
    batchnorms = [m for m in method.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    assert len(batchnorms) == 1

    # Reference: a graph through every sub-batch, one loss over their concatenation.
    reference = copy.deepcopy(method)
    x = to_model_input(views, PLACEMENT.device)
    embeddings = torch.cat([reference.embed(chunk) for chunk in x.split(sub)])
    total, units = reference.loss_terms(embeddings, 0, embeddings.shape[0])
    (total / units).backward()
    expected = (float(total.detach() / units), {n: p.grad.clone() for n, p in reference.named_parameters()})

    exact = copy.deepcopy(method)
    loss = accumulate_gradients(exact, views, PLACEMENT, PLACEMENT.scaler(), sub, "exact")
    assert_same_step(expected, (loss, {n: p.grad.clone() for n, p in exact.named_parameters()}))

    # The full batch in one piece normalises with other statistics: a different loss.
    assert abs(step(method, views)[0] - loss) > 1e-4

    # Running statistics: those of exactly one pass over the 4 sub-batches, not two.
    (bn_exact,) = [m for m in exact.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    (bn_reference,) = [m for m in reference.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    assert int(bn_exact.num_batches_tracked) == 4
    torch.testing.assert_close(bn_exact.running_mean, bn_reference.running_mean, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(bn_exact.running_var, bn_reference.running_var, rtol=1e-5, atol=1e-7)
    # ...and measurably different from the statistics of two passes, so the check can fail.
    twice = copy.deepcopy(reference)
    with torch.no_grad():
        for chunk in x.split(sub):
            twice.embed(chunk)
    (bn_twice,) = [m for m in twice.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    assert (bn_twice.running_mean - bn_exact.running_mean).abs().max() > 1e-4


# --------------------------------------------------------------------------- approximate mode


def test_approximate_is_the_mean_of_sub_batch_losses_and_below_exact(cltt_case, cltt_full_step):
    """Inside a sub-batch each anchor keeps its positives (they are frames of its own window)
    and loses negatives, so each l_out term (log of a sum over fewer exponentials minus the same
    positive logits) is strictly smaller; with equal sub-batches every sub-batch has as many
    anchors, so the mean of sub-batch means is the mean of these smaller terms."""
    method, views = cltt_case
    exact_loss = cltt_full_step[0]
    approximate_loss, approximate_grads = step(method, views, sub_batch_size=16, accumulation="approximate")
    assert approximate_loss < exact_loss

    # Independent computation: the mean over sub-batches of each sub-batch's own InfoNCE loss.
    reference = copy.deepcopy(method)
    losses = []
    for chunk in to_model_input(views, PLACEMENT.device).split(16):
        z = reference.embed(chunk)
        groups = torch.arange(z.shape[0]).repeat_interleave(z.shape[1])
        losses.append(infonce_loss(z.flatten(0, 1), groups, temperature=reference.config.temperature))
    expected = torch.stack(losses).mean()
    expected.backward()
    assert approximate_loss == pytest.approx(float(expected.detach()), rel=1e-6)
    for name, p in reference.named_parameters():
        torch.testing.assert_close(approximate_grads[name], p.grad, rtol=RTOL, atol=ATOL, msg=name)


def test_approximate_without_sub_batches_is_the_full_batch(cltt_case):
    method, views = cltt_case
    views = views[:16]
    assert_same_step(step(method, views), step(method, views, accumulation="approximate"))


# --------------------------------------------------------------------------- non-finite loss


@pytest.mark.parametrize("sub_batch_size, accumulation", [(None, "exact"), (16, "exact"), (16, "approximate")])
def test_non_finite_loss_raises_before_any_backward(cltt_case, sub_batch_size, accumulation):
    method, views = cltt_case
    broken = copy.deepcopy(method)
    with torch.no_grad():
        broken.encoder.head.net[-1].bias.fill_(float("nan"))
    with pytest.raises(NonFiniteLoss, match="nan"):
        accumulate_gradients(broken, views, PLACEMENT, PLACEMENT.scaler(), sub_batch_size, accumulation)
    assert all(p.grad is None for p in broken.parameters())


# --------------------------------------------------------------------------- frames and groups


def labelled_views(windows: int, views: int, frames: int, size: int = 8) -> torch.Tensor:
    """Float ``[windows, views, frames, 3, size, size]`` whose every pixel reads 100*i + 10*v + t."""
    label = (100 * torch.arange(windows)[:, None, None] + 10 * torch.arange(views)[None, :, None]
             + torch.arange(frames)[None, None, :])
    return label[..., None, None, None].expand(windows, views, frames, 3, size, size).float()


def frame_labels(frames: torch.Tensor) -> list[list[int]]:
    """``[b, K, 3, S, S]`` -> the label of each selected frame, checking frames are constant."""
    assert (frames == frames[..., :1, :1, :1]).all()
    return frames[..., 0, 0, 0].long().tolist()


def test_group_pairing_puts_every_frame_of_a_window_in_one_group():
    method = TemporalContrast(make_recipe(window_size=3, image_size=8))
    assert method.frame_groups(2, 3, torch.device("cpu")).tolist() == [0, 0, 0, 1, 1, 1]
    assert frame_labels(method.select_frames(labelled_views(2, 1, 3))) == [[0, 1, 2], [100, 101, 102]]


def test_group_pairing_with_two_views_joins_both_views():
    method = TemporalContrast(make_recipe(window_size=2, two_view_offset=1, image_size=8))
    assert method.frame_groups(2, 4, torch.device("cpu")).tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert frame_labels(method.select_frames(labelled_views(2, 2, 2))) == [[0, 1, 10, 11], [100, 101, 110, 111]]


def test_aligned_pairing_pairs_frame_t_of_both_views():
    method = TemporalContrast(make_recipe(window_size=2, two_view_offset=1, pairing="aligned", image_size=8))
    # Embedding k of sample i is view k // 2, frame k % 2 (labels below): group i * 2 + k % 2.
    assert frame_labels(method.select_frames(labelled_views(2, 2, 2))) == [[0, 1, 10, 11], [100, 101, 110, 111]]
    assert method.frame_groups(2, 4, torch.device("cpu")).tolist() == [0, 1, 0, 1, 2, 3, 2, 3]


def test_first_last_pairing_selects_frames_0_and_last_of_view_0():
    method = TemporalContrast(make_recipe(window_size=4, two_view_offset=2, pairing="first_last", image_size=8))
    assert frame_labels(method.select_frames(labelled_views(2, 2, 4))) == [[0, 3], [100, 103]]
    assert method.frame_groups(2, 2, torch.device("cpu")).tolist() == [0, 0, 1, 1]


def test_simclr_pairs_frame_t_of_the_two_augmentations():
    recipe = make_recipe(name="simclr", window_size=2, image_size=8)
    method = SimCLR(recipe)
    assert method.dataset_views(recipe) == 2
    assert frame_labels(method.pair_frames(labelled_views(2, 2, 2))) == [[0, 1, 10, 11], [100, 101, 110, 111]]
    assert method.frame_groups(2, 4, torch.device("cpu")).tolist() == [0, 1, 0, 1, 2, 3, 2, 3]


def test_embed_shape_follows_the_selected_frames():
    method = make_method(make_recipe(window_size=4, two_view_offset=2, pairing="first_last", image_size=32))
    z = method.embed(to_model_input(random_views(3, 2, 4), PLACEMENT.device))
    assert z.shape == (3, 2, method.encoder.out_dim)


# --------------------------------------------------------------------------- sampler


def epoch_batches(sampler: EpochBatchSampler, epoch: int, start_batch: int = 0) -> list[list[tuple[int, int]]]:
    sampler.set_epoch(epoch, start_batch=start_batch)
    return list(sampler)


def test_two_ranks_together_see_the_one_process_batches():
    kwargs = dict(num_samples=53, global_batch=8, batches_per_epoch=6, seed=7)
    single = EpochBatchSampler(**kwargs)
    ranks = [EpochBatchSampler(**kwargs, rank=r, world_size=2) for r in range(2)]
    for epoch in (0, 3):
        full = epoch_batches(single, epoch)
        parts = [epoch_batches(sampler, epoch) for sampler in ranks]
        assert len(full) == 6 and all(len(p) == 6 for p in parts)
        for batch, first, second in zip(full, *parts):
            assert len(first) == len(second) == 4
            assert first + second == batch
            assert all(item_epoch == epoch for _, item_epoch in batch)
        indices = [index for batch in full for index, _ in batch]
        assert len(set(indices)) == len(indices) == 48 and set(indices) <= set(range(53))


@pytest.mark.parametrize("rank, world_size", [(0, 1), (1, 2)])
def test_start_batch_yields_the_tail_of_the_epoch(rank, world_size):
    sampler = EpochBatchSampler(40, 8, 5, seed=1, rank=rank, world_size=world_size)
    whole = epoch_batches(sampler, 2)
    for start in range(6):
        tail = epoch_batches(sampler, 2, start_batch=start)
        assert tail == whole[start:]
        assert len(sampler) == 5 - start


def test_order_depends_on_epoch_and_seed_only():
    a = EpochBatchSampler(40, 8, 5, seed=1)
    b = EpochBatchSampler(40, 8, 5, seed=1)
    c = EpochBatchSampler(40, 8, 5, seed=2)
    indices = lambda sampler, epoch: [i for batch in epoch_batches(sampler, epoch) for i, _ in batch]  # noqa: E731
    assert indices(a, 0) == indices(b, 0)
    assert indices(a, 4) == indices(b, 4)
    assert indices(a, 0) != indices(a, 1)
    assert indices(a, 0) != indices(c, 0)
    assert torch.equal(a.order(3), b.order(3))


def test_unshuffled_order_and_indivisible_batch():
    sampler = EpochBatchSampler(10, 4, 2, seed=0, rank=1, world_size=2, shuffle=False)
    assert epoch_batches(sampler, 5) == [[(2, 5), (3, 5)], [(6, 5), (7, 5)]]
    with pytest.raises(ValueError, match="divisible"):
        EpochBatchSampler(10, 5, 2, seed=0, world_size=2)


# --------------------------------------------------------------------------- schedule


def test_warmup_is_linear_then_cosine_ends_at_the_minimum():
    schedule = Schedule(base_lr=2e-3, total_steps=10, warmup_steps=4, kind="cosine", min_lr_ratio=0.1)
    assert [schedule.lr_at(s) for s in range(4)] == pytest.approx([5e-4, 1e-3, 1.5e-3, 2e-3])
    assert schedule.lr_at(4) == pytest.approx(2e-3)  # cosine starts at the base rate
    assert schedule.lr_at(7) == pytest.approx(2e-3 * (0.1 + 0.9 * 0.5))  # half way through the decay
    assert schedule.lr_at(10) == pytest.approx(2e-3 * 0.1)
    assert schedule.lr_at(25) == pytest.approx(2e-3 * 0.1)  # stays at the floor past the end
    after_warmup = [schedule.lr_at(s) for s in range(4, 11)]
    assert all(a >= b for a, b in zip(after_warmup, after_warmup[1:]))
    for s in (0, 5, 10):
        assert schedule.decay_rate(s) == pytest.approx(schedule.lr_at(s) / 2e-3)


def test_cosine_without_warmup_or_floor():
    schedule = Schedule(base_lr=1.0, total_steps=8)
    assert schedule.lr_at(0) == 1.0
    assert schedule.lr_at(2) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    assert schedule.lr_at(8) == pytest.approx(0.0, abs=1e-12)


def test_constant_schedule_after_warmup():
    schedule = Schedule(base_lr=0.1, total_steps=10, warmup_steps=2, kind="constant")
    assert [schedule.lr_at(s) for s in range(6)] == pytest.approx([0.05, 0.1, 0.1, 0.1, 0.1, 0.1])
    assert schedule.decay_rate(9) == pytest.approx(1.0)
    assert schedule.decay_rate(0) == pytest.approx(0.5)


# --------------------------------------------------------------------------- extras and local losses


def infonce_per_anchor(z: torch.Tensor, groups: torch.Tensor, temperature: float) -> torch.Tensor:
    """``[N]`` l_out InfoNCE of each anchor: -mean over its positives p of log softmax_{k != i}(s_ik)[p]."""
    z = torch.nn.functional.normalize(z.float(), dim=1)
    eye = torch.eye(len(z), dtype=torch.bool)
    logits = (z @ z.T / temperature).masked_fill(eye, float("-inf"))
    log_prob = logits - logits.logsumexp(dim=1, keepdim=True)
    positive = (groups[:, None] == groups[None, :]) & ~eye
    return -torch.where(positive, log_prob, 0.0).sum(1) / positive.sum(1)


class WeightedWithLocal(TemporalContrast):
    """A test method using both protocol extensions: an extra per-sample tensor ``weight [b]``
    that scales each anchor's InfoNCE terms, and a local loss 0.3 * sum of squared embeddings
    (units: embedding entries) that needs no other sample."""

    extra_keys = ("weight",)

    def forward_step(self, views, extras):
        from cltt.methods.base import Forward

        embeddings = self.embed(views)
        return Forward(embeddings, 0.3 * embeddings.float().pow(2).sum(), torch.tensor(embeddings.numel()))

    def loss_terms(self, embeddings, first, count, extras=None):
        groups = self.frame_groups(*embeddings.shape[:2], embeddings.device)
        per_anchor = infonce_per_anchor(embeddings.flatten(0, 1), groups, 0.1)
        frames = embeddings.shape[1]
        weights = extras["weight"].repeat_interleave(frames)
        rows = slice(first * frames, (first + count) * frames)
        return (per_anchor * weights)[rows].sum(), torch.tensor(float(count * frames))


def test_extras_and_local_loss_reach_the_objective_and_match_a_direct_computation():
    method = WeightedWithLocal(make_recipe())
    method.train()
    views = random_views(16, 1, 3)
    weight = torch.linspace(0.5, 1.5, 16)
    loss = accumulate_gradients(copy.deepcopy(method), views, PLACEMENT, PLACEMENT.scaler(), extras={"weight": weight})
    with torch.no_grad():
        z = method.embed(to_model_input(views, torch.device("cpu")))
        groups = method.frame_groups(16, 3, z.device)
        terms = infonce_per_anchor(z.flatten(0, 1), groups, 0.1)
        expected = (terms * weight.repeat_interleave(3)).mean() + 0.3 * z.pow(2).mean()
    assert loss == pytest.approx(float(expected), rel=1e-5)


def test_exact_sub_batches_keep_extras_and_local_loss_exact():
    method = WeightedWithLocal(make_recipe())
    method.train()
    views = random_views(16, 1, 3)
    extras = {"weight": torch.linspace(0.5, 1.5, 16)}

    def run(sub_batch_size):
        copied = copy.deepcopy(method)
        loss = accumulate_gradients(copied, views, PLACEMENT, PLACEMENT.scaler(), sub_batch_size, "exact", extras)
        return loss, {name: p.grad.clone() for name, p in copied.named_parameters()}

    assert_same_step(run(None), run(4))


def test_exact_sub_batches_replay_dropout_so_the_gradient_is_the_reported_losss(tmp_path):
    """GradCache embeds each sub-batch twice; with dropout the second pass drew other masks, so
    the gradient (cosine -0.03) was not that of the loss reported. Checked by central differences
    of the reported loss along the gradient, the random state reset before each evaluation."""
    recipe = recipe_from_dict({"method": {"name": "clip_simclr"}, "data": {"image_size": 32, "window_size": 4},
                               "model": {"backbone": "vivit", "head_batchnorm": False, "projection_dim": 16,
                                         "vivit": {"spatial_depth": 1, "temporal_depth": 1, "dropout": 0.3}}})
    torch.manual_seed(0)
    method = build_method(recipe).double()
    method.train()
    views = torch.randint(0, 256, (8, 2, 4, 3, 32, 32), generator=torch.Generator().manual_seed(1)).double() / 255
    placement = resolve_placement("cpu", "fp32", False)

    def loss_at(parameters: list[torch.Tensor] | None = None) -> float:
        torch.manual_seed(7)  # the same masks for every evaluation
        if parameters is not None:
            with torch.no_grad():
                for p, value in zip(method.parameters(), parameters):
                    p.copy_(value)
        method.zero_grad(set_to_none=True)
        return accumulate_gradients(method, views, placement, placement.scaler(), 2, "exact")

    start = [p.detach().clone() for p in method.parameters()]
    loss_at(start)
    grad = [p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p) for p in method.parameters()]
    norm = torch.sqrt(sum((g ** 2).sum() for g in grad))
    eps = 1e-4
    plus = loss_at([p + eps * g / norm for p, g in zip(start, grad)])
    minus = loss_at([p - eps * g / norm for p, g in zip(start, grad)])
    directional = (plus - minus) / (2 * eps)
    assert directional == pytest.approx(float(norm), rel=1e-3)


def test_sub_batches_with_batchnorm_are_said_and_really_differ(tmp_path, frames_root):
    """The default resnet18 with its BatchNorm head: exact sub-batches keep the loss but not the
    gradients (statistics per sub-batch); the trainer says so in one line. Without BatchNorm the
    same sub-batches give the full batch's gradients."""
    from cltt.cli import main
    from tests.conftest import invoke_in_process

    placement = resolve_placement("cpu", "fp32", False)
    views = torch.randint(0, 256, (8, 1, 3, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))

    def cosine(model: dict) -> tuple[float, float]:
        torch.manual_seed(0)
        method = build_method(recipe_from_dict({"model": model, "data": {"image_size": 32, "window_size": 3}}))
        method.train()
        grads, losses = [], []
        for sub in (None, 2):
            copy_ = copy.deepcopy(method)
            losses.append(accumulate_gradients(copy_, views, placement, placement.scaler(), sub, "exact"))
            grads.append(torch.cat([p.grad.reshape(-1) for p in copy_.parameters() if p.grad is not None]))
        return float(torch.nn.functional.cosine_similarity(grads[0], grads[1], dim=0)), losses[1] - losses[0]

    with_bn, loss_gap = cosine({"backbone": "resnet18"})
    assert with_bn < 0.95 and abs(loss_gap) > 1e-4  # per-sub-batch statistics change both
    without_bn, same_loss = cosine({"backbone": "tiny_cnn", "head_batchnorm": False})
    assert without_bn > 0.9999 and abs(same_loss) < 1e-5

    recipe = Path(__file__).parent.parent / "recipes" / "quickstart.yaml"
    result = invoke_in_process(main, ["train", recipe, f"data.root={frames_root}", "data.image_size=32",
                                      "model.backbone=resnet18", "train.batch_size=4", "train.sub_batch_size=2",
                                      "train.epochs=1", "data.num_workers=0"], tmp_path)
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if "train.sub_batch_size=2" in line)
    assert "BatchNorm normalises each sub-batch of 2" in line and "model.head_batchnorm=false" in line
