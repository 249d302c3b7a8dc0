"""VICReg (Bardes, Ponce & LeCun, ICLR 2022): variance, invariance and covariance terms.

Two views' embeddings ``z_a, z_b [N, D]`` (row n of both from the same positive pair), N >= 2::

    invariance   s(Z_a, Z_b) = (1/(N D)) Σ_n ||z_a[n] - z_b[n]||²
    variance     v(Z) = (1/D) Σ_d max(0, γ - sqrt(Var_n(z[:, d]) + ε))     (unbiased Var)
    covariance   c(Z) = (1/D) Σ_{d ≠ e} C(Z)_de²,   C(Z) = (1/(N-1)) Σ_n (z_n - z̄)(z_n - z̄)ᵀ

    L = λ s(Z_a, Z_b) + μ (v(Z_a) + v(Z_b)) / 2 + ν (c(Z_a) + c(Z_b))

with λ = ``invariance_weight``, μ = ``variance_weight``, ν = ``covariance_weight`` (25, 25, 1
in the paper and the CLTT papers' CORe50 configs), γ = 1, ε = 1e-4. The variance and covariance
are statistics of the whole batch: in a distributed run ``z_a`` and ``z_b`` must be the global
batch (the engine gathers it), or each process would regularise only its own slice.

Failure modes: N = 1 has no variance (refused); a variance weight of 0 lets the embeddings
collapse to a point that satisfies the invariance term.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def variance_term(z: torch.Tensor, gamma: float = 1.0, eps: float = 1e-4) -> torch.Tensor:
    """Hinge on each dimension's standard deviation over the batch: ``[N, D] -> scalar``."""
    std = torch.sqrt(z.var(dim=0) + eps)
    return F.relu(gamma - std).mean()


def covariance_term(z: torch.Tensor) -> torch.Tensor:
    """Sum of squared off-diagonal covariances over D: ``[N, D] -> scalar``."""
    n, d = z.shape
    centred = z - z.mean(dim=0)
    cov = centred.T @ centred / (n - 1)
    off = cov - torch.diag_embed(torch.diagonal(cov))
    return off.pow(2).sum() / d


def vicreg_loss(z_a: torch.Tensor, z_b: torch.Tensor, *, invariance_weight: float = 25.0,
                variance_weight: float = 25.0, covariance_weight: float = 1.0, gamma: float = 1.0,
                eps: float = 1e-4) -> torch.Tensor:
    """VICReg of two ``[N, D]`` views (module doc): a float32 scalar."""
    if z_a.dim() != 2 or z_a.shape != z_b.shape or z_a.shape[0] < 2:
        raise ValueError(f"VICReg takes two [N, D] views with N >= 2, got {tuple(z_a.shape)} and {tuple(z_b.shape)}")
    z_a, z_b = z_a.float(), z_b.float()
    invariance = F.mse_loss(z_a, z_b)
    variance = (variance_term(z_a, gamma, eps) + variance_term(z_b, gamma, eps)) / 2
    covariance = covariance_term(z_a) + covariance_term(z_b)
    return invariance_weight * invariance + variance_weight * variance + covariance_weight * covariance
