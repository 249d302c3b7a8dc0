"""DINO's self-distillation loss (Caron et al., ICCV 2021).

A student network sees every crop of an image (``S`` crops: 2 global, then the local ones);
an EMA teacher sees the ``G`` global crops only. With ``K`` output dimensions (prototypes),
teacher temperature τ_t, student temperature τ_s and the centre ``c [K]``::

    P_t(g) = softmax((t_g - c) / τ_t)          teacher, crop g      [N, K]  (no gradient)
    log P_s(s) = log_softmax(s_s / τ_s)        student, crop s      [N, K]
    L = 1 / (N · #pairs) Σ_n Σ_{g, s: s ≠ g} -<P_t(g)[n], log P_s(s)[n]>

the pairs being every (teacher global crop, student crop) but a crop with itself. Centring
(subtracting c) and sharpening (τ_t < τ_s) together keep the teacher from collapsing: c
alone flattens the outputs to uniform, sharpening alone to one prototype. After each step
the centre moves to the teacher's mean output over the global batch::

    c ← m c + (1 - m) mean_{g, n} t_g[n]                     (m = centre momentum, 0.9)

The teacher temperature warms up linearly from ``warmup_teacher_temperature`` (0.04) to
``teacher_temperature`` over the first steps (the paper: 0.04 → 0.07 in 30 epochs).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def dino_terms(teacher: torch.Tensor, student: torch.Tensor, center: torch.Tensor, *,
               teacher_temperature: float, student_temperature: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """``teacher [G, N, K]``, ``student [S, N, K]`` (crop g of both is the same crop, g < G <= S)
    -> ``(sum over samples and pairs of the cross-entropy, N · #pairs)``."""
    if teacher.dim() != 3 or student.dim() != 3 or teacher.shape[1:] != student.shape[1:]:
        raise ValueError(f"DINO takes teacher [G, N, K] and student [S, N, K], got {tuple(teacher.shape)} and "
                         f"{tuple(student.shape)}")
    g, n = teacher.shape[:2]
    s = student.shape[0]
    if g > s or s < 2:
        raise ValueError(f"DINO needs at least two crops and no more teacher crops than student crops, got {g} and {s}")
    targets = F.softmax((teacher.detach().float() - center.float()) / teacher_temperature, dim=-1)
    log_probs = F.log_softmax(student.float() / student_temperature, dim=-1)
    cross = -torch.einsum("gnk,snk->gs", targets, log_probs)  # summed over samples
    keep = ~torch.eye(g, s, dtype=torch.bool, device=cross.device)
    pairs = int(keep.sum())
    return cross[keep].sum(), torch.tensor(float(n * pairs), device=teacher.device)


def dino_loss(teacher: torch.Tensor, student: torch.Tensor, center: torch.Tensor, *,
              teacher_temperature: float, student_temperature: float = 0.1) -> torch.Tensor:
    """The mean of :func:`dino_terms`: a float32 scalar."""
    total, count = dino_terms(teacher, student, center, teacher_temperature=teacher_temperature,
                              student_temperature=student_temperature)
    return total / count


def updated_center(center: torch.Tensor, teacher: torch.Tensor, momentum: float) -> torch.Tensor:
    """``c ← m c + (1 - m)`` the mean of ``teacher [G, N, K]`` over crops and samples."""
    return center * momentum + teacher.detach().float().mean(dim=(0, 1)) * (1 - momentum)


def teacher_temperature_at(step: int, warmup_steps: int, start: float, end: float) -> float:
    """Linear warm-up of the teacher temperature from ``start`` to ``end`` over ``warmup_steps``."""
    if warmup_steps <= 0 or step >= warmup_steps:
        return end
    return start + (end - start) * step / warmup_steps
