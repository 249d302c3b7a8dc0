"""``clip_simclr``: SimCLR over windows of moving objects (physics-aware SimCLR).

The name is the lab's published one and stays (recipes, run dirs, checkpoints and sweeps
carry it); in the rest of cltt a *clip* is a whole video, and what this method contrasts is a
window of it. A sample is one window of ``T = data.window_size`` frames seen twice: the
dataset draws two augmentations of it, each with one set of parameters for all T frames
(``data.augment.consistent``: the same crop, flip, colours and blur on every frame, so within a
view only what moved changes). A window encoder ``f`` maps each view to one vector and the
projection head ``g`` gives ``z = g(f(view)) [D]``; the loss is NT-Xent over the 2B window
embeddings of the global batch: the other view of the same window is the positive, the other
2B - 2 views are the negatives (:mod:`cltt.objectives.ntxent`)::

    ℓ_i = -log( exp(s_i,t(i)) / Σ_{k≠i} exp(s_ik) ),   s_ij = cos(z_i, z_j) / τ

Window encoders (``model.backbone``; :mod:`cltt.models.window_encoder`):

    any frame backbone   f(window) = (1/T) Σ_t h(frame_t): the per-frame backbone's features
                         averaged over time ([N, T, 3, S, S] -> [N, F])
    vivit                ViViT's factorised space-time transformer (cltt.models.vivit),
                         sized by model.vivit ([N, T, 3, S, S] -> [N, width])

``method.encoder`` is a :class:`~cltt.models.window_encoder.WindowEncoder`
(``represent_windows`` takes windows); the frame-mean one is also a per-frame representation
(``represent``), which probes at frame level and export read
(:mod:`cltt.models.representation`).
"""

from __future__ import annotations

import torch

from cltt.errors import CLTTError
from cltt.methods import register_method
from cltt.methods.base import InfoNCEMethod, aligned_groups
from cltt.models.window_encoder import FrameMeanEncoder, WindowEncoder, build_window_encoder


@register_method("clip_simclr")
class ClipSimCLR(InfoNCEMethod):
    """Two augmentations of one window are positives, every other window view a negative (physics-aware SimCLR)."""

    example = {"model": {"head_batchnorm": False}}

    @classmethod
    def check_recipe(cls, recipe) -> None:
        super().check_recipe(recipe)
        data = recipe.data
        if data.two_view_offset:
            raise CLTTError("method.name=clip_simclr takes two augmentations of one window; "
                            "set data.two_view_offset=0")
        if not data.augment.consistent:
            raise CLTTError("method.name=clip_simclr augments each view of a window with one draw for all its frames; "
                            "set data.augment.consistent=true")

    @classmethod
    def probe_levels(cls, recipe) -> tuple[str, ...]:
        # ViViT sees windows only: it has no per-frame representation to probe
        return ("clip", "window") if recipe.model.backbone == "vivit" else super().probe_levels(recipe)

    def build_encoder(self, recipe) -> WindowEncoder:
        # With train.channels_last the trainer converts the (4-D) weights; a convolution whose
        # weight is channels_last computes in that layout whatever the input's, so windows are
        # not converted here.
        return build_window_encoder(recipe.model, recipe.data.window_size, recipe.data.image_size)

    @staticmethod
    def dataset_views(recipe) -> int:
        return 2

    def embed(self, views: torch.Tensor) -> torch.Tensor:
        """``[b, 2, T, 3, S, S]`` -> one projection per view ``[b, 2, D]``."""
        b, v = views.shape[:2]
        return self.encoder(views.flatten(0, 1)).view(b, v, -1)

    def frame_groups(self, num_samples: int, frames: int, device: torch.device) -> torch.Tensor:
        """Both views of window i are group i (K = 2 embeddings per sample, one per view)."""
        return aligned_groups(num_samples, frames, device)

    def export_encoder(self):
        if not isinstance(self.encoder, FrameMeanEncoder):
            raise CLTTError("a ViViT window encoder (model.backbone=vivit) takes windows [N, T, 3, S, S] and has no "
                            "per-frame encoder to export; probe it with cltt probe RUN probe.level=clip")
        return (self.encoder.frame_encoder(),
                f"method {self.name}'s head reads the mean over a window's frames, not one frame")
