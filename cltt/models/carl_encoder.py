"""CARL's encoder (Chen et al. 2022): a frame backbone, a transformer over a sequence of frames,
and a projection MLP (the method is :mod:`cltt.methods.carl`).

For a sequence of T frames ``x [B, T, 3, S, S]`` with a padding mask ``valid [B, T]``:

    h_t = backbone(x_t)                          each frame on its own         [B, T, F]
    e   = SequenceEncoder(h, valid, positions)   frames attend to each other   [B, T, E]
    z_t = W2 ReLU(W1 e_t)                        what the loss sees            [B, T, P]

positions are the frames' ranks ``0 .. T-1`` (CARL's choice), so the transformer is trained on
``sequence_frames = T`` positions. The projection has no batch norm: a sample's embeddings
never depend on the other samples of a batch.

    encoder = CarlEncoder(backbone, feature_dim=512, embedding_dim=128, layers=2, heads=8,
                          projection_hidden=128, projection_dim=128, sequence_frames=16)
    encoder.represent(frames)                # [..., 3, S, S] -> [..., F]   the backbone alone
    encoder.frame_embeddings(x, valid)       # [B, T, 3, S, S] -> [B, T, E]  phases probe
    encoder(x, valid)                        # [B, T, 3, S, S] -> [B, T, P]

State-dict names (``backbone``, ``sequence``, ``projection``) are those of checkpoints written
when this class lived in the method file; keep them.
"""

from __future__ import annotations

import torch
from torch import nn

from cltt.models.sequence import SequenceEncoder


class CarlEncoder(nn.Module):
    """Backbone per frame, transformer per sequence, projection for the loss (module doc).

    ``backbone`` ``[N, 3, S, S] -> [N, F]``; ``sequence`` ``[B, T, F] -> [B, T, E]``;
    ``projection`` ``[..., E] -> [..., P]``.
    """

    def __init__(self, backbone: nn.Module, feature_dim: int, embedding_dim: int, layers: int, heads: int,
                 projection_hidden: int, projection_dim: int, sequence_frames: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.feature_dim = feature_dim
        self.embedding_dim = embedding_dim
        self.sequence_frames = sequence_frames  # T: the positions the transformer is trained on
        self.out_dim = projection_dim
        self.sequence = SequenceEncoder(feature_dim, embedding_dim, layers, heads)
        self.projection = nn.Sequential(nn.Linear(embedding_dim, projection_hidden), nn.ReLU(inplace=True),
                                        nn.Linear(projection_hidden, projection_dim))
        self.load_report = None

    def represent(self, frames: torch.Tensor) -> torch.Tensor:
        """Backbone features of each frame on its own: ``[..., 3, S, S]`` -> ``[..., F]``."""
        leading = frames.shape[:-3]
        features = self.backbone(frames.reshape(-1, *frames.shape[-3:]))
        return features.reshape(*leading, features.shape[-1])

    def contextualise(self, features: torch.Tensor, valid: torch.Tensor | None = None,
                      positions: torch.Tensor | None = None) -> torch.Tensor:
        """Frame embeddings from backbone features: ``[B, T, F]`` -> ``[B, T, E]``."""
        return self.sequence(features, valid, positions)

    def frame_embeddings(self, frames: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """``[B, T, 3, S, S]`` model input (and ``valid [B, T]``) -> ``[B, T, E]``."""
        return self.contextualise(self.represent(frames), valid)

    def forward(self, frames: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """The projections the loss sees: ``[B, T, 3, S, S]`` -> ``[B, T, P]``."""
        return self.projection(self.frame_embeddings(frames, valid))
