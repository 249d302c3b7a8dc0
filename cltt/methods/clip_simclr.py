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

``method.encoder`` is a :class:`ClipEncoder`: ``represent`` takes clips, not frames, and
``is_clip_encoder`` says so to probes (cltt.eval.clip_features) and export.
"""

from __future__ import annotations

import torch
from torch import nn

from cltt.errors import CLTTError
from cltt.methods import register_method
from cltt.methods.base import Method, aligned_groups
from cltt.models.backbones import build_backbone
from cltt.models.encoder import ContrastiveEncoder
from cltt.models.heads import ProjectionHead
from cltt.models.vivit import build_vivit
from cltt.models.weights import load_backbone_weights


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

    ``represent(clips [N, T, 3, S, S]) -> [N, feature_dim]`` is the clip representation before
    the head (what probes read); ``forward`` adds the head (``[N, out_dim]``, what the loss
    sees). ``frame_features`` is True when the representation is a mean of per-frame features,
    which :meth:`represent_frames` then gives one frame at a time.
    """

    is_clip_encoder = True

    def __init__(self, clip_module: nn.Module, head: ProjectionHead, feature_dim: int) -> None:
        super().__init__()
        self.backbone = clip_module
        self.head = head
        self.feature_dim = feature_dim
        self.out_dim = head.out_dim
        self.frame_features = isinstance(clip_module, FrameMean)
        self.load_report = None

    def represent(self, clips: torch.Tensor) -> torch.Tensor:
        """``[N, T, 3, S, S]`` -> ``[N, feature_dim]``."""
        if clips.dim() != 5:
            raise CLTTError(f"a clip encoder takes clips [N, T, 3, S, S], got {list(clips.shape)}")
        return self.backbone(clips)

    def represent_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """Per-frame features ``[N, 3, S, S]`` -> ``[N, feature_dim]`` whose mean over a clip's
        frames is :meth:`represent` of that clip (frame-mean encoders only)."""
        if not self.frame_features:
            raise CLTTError("this clip encoder (model.backbone=vivit) has no per-frame features; "
                            "probe it with probe.level=clip or window")
        return self.backbone.frames(frames)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """``[N, T, 3, S, S]`` -> projections ``[N, out_dim]``."""
        return self.head(self.represent(clips))

    def frame_encoder(self) -> ContrastiveEncoder:
        """The per-frame backbone and this head as a frame encoder, sharing their weights (for export).

        Its ``represent`` of a clip's frames averages to :meth:`represent` of the clip; its
        ``forward`` is ``g(h(x_t))`` per frame, not the ``g(mean_t h(x_t))`` the loss saw.
        """
        if not self.frame_features:
            raise CLTTError("a ViViT clip encoder (model.backbone=vivit) takes clips [N, T, 3, S, S] and has no "
                            "per-frame encoder to export; probe it with cltt probe RUN probe.level=clip")
        return ContrastiveEncoder(self.backbone.backbone, self.head, self.feature_dim)


def build_clip_encoder(recipe) -> ClipEncoder:
    """The recipe's clip encoder: ViViT when ``model.backbone`` is ``vivit``, else frame backbone + mean."""
    model, data = recipe.model, recipe.data
    if model.backbone == "vivit":
        if model.weights:
            raise CLTTError("model.weights loads frame backbones only; ViViT starts from random weights "
                            "(remove model.weights)")
        clip_module = build_vivit(model.vivit, frames=data.window_size, image_size=data.image_size)
        feature_dim = clip_module.feature_dim
        report = None
    else:
        built = build_backbone(model.backbone, data.image_size)
        report = load_backbone_weights(built.module, model.weights) if model.weights else None
        clip_module, feature_dim = FrameMean(built.module), built.feature_dim
    hidden = feature_dim if model.projection_hidden is None else model.projection_hidden
    head = ProjectionHead(feature_dim, hidden, model.projection_dim, batchnorm=model.head_batchnorm)
    encoder = ClipEncoder(clip_module, head, feature_dim)
    encoder.load_report = report
    return encoder


@register_method("clip_simclr")
class ClipSimCLR(Method):
    """Two consistently augmented views of one clip are positives; every other clip view a negative."""

    def __init__(self, recipe):
        nn.Module.__init__(self)
        data = recipe.data
        if data.two_view_offset:
            raise CLTTError("method.name=clip_simclr takes two augmentations of one window; "
                            "set data.two_view_offset=0")
        if not data.augment.consistent:
            raise CLTTError("method.name=clip_simclr augments each view of a clip with one draw for all its frames; "
                            "set data.augment.consistent=true")
        self.config = recipe.method
        # With train.channels_last the trainer converts the (4-D) weights; a convolution whose
        # weight is channels_last computes in that layout whatever the input's, so clips are
        # not converted here.
        self.channels_last = False
        self.encoder = build_clip_encoder(recipe)

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
