"""A frame encoder with its projection head: what most contrastive methods train.

    encoder = build_encoder("resnet18", image_size=64, projection_dim=128)
    z = encoder(frames)              # [N, 3, 64, 64] -> [N, 128]  (for the loss)
    h = encoder.represent(frames)    # [N, 3, 64, 64] -> [N, 512]  (for probes and export)

Both accept extra leading dimensions, e.g. a batch of windows ``[B, T, 3, S, S]`` gives
``[B, T, out_dim]``.
"""

from __future__ import annotations

import torch
from torch import nn

from cltt.models.backbones import build_backbone
from cltt.models.heads import ProjectionHead
from cltt.models.weights import LoadReport, load_backbone_weights


class ContrastiveEncoder(nn.Module):
    """``backbone`` ([N, 3, S, S] -> [N, feature_dim]) followed by ``head`` (-> [N, out_dim])."""

    def __init__(self, backbone: nn.Module, head: ProjectionHead, feature_dim: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.feature_dim = feature_dim
        self.out_dim = head.out_dim
        # Set by build_encoder when weights came from a file, so callers can say what loaded.
        self.load_report: LoadReport | None = None
        self.fixed_size = False  # the backbone takes only the image size it was built for (a ViT)

    def represent(self, frames: torch.Tensor) -> torch.Tensor:
        """The representation before the head: ``[..., 3, S, S]`` -> ``[..., feature_dim]``."""
        leading = frames.shape[:-3]
        features = self.backbone(frames.reshape(-1, *frames.shape[-3:]))
        return features.reshape(*leading, features.shape[-1])

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """The projection the loss sees: ``[..., 3, S, S]`` -> ``[..., out_dim]``."""
        leading = frames.shape[:-3]
        features = self.backbone(frames.reshape(-1, *frames.shape[-3:]))
        projected = self.head(features)
        return projected.reshape(*leading, projected.shape[-1])


def build_encoder(
    backbone: str,
    image_size: int,
    projection_hidden: int | None = None,
    projection_dim: int = 128,
    head_batchnorm: bool = True,
    weights: str | None = None,
    head=None,
    pool: str | None = None,
    timm_args: dict | None = None,
) -> ContrastiveEncoder:
    """A :class:`ContrastiveEncoder` from plain settings.

    ``projection_hidden=None`` makes the head's hidden layer as wide as the representation.
    ``weights`` names a local file of backbone weights (``.pth``, ``.pt``, ``.bin``,
    ``.safetensors``); the head always starts random. The load is described in
    ``encoder.load_report``. ``head(feature_dim) -> module`` (with ``out_dim``) replaces the
    projection head (DINO's prototype head); the projection settings are then unused.
    ``pool`` and ``timm_args`` shape ``timm/<name>`` backbones (:func:`build_backbone`).
    """
    built = build_backbone(backbone, image_size, pool=pool, timm_args=timm_args)
    report = load_backbone_weights(built.module, weights) if weights else None
    hidden = built.feature_dim if projection_hidden is None else projection_hidden
    head = head(built.feature_dim) if head is not None else \
        ProjectionHead(built.feature_dim, hidden, projection_dim, batchnorm=head_batchnorm)
    encoder = ContrastiveEncoder(built.module, head, built.feature_dim)
    encoder.load_report = report
    encoder.fixed_size = built.fixed_size
    return encoder


def encoder_from_model(model, image_size: int, head=None) -> ContrastiveEncoder:
    """The recipe's (``model.*``) frame encoder with its projection head, or with ``head``."""
    return build_encoder(model.backbone, image_size, model.projection_hidden, model.projection_dim,
                         model.head_batchnorm, model.weights, head=head, pool=model.pool, timm_args=model.timm)
