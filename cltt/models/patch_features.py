"""Patch tokens of a backbone: what object-centric methods (DINOSAUR, SlotContrast) decompose.

    features = PatchFeatures(recipe.model, image_size=64)     # model.backbone=vit_t8
    tokens = features(frames)                                 # [N, 3, S, S] -> [N, P, C]

``tokens`` are the backbone's patch tokens after block ``model.patch_block`` (-1: the last),
passed through its final norm, class and register tokens dropped; ``P = grid * grid`` in
row-major order, ``C`` the width. Any backbone with patch tokens works: the built-in
torchvision ViTs (``vit_t8``, ``vit_s16``, ``vit_b16``) and ``timm/<name>`` models (ViTs, and
CNN feature maps, each position a token). The lab's SlotContrast reads a DINO ViT-B/14 trained
on SAYCam (silicon-menagerie's ``dino_say_vitb14``): ``timm/vit_base_patch16_224`` with
``model.timm: {patch_size: 14}`` at 224 px, a 16 x 16 grid of 768-d tokens.

Whether the backbone trains is the method's ``model.freeze`` (slotcontrast freezes it by
default); a frozen backbone is run without a graph. Weights come from ``model.weights``.
"""

from __future__ import annotations

import torch
from torch import nn

from cltt.errors import CLTTError
from cltt.models.backbones import backbone_from_model, patch_grid


class PatchFeatures(nn.Module):
    """``[N, 3, S, S] -> [N, P, C]`` patch tokens of the recipe's backbone (see module doc)."""

    def __init__(self, model, image_size: int) -> None:
        super().__init__()
        built, self.load_report = backbone_from_model(model, image_size)
        if built.patches is None:
            raise CLTTError(f"model.backbone={model.backbone} has no patch tokens for object slots; use a ViT "
                            "(vit_t8, vit_s16, vit_b16, or timm/<vit name>)")
        built.patches.check_block(model.patch_block, model.backbone)
        self.name = model.backbone
        self.vit = built.module  # named vit (whatever the backbone) so older slotcontrast checkpoints load
        self.read = built.patches.read
        self.block = model.patch_block
        self.grid, self.feature_dim = patch_grid(built, image_size, model.patch_block)
        self.num_patches = self.grid * self.grid

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """``[N, 3, S, S]`` ImageNet-normalised frames -> patch tokens ``[N, P, C]``."""
        trains = torch.is_grad_enabled() and any(p.requires_grad for p in self.vit.parameters())
        with torch.set_grad_enabled(trains):
            return self.read(self.vit, frames, self.block)
