"""``simclr``: two views of the same thing are positives, every other view a negative (NT-Xent).

Chen et al. 2020, and its temporal forms SimCLR-TT / TT+ (Schneider et al. 2021; Aubret et
al. 2023) through ``method.positives`` (:mod:`cltt.methods.pairs`; default ``augment``: two
augmentations of each frame). Pair p of sample i gives embeddings ``a_ip`` and ``b_ip``; they
are each other's only positive, and every other embedding of the global batch, temporal
neighbours included, is a negative. With one positive per anchor the ``l_out`` InfoNCE is
exactly NT-Xent (positive kept in the denominator); ``method.decoupled`` turns it into DCL.
Use ``data.window_size: 1`` for the classic per-image SimCLR.
"""

from __future__ import annotations

import torch

from cltt.methods import register_method
from cltt.methods.base import InfoNCEMethod, aligned_groups
from cltt.methods.pairs import PairMethod


@register_method("simclr")
class SimCLR(PairMethod, InfoNCEMethod):
    """Two views of a frame are positives, every other frame a negative (NT-Xent; -TT with positives=time)."""

    @classmethod
    def check_recipe(cls, recipe) -> None:
        super().check_recipe(recipe)
        cls.refuse_shared_frames(recipe)

    @classmethod
    def negatives(cls, recipe) -> str:
        # the other pairs of a sample (its temporal neighbours) are negatives too
        return "batch+sample" if cls.pairs_per_window(recipe) > 1 else "batch"

    def frame_groups(self, num_samples: int, frames: int, device: torch.device) -> torch.Tensor:
        return aligned_groups(num_samples, frames, device)
