"""``clip_simclr``: SimCLR over clips of moving objects (physics-aware SimCLR).

A sample is one window of ``T = data.window_size`` frames (a clip) seen twice: the dataset
draws two augmentations of it, each with one set of parameters for all T frames
(``data.augment.consistent``: the same crop, flip, colours and blur on every frame, so within a
view only what moved changes). A clip encoder ``f`` maps each view to one vector and the
projection head ``g`` gives ``z = g(f(view)) [D]``; the loss is NT-Xent over the 2B clip
embeddings of the global batch: the other view of the same clip is the positive, the other
2B - 2 clip views are the negatives (:mod:`cltt.objectives.ntxent`)::

    ℓ_i = -log( exp(s_i,t(i)) / Σ_{k≠i} exp(s_ik) ),   s_ij = cos(z_i, z_j) / τ

Clip encoders (``model.backbone``):

    any frame backbone   f(clip) = (1/T) Σ_t h(frame_t): the per-frame backbone's features
                         averaged over time ([N, T, 3, S, S] -> [N, F])
    vivit                ViViT's factorised space-time transformer (cltt.models.vivit),
                         sized by model.vivit ([N, T, 3, S, S] -> [N, width])

``method.encoder`` is a :class:`ClipEncoder` (``represent_clips`` takes clips); the frame-mean
one is also a per-frame representation (``represent``), which probes at frame level and
export read (:mod:`cltt.models.representation`).
"""

from __future__ import annotations

import torch
from torch import nn

from cltt.errors import CLTTError
from cltt.methods import register_method
from cltt.methods.base import InfoNCEMethod, aligned_groups
from cltt.models.backbones import backbone_from_model
from cltt.models.encoder import ContrastiveEncoder
from cltt.models.heads import ProjectionHead
from cltt.models.vivit import build_vivit


class FrameMean(nn.Module):
    """A frame backbone averaged over time: ``[N, T, 3, S, S]`` -> ``(1/T) Σ_t h(x_t)`` ``[N, F]``."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def frames(self, frames: torch.Tensor) -> torch.Tensor:
        """Per-frame features ``[M, 3, S, S]`` -> ``[M, F]``."""
        return self.backbone(frames)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        n, t = clips.shape[:2]
        return self.frames(clips.flatten(0, 1)).view(n, t, -1).mean(dim=1)


class ClipEncoder(nn.Module):
    """A clip encoder and its projection head: what ``clip_simclr`` trains.

    ``represent_clips(clips [N, T, 3, S, S]) -> [N, feature_dim]`` is the clip representation
    before the head (what probes read); ``forward`` adds the head (``[N, out_dim]``, what the
    loss sees). A :class:`~cltt.models.representation.ClipRepresentation`.
    """

    def __init__(self, clip_module: nn.Module, head: ProjectionHead, feature_dim: int) -> None:
        super().__init__()
        self.backbone = clip_module
        self.head = head
        self.feature_dim = feature_dim
        self.out_dim = head.out_dim
        self.load_report = None

    def represent_clips(self, clips: torch.Tensor) -> torch.Tensor:
        """``[N, T, 3, S, S]`` -> ``[N, feature_dim]``."""
        if clips.dim() != 5:
            raise CLTTError(f"a clip encoder takes clips [N, T, 3, S, S], got {list(clips.shape)}")
        return self.backbone(clips)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """``[N, T, 3, S, S]`` -> projections ``[N, out_dim]``."""
        return self.head(self.represent_clips(clips))


class FrameMeanEncoder(ClipEncoder):
    """A clip encoder that is a mean of per-frame features, so also a per-frame representation
    (:class:`~cltt.models.representation.FrameRepresentation`): the mean of :meth:`represent`
    over a clip's frames is :meth:`represent_clips` of the clip."""

    def represent(self, frames: torch.Tensor) -> torch.Tensor:
        """Per-frame features ``[..., 3, S, S]`` -> ``[..., feature_dim]``."""
        leading = frames.shape[:-3]
        features = self.backbone.frames(frames.reshape(-1, *frames.shape[-3:]))
        return features.reshape(*leading, features.shape[-1])

    def frame_encoder(self) -> ContrastiveEncoder:
        """The per-frame backbone and this head as a frame encoder, sharing their weights (for export).

        Its ``represent`` of a clip's frames averages to :meth:`represent_clips` of the clip; its
        ``forward`` is ``g(h(x_t))`` per frame, not the ``g(mean_t h(x_t))`` the loss saw.
        """
        return ContrastiveEncoder(self.backbone.backbone, self.head, self.feature_dim)


