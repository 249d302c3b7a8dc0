"""ViViT's factorised encoder (Arnab et al. 2021, "ViViT: A Video Vision Transformer", model 2).

A window of T frames ``x [N, T, 3, S, S]`` becomes one vector ``[N, width]`` in three stages:

1. Tubelet embedding. Each run of ``t = tubelet`` frames is cut into ``p x p`` patches
   (``p = patch_size``); every ``t x p x p x 3`` tubelet is projected linearly to ``width``:
   ``n_t = T / t`` time steps of ``n_s = (S / p)^2`` tokens each. This is a Conv3d with kernel
   = stride = ``(t, p, p)``; it is computed as a Conv2d over the ``3 t`` channels of a time
   step (channel ``c * t + i`` is colour ``c`` of frame ``i``), which is the same map with a 4-D
   weight, so the trainer's channels_last conversion (4-D tensors only) applies to it.
2. Spatial transformer, per time step: a class token is prepended to the ``n_s`` tokens, learned
   spatial positions ``[n_s + 1, width]`` are added, ``spatial_depth`` blocks run, and the class
   token after a final LayerNorm is that time step's vector: ``[N, n_t, width]``.
3. Temporal transformer over the ``n_t`` time-step vectors: a temporal class token is
   prepended, learned temporal positions ``[n_t + 1, width]`` are added, ``temporal_depth``
   blocks run, and the temporal class token after a final LayerNorm is the window's vector.

Blocks are pre-norm: ``x += MHA(LN(x)); x += MLP(LN(x))`` with an MLP of ``4 x width`` (GELU)
and dropout ``dropout`` after attention and in the MLP. Sizes: tiny (width 192, 3 heads),
small (384, 6), base (768, 12), as ViT's. Only LayerNorm: a window's vector never depends on
the other windows of the batch.

    vivit = build_vivit(recipe.model.vivit, frames=8, image_size=64)
    vivit(windows)          # [N, 8, 3, 64, 64] -> [N, 192]
"""

from __future__ import annotations

import torch
from torch import nn

from cltt.errors import CLTTError

SIZES: dict[str, tuple[int, int]] = {"tiny": (192, 3), "small": (384, 6), "base": (768, 12)}
"""``model.vivit.size`` -> (width, attention heads)."""

MLP_RATIO = 4


def _transformer(width: int, heads: int, depth: int, dropout: float) -> nn.TransformerEncoder:
    """``depth`` pre-norm blocks followed by a final LayerNorm: ``[B, L, width]`` -> same."""
    block = nn.TransformerEncoderLayer(width, heads, dim_feedforward=MLP_RATIO * width, dropout=dropout,
                                       activation="gelu", batch_first=True, norm_first=True)
    return nn.TransformerEncoder(block, depth, norm=nn.LayerNorm(width), enable_nested_tensor=False)


class ViViT(nn.Module):
    """Factorised space-time transformer: ``[N, frames, 3, S, S]`` -> ``[N, width]``.

    ``frames`` and ``image_size`` fix the number of learned temporal and spatial positions,
    so a window must have exactly those dimensions.
    """

    def __init__(self, frames: int, image_size: int, width: int = 192, heads: int = 3, patch_size: int = 16,
                 tubelet: int = 2, spatial_depth: int = 12, temporal_depth: int = 4, dropout: float = 0.0) -> None:
        super().__init__()
        if image_size % patch_size:
            raise CLTTError(f"ViViT cuts frames into {patch_size}x{patch_size} patches, so data.image_size must be a "
                            f"multiple of model.vivit.patch_size; got image_size {image_size} (change data.image_size "
                            "or model.vivit.patch_size)")
        if frames % tubelet:
            raise CLTTError(f"ViViT embeds tubelets of {tubelet} frames, so data.window_size must be a multiple of "
                            f"model.vivit.tubelet; got window_size {frames} (change data.window_size or "
                            "model.vivit.tubelet)")
        if width % heads:
            raise CLTTError(f"ViViT width {width} is not divisible by {heads} heads")
        self.frames, self.image_size = frames, image_size
        self.patch_size, self.tubelet = patch_size, tubelet
        self.width = self.feature_dim = width
        self.time_steps = frames // tubelet
        self.patches = (image_size // patch_size) ** 2
        self.embed = nn.Conv2d(3 * tubelet, width, kernel_size=patch_size, stride=patch_size)
        self.spatial_token = nn.Parameter(torch.zeros(1, 1, width))
        self.spatial_positions = nn.Parameter(torch.zeros(1, self.patches + 1, width))
        self.temporal_token = nn.Parameter(torch.zeros(1, 1, width))
        self.temporal_positions = nn.Parameter(torch.zeros(1, self.time_steps + 1, width))
        self.dropout = nn.Dropout(dropout)
        self.spatial = _transformer(width, heads, spatial_depth, dropout)
        self.temporal = _transformer(width, heads, temporal_depth, dropout)
        for parameter in (self.spatial_token, self.spatial_positions, self.temporal_token, self.temporal_positions):
            nn.init.trunc_normal_(parameter, std=0.02)

    def tubelets(self, windows: torch.Tensor) -> torch.Tensor:
        """``[N, T, 3, S, S]`` -> tubelet tokens ``[N, n_t, n_s, width]`` (stage 1)."""
        n = windows.shape[0]
        x = windows.reshape(n, self.time_steps, self.tubelet, 3, self.image_size, self.image_size)
        x = x.transpose(2, 3).reshape(n * self.time_steps, 3 * self.tubelet, self.image_size, self.image_size)
        tokens = self.embed(x).flatten(2).transpose(1, 2)  # [N n_t, n_s, width], patches row by row
        return tokens.reshape(n, self.time_steps, self.patches, self.width)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        """``[N, T, 3, S, S]`` float -> window vectors ``[N, width]``."""
        expected = (self.frames, 3, self.image_size, self.image_size)
        if windows.dim() != 5 or tuple(windows.shape[1:]) != expected:
            raise CLTTError(f"ViViT was built for windows [N, {', '.join(map(str, expected))}] "
                            f"(data.window_size frames of data.image_size px), got {list(windows.shape)}")
        n = windows.shape[0]
        tokens = self.tubelets(windows).flatten(0, 1)  # [N n_t, n_s, width]
        tokens = torch.cat([self.spatial_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        per_step = self.spatial(self.dropout(tokens + self.spatial_positions))[:, 0]  # [N n_t, width]
        steps = per_step.reshape(n, self.time_steps, self.width)
        steps = torch.cat([self.temporal_token.expand(n, -1, -1), steps], dim=1)
        return self.temporal(self.dropout(steps + self.temporal_positions))[:, 0]


def build_vivit(config, frames: int, image_size: int) -> ViViT:
    """A randomly initialised :class:`ViViT` from a recipe's ``model.vivit`` section."""
    if config.size not in SIZES:
        raise CLTTError(f"model.vivit.size={config.size!r} is not a size; choose one of {', '.join(SIZES)}")
    width, heads = SIZES[config.size]
    return ViViT(frames, image_size, width=width, heads=heads, patch_size=config.patch_size, tubelet=config.tubelet,
                 spatial_depth=config.spatial_depth, temporal_depth=config.temporal_depth, dropout=config.dropout)
