"""CARL's sequence contrastive loss (Chen et al. 2022, "Frame-wise action representations for
long videos via sequence contrastive learning").

Two views of one video hold T frames each, ``z1``/``z2`` ``[B, T, D]`` with original frame
numbers ``t1``/``t2`` ``[B, T]`` and masks ``valid1``/``valid2`` ``[B, T]`` (False: padding).
For frame i of view 1 and the valid frames j of view 2, with τ the temperature and σ² the
variance in frames:

    s_ij = cos(z1_i, z2_j) / τ
    q_ij = exp(s_ij) / Σ_{j' valid} exp(s_ij')                        prediction
    p_ij = exp(-(t1_i - t2_j)² / (2σ²)) / Σ_{j' valid} exp(-(t1_i - t2_j')² / (2σ²))   target
    ℓ_i  = KL(p_i || q_i) = Σ_{j valid} p_ij (log p_ij - log q_ij)

and the same from view 2 to view 1. Only the two views of one sample meet (no negatives from
other videos). The pair ``(total, units)`` is the sum of ℓ over every valid anchor frame of
both directions and the number of those anchors, so a caller (or the engine, over processes)
divides once: loss = total / units.

Everything runs in float32 (half-precision inputs are cast first), and both distributions are
taken in log space with masked logsumexps, so a far-off frame whose Gaussian weight underflows
adds exactly 0 and never a NaN. A sample whose views have no valid frame adds nothing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _one_direction(z_a: torch.Tensor, z_b: torch.Tensor, t_a: torch.Tensor, t_b: torch.Tensor,
                   valid_a: torch.Tensor, valid_b: torch.Tensor, temperature: float,
                   sigma_squared: float) -> torch.Tensor:
    """Sum over valid anchors of view a of KL(target || softmax over view b's valid frames)."""
    keys = valid_b[:, None, :]  # [B, 1, T]: which frames of b an anchor may be matched to
    logits = torch.einsum("bid,bjd->bij", z_a, z_b) / temperature
    log_q = torch.log_softmax(logits.masked_fill(~keys, float("-inf")), dim=-1)
    distance = (t_a[:, :, None] - t_b[:, None, :]).float()
    closeness = (-distance.square() / (2.0 * sigma_squared)).masked_fill(~keys, float("-inf"))
    log_p = torch.log_softmax(closeness, dim=-1)
    # padding keys (and rows with no valid key at all) carry p = 0: their terms are 0 log 0 = 0,
    # so their -inf / NaN logs are zeroed before the product rather than masked after it
    p = log_p.exp().masked_fill(~keys, 0.0)
    terms = p * (log_p.masked_fill(~keys, 0.0) - log_q.masked_fill(~keys, 0.0))
    anchors = valid_a & valid_b.any(dim=1, keepdim=True)
    return terms.sum(dim=-1).masked_fill(~anchors, 0.0).sum()


def sequence_contrast_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    t1: torch.Tensor,
    t2: torch.Tensor,
    valid1: torch.Tensor,
    valid2: torch.Tensor,
    temperature: float = 0.1,
    sigma_squared: float = 10.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(total, units)`` of the symmetric sequence contrastive loss; see the module docstring.

    ``z1, z2 [B, T, D]`` (any float dtype), ``t1, t2 [B, T]`` frame numbers, ``valid1,
    valid2 [B, T]`` bool. ``total`` is a float32 scalar attached to the graph, ``units`` the
    float32 count of valid anchor frames over both directions.
    """
    z1 = F.normalize(z1.float(), dim=-1)
    z2 = F.normalize(z2.float(), dim=-1)
    valid1, valid2 = valid1.bool(), valid2.bool()
    total = (_one_direction(z1, z2, t1, t2, valid1, valid2, temperature, sigma_squared)
             + _one_direction(z2, z1, t2, t1, valid2, valid1, temperature, sigma_squared))
    has1, has2 = valid1.any(dim=1, keepdim=True), valid2.any(dim=1, keepdim=True)
    units = (valid1 & has2).sum() + (valid2 & has1).sum()
    return total, units.float()
