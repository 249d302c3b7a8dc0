"""BYOL's regression loss (Grill et al. 2020): an online prediction matches a target projection.

For a positive pair (a, b) the online network gives predictions ``p_a, p_b [N, D]`` and the
momentum (target) network gives projections ``t_a, t_b [N, D]`` (no gradient). With unit
vectors ``x̄ = x / ||x||``::

    ℓ(p, t) = ||p̄ - t̄||² = 2 - 2 cos(p, t)
    L       = (1/N) Σ_n [ ℓ(p_a[n], t_b[n]) + ℓ(p_b[n], t_a[n]) ]          (symmetrised)

so L lies in [0, 8] and is 0 when each prediction points along the other view's target.
:func:`byol_terms` returns the sum and the pair count, for the engine's sum over processes.

Failure modes: without the predictor or the momentum target the two branches collapse to a
constant; a target momentum of 1 from the start freezes the target at its initialisation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def regression_terms(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``2 - 2 cos`` of matching rows: ``[N, D], [N, D] -> [N]`` (float32, target detached)."""
    return 2 - 2 * F.cosine_similarity(prediction.float(), target.detach().float(), dim=-1, eps=1e-8)


def byol_terms(p_a: torch.Tensor, p_b: torch.Tensor, t_a: torch.Tensor, t_b: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetrised BYOL loss of N pairs, all ``[N, D]`` -> ``(sum over pairs, N)``."""
    total = (regression_terms(p_a, t_b) + regression_terms(p_b, t_a)).sum()
    return total, torch.tensor(float(p_a.shape[0]), device=p_a.device)


def byol_loss(p_a: torch.Tensor, p_b: torch.Tensor, t_a: torch.Tensor, t_b: torch.Tensor) -> torch.Tensor:
    """The mean of :func:`byol_terms`: a float32 scalar."""
    total, count = byol_terms(p_a, p_b, t_a, t_b)
    return total / count
