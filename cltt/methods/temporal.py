"""``cltt``: contrastive learning through time over windows of frames.

Every frame of a window is a positive of every other frame of it; frames of the other
windows in the (global) batch are negatives; an anchor is never its own positive. With two
views (``data.two_view_offset = k > 0``: window(t) and window(t + k)), ``pairing`` decides:

    group       all 2T frames of both views form one positive group
    aligned     frame i of view 0 and frame i of view 1 are the only positives of each other
    first_last  frame 0 and frame T-1 of view 0 alone, one positive pair per window: the lab's
                original PairedCosineTTLoss (use with ``decoupled: true`` to reproduce it)

The loss is the multi-positive InfoNCE of :mod:`cltt.objectives.infonce` with
``method.reduction`` and ``method.decoupled``.
"""

from __future__ import annotations

import torch

from cltt.errors import CLTTError
from cltt.methods import register_method
from cltt.methods.base import Method, aligned_groups, window_groups


@register_method("cltt")
class TemporalContrast(Method):
    def __init__(self, recipe):
        super().__init__(recipe)
        pairing = recipe.method.pairing
        if pairing == "aligned" and recipe.data.two_view_offset == 0:
            raise CLTTError("method.pairing=aligned pairs frame i of two views; set data.two_view_offset > 0 "
                            "or use method.pairing=group")
        if pairing == "first_last" and recipe.data.window_size < 2:
            raise CLTTError("method.pairing=first_last needs data.window_size >= 2")
        self.pairing = pairing

    def select_frames(self, views: torch.Tensor) -> torch.Tensor:
        if self.pairing == "first_last":
            last = views.shape[2] - 1
            return views[:, 0, [0, last]]
        return super().select_frames(views)

    def frame_groups(self, num_samples: int, frames: int, device: torch.device) -> torch.Tensor:
        if self.pairing == "aligned":
            return aligned_groups(num_samples, frames, device)
        return window_groups(num_samples, frames, device)
