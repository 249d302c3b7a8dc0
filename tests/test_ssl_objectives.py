"""BYOL, VICReg, Barlow Twins and DINO losses against hand-worked cases and lightly's
implementations (a test-only dependency), over a grid of sizes and temperatures; the EMA
teacher's momentum schedule and update. Their distributed forms (two gloo processes equal
one) are tested for every registered method in tests/test_methods_engine.py."""

from __future__ import annotations

import math

import pytest
import torch

from cltt.methods.teacher import momentum_at
from cltt.objectives.barlow_twins import barlow_twins_loss
from cltt.objectives.byol import byol_loss
from cltt.objectives.dino import dino_loss, teacher_temperature_at, updated_center
from cltt.objectives.vicreg import vicreg_loss

lightly_loss = pytest.importorskip("lightly.loss")

SIZES = [(4, 8), (16, 32), (64, 128)]


def random_pair(n: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    a = torch.randn(n, d, generator=generator, dtype=torch.float64)
    return a, a + 0.5 * torch.randn(n, d, generator=generator, dtype=torch.float64)


# --------------------------------------------------------------------------- hand-worked cases


def test_byol_by_hand():
    # pair a->b: p_a = (1, 0) against t_b = (0, 1): cos 0, term 2; b->a: p_b = (1, 1) against t_a = (2, 2): cos 1, term 0
    p_a, t_b = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    p_b, t_a = torch.tensor([[1.0, 1.0]]), torch.tensor([[2.0, 2.0]])
    assert float(byol_loss(p_a, p_b, t_a, t_b)) == pytest.approx(2.0)


def test_vicreg_by_hand():
    # z_a = z_b = [[0, 0], [2, 2]]: no invariance error; per-dimension variance 2 (std > 1): no variance term;
    # covariance [[2, 2], [2, 2]]: off-diagonal squares 2 * 4 = 8, / D = 4 per view: 8 in all, weight 1
    z = torch.tensor([[0.0, 0.0], [2.0, 2.0]])
    assert float(vicreg_loss(z, z.clone())) == pytest.approx(8.0, rel=1e-6)
    # z constant: variance hinge 1 - sqrt(1e-4) = 0.99 per view, mean of the two views, weight 25
    constant = torch.ones(3, 2)
    assert float(vicreg_loss(constant, constant.clone())) == pytest.approx(25 * 0.99, rel=1e-6)


def test_barlow_twins_by_hand():
    # standardised views [[1, -1], [-1, 1]]: C = [[1, -1], [-1, 1]]; diagonal exactly 1, off-diagonal 2 x 1
    z = torch.tensor([[1.0, -1.0], [-1.0, 1.0]])
    assert float(barlow_twins_loss(z, z.clone(), off_diagonal_weight=5e-3)) == pytest.approx(0.01, rel=1e-3)


def test_dino_by_hand():
    # uniform teacher over K = 2 against a uniform student: cross-entropy log 2 on each of the 2 pairs
    teacher, student = torch.zeros(2, 1, 2), torch.zeros(2, 1, 2)
    assert float(dino_loss(teacher, student, torch.zeros(2), teacher_temperature=0.04)) == pytest.approx(math.log(2))
    # a student certain of the teacher's prototype scores ~0; the other prototype ~ 1 / 0.1 = 10 nats more
    sure = torch.tensor([[[10.0, 0.0]], [[10.0, 0.0]]])
    assert float(dino_loss(sure, sure, torch.zeros(2), teacher_temperature=0.04)) == pytest.approx(0.0, abs=1e-6)
    wrong = torch.tensor([[[0.0, 1.0]], [[0.0, 1.0]]])
    assert float(dino_loss(sure, wrong, torch.zeros(2), teacher_temperature=0.04)) == pytest.approx(10.0, abs=1e-3)


def test_losses_refuse_a_batch_of_one():
    one = torch.zeros(1, 4)
    with pytest.raises(ValueError, match="N >= 2"):
        vicreg_loss(one, one)
    with pytest.raises(ValueError, match="N >= 2"):
        barlow_twins_loss(one, one)


# --------------------------------------------------------------------------- against lightly


@pytest.mark.parametrize("n, d", SIZES)
def test_byol_matches_lightly_negative_cosine(n, d):
    p_a, p_b = random_pair(n, d, 1)
    t_a, t_b = random_pair(n, d, 2)
    criterion = lightly_loss.NegativeCosineSimilarity()
    theirs = 0.5 * (criterion(p_a, t_b) + criterion(p_b, t_a))  # lightly's BYOL example: -mean cos
    # ours: mean of (2 - 2 cos_ab) + (2 - 2 cos_ba) = 4 - 2 (mean cos_ab + mean cos_ba) = 4 + 4 theirs
    torch.testing.assert_close(byol_loss(p_a, p_b, t_a, t_b).double(), 4 + 4 * theirs, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("n, d", SIZES)
@pytest.mark.parametrize("weights", [(25.0, 25.0, 1.0), (1.0, 5.0, 0.5)])
def test_vicreg_matches_lightly(n, d, weights):
    z_a, z_b = random_pair(n, d, 3)
    theirs = lightly_loss.VICRegLoss(lambda_param=weights[0], mu_param=weights[1], nu_param=weights[2])(z_a, z_b)
    ours = vicreg_loss(z_a, z_b, invariance_weight=weights[0], variance_weight=weights[1], covariance_weight=weights[2])
    torch.testing.assert_close(ours.double(), theirs.double(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("n, d", SIZES)
@pytest.mark.parametrize("weight", [5e-3, 0.05])
def test_barlow_twins_matches_lightly(n, d, weight):
    z_a, z_b = random_pair(n, d, 4)
    theirs = lightly_loss.BarlowTwinsLoss(lambda_param=weight)(z_a.float(), z_b.float())
    ours = barlow_twins_loss(z_a, z_b, off_diagonal_weight=weight)
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("n, k, locals_", [(4, 16, 0), (8, 64, 2), (16, 256, 4)])
@pytest.mark.parametrize("teacher_temperature, student_temperature", [(0.04, 0.1), (0.07, 0.2)])
def test_dino_matches_lightly(n, k, locals_, teacher_temperature, student_temperature):
    generator = torch.Generator().manual_seed(5)
    teacher = torch.randn(2, n, k, generator=generator)
    student = torch.randn(2 + locals_, n, k, generator=generator)
    center = 0.1 * torch.randn(k, generator=generator)
    reference = lightly_loss.DINOLoss(output_dim=k, warmup_teacher_temp=teacher_temperature,
                                      teacher_temp=teacher_temperature, student_temp=student_temperature,
                                      center_momentum=0.9)
    reference.center.data = center.view_as(reference.center).clone()
    theirs = reference(list(teacher), list(student), teacher_temp=teacher_temperature)
    ours = dino_loss(teacher, student, center, teacher_temperature=teacher_temperature,
                     student_temperature=student_temperature)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(updated_center(center, teacher, 0.9), reference.center.view(-1), rtol=1e-6, atol=1e-6)


# --------------------------------------------------------------------------- schedules


def test_momentum_rises_on_a_cosine_from_start_to_end():
    assert momentum_at(0, 100, 0.996, 1.0) == pytest.approx(0.996)
    assert momentum_at(50, 100, 0.996, 1.0) == pytest.approx(0.998)
    assert momentum_at(100, 100, 0.996, 1.0) == pytest.approx(1.0)
    values = [momentum_at(s, 100, 0.99, 1.0) for s in range(101)]
    assert values == sorted(values)


def test_teacher_temperature_warms_up_linearly():
    assert teacher_temperature_at(0, 10, 0.04, 0.07) == pytest.approx(0.04)
    assert teacher_temperature_at(5, 10, 0.04, 0.07) == pytest.approx(0.055)
    assert teacher_temperature_at(10, 10, 0.04, 0.07) == pytest.approx(0.07)
    assert teacher_temperature_at(3, 0, 0.04, 0.07) == pytest.approx(0.07)
