"""Barlow Twins (Zbontar et al., ICML 2021): make the two views' cross-correlation the identity.

Two views' embeddings ``z_a, z_b [N, D]``, each dimension standardised over the batch
(``ẑ = (z - mean_n z) / std_n z``, population std), N >= 2::

    C_de = (1/N) Σ_n ẑ_a[n, d] ẑ_b[n, e]                      cross-correlation [D, D]
    L    = Σ_d (1 - C_dd)²  +  λ Σ_{d ≠ e} C_de²

with λ = ``off_diagonal_weight`` (5e-3 in the paper, lightly and solo-learn). The first
term makes the views agree, the second decorrelates the dimensions (redundancy reduction).
C is a statistic of the whole batch: in a distributed run ``z_a`` and ``z_b`` must be the
global batch (the engine gathers it).

Failure modes: N = 1 has no standard deviation (refused); a λ much above 1/D lets the
redundancy term dominate, so it should shrink as D grows.
"""

from __future__ import annotations

import torch


def standardise(z: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Zero mean and unit (population) variance per dimension over the batch: ``[N, D] -> [N, D]``."""
    centred = z - z.mean(dim=0)
    return centred / torch.sqrt(centred.pow(2).mean(dim=0) + eps)


def barlow_twins_loss(z_a: torch.Tensor, z_b: torch.Tensor, *, off_diagonal_weight: float = 5e-3) -> torch.Tensor:
    """Barlow Twins of two ``[N, D]`` views (module doc): a float32 scalar."""
    if z_a.dim() != 2 or z_a.shape != z_b.shape or z_a.shape[0] < 2:
        raise ValueError(f"Barlow Twins takes two [N, D] views with N >= 2, got {tuple(z_a.shape)} and "
                         f"{tuple(z_b.shape)}")
    n = z_a.shape[0]
    c = standardise(z_a.float()).T @ standardise(z_b.float()) / n
    diagonal = torch.diagonal(c)
    on = (1 - diagonal).pow(2).sum()
    off = c.pow(2).sum() - diagonal.pow(2).sum()
    return on + off_diagonal_weight * off
