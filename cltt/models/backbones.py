"""Frame encoders by name: the part of a model that turns one image into one representation.

Every backbone maps ``[N, 3, S, S]`` float frames to ``[N, feature_dim]`` pooled features; that
vector is the representation that probes read and that export writes. A backbone that has a
grid of patch tokens (a ViT, or a CNN's feature map) also offers them through
:class:`PatchTokens`, for object-centric methods:

    backbone = build_backbone("resnet18", image_size=64)
    features = backbone.module(frames)                  # [N, 3, 64, 64] -> [N, 512]
    backbone = build_backbone("timm/vit_small_patch16_224", image_size=64)
    tokens = backbone.patches.read(backbone.module, frames, -1)   # -> [N, 16, 384]

Names are the built-in registry (``resnet18/34/50``, ``vit_s16``, ``vit_b16``, ``vit_t8``,
``tiny_cnn``) or ``timm/<name>`` for any model timm knows (:mod:`cltt.models.timm_backbones`).
Adding a built-in encoder is one decorated function:

    @register_backbone("my_net")
    def _my_net(image_size: int) -> Backbone:
        return Backbone(MyNet(), feature_dim=256)

Weights always start random (torchvision ``weights=None``, timm ``pretrained=False``);
pretrained ones come from a local file through
:func:`cltt.models.weights.load_backbone_weights`, never from the network. Every module built
here carries ``is_backbone = True``, which ``model.freeze: backbone`` looks for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torchvision.models import resnet18, resnet34, resnet50
from torchvision.models.vision_transformer import VisionTransformer

from cltt.errors import CLTTError
from cltt.models.backbone_types import Backbone, PatchTokens
from cltt.models.weights import LoadReport, load_backbone_weights

BackboneFactory = Callable[[int], Backbone]

BACKBONES: dict[str, BackboneFactory] = {}
"""Registered built-in backbone factories, name -> ``factory(image_size)``."""

TIMM_PREFIX = "timm/"


def register_backbone(name: str) -> Callable[[BackboneFactory], BackboneFactory]:
    """Decorator that adds ``factory(image_size) -> Backbone`` to :data:`BACKBONES` as ``name``."""

    def add(factory: BackboneFactory) -> BackboneFactory:
        if name in BACKBONES:
            raise ValueError(f"backbone {name!r} is registered twice")
        BACKBONES[name] = factory
        return factory

    return add


def build_backbone(name: str, image_size: int, pool: str | None = None, timm_args: dict | None = None) -> Backbone:
    """A freshly initialised backbone ``name`` for square frames of side ``image_size``.

    ``pool`` (timm's ``global_pool``: ``token`` for a ViT's class token, ``avg``, ...) and
    ``timm_args`` (more keyword arguments of ``timm.create_model``) apply to ``timm/`` names
    only; a built-in backbone has one fixed pooling.
    """
    if image_size <= 0:
        raise CLTTError(f"image size must be positive, got {image_size} (data.image_size)")
    if name.startswith(TIMM_PREFIX):
        from cltt.models.timm_backbones import build_timm_backbone

        built = build_timm_backbone(name.removeprefix(TIMM_PREFIX), image_size, pool, timm_args or {})
    else:
        if name not in BACKBONES:
            valid = ", ".join(sorted(BACKBONES))
            raise CLTTError(f"unknown backbone {name!r}; choose one of: {valid}, or timm/<name> for any timm model "
                            "(model.backbone)")
        for key, value in (("model.pool", pool), ("model.timm", timm_args)):
            if value:
                raise CLTTError(f"{key} applies to timm/<name> backbones; {name} is built in with one fixed pooling "
                                f"(remove {key})")
        built = BACKBONES[name](image_size)
    built.module.is_backbone = True
    return built


def backbone_from_model(model, image_size: int) -> tuple[Backbone, LoadReport | None]:
    """The recipe's backbone (``model.backbone``, ``model.pool``, ``model.timm``) at ``image_size``,
    with ``model.weights`` loaded when set: ``(backbone, what loaded or None)``."""
    built = build_backbone(model.backbone, image_size, pool=model.pool, timm_args=model.timm)
    report = load_backbone_weights(built.module, model.weights) if model.weights else None
    return built, report


def patch_grid(backbone: Backbone, image_size: int, block: int = -1) -> tuple[int, int]:
    """(side of the square patch grid, token width) of ``backbone``'s block ``block`` at ``image_size`` (one dry run)."""
    module = backbone.module
    was_training = module.training
    module.eval()  # the dry run must not move batch-norm statistics
    with torch.no_grad():
        tokens = backbone.patches.read(module, torch.zeros(1, 3, image_size, image_size), block)
    module.train(was_training)
    grid = round(tokens.shape[1] ** 0.5)
    if grid * grid != tokens.shape[1]:
        raise CLTTError(f"the backbone gives {tokens.shape[1]} patch tokens at {image_size} px, not a square grid")
    return grid, int(tokens.shape[2])


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


@dataclass(frozen=True)
class ViTSize:
    patch_size: int
    width: int
    heads: int
    depth: int
    mlp_dim: int


VIT_SIZES: dict[str, ViTSize] = {
    # vit_t8: a small option for 32-64 px frames on a CPU (a 64 px frame is an 8 x 8 grid of
    # patches). Two blocks, not twelve: nobody has pretrained weights of this shape, and with
    # random weights the patch tokens of bouncing balls cluster by object as well after two
    # blocks as after twelve (k-means ARI of patches ~0.58 vs ~0.57, 0.44 for the bare patch
    # embedding) at a sixth of the cost.
    "vit_t8": ViTSize(patch_size=8, width=192, heads=3, depth=2, mlp_dim=768),
    "vit_s16": ViTSize(patch_size=16, width=384, heads=6, depth=12, mlp_dim=1536),  # DINO ViT-S/16's shape
    "vit_b16": ViTSize(patch_size=16, width=768, heads=12, depth=12, mlp_dim=3072),
}


def _torchvision_vit_tokens(vit: nn.Module, frames: torch.Tensor, block: int) -> torch.Tensor:
    """Patch tokens of a torchvision :class:`VisionTransformer` after ``block``, final LayerNorm applied."""
    tokens = vit._process_input(frames)
    cls = vit.class_token.expand(tokens.shape[0], -1, -1)
    encoder = vit.encoder
    x = encoder.dropout(torch.cat([cls, tokens], dim=1) + encoder.pos_embedding)
    layers = list(encoder.layers)
    for layer in layers[:range(len(layers))[block] + 1]:
        x = layer(x)
    return encoder.ln(x)[:, 1:]


def _headless_vit(image_size: int, name: str) -> Backbone:
    size = VIT_SIZES[name]
    if image_size % size.patch_size:
        fitting = max(size.patch_size, round(image_size / size.patch_size) * size.patch_size)
        raise CLTTError(
            f"{name} cuts frames into {size.patch_size}x{size.patch_size} patches, so the image size must be "
            f"a multiple of {size.patch_size}; got {image_size} (set data.image_size to e.g. {fitting})"
        )
    model = VisionTransformer(image_size=image_size, patch_size=size.patch_size, num_layers=size.depth,
                              num_heads=size.heads, hidden_dim=size.width, mlp_dim=size.mlp_dim)
    model.heads = nn.Identity()
    patches = PatchTokens(_torchvision_vit_tokens, blocks=size.depth, patch_size=size.patch_size)
    return Backbone(model, size.width, patches, fixed_size=True)


for _name in VIT_SIZES:
    register_backbone(_name)(lambda image_size, name=_name: _headless_vit(image_size, name))


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
