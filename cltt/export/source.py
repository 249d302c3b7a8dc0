"""What an export starts from: a checkpoint's encoder, the recipe it was trained with, and
where it came from (run, epoch, step), which every exported file records."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from cltt import __version__
from cltt.data.model_input import IMAGENET_MEAN, IMAGENET_STD
from cltt.engine.checkpoint import load_checkpoint
from cltt.engine.run_dir import changed_keys, resolve_resume_target, saved_recipe
from cltt.errors import CLTTError
from cltt.export.preprocess import ENTRY_POINT, preprocess_source
from cltt.models import ContrastiveEncoder, build_encoder
from cltt.recipe import Recipe, apply_overrides, recipe_from_dict, recipe_to_dict, without_weights_file

# Overrides an export accepts: its own section, and what only says where data and compute are.
# Anything else (model.*, data.image_size, ...) would describe a model the weights do not fit.
EXPORT_PREFIX = "export."
FREE_KEYS = {"data.root", "data.cache_dir", "data.num_workers", "train.device"}


class FrameEncoder(nn.Module):
    """The exported encoder: ``[N, 3, S, S]`` float, ImageNet-normalised -> ``[N, D]``.

    Without a head ``D`` is the backbone's ``feature_dim`` (the representation probes read);
    with one it is the projection size (the embedding the contrastive loss saw).
    """

    def __init__(self, backbone: nn.Module, head: nn.Module | None = None) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """``[N, 3, S, S]`` -> ``[N, D]``."""
        features = self.backbone(frames)
        return features if self.head is None else self.head(features)


def build_frame_encoder(architecture: dict) -> FrameEncoder:
    """A randomly initialised :class:`FrameEncoder` of the shape an export's metadata describes."""
    encoder = build_encoder(
        backbone=architecture["backbone"],
        image_size=architecture["image_size"],
        projection_hidden=architecture["projection_hidden"],
        projection_dim=architecture["projection_dim"],
        head_batchnorm=architecture["head_batchnorm"],
        pool=architecture.get("pool"),  # absent from exports written before timm backbones
        timm_args=architecture.get("timm") or {},
    )
    return FrameEncoder(encoder.backbone, encoder.head if architecture["with_head"] else None)


@dataclass
class ExportSource:
    """A checkpoint opened for export; ``encoder`` is in eval mode on the CPU."""

    checkpoint: Path
    recipe: Recipe
    encoder: ContrastiveEncoder
    epoch: int  # epochs completed
    step: int  # optimizer steps taken
    mid_epoch: bool  # saved inside an epoch (a preempted run)
    no_head_reason: str | None = None  # why the projection head cannot be exported per frame

    @property
    def run_dir(self) -> Path:
        return self.checkpoint.parent

    def stem(self, with_head: bool) -> str:
        """File-name stem: ``<run>_epoch003`` (``<run>_step0001234`` mid-epoch), ``_head`` added."""
        when = f"step{self.step:07d}" if self.mid_epoch else f"epoch{self.epoch:03d}"
        return f"{self.run_dir.name}_{when}" + ("_head" if with_head else "")

    def frame_encoder(self, with_head: bool) -> FrameEncoder:
        """The trained backbone (and head) as one module, sharing this source's weights."""
        if with_head and self.no_head_reason:
            raise CLTTError(f"{self.checkpoint}: {self.no_head_reason}; export it without --with-head "
                            "(export.with_head=false)")
        return FrameEncoder(self.encoder.backbone, self.encoder.head if with_head else None).eval()

    def architecture(self, with_head: bool) -> dict:
        """What :func:`build_frame_encoder` needs to rebuild the module before loading weights."""
        model = self.recipe.model
        return {
            "backbone": model.backbone,
            "timm": dict(model.timm),
            "pool": model.pool,
            "image_size": self.recipe.data.image_size,
            "feature_dim": self.encoder.feature_dim,
            "projection_hidden": model.projection_hidden or self.encoder.feature_dim,
            "projection_dim": model.projection_dim,
            "head_batchnorm": model.head_batchnorm,
            "with_head": with_head,
            "output": "projection" if with_head else "representation",
            "output_dim": model.projection_dim if with_head else self.encoder.feature_dim,
        }

    def describe(self, with_head: bool) -> dict:
        """Metadata every exported file carries: architecture, input, provenance, recipe."""
        size = self.recipe.data.image_size
        return {
            "format": "cltt-export/1",
            "architecture": self.architecture(with_head),
            "input": {
                "layout": "[N, 3, S, S]",
                "shape": ["N", 3, size, size],
                "dtype": "float32",
                "channels": "RGB",
                "preprocess": "decode at 1/r size (cv2.IMREAD_REDUCED_COLOR_r, r the largest of 8, 4, 2 leaving the "
                              "short side >= S, else 1), BGR -> RGB, cut the centre square, resize it to S x S "
                              "(cv2.INTER_AREA when shrinking, else INTER_LINEAR), x = (pixel / 255 - mean) / std; "
                              f"preprocess_python does exactly this: exec it, then {ENTRY_POINT}(path) -> [1, 3, S, S]",
                "preprocess_python": preprocess_source(size),
                "mean": list(IMAGENET_MEAN),
                "std": list(IMAGENET_STD),
            },
            "source": {
                "checkpoint": str(self.checkpoint.absolute()),
                "run": self.run_dir.name,
                "epoch": self.epoch,
                "step": self.step,
                "mid_epoch": self.mid_epoch,
            },
            "cltt_version": __version__,
            "recipe": recipe_to_dict(self.recipe),
        }


