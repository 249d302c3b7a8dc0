"""Frames to object slots tracked through time (SlotContrast's encoder; the method is
:mod:`cltt.methods.slotcontrast`).

Per frame t of a window of T frames, with K slots of width D on a ``grid x grid`` patch grid
(P = grid², C the ViT's width):

    h_t = ViT(frame_t)                     patch features (frozen by default)   [P, C]
    x_t = MLP(LN(h_t + pos))               2-layer transform                     [P, D]
    s_0 = SlotAttention(x_0, learned init, first_iterations)                    [K, D]
    s_t = SlotAttention(x_t, Predictor(s_{t-1}), iterations),  t >= 1           [K, D]

``pos`` is slot attention's soft position embedding (Locatello et al. 2020): a learned linear
map of each patch's grid coordinates ``(x, y, 1-x, 1-y)`` to ``[C]``. Without it a slot knows
what it attends to but not where, so a decoder cannot place objects: a frozen ViT with random
weights keeps almost nothing of its own position embedding (initialised at std 0.02 beside
patch embeddings of order 1).

    encoder = SlotEncoder(PatchFeatures(recipe.model, 64), num_slots=7, slot_dim=64, mlp_hidden=256,
                          predictor_heads=4, iterations=2, first_iterations=3)
    features, inputs = encoder.patches(frames)           # [N, 3, S, S] -> [N, P, C], [N, P, D]
    slots = encoder.track(inputs.unflatten(0, (b, T)))    # [b, T, P, D] -> [b, T, K, D]
    h = encoder.represent(frames)                         # [..., 3, S, S] -> [..., D]

State-dict names (``features``, ``position``, ``transform``, ``slot_attention``, ``predictor``)
are those of checkpoints written when this class lived in the method file; keep them.
"""

from __future__ import annotations

import torch
from torch import nn

from cltt.models.patch_features import PatchFeatures
from cltt.models.slots import SlotAttention, SlotPredictor


class SoftPosition(nn.Module):
    """Learned position embedding of a ``grid x grid`` patch grid: ``Linear(x, y, 1-x, 1-y) -> [P, C]``."""

    def __init__(self, grid: int, width: int) -> None:
        super().__init__()
        ticks = torch.linspace(0.0, 1.0, grid)
        y, x = torch.meshgrid(ticks, ticks, indexing="ij")  # row-major, as the ViT orders patches
        self.register_buffer("coords", torch.stack([x, y, 1 - x, 1 - y], dim=-1).reshape(grid * grid, 4),
                             persistent=False)
        self.project = nn.Linear(4, width)

    def forward(self) -> torch.Tensor:
        return self.project(self.coords)


class SlotEncoder(nn.Module):
    """Frames to object slots: ViT patches, MLP transform, slot attention, predictor (module doc).

    ``represent(frames)`` is the mean of a frame's slots, the frame taken on its own (learned
    init, ``first_iterations``), so it is a per-frame representation for probes and export.
    """

    def __init__(self, features: PatchFeatures, num_slots: int, slot_dim: int, mlp_hidden: int, predictor_heads: int,
                 iterations: int, first_iterations: int) -> None:
        super().__init__()
        self.features = features
        self.load_report = features.load_report
        width = features.feature_dim
        self.position = SoftPosition(features.grid, width)
        self.transform = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, mlp_hidden), nn.ReLU(),
                                       nn.Linear(mlp_hidden, slot_dim))
        self.slot_attention = SlotAttention(slot_dim, slot_dim, num_slots, mlp_hidden)
        self.predictor = SlotPredictor(slot_dim, predictor_heads)
        self.iterations = iterations
        self.first_iterations = first_iterations
        self.num_slots = num_slots
        self.feature_dim = slot_dim  # width of represent()

    def patches(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[N, 3, S, S]`` -> (frozen features ``[N, P, C]``, slot-attention inputs ``[N, P, D]``)."""
        features = self.features(frames)
        return features, self.transform(features + self.position())

    def track(self, inputs: torch.Tensor, previous: torch.Tensor | None = None,
              with_attention: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Slots of each frame of ``inputs [b, T, P, D]`` -> ``[b, T, K, D]`` (and, with
        ``with_attention``, each frame's last slot-attention map ``[b, T, K, P]``).

        Frame 0 starts from the learned slots (``first_iterations``) or, when ``previous``
        ``[b, K, D]`` (the last slots of an earlier chunk of the same clip) is given, from
        ``predictor(previous)`` (``iterations``); every later frame from the predictor.
        """
        b, frames = inputs.shape[:2]
        if previous is None:
            slots, attn = self.slot_attention(inputs[:, 0], self.slot_attention.initial(b), self.first_iterations)
        else:
            slots, attn = self.slot_attention(inputs[:, 0], self.predictor(previous), self.iterations)
        out, maps = [slots], [attn]
        for t in range(1, frames):
            slots, attn = self.slot_attention(inputs[:, t], self.predictor(slots), self.iterations)
            out.append(slots)
            maps.append(attn)
        if with_attention:
            return torch.stack(out, dim=1), torch.stack(maps, dim=1)
        return torch.stack(out, dim=1)

    def represent(self, frames: torch.Tensor) -> torch.Tensor:
        """Mean slot of each frame on its own: ``[..., 3, S, S] -> [..., slot_dim]``."""
        leading = frames.shape[:-3]
        _, inputs = self.patches(frames.reshape(-1, *frames.shape[-3:]))
        slots = self.track(inputs.unsqueeze(1))[:, 0]
        return slots.mean(dim=1).reshape(*leading, -1)
