"""The collapse monitor: how spread out a method's embeddings are, every step.

Non-contrastive methods (BYOL, VICReg, Barlow Twins, DINO) can reach a low loss by mapping
every input to (nearly) the same vector. That shows in the per-dimension standard deviation of
the L2-normalised embeddings ``z [N, D]`` over the batch::

    spread = sqrt(D) · mean_d std_n( z[n, d] / ||z[n]|| )

Embeddings spread evenly over the unit sphere give a spread near 1 (each coordinate then has
std ≈ 1/sqrt(D)); a collapsed encoder gives 0; embeddings that use only a few dimensions
lie in between. The trainer averages the spread over each epoch, prints it on the epoch line,
logs it to W&B and warns when it falls below ``log.collapse_warning`` (default 0.1: every
dimension varies ten times less than an even spread would).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


@torch.no_grad()
def embedding_spread(embeddings: torch.Tensor) -> float | None:
    """``sqrt(D) · mean_d std_n`` of L2-normalised rows of ``embeddings [N, D]``; None for N < 2."""
    z = embeddings.detach().float().reshape(-1, embeddings.shape[-1])
    if z.shape[0] < 2:
        return None
    unit = F.normalize(z, dim=1)
    return float(unit.std(dim=0).mean()) * math.sqrt(z.shape[1])
