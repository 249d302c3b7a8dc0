"""SimCLR's NT-Xent (normalised temperature-scaled cross entropy), Chen et al. 2020.

Two augmented views of B samples, ``view_a`` and ``view_b``, each ``[B, D]``, with row i of both
coming from sample i. The 2B rows form one batch; with s_ij = cos(z_i, z_j) / τ, every row i is
an anchor whose positive is its twin t(i) and whose denominator holds the twin and all 2B - 2
other rows (the negatives)::

    ℓ_i = -log( exp(s_i,t(i)) / Σ_{k≠i} exp(s_ik) ),     loss = (1/2B) Σ_i ℓ_i

This is :func:`~cltt.objectives.infonce.multi_positive_infonce` with ``groups`` = arange(B)
twice and ``reduction="l_out"``: each group has exactly two rows, so P(i) = {t(i)} (the mean
over positives is the single term), A(i) = every row but i (the twin plus the 2B - 2
negatives), and every one of the 2B anchors has a positive, so count = 2B. With one positive
per anchor, ``"pairwise"`` and ``"l_in"`` give the same number too.

Failure modes: B = 1 leaves no negative and the loss is exactly 0 (log 1), which teaches
nothing; small τ (below about 0.05) makes the loss spiky, see the infonce module.
"""

from __future__ import annotations

import torch

from cltt.objectives.infonce import multi_positive_infonce


def nt_xent(view_a: torch.Tensor, view_b: torch.Tensor, *, temperature: float = 0.1) -> torch.Tensor:
    """NT-Xent of two views [B, D] each (row i of both is sample i); a float32 scalar."""
    if view_a.dim() != 2 or view_a.shape != view_b.shape:
        raise ValueError(f"views must both be [B, D], got {tuple(view_a.shape)} and {tuple(view_b.shape)}")
    batch = view_a.shape[0]
    sample_ids = torch.arange(batch, device=view_a.device)
    total, count = multi_positive_infonce(
        torch.cat([view_a, view_b]),
        torch.cat([sample_ids, sample_ids]),
        temperature=temperature,
        reduction="l_out",
    )
    return total / count.clamp(min=1.0)