def open_checkpoint(target: str | Path, overrides: Sequence[str] = ()) -> ExportSource:
    """Open a checkpoint file, or the latest checkpoint of a run dir, for export.

    ``overrides`` (``key=value``) may set ``export.*`` and where data and compute are
    (``data.root``, ``data.cache_dir``, ``data.num_workers``, ``train.device``); the model
    itself comes from the recipe stored in the checkpoint.
    """
    path = resolve_resume_target(Path(target))
    state = load_checkpoint(path)
    recipe = _with_overrides(saved_recipe(state, path), overrides)
    # The checkpoint holds every weight; a pretrained-weights file named at training time
    # may no longer exist here, so it is not read again.
    untrained = without_weights_file(recipe)
    from cltt.methods import build_method

    method = build_method(untrained)
    try:
        method.load_state_dict(state["model"])
    except (KeyError, RuntimeError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise CLTTError(f"the weights in {path} do not fit the model its recipe describes ({first[:160]})") from None
    progress = state.get("progress", {})
    encoder, no_head_reason = _frame_encoder_of(method, path)
    return ExportSource(
        checkpoint=path,
        recipe=recipe,
        encoder=encoder.eval(),
        no_head_reason=no_head_reason,
        epoch=int(progress.get("epoch", 0)),
        step=int(progress.get("step", 0)),
        mid_epoch=int(progress.get("position", 0)) > 0,
    )


def _frame_encoder_of(method, path: Path):
    """(the per-frame encoder a method exports, why its head cannot come along or None): the
    method's own answer (:meth:`~cltt.methods.base.Method.export_encoder`), or one line."""
    try:
        return method.export_encoder()
    except CLTTError as err:
        raise CLTTError(f"{path}: {err}") from None


def _with_overrides(saved: Recipe, overrides: Sequence[str]) -> Recipe:
    tree = recipe_to_dict(saved)
    apply_overrides(tree, overrides)
    recipe = recipe_from_dict(tree)
    refused = [key for key in changed_keys(recipe_to_dict(saved), recipe_to_dict(recipe))
               if not key.startswith(EXPORT_PREFIX) and key not in FREE_KEYS]
    if refused:
        raise CLTTError(
            f"cltt export takes the model from the checkpoint, so {', '.join(refused)} cannot change; "
            f"overrides may set export.*, {', '.join(sorted(FREE_KEYS))}"
        )
    return recipe
