"""``simclr``: two augmentations of the same frame are positives (Chen et al. 2020).

The dataset draws two independent augmentations of each window (V = 2); frame i of view 0
and frame i of view 1 are the only positives of each other and every other frame of the batch,
temporal neighbours included, is a negative. With one positive per anchor the ``l_out``
InfoNCE is exactly NT-Xent (positive kept in the denominator); ``method.decoupled`` turns it
into DCL. Use ``data.window_size: 1`` for the classic per-image SimCLR.
"""

from __future__ import annotations

import torch

from cltt.errors import CLTTError
from cltt.methods import register_method
from cltt.methods.base import Method, aligned_groups


@register_method("simclr")
class SimCLR(Method):
    def __init__(self, recipe):
        super().__init__(recipe)
        if recipe.data.two_view_offset:
            raise CLTTError("method.name=simclr takes two augmentations of one window; set data.two_view_offset=0")

    @staticmethod
    def dataset_views(recipe) -> int:
        return 2

    def frame_groups(self, num_samples: int, frames: int, device: torch.device) -> torch.Tensor:
        return aligned_groups(num_samples, frames, device)
