"""Positive pairs of frames, as ``method.positives`` defines them: the SSL family through time.

SimCLR, BYOL, VICReg, Barlow Twins and DINO all compare two views ``a`` and ``b`` of the same
thing. Which two frames those are is ``method.positives`` (Schneider et al. 2021; Aubret, Ernst
et al., ICLR 2023):

    time      a frame and one later in the same clip, under one augmentation draw (SimCLR-TT,
              BYOL-TT, VICReg-TT): only time changes between a and b
    augment   one frame under two augmentation draws (plain SimCLR/BYOL/...)
    both      a frame and a later one, each under its own draw (the papers' TT+)

In terms of the recipe's windows (``data.window_size`` W, ``frame_step`` s,
``two_view_offset`` k):

    k > 0          a = window(t), b = window(t + k): frame j of each view is a pair (T pairs)
    k = 0, time    a = frame t, b = frame t + (W - 1) s of one window (one pair; W >= 2)
    k = 0, both    the same two frames, each from its own augmented view of the window
    augment        a, b = two augmentations of window(t) (k must be 0; T pairs)

so ``window_size: 1, two_view_offset: k`` is the classic pair (x_t, x_{t+k}).
:meth:`PairMethod.pairs` returns ``a, b [b, P, 3, S, S]``.
"""

from __future__ import annotations

import torch

from cltt.errors import CLTTError
from cltt.methods.base import Method


class PairMethod(Method):
    """A method whose positives are pairs of frames ``(a, b)`` chosen by ``method.positives``."""

    supported_positives = ("time", "augment", "both")
    shared_keys = ("positives",)

    def __init__(self, recipe):
        super().__init__(recipe)
        self.two_view_offset = recipe.data.two_view_offset

    @classmethod
    def check_recipe(cls, recipe) -> None:
        super().check_recipe(recipe)
        data, positives = recipe.data, cls.resolved_positives(recipe)
        if positives == "augment" and data.two_view_offset:
            raise CLTTError(f"method.positives=augment takes two augmentations of one frame; set data.two_view_offset=0 "
                            f"or method.positives=both for frames {data.two_view_offset} apart")
        if positives in ("time", "both") and not data.two_view_offset and data.window_size < 2:
            raise CLTTError(f"method.positives={positives} pairs frames apart in time: set data.two_view_offset > 0 "
                            "(pairs window(t) with window(t+k)) or data.window_size >= 2 (first and last frame)")
        if positives == "time" and data.augment.enabled and not data.augment.consistent:
            raise CLTTError("method.positives=time keeps one augmentation draw for both frames of a pair, but "
                            "data.augment.consistent=false draws one per frame; set it true, or method.positives=both")

    @classmethod
    def refuse_shared_frames(cls, recipe) -> None:
        """One line when window(t) and window(t + two_view_offset) share frames: a method whose
        negatives include the other view's frames would count a frame as a negative of itself."""
        data = recipe.data
        if data.two_view_offset and data.window_size > 1 and data.two_view_offset <= (data.window_size - 1) * data.frame_step:
            raise CLTTError(f"with data.two_view_offset={data.two_view_offset} window(t) and window(t+k) share frames, "
                            f"which method.name={cls.name} would count as negatives of themselves; set data.window_size=1 "
                            f"or data.two_view_offset > {(data.window_size - 1) * data.frame_step}")

    @classmethod
    def dataset_views(cls, recipe) -> int:
        positives = cls.resolved_positives(recipe)
        return 1 if positives == "time" and not recipe.data.two_view_offset else 2

    @classmethod
    def pairs_per_window(cls, recipe) -> int:
        """P of :meth:`pairs`: one pair (first and last frame of a window) without a second window, else T."""
        one_window = not recipe.data.two_view_offset and cls.resolved_positives(recipe) in ("time", "both")
        return 1 if one_window else recipe.data.window_size

    @classmethod
    def encoded_frames(cls, recipe) -> int:
        """2P: the frames ``a`` and ``b`` of every pair (a window's middle frames are not encoded with one pair)."""
        return 2 * cls.pairs_per_window(recipe)

    @classmethod
    def training_dataset(cls, recipe, index, seed: int, extras=None):
        from cltt.data.build import windows_dataset

        return windows_dataset(recipe.data, index, views=cls.dataset_views(recipe), augment=True, seed=seed,
                               same_draw=cls.resolved_positives(recipe) == "time", extras=extras)

    def embed(self, views: torch.Tensor) -> torch.Tensor:
        """``[b, V, T, 3, S, S]`` -> ``[b, 2P, D]``: the P frames ``a``, then their partners ``b``."""
        return self.encode_frames(self.pair_frames(views))

    def pair_frames(self, views: torch.Tensor) -> torch.Tensor:
        """``views [b, V, T, 3, S, S]`` -> ``[b, 2P, 3, S, S]``: :meth:`pairs` ``a`` then ``b``."""
        return torch.cat(self.pairs(views), dim=1)

    def pairs(self, views: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``views [b, V, T, 3, S, S]`` -> the positive pairs ``a, b [b, P, 3, S, S]``."""
        if views.shape[1] == 1:  # time within one window: its first and last frame
            return views[:, 0, :1], views[:, 0, -1:]
        if self.positives == "both" and self.two_view_offset == 0:  # two draws of one window, frames apart
            return views[:, 0, :1], views[:, 1, -1:]
        return views[:, 0], views[:, 1]
