"""Frozen ViT patch features: what object-centric methods (DINOSAUR, SlotContrast) decompose.

    features = ViTPatches("vit_t8", image_size=64)         # random init, frozen
    features = ViTPatches("vit_s16", 224, weights="dino_vits16.pth")
    tokens = features(frames)                              # [N, 3, S, S] -> [N, P, C]

``tokens`` are the patch tokens of torchvision's :class:`VisionTransformer` after its last
block and final LayerNorm, class token dropped; ``P = (S / patch)^2`` in row-major order over
the ``grid x grid`` patches, ``C`` the width. The module never trains: every parameter has
``requires_grad=False`` and ``train()`` always leaves it in eval mode (so dropout, were there
any, stays off and an optimizer never sees it).

Sizes (torchvision's layer names, so a weights file for ``model.backbone=vit_s16`` loads here):

    vit_s16   patch 16, width 384, 6 heads, 12 blocks, MLP 1536  (DINO ViT-S/16's shape)
    vit_b16   patch 16, width 768, 12 heads, 12 blocks, MLP 3072
    vit_t8    patch 8, width 192, 3 heads, 2 blocks, MLP 768: a small option for 32-64 px
              frames on a CPU (a 64 px frame is an 8 x 8 grid of patches). Two blocks, not
              twelve: nobody has pretrained weights of this shape, and with random weights the
              patch tokens of bouncing balls cluster by object as well after two blocks as
              after twelve (k-means ARI of patches ~0.58 vs ~0.57, 0.44 for the bare patch
              embedding) at a sixth of the cost.

Weights come from a local file (``model.weights``, read by
:func:`cltt.models.weights.load_backbone_weights`); without one they are torchvision's random
initialisation, drawn from torch's global generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torchvision.models.vision_transformer import VisionTransformer

from cltt.errors import CLTTError
from cltt.models.weights import LoadReport, load_backbone_weights


@dataclass(frozen=True)
class ViTSize:
    patch_size: int
    width: int
    heads: int
    depth: int
    mlp_dim: int


VIT_SIZES: dict[str, ViTSize] = {
    "vit_t8": ViTSize(patch_size=8, width=192, heads=3, depth=2, mlp_dim=768),
    "vit_s16": ViTSize(patch_size=16, width=384, heads=6, depth=12, mlp_dim=1536),
    "vit_b16": ViTSize(patch_size=16, width=768, heads=12, depth=12, mlp_dim=3072),
}


class ViTPatches(nn.Module):
    """Frozen ``[N, 3, S, S] -> [N, P, C]`` patch tokens of a torchvision ViT (see module doc)."""

    def __init__(self, name: str, image_size: int, weights: str | None = None) -> None:
        super().__init__()
        if name not in VIT_SIZES:
            raise CLTTError(f"model.backbone={name!r} is not a ViT with patch features; object slots need one of "
                            f"{', '.join(VIT_SIZES)}")
        size = VIT_SIZES[name]
        if image_size % size.patch_size:
            fitting = max(size.patch_size, round(image_size / size.patch_size) * size.patch_size)
            raise CLTTError(f"{name} cuts frames into {size.patch_size}x{size.patch_size} patches, so "
                            f"data.image_size must be a multiple of {size.patch_size}; got {image_size} "
                            f"(try {fitting})")
        self.name = name
        self.patch_size = size.patch_size
        self.grid = image_size // size.patch_size
        self.num_patches = self.grid * self.grid
        self.feature_dim = size.width
        self.vit = VisionTransformer(image_size=image_size, patch_size=size.patch_size, num_layers=size.depth,
                                     num_heads=size.heads, hidden_dim=size.width, mlp_dim=size.mlp_dim)
        self.vit.heads = nn.Identity()  # as cltt.models.backbones builds it: the same weights files fit
        self.load_report: LoadReport | None = load_backbone_weights(self.vit, weights) if weights else None
        self.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> "ViTPatches":
        """Stay in eval mode whatever the caller asks: these features are frozen."""
        return super().train(False)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """``[N, 3, S, S]`` ImageNet-normalised frames -> patch tokens ``[N, P, C]``."""
        vit = self.vit
        with torch.no_grad():
            tokens = vit._process_input(frames)
            cls = vit.class_token.expand(tokens.shape[0], -1, -1)
            encoded = vit.encoder(torch.cat([cls, tokens], dim=1))
        return encoded[:, 1:]
