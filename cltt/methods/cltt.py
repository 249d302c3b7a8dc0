"""``cltt``: contrastive learning through time over windows of frames.

Every frame of a window is a positive of every other frame of it; frames of the other
windows in the (global) batch are negatives; an anchor is never its own positive. With two
views (``data.two_view_offset = k > 0``: window(t) and window(t + k)), ``pairing`` decides:

    group       all 2T frames of both views form one positive group
    aligned     frame i of view 0 and frame i of view 1 are the only positives of each other
    first_last  frame 0 and frame T-1 of view 0 alone, one positive pair per window: the lab's
                original PairedCosineTTLoss (use with ``decoupled: true`` to reproduce it)

The loss is the multi-positive InfoNCE of :mod:`cltt.objectives.infonce` with
``method.reduction`` and ``method.decoupled``. ``method.positives``: ``time`` (default) gives
both views one augmentation draw, so they differ only in time; ``both`` draws each view on its
own (with one view, ``data.augment.consistent: false`` draws per frame).
"""

from __future__ import annotations

import torch

from cltt.errors import CLTTError
from cltt.methods import register_method
from cltt.methods.base import InfoNCEMethod, aligned_groups, window_groups


@register_method("cltt")
class TemporalContrast(InfoNCEMethod):
    """Every frame of a window is a positive of every other (multi-positive InfoNCE through time)."""

    @classmethod
    def check_recipe(cls, recipe) -> None:
        super().check_recipe(recipe)
        pairing, data = recipe.method.pairing, recipe.data
        if pairing == "aligned" and data.two_view_offset == 0:
            raise CLTTError("method.pairing=aligned pairs frame i of two views; set data.two_view_offset > 0 "
                            "or use method.pairing=group")
        if pairing == "first_last" and data.window_size < 2:
            raise CLTTError("method.pairing=first_last needs data.window_size >= 2")
        if cls.resolved_positives(recipe) == "both" and not data.two_view_offset and data.augment.consistent:
            raise CLTTError("method.positives=both augments positives apart: set data.two_view_offset > 0 (one draw "
                            "per view) or data.augment.consistent=false (one draw per frame)")

    @classmethod
    def negatives(cls, recipe) -> str:
        # aligned pairs frame i of two views: the other frames of the same window are its negatives
        return "batch+sample" if recipe.method.pairing == "aligned" else "batch"

    @classmethod
    def training_dataset(cls, recipe, index, seed: int):
        from cltt.data.build import windows_dataset

        return windows_dataset(recipe.data, index, augment=True, seed=seed,
                               same_draw=cls.resolved_positives(recipe) == "time")

    def __init__(self, recipe):
        super().__init__(recipe)
        self.pairing = recipe.method.pairing

    def embed(self, views: torch.Tensor) -> torch.Tensor:
        """``[b, V, T, 3, S, S]`` -> ``[b, K, D]``: every frame, or frames 0 and T-1 of view 0 (first_last)."""
        return self.encode_frames(self.select_frames(views))

    def select_frames(self, views: torch.Tensor) -> torch.Tensor:
        """``[b, V, T, 3, S, S]`` -> the ``[b, K, 3, S, S]`` frames this method embeds."""
        if self.pairing == "first_last":
            last = views.shape[2] - 1
            return views[:, 0, [0, last]]
        return views.flatten(1, 2)

    def frame_groups(self, num_samples: int, frames: int, device: torch.device) -> torch.Tensor:
        if self.pairing == "aligned":
            return aligned_groups(num_samples, frames, device)
        return window_groups(num_samples, frames, device)
