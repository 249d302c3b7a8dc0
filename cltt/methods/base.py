"""What every method shares: a frame encoder, embeddings per sample, a loss over samples.

A batch holds ``b`` samples ``views [b, V, T, 3, S, S]`` (V views of a window of T frames)
and, for methods that name them in :attr:`Method.extra_keys`, more per-sample tensors from the
dataset (CARL's timestamps and padding masks). A method picks K frames of each sample
(:meth:`Method.select_frames`), embeds them (:meth:`Method.embed` -> ``[b, K, D]``) and scores
the embeddings of all B samples of the global batch with :meth:`Method.loss_terms`, which
returns ``(total, count)`` for the anchors of one process so the engine can sum both over
processes, split batches into sub-batches (exact accumulation embeds first, then
backpropagates) and average exactly.

A method may add a *local* loss that needs no other sample (SlotContrast's reconstruction):
:meth:`Method.forward_step` returns it beside the embeddings as ``(total, units)`` and the
engine minimises ``sum(totals) / sum(units)`` of each part, summed over parts:

    L = contrast_total / contrast_units + local_total / local_units     (weights inside totals)

A method that reads its own kind of sample (whole videos rather than windows) overrides
:meth:`Method.training_dataset`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from cltt.models import build_encoder
from cltt.objectives import multi_positive_infonce


@dataclass
class Forward:
    """What one forward pass over a chunk of samples gives the engine.

    ``embeddings [b, K, D]`` go to :meth:`Method.loss_terms` (gathered over processes);
    ``local_total`` (a scalar, already weighted) and ``local_units`` (a count) are a loss
    part that each sample computes alone; None when the method has none.
    """

    embeddings: torch.Tensor
    local_total: torch.Tensor | None = None
    local_units: torch.Tensor | None = None


class Method(nn.Module):
    name = "base"
    extra_keys: tuple[str, ...] = ()  # per-sample dataset fields besides "views" the method reads
    sample_kind = "windows"  # what one training sample is, for progress lines

    def __init__(self, recipe):
        super().__init__()
        self.config = recipe.method
        self.encoder = build_encoder(
            backbone=recipe.model.backbone,
            image_size=recipe.data.image_size,
            projection_hidden=recipe.model.projection_hidden,
            projection_dim=recipe.model.projection_dim,
            head_batchnorm=recipe.model.head_batchnorm,
            weights=recipe.model.weights,
        )
        self.channels_last = False

    @staticmethod
    def dataset_views(recipe) -> int:
        """Views per sample the dataset must produce (2 for two augmentations of one window)."""
        return 1

    @classmethod
    def training_dataset(cls, recipe, index, seed: int):
        """The augmented training samples over ``index`` (an up-to-date manifest): windows by default.

        Items are dicts with ``views`` uint8 ``[V, T, 3, S, S]`` and the :attr:`extra_keys`.
        """
        from cltt.data.build import windows_dataset

        return windows_dataset(recipe.data, index, views=cls.dataset_views(recipe), augment=True, seed=seed)

    def select_frames(self, views: torch.Tensor) -> torch.Tensor:
        """``[b, V, T, 3, S, S]`` -> the ``[b, K, 3, S, S]`` frames this method embeds (all by default)."""
        return views.flatten(1, 2)

    def frame_groups(self, num_samples: int, frames: int, device: torch.device) -> torch.Tensor:
        """Group id of each of the ``num_samples * frames`` embeddings; equal ids are positives."""
        raise NotImplementedError

    def forward_step(self, views: torch.Tensor, extras: dict[str, torch.Tensor]) -> Forward:
        """``views [b, V, T, 3, S, S]`` float (model input) and this chunk's ``extras`` -> :class:`Forward`."""
        return Forward(self.embed(views))

    def embed(self, views: torch.Tensor) -> torch.Tensor:
        """``[b, V, T, 3, S, S]`` float -> projections ``[b, K, D]``."""
        frames = self.select_frames(views)
        b, k = frames.shape[:2]
        flat = frames.flatten(0, 1)
        if self.channels_last:
            flat = flat.contiguous(memory_format=torch.channels_last)
        return self.encoder(flat).view(b, k, -1)

    def loss_terms(self, embeddings: torch.Tensor, first: int, count: int,
                   extras: dict[str, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """InfoNCE terms of anchors from samples ``first .. first+count-1`` against all samples.

        ``embeddings [B, K, D]`` and ``extras`` (each ``[B, ...]``, all processes' samples)
        -> ``(total, units)``; loss = sum of totals / sum of units.
        """
        num_samples, frames = embeddings.shape[:2]
        groups = self.frame_groups(num_samples, frames, embeddings.device)
        anchors = torch.arange(first * frames, (first + count) * frames, device=embeddings.device)
        return multi_positive_infonce(
            embeddings.flatten(0, 1),
            groups,
            temperature=self.config.temperature,
            reduction=self.config.reduction,
            decoupled=self.config.decoupled,
            anchors=anchors,
        )


def window_groups(num_samples: int, frames: int, device: torch.device) -> torch.Tensor:
    """Every frame of sample i is in group i: ``[0]*K + [1]*K + ...``."""
    return torch.arange(num_samples, device=device).repeat_interleave(frames)


def aligned_groups(num_samples: int, frames: int, device: torch.device) -> torch.Tensor:
    """Frame t of view 0 and frame t of view 1 of a sample share a group (K = 2T).

    Embedding k of sample i is view k // T, frame k % T; its group is ``i * T + k % T``.
    """
    per_view = frames // 2
    within = torch.arange(frames, device=device) % per_view
    return (torch.arange(num_samples, device=device)[:, None] * per_view + within).reshape(-1)
