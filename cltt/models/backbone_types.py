"""What a backbone is: a frame encoder, its feature width, and how to read its patch tokens.

The built-in registry (:mod:`cltt.models.backbones`) and the timm adapter
(:mod:`cltt.models.timm_backbones`) both build these, so both import this module and neither
imports the other at load time: ``build_backbone`` reaches the timm adapter for ``timm/<name>``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from cltt.errors import CLTTError

TokenReader = Callable[[nn.Module, torch.Tensor, int], torch.Tensor]


@dataclass(frozen=True, eq=False)
class PatchTokens:
    """How to read a backbone's grid of patch tokens.

    ``read(module, frames [N, 3, S, S], block) -> [N, grid * grid, width]``: the tokens after
    block ``block`` (Python indexing over ``blocks``, so -1 is the last), passed through the
    model's final norm, class and register tokens dropped, patches in row-major order.
    """

    read: TokenReader
    blocks: int
    patch_size: int  # pixels per patch side (a CNN stage's stride)

    def check_block(self, block: int, name: str) -> None:
        if not -self.blocks <= block < self.blocks:
            raise CLTTError(f"model.patch_block={block} is outside {name}'s {self.blocks} blocks; use 0..{self.blocks - 1} "
                            "or a negative index from the end (-1, the default, is the last)")


@dataclass(frozen=True, eq=False)
class Backbone:
    """A frame encoder and the width of what it returns.

    ``module``: ``[N, 3, S, S]`` float -> ``[N, feature_dim]`` float. ``patches``: how to read
    its patch tokens, None when it has none. ``fixed_size``: it only takes the image size it
    was built for (a ViT's position embedding), so no other crop size can go through it.
    """

    module: nn.Module
    feature_dim: int
    patches: PatchTokens | None = None
    fixed_size: bool = False
