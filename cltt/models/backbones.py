"""Frame encoders by name: the part of a model that turns one image into one representation.

Every backbone maps ``[N, 3, S, S]`` float frames to ``[N, feature_dim]`` pooled features; that
vector is the representation that probes read and that export writes. A factory takes the
recipe's image size ``S`` and returns a :class:`Backbone`:

    backbone = build_backbone("resnet18", image_size=64)
    features = backbone.module(frames)          # [N, 3, 64, 64] -> [N, 512]

Adding an encoder is one decorated function:

    @register_backbone("my_net")
    def _my_net(image_size: int) -> Backbone:
        return Backbone(MyNet(), feature_dim=256)

Weights always start random (torchvision ``weights=None``); pretrained ones come from a local
file through :func:`cltt.models.weights.load_backbone_weights`, never from the network.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torchvision.models import resnet18, resnet34, resnet50
from torchvision.models.vision_transformer import VisionTransformer

from cltt.errors import CLTTError


@dataclass(frozen=True, eq=False)
class Backbone:
    """A frame encoder and the width of what it returns.

    ``module``: ``[N, 3, S, S]`` float -> ``[N, feature_dim]`` float.
    """

    module: nn.Module
    feature_dim: int


BackboneFactory = Callable[[int], Backbone]

BACKBONES: dict[str, BackboneFactory] = {}
"""Registered backbone factories, name -> ``factory(image_size)``."""


def register_backbone(name: str) -> Callable[[BackboneFactory], BackboneFactory]:
    """Decorator that adds ``factory(image_size) -> Backbone`` to :data:`BACKBONES` as ``name``."""

    def add(factory: BackboneFactory) -> BackboneFactory:
        if name in BACKBONES:
            raise ValueError(f"backbone {name!r} is registered twice")
        BACKBONES[name] = factory
        return factory

    return add


def build_backbone(name: str, image_size: int) -> Backbone:
    """A freshly initialised backbone ``name`` for square frames of side ``image_size``."""
    if name not in BACKBONES:
        valid = ", ".join(sorted(BACKBONES))
        raise CLTTError(f"unknown backbone {name!r}; choose one of: {valid} (model.backbone)")
    if image_size <= 0:
        raise CLTTError(f"image size must be positive, got {image_size} (data.image_size)")
    return BACKBONES[name](image_size)


# --- ResNets: torchvision's, with the classifier removed so forward ends at the global pool.


def _headless_resnet(constructor: Callable[..., nn.Module]) -> Backbone:
    model = constructor(weights=None)
    feature_dim = model.fc.in_features
    model.fc = nn.Identity()
    return Backbone(model, feature_dim)


@register_backbone("resnet18")
def _resnet18(image_size: int) -> Backbone:
    return _headless_resnet(resnet18)


@register_backbone("resnet34")
def _resnet34(image_size: int) -> Backbone:
    return _headless_resnet(resnet34)


@register_backbone("resnet50")
def _resnet50(image_size: int) -> Backbone:
    return _headless_resnet(resnet50)


# --- Vision transformers: torchvision's, heads removed so forward returns the class token.

_VIT_PATCH = 16


def _headless_vit(image_size: int, name: str, hidden_dim: int, num_heads: int, mlp_dim: int) -> Backbone:
    if image_size % _VIT_PATCH:
        raise CLTTError(
            f"{name} cuts frames into {_VIT_PATCH}x{_VIT_PATCH} patches, so the image size must be "
            f"a multiple of {_VIT_PATCH}; got {image_size} (set data.image_size to e.g. "
            f"{max(_VIT_PATCH, round(image_size / _VIT_PATCH) * _VIT_PATCH)})"
        )
    model = VisionTransformer(
        image_size=image_size,
        patch_size=_VIT_PATCH,
        num_layers=12,
        num_heads=num_heads,
        hidden_dim=hidden_dim,
        mlp_dim=mlp_dim,
    )
    model.heads = nn.Identity()
    return Backbone(model, hidden_dim)


@register_backbone("vit_s16")
def _vit_s16(image_size: int) -> Backbone:
    return _headless_vit(image_size, "vit_s16", hidden_dim=384, num_heads=6, mlp_dim=1536)


@register_backbone("vit_b16")
def _vit_b16(image_size: int) -> Backbone:
    return _headless_vit(image_size, "vit_b16", hidden_dim=768, num_heads=12, mlp_dim=3072)


# --- A small CNN for tests and CPU quickstarts.


class TinyCNN(nn.Module):
    """Four 3x3 stride-2 convolutions (32-64-128-128), GroupNorm + ReLU, global average pool.

    ``[N, 3, S, S]`` -> ``[N, 128]``. GroupNorm rather than BatchNorm normalises each frame on
    its own, so encoding a batch in pieces gives the features of encoding it whole (up to float
    rounding in the convolutions), in training mode too.
    """

    widths = (32, 64, 128, 128)

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = 3
        for width in self.widths:
            layers += [
                nn.Conv2d(in_channels, width, kernel_size=3, stride=2, padding=1, bias=False),
                nn.GroupNorm(num_groups=8, num_channels=width),
                nn.ReLU(inplace=True),
            ]
            in_channels = width
        self.features = nn.Sequential(*layers)
        self.feature_dim = in_channels

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """``[N, 3, S, S]`` -> ``[N, 128]``."""
        return self.features(frames).mean(dim=(2, 3))


@register_backbone("tiny_cnn")
def _tiny_cnn(image_size: int) -> Backbone:
    model = TinyCNN()
    return Backbone(model, model.feature_dim)
