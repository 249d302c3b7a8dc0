"""A small transformer over the frames of a sequence: per-frame features in, frame embeddings out.

    encoder = SequenceEncoder(in_dim=512, dim=128, layers=2, heads=8)
    e = encoder(features, valid)         # [B, T, 512], [B, T] bool -> [B, T, 128]

Each frame's feature is projected to ``dim``, the sinusoidal encoding of its position is added,
and a pre-norm transformer encoder (``layers`` layers, ``heads`` heads, feed-forward width
``4 dim``, GELU, no dropout) lets every valid frame attend to every valid frame; padding frames
(``valid`` False) are masked out as keys, so they never change a valid frame's embedding. A
final LayerNorm and linear map give the embeddings. CARL (Chen et al. 2022) puts this on top
of a per-frame ResNet; the positions it uses are the frames' ranks in the input sequence.

No dropout: a GradCache re-run of the forward pass (``train.sub_batch_size``) must give the
same embeddings, and dropout would draw new masks.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def sinusoidal_encoding(positions: torch.Tensor, dim: int, base: float = 10000.0) -> torch.Tensor:
    """Transformer position encodings (Vaswani et al. 2017): ``[...]`` positions -> ``[..., dim]``.

    ``PE(p, 2i) = sin(p / base^(2i/dim))``, ``PE(p, 2i+1) = cos(p / base^(2i/dim))``; an odd
    ``dim`` drops the last cosine. Positions may be any real numbers.
    """
    half = (dim + 1) // 2
    frequencies = torch.exp(-math.log(base) * (2 * torch.arange(half, device=positions.device,
                                                                 dtype=torch.float32)) / dim)
    angles = positions.float()[..., None] * frequencies
    encoding = torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(-2)
    return encoding[..., :dim]


class SequenceEncoder(nn.Module):
    """``[B, T, in_dim]`` features (+ ``valid [B, T]``, ``positions [B, T]``) -> ``[B, T, dim]``."""

    def __init__(self, in_dim: int, dim: int = 128, layers: int = 2, heads: int = 8) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} must be divisible by heads {heads}")
        self.dim = dim
        self.input = nn.Linear(in_dim, dim)
        layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=4 * dim, dropout=0.0,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.output = nn.Linear(dim, dim)

    def forward(self, features: torch.Tensor, valid: torch.Tensor | None = None,
                positions: torch.Tensor | None = None) -> torch.Tensor:
        """``positions`` default to the ranks ``0 .. T-1``; ``valid`` to all True. A row with no
        valid frame is treated as all valid (its embeddings are meaningless, but finite)."""
        b, t = features.shape[:2]
        if positions is None:
            positions = torch.arange(t, device=features.device).expand(b, t)
        x = self.input(features) + sinusoidal_encoding(positions, self.dim).to(features.dtype)
        padding = None
        if valid is not None:
            padding = ~valid.bool()
            padding = padding & ~padding.all(dim=1, keepdim=True)
        x = self.transformer(x, src_key_padding_mask=padding)
        return self.output(self.norm(x))