def build_clip_encoder(recipe) -> ClipEncoder:
    """The recipe's clip encoder: ViViT when ``model.backbone`` is ``vivit``, else frame backbone + mean."""
    model, data = recipe.model, recipe.data
    if model.backbone == "vivit":
        if model.weights:
            raise CLTTError("model.weights loads frame backbones only; ViViT starts from random weights "
                            "(remove model.weights)")
        clip_module = build_vivit(model.vivit, frames=data.window_size, image_size=data.image_size)
        feature_dim, report, kind = clip_module.feature_dim, None, ClipEncoder
    else:
        built, report = backbone_from_model(model, data.image_size)
        clip_module, feature_dim, kind = FrameMean(built.module), built.feature_dim, FrameMeanEncoder
    hidden = feature_dim if model.projection_hidden is None else model.projection_hidden
    head = ProjectionHead(feature_dim, hidden, model.projection_dim, batchnorm=model.head_batchnorm)
    encoder = kind(clip_module, head, feature_dim)
    encoder.load_report = report
    return encoder


@register_method("clip_simclr")
class ClipSimCLR(InfoNCEMethod):
    """Two augmentations of one clip are positives, every other clip view a negative (physics-aware SimCLR)."""

    example = {"model": {"head_batchnorm": False}}

    @classmethod
    def check_recipe(cls, recipe) -> None:
        super().check_recipe(recipe)
        data = recipe.data
        if data.two_view_offset:
            raise CLTTError("method.name=clip_simclr takes two augmentations of one window; "
                            "set data.two_view_offset=0")
        if not data.augment.consistent:
            raise CLTTError("method.name=clip_simclr augments each view of a clip with one draw for all its frames; "
                            "set data.augment.consistent=true")

    @classmethod
    def probe_levels(cls, recipe) -> tuple[str, ...]:
        # ViViT sees clips only: it has no per-frame representation to probe
        return ("clip", "window") if recipe.model.backbone == "vivit" else super().probe_levels(recipe)

    def build_encoder(self, recipe) -> ClipEncoder:
        # With train.channels_last the trainer converts the (4-D) weights; a convolution whose
        # weight is channels_last computes in that layout whatever the input's, so clips are
        # not converted here.
        return build_clip_encoder(recipe)

    @staticmethod
    def dataset_views(recipe) -> int:
        return 2

    def embed(self, views: torch.Tensor) -> torch.Tensor:
        """``[b, 2, T, 3, S, S]`` -> one projection per view ``[b, 2, D]``."""
        b, v = views.shape[:2]
        return self.encoder(views.flatten(0, 1)).view(b, v, -1)

    def frame_groups(self, num_samples: int, frames: int, device: torch.device) -> torch.Tensor:
        """Both views of clip i are group i (K = 2 embeddings per sample, one per view)."""
        return aligned_groups(num_samples, frames, device)

    def export_encoder(self):
        if not isinstance(self.encoder, FrameMeanEncoder):
            raise CLTTError("a ViViT clip encoder (model.backbone=vivit) takes clips [N, T, 3, S, S] and has no "
                            "per-frame encoder to export; probe it with cltt probe RUN probe.level=clip")
        return self.encoder.frame_encoder(), f"method {self.name}'s head reads the mean over a clip's frames, not one frame"
