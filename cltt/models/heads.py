"""The projection head: the small MLP between the representation and the contrastive loss.

As in SimCLR (Chen et al., 2020) and the lab's original CLTT code, the loss is computed on a
projection ``z = g(h)`` of the representation ``h``, and ``h`` (not ``z``) is what probes read:
the head absorbs the invariances the loss demands, so ``h`` keeps more of the image.
"""

from __future__ import annotations

import torch
from torch import nn


class ProjectionHead(nn.Module):
    """Linear -> BatchNorm1d (optional) -> ReLU -> Linear.

    ``[N, in_dim]`` -> ``[N, out_dim]``, with ``hidden_dim`` units in between.

    With ``batchnorm=True`` a training-mode forward needs more than one row (BatchNorm1d cannot
    estimate a variance from one sample), and rows are normalised together, so a batch encoded
    in pieces differs from the batch encoded whole.
    """

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int = 128, batchnorm: bool = True) -> None:
        super().__init__()
        middle: list[nn.Module] = [nn.BatchNorm1d(hidden_dim)] if batchnorm else []
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden_dim),
            *middle,
            nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, out_dim),
        )
        self.in_dim = in_dim
        self.out_dim = out_dim

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``[N, in_dim]`` -> ``[N, out_dim]``."""
        return self.net(features)
