"""What evaluation and export may ask of a trained model, stated once.

A method's ``encoder`` offers a per-frame representation, a window representation, both, or
neither; probes, export and visualisation ask these protocols (``isinstance``), never
``hasattr`` on a concrete class:

    FrameRepresentation   represent(frames [..., 3, S, S]) -> [..., feature_dim]
    WindowRepresentation  represent_windows(windows [N, T, 3, S, S]) -> [N, feature_dim]
    SequenceRepresentation  frame embeddings in the context of a sequence (CARL):
                          represent(frames) per frame, contextualise(features [B, T, F],
                          valid, positions) -> [B, T, embedding_dim], trained on
                          ``sequence_frames`` positions
    SlotMasks             (on the method) all_slot_masks(frames [N, T, 3, S, S], chunk) ->
                          {kind: [N, T, K, h, w]}, with ``num_slots``

A frame-mean window encoder is both a frame and a window representation: the mean over a
window's frames of ``represent`` is its ``represent_windows``. (A *clip* is a whole video; a
window is T of its frames, :mod:`cltt.data.windows`.)
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class FrameRepresentation(Protocol):
    feature_dim: int

    def represent(self, frames: torch.Tensor) -> torch.Tensor:
        """``[..., 3, S, S]`` model input -> ``[..., feature_dim]``."""


@runtime_checkable
class WindowRepresentation(Protocol):
    feature_dim: int

    def represent_windows(self, windows: torch.Tensor) -> torch.Tensor:
        """``[N, T, 3, S, S]`` model input -> ``[N, feature_dim]``."""


@runtime_checkable
class SequenceRepresentation(Protocol):
    feature_dim: int
    embedding_dim: int
    sequence_frames: int

    def represent(self, frames: torch.Tensor) -> torch.Tensor:
        """Per-frame backbone features ``[..., 3, S, S]`` -> ``[..., feature_dim]``."""

    def contextualise(self, features: torch.Tensor, valid: torch.Tensor | None = None,
                      positions: torch.Tensor | None = None) -> torch.Tensor:
        """``[B, T, feature_dim]`` -> ``[B, T, embedding_dim]``."""


@runtime_checkable
class SlotMasks(Protocol):
    num_slots: int

    def all_slot_masks(self, frames: torch.Tensor, chunk_size: int | None = None) -> dict[str, torch.Tensor]:
        """``[N, T, 3, S, S]`` -> ``{kind: [N, T, K, h, w]}`` summing to 1 over slots."""
