"""Any timm model as a backbone: ``model.backbone: timm/<name>``.

    model:
      backbone: timm/vit_base_patch16_224
      timm: {patch_size: 14}        # more keyword arguments of timm.create_model
      pool: token                   # timm's global_pool: token (class token), avg, max, ...

The model is built with ``timm.create_model(name, pretrained=False, num_classes=0, ...)``:
random weights (nothing is downloaded; weights come from ``model.weights``), classifier
removed, so ``module(frames)`` is the pooled feature ``[N, 3, S, S] -> [N, feature_dim]``.
Models that take an image size (ViTs, Swin, ...) are built at ``data.image_size``. Models
with ``forward_intermediates`` (ViTs and most CNNs in timm 1.0) also give patch tokens: a
ViT's tokens after a chosen block, a CNN's feature map after a chosen stage, each position a
token ``[N, h * w, C]`` (:class:`~cltt.models.backbone_types.PatchTokens`).
"""

from __future__ import annotations

import difflib
import functools

import torch
from torch import nn

from cltt.errors import CLTTError
from cltt.models.backbone_types import Backbone, PatchTokens

RESERVED_ARGS = {"pretrained": "weights come from model.weights", "num_classes": "the classifier is always removed",
                 "global_pool": "set model.pool", "img_size": "set data.image_size",
                 "pretrained_cfg_overlay": "weights come from model.weights"}


@functools.cache
def timm_names() -> tuple[str, ...]:
    import timm

    return tuple(timm.list_models())


def build_timm_backbone(name: str, image_size: int, pool: str | None, timm_args: dict) -> Backbone:
    """``timm.create_model(name)`` headless at ``image_size`` (module doc), as a :class:`Backbone`."""
    import timm

    if name.partition(".")[0] not in timm_names():  # a pretrained tag (".dino") only picks a config here
        close = difflib.get_close_matches(name, timm_names(), n=3, cutoff=0.5)
        hint = f"; closest: {', '.join('timm/' + c for c in close)}" if close else \
            "; python -c 'import timm; print(timm.list_models(\"*vit*\"))' lists them"
        raise CLTTError(f"timm has no model {name!r} (model.backbone=timm/{name}){hint}")
    for key in timm_args:
        if key in RESERVED_ARGS:
            raise CLTTError(f"model.timm.{key} is set by cltt ({RESERVED_ARGS[key]}); remove it")
    if pool == "":
        raise CLTTError("model.pool='' would return unpooled feature maps; name a pooling (token, avg, max) or null")
    args = dict(timm_args, pretrained=False, num_classes=0)
    if pool is not None:
        args["global_pool"] = pool
    module = _create(timm, name, args, image_size)
    patch = getattr(getattr(module, "patch_embed", None), "patch_size", None)
    if patch is not None and image_size % patch[0]:
        fitting = max(patch[0], round(image_size / patch[0]) * patch[0])
        raise CLTTError(f"timm/{name} cuts frames into {patch[0]}x{patch[0]} patches, so data.image_size must be a "
                        f"multiple of {patch[0]}; got {image_size} (try {fitting})")
    module.eval()  # the dry run below must not move batch-norm statistics
    try:
        with torch.no_grad():
            pooled = module(torch.zeros(1, 3, image_size, image_size))
    except Exception as error:  # timm asserts on sizes its model cannot take
        raise CLTTError(f"timm/{name} cannot encode {image_size} px frames ({_first_line(error)}); "
                        "change data.image_size") from None
    module.train()
    if pooled.dim() != 2:
        raise CLTTError(f"timm/{name} with model.pool={pool} gives {list(pooled.shape[1:])} per frame, not a vector; "
                        "choose a pooling (model.pool: avg)")
    fixed_size = hasattr(module, "patch_embed") and not getattr(module, "dynamic_img_size", False)
    return Backbone(module, int(pooled.shape[1]), _patch_tokens(module), fixed_size=fixed_size)


def _create(timm, name: str, args: dict, image_size: int) -> nn.Module:
    """The model at ``image_size`` when it takes one, else as timm builds it."""
    try:
        try:
            return timm.create_model(name, img_size=image_size, **args)
        except TypeError as error:
            if "img_size" not in str(error):
                raise
            return timm.create_model(name, **args)
    except CLTTError:
        raise
    except Exception as error:  # a bad keyword or value in model.timm
        raise CLTTError(f"timm cannot build {name} with model.timm={args_shown(args)} ({_first_line(error)})") from None


def args_shown(args: dict) -> dict:
    return {key: value for key, value in args.items() if key not in ("pretrained", "num_classes")}


def _patch_tokens(module: nn.Module) -> PatchTokens | None:
    """How to read ``module``'s patch tokens, None when timm gives it no intermediate features."""
    info = getattr(module, "feature_info", None)
    if not hasattr(module, "forward_intermediates") or not info:
        return None
    stages = list(info)
    return PatchTokens(_read_tokens, blocks=len(stages), patch_size=int(stages[-1].get("reduction", 1)))


def _read_tokens(module: nn.Module, frames: torch.Tensor, block: int) -> torch.Tensor:
    """``[N, 3, S, S]`` -> ``[N, h * w, C]``: block ``block``'s output, final norm applied."""
    index = range(len(module.feature_info))[block]
    (maps,) = module.forward_intermediates(frames, indices=[index], norm=True, output_fmt="NCHW",
                                           intermediates_only=True)
    return maps.flatten(2).transpose(1, 2)


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
