"""Contrastive objectives against independent computations.

The references here are direct transcriptions of the formulas (a double loop over anchors and
candidates, naive exp/log, no masking or logsumexp tricks), pytorch-metric-learning's losses,
and a few cases worked out by hand.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from pytorch_metric_learning import losses as pml_losses

from cltt.objectives import infonce_loss, multi_positive_infonce, nt_xent

REDUCTIONS = ("l_out", "pairwise", "l_in")
TEMPERATURES = (0.05, 0.1, 0.5)
DIM = 8


def make_layout(name: str) -> list[int]:
    """Group ids of one batch, row by row."""
    if name == "2x3":
        return [0, 0, 0, 1, 1, 1]
    if name == "4x2":
        return [0, 0, 1, 1, 2, 2, 3, 3]
    if name == "unequal":
        # five groups of sizes 3, 1, 2, 4, 2 (one singleton), arbitrary ids, rows interleaved
        ids = [7, 3, 11, 0, 5]
        rows = [gid for gid, size in zip(ids, (3, 1, 2, 4, 2)) for _ in range(size)]
        return [rows[k] for k in np.random.default_rng(123).permutation(len(rows))]
    raise KeyError(name)


LAYOUTS = ("2x3", "4x2", "unequal")


def make_batch(layout: str, seed: int) -> tuple[np.ndarray, list[int]]:
    groups = make_layout(layout)
    embeddings = np.random.default_rng(seed).normal(size=(len(groups), DIM))
    return embeddings, groups


# --- the reference: the formulas transcribed literally ------------------------------------------


def reference_infonce(cos, groups, temperature, reduction, decoupled, exp, log):
    """(total, count) by a direct loop over anchors i and candidates j.

    cos is an N x N table of cosine similarities (Python floats, or 0-d float64 tensors when the
    gradient is wanted); exp and log the matching scalar functions.
    """
    n = len(groups)
    total, count = 0.0, 0
    for i in range(n):
        positives = [j for j in range(n) if j != i and groups[j] == groups[i]]
        negatives = [j for j in range(n) if groups[j] != groups[i]]
        if not positives or (decoupled and not negatives):
            continue
        e = [exp(cos[i][j] / temperature) for j in range(n)]
        negative_sum = sum(e[k] for k in negatives)
        if reduction == "pairwise":
            for p in positives:
                denominator = negative_sum if decoupled else e[p] + negative_sum
                total = total - log(e[p] / denominator)
                count += 1
            continue
        denominator = negative_sum if decoupled else sum(e[a] for a in range(n) if a != i)
        if reduction == "l_out":
            total = total - sum(log(e[p] / denominator) for p in positives) / len(positives)
        else:
            total = total - log(sum(e[p] for p in positives) / len(positives) / denominator)
        count += 1
    return total, count


def numpy_cosines(z: np.ndarray) -> list[list[float]]:
    n = len(z)
    return [[float(np.dot(z[i], z[j]) / (np.linalg.norm(z[i]) * np.linalg.norm(z[j]))) for j in range(n)] for i in range(n)]


def torch_cosines(z: torch.Tensor) -> list[list[torch.Tensor]]:
    n = z.shape[0]
    return [[torch.dot(z[i], z[j]) / (z[i].norm() * z[j].norm()) for j in range(n)] for i in range(n)]


def reference_numpy(embeddings, groups, temperature, reduction, decoupled):
    cosines = numpy_cosines(np.asarray(embeddings, dtype=np.float64))
    return reference_infonce(cosines, groups, temperature, reduction, decoupled, math.exp, math.log)


# --- against the double loop --------------------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("temperature", TEMPERATURES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("decoupled", (False, True))
def test_matches_double_loop(layout, temperature, reduction, decoupled):
    embeddings, groups = make_batch(layout, seed=LAYOUTS.index(layout))
    expected_total, expected_count = reference_numpy(embeddings, groups, temperature, reduction, decoupled)
    total, count = multi_positive_infonce(
        torch.tensor(embeddings, dtype=torch.float32),
        torch.tensor(groups),
        temperature=temperature,
        reduction=reduction,
        decoupled=decoupled,
    )
    assert total.dtype == torch.float32 and count.dtype == torch.float32
    assert total.shape == () and count.shape == ()
    assert count.item() == expected_count
    assert total.item() == pytest.approx(expected_total, rel=1e-5, abs=1e-5)
    mean = infonce_loss(torch.tensor(embeddings), torch.tensor(groups), temperature=temperature, reduction=reduction, decoupled=decoupled)
    assert mean.item() == pytest.approx(expected_total / expected_count, rel=1e-5, abs=1e-5)


def test_reductions_agree_with_one_positive_per_anchor():
    # pairs only: every reduction reduces to the same single term per anchor
    embeddings, groups = make_batch("4x2", seed=5)
    values = [infonce_loss(torch.tensor(embeddings), torch.tensor(groups), reduction=r).item() for r in REDUCTIONS]
    assert values == pytest.approx([values[0]] * 3, rel=1e-6)


# --- gradients ----------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("temperature", (0.05, 0.5))
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("decoupled", (False, True))
def test_gradient_matches_double_loop(layout, temperature, reduction, decoupled):
    # The reference loop run on float64 tensors, differentiated by autograd. (gradcheck's finite
    # differences would not do: the loss computes in float32 by contract.)
    embeddings, groups = make_batch(layout, seed=10 + LAYOUTS.index(layout))
    z64 = torch.tensor(embeddings, dtype=torch.float64, requires_grad=True)
    ref_total, ref_count = reference_infonce(torch_cosines(z64), groups, temperature, reduction, decoupled, torch.exp, torch.log)
    (ref_total / ref_count).backward()

    z32 = torch.tensor(embeddings, dtype=torch.float32, requires_grad=True)
    infonce_loss(z32, torch.tensor(groups), temperature=temperature, reduction=reduction, decoupled=decoupled).backward()
    scale = z64.grad.abs().max().item()
    np.testing.assert_allclose(z32.grad.numpy(), z64.grad.numpy(), rtol=1e-4, atol=1e-5 * scale)


# --- against pytorch-metric-learning ------------------------------------------------------------
#
# SupConLoss computes the same per-anchor L_out terms (anchors without a positive get 0) and
# reduces them with AvgNonZeroReducer: the mean over terms that are > 0. That equals our
# total / count in every batch that has a negative somewhere, because there a counted term is
# strictly positive (its denominator has at least one more exp than its numerator). Two
# differences in convention, both at the edges:
#   * a batch with no negative at all (one group) makes SupConLoss return 0 without looking
#     further; we still count those anchors and give a positive L_out (log of how many positives
#     share the denominator). See test_supcon_single_group_convention.
#   * a term that underflows to exactly 0.0 in float32 (a perfectly separated anchor at a tiny
#     temperature) drops out of SupCon's average but stays in our count.
# NTXentLoss gives one term per positive pair, other positives left out of the denominator, and
# MeanReducer averages over all pairs: that is our "pairwise" reduction exactly (it adds
# finfo.tiny inside its log, far below these tolerances).


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("temperature", TEMPERATURES)
def test_l_out_matches_pml_supcon(layout, temperature):
    embeddings, groups = make_batch(layout, seed=20 + LAYOUTS.index(layout))
    expected = pml_losses.SupConLoss(temperature=temperature)(torch.tensor(embeddings), torch.tensor(groups))
    ours = infonce_loss(torch.tensor(embeddings, dtype=torch.float32), torch.tensor(groups), temperature=temperature, reduction="l_out")
    assert ours.item() == pytest.approx(expected.item(), rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("temperature", TEMPERATURES)
def test_pairwise_matches_pml_ntxent(layout, temperature):
    embeddings, groups = make_batch(layout, seed=30 + LAYOUTS.index(layout))
    expected = pml_losses.NTXentLoss(temperature=temperature)(torch.tensor(embeddings), torch.tensor(groups))
    ours = infonce_loss(torch.tensor(embeddings, dtype=torch.float32), torch.tensor(groups), temperature=temperature, reduction="pairwise")
    assert ours.item() == pytest.approx(expected.item(), rel=1e-5, abs=1e-6)


def test_supcon_single_group_convention():
    embeddings = torch.tensor(np.random.default_rng(0).normal(size=(4, DIM)))
    groups = torch.zeros(4, dtype=torch.long)
    assert pml_losses.SupConLoss(temperature=0.1)(embeddings, groups).item() == 0.0
    total, count = multi_positive_infonce(embeddings, groups, temperature=0.1)
    assert count.item() == 4
    # every anchor's denominator is exactly its 3 positives: the mean log-prob is at most -log 3
    assert total.item() / 4 >= math.log(3) - 1e-6
    # pairwise: each pair's denominator is its own exp only, term 0; PML agrees (0), count 12
    total, count = multi_positive_infonce(embeddings, groups, reduction="pairwise")
    assert (total.item(), count.item()) == (0.0, 12)
    assert pml_losses.NTXentLoss(temperature=0.1)(embeddings, groups).item() == 0.0


@pytest.mark.parametrize("batch", (2, 5))
@pytest.mark.parametrize("temperature", TEMPERATURES)
def test_nt_xent_matches_pml_ntxent(batch, temperature):
    rng = np.random.default_rng(batch)
    view_a, view_b = (torch.tensor(rng.normal(size=(batch, DIM)), dtype=torch.float32) for _ in range(2))
    labels = torch.arange(batch).repeat(2)
    expected = pml_losses.NTXentLoss(temperature=temperature)(torch.cat([view_a, view_b]).double(), labels)
    # abs: a loss near 1e-5 is a difference of two logits near 20, so float32 leaves ~1e-7 absolute
    assert nt_xent(view_a, view_b, temperature=temperature).item() == pytest.approx(expected.item(), rel=1e-5, abs=1e-6)


# --- by hand ------------------------------------------------------------------------------------

E1, E2, E3 = (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)


def test_two_windows_of_three_frames_by_hand():
    # rows: w0f0, w0f1, w0f2, w1f0, w1f1, w1f2; w0f1 has length 2 to check the normalisation
    embeddings = torch.tensor([E1, (2.0, 0.0, 0.0), E2, E3, E3, (-1.0, 0.0, 0.0)])
    groups = torch.tensor([0, 0, 0, 1, 1, 1])
    positive_mask = [
        [0, 1, 1, 0, 0, 0],
        [1, 0, 1, 0, 0, 0],
        [1, 1, 0, 0, 0, 0],
        [0, 0, 0, 0, 1, 1],
        [0, 0, 0, 1, 0, 1],
        [0, 0, 0, 1, 1, 0],
    ]
    assert positive_mask == [[int(gi == gj and i != j) for j, gj in enumerate(groups.tolist())] for i, gi in enumerate(groups.tolist())]
    cosines = [  # the similarities the vectors above were chosen to give
        [1, 1, 0, 0, 0, -1],
        [1, 1, 0, 0, 0, -1],
        [0, 0, 1, 0, 0, 0],
        [0, 0, 0, 1, 1, 0],
        [0, 0, 0, 1, 1, 0],
        [-1, -1, 0, 0, 0, 1],
    ]
    z = torch.nn.functional.normalize(embeddings, dim=1)
    assert (z @ z.T).tolist() == cosines

    # tau = 0.5, so s = 2 cos. L_out per anchor = log(denominator) - mean positive s.
    e = math.exp
    w0f0 = math.log(e(2) + 1 + 1 + 1 + e(-2)) - (2 + 0) / 2  # positives s = 2 (w0f1), 0 (w0f2)
    w0f1 = w0f0  # same vector
    w0f2 = math.log(5 * e(0)) - 0  # orthogonal to everything else
    w1f0 = math.log(1 + 1 + 1 + e(2) + 1) - (2 + 0) / 2  # positives s = 2 (w1f1), 0 (w1f2)
    w1f1 = w1f0
    w1f2 = math.log(e(-2) + e(-2) + 1 + 1 + 1) - (0 + 0) / 2  # negatives w0f0, w0f1 at s = -2
    expected = (w0f0 + w0f1 + w0f2 + w1f0 + w1f1 + w1f2) / 6
    total, count = multi_positive_infonce(embeddings, groups, temperature=0.5)
    assert count.item() == 6
    assert total.item() / 6 == pytest.approx(expected, rel=1e-6)

    # decoupled: the denominators keep the three negatives only
    w0f0 = math.log(1 + 1 + e(-2)) - 1
    w0f2 = math.log(3)
    w1f0 = math.log(1 + 1 + 1) - 1
    w1f2 = math.log(e(-2) + e(-2) + 1)
    expected = (2 * w0f0 + w0f2 + 2 * w1f0 + w1f2) / 6
    assert infonce_loss(embeddings, groups, temperature=0.5, decoupled=True).item() == pytest.approx(expected, rel=1e-6)


def test_nt_xent_by_hand():
    r = math.sqrt(0.5)
    view_a = torch.tensor([(1.0, 0.0), (0.0, 1.0)])
    view_b = torch.tensor([(r, r), (-1.0, 0.0)])
    # rows a0, a1, b0, b1; tau = 0.5 so s = 2 cos; twins a0-b0 (cos r), a1-b1 (cos 0)
    s2 = 2 * r  # = sqrt(2)
    e = math.exp
    a0 = math.log(e(s2) + e(0) + e(-2)) - s2  # others: b0 (twin), a1 (0), b1 (-2)
    a1 = math.log(e(0) + e(0) + e(s2)) - 0  # others: b1 (twin), a0 (0), b0 (sqrt 2)
    b0 = math.log(e(s2) + e(s2) + e(-s2)) - s2  # others: a0 (twin), a1 (sqrt 2), b1 (-sqrt 2)
    b1 = math.log(e(0) + e(-2) + e(-s2)) - 0  # others: a1 (twin), a0 (-2), b0 (-sqrt 2)
    expected = (a0 + a1 + b0 + b1) / 4
    assert nt_xent(view_a, view_b, temperature=0.5).item() == pytest.approx(expected, rel=1e-6)
    assert nt_xent(view_b, view_a, temperature=0.5).item() == pytest.approx(expected, rel=1e-6)


def test_nt_xent_symmetric_in_the_views():
    rng = np.random.default_rng(7)
    view_a, view_b = (torch.tensor(rng.normal(size=(6, DIM)), dtype=torch.float32) for _ in range(2))
    assert nt_xent(view_a, view_b).item() == pytest.approx(nt_xent(view_b, view_a).item(), rel=1e-6)


# --- edge cases ---------------------------------------------------------------------------------


@pytest.mark.parametrize("reduction, decoupled", list(itertools.product(REDUCTIONS, (False, True))))
def test_singleton_anchor_adds_nothing_and_no_nan(reduction, decoupled):
    embeddings, groups = make_batch("unequal", seed=40)
    singleton = next(i for i, g in enumerate(groups) if groups.count(g) == 1)
    z = torch.tensor(embeddings, dtype=torch.float32, requires_grad=True)
    total, count = multi_positive_infonce(z, torch.tensor(groups), reduction=reduction, decoupled=decoupled)
    (total / count).backward()
    assert torch.isfinite(total) and torch.isfinite(z.grad).all()
    alone_total, alone_count = multi_positive_infonce(
        z, torch.tensor(groups), reduction=reduction, decoupled=decoupled, anchors=torch.tensor([singleton])
    )
    assert (alone_total.item(), alone_count.item()) == (0.0, 0.0)


@pytest.mark.parametrize("reduction, decoupled", list(itertools.product(REDUCTIONS, (False, True))))
def test_nothing_counts_gives_zero_with_a_graph(reduction, decoupled):
    z = torch.randn(5, DIM, requires_grad=True)
    batches = [torch.arange(5)]  # all singletons: no positives
    if decoupled:
        batches.append(torch.zeros(5, dtype=torch.long))  # one group: no negatives
    for groups in batches:
        z.grad = None
        total, count = multi_positive_infonce(z, groups, reduction=reduction, decoupled=decoupled)
        assert (total.item(), count.item()) == (0.0, 0.0)
        assert total.requires_grad
        loss = infonce_loss(z, groups, reduction=reduction, decoupled=decoupled)
        assert loss.item() == 0.0
        loss.backward()
        assert torch.equal(z.grad, torch.zeros_like(z))


@pytest.mark.parametrize("reduction, decoupled", list(itertools.product(REDUCTIONS, (False, True))))
def test_tiny_temperature_stays_finite(reduction, decoupled):
    embeddings, groups = make_batch("unequal", seed=50)
    # make positives nearly identical so s_ip ~ 100 at tau = 0.01: exp() of that overflows float32
    embeddings = embeddings + 20 * np.array([np.eye(DIM)[g % DIM] for g in groups])
    z = torch.tensor(embeddings, dtype=torch.float32, requires_grad=True)
    loss = infonce_loss(z, torch.tensor(groups), temperature=0.01, reduction=reduction, decoupled=decoupled)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(z.grad).all()
    expected_total, expected_count = reference_numpy(embeddings, groups, 0.01, reduction, decoupled)
    assert loss.item() == pytest.approx(expected_total / expected_count, rel=1e-4, abs=1e-4)


@pytest.mark.parametrize("reduction, decoupled", list(itertools.product(REDUCTIONS, (False, True))))
def test_anchor_subsets_add_up(reduction, decoupled):
    embeddings, groups = make_batch("unequal", seed=60)
    z, g = torch.tensor(embeddings, dtype=torch.float32), torch.tensor(groups)
    order = torch.randperm(len(groups), generator=torch.Generator().manual_seed(0))
    first, second = order[:5], order[5:]
    kw = dict(reduction=reduction, decoupled=decoupled, temperature=0.1)
    full_total, full_count = multi_positive_infonce(z, g, **kw)
    total_1, count_1 = multi_positive_infonce(z, g, anchors=first, **kw)
    total_2, count_2 = multi_positive_infonce(z, g, anchors=second, **kw)
    assert (total_1 + total_2).item() == pytest.approx(full_total.item(), rel=1e-6)
    assert (count_1 + count_2).item() == full_count.item()
    explicit_total, explicit_count = multi_positive_infonce(z, g, anchors=torch.arange(len(groups)), **kw)
    assert (explicit_total.item(), explicit_count.item()) == pytest.approx((full_total.item(), full_count.item()), rel=1e-6)


@pytest.mark.parametrize("dtype", (torch.bfloat16, torch.float16))
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_half_precision_input_computes_in_float32(dtype, reduction):
    embeddings, groups = make_batch("unequal", seed=70)
    z32 = torch.tensor(embeddings, dtype=torch.float32)
    z_half = z32.to(dtype).requires_grad_()
    loss = infonce_loss(z_half, torch.tensor(groups), reduction=reduction)
    assert loss.dtype == torch.float32
    loss.backward()
    assert z_half.grad.dtype == dtype and torch.isfinite(z_half.grad.float()).all()
    # the same rounded inputs in float32 give the same number: nothing ran in half precision
    same_inputs = infonce_loss(z_half.detach().float(), torch.tensor(groups), reduction=reduction)
    assert loss.item() == pytest.approx(same_inputs.item(), rel=1e-6)
    # and rounding the inputs moves the loss only a little
    assert loss.item() == pytest.approx(infonce_loss(z32, torch.tensor(groups), reduction=reduction).item(), rel=2e-2)


def test_rejects_bad_arguments():
    z, g = torch.randn(4, DIM), torch.tensor([0, 0, 1, 1])
    with pytest.raises(ValueError, match="reduction"):
        multi_positive_infonce(z, g, reduction="mean")
    with pytest.raises(ValueError, match="temperature"):
        multi_positive_infonce(z, g, temperature=0.0)
    with pytest.raises(ValueError, match="groups"):
        multi_positive_infonce(z, g[:3])
    with pytest.raises(ValueError, match="views"):
        nt_xent(z, z[:3])
