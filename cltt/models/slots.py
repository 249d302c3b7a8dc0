"""Object slots: slot attention, a predictor from one frame's slots to the next, a decoder.

    attention = SlotAttention(input_dim=64, slot_dim=64, num_slots=7, hidden_dim=256)
    slots, attn = attention(inputs, attention.initial(N), iterations=3)   # [N, K, D], [N, K, P]
    slots_next = SlotPredictor(64, heads=4)(slots)                        # [N, K, D]
    recon, masks = SlotDecoder(64, feature_dim=192, num_patches=64, hidden_dim=256)(slots)
                                                                          # [N, P, C], [N, K, P]

Slot attention (Locatello et al. 2020) with *learned* initial slots: the starting slots are
parameters ``[K, D]``, the same for every frame and video (SlotContrast's choice, which lets
slot k mean the same thing from the first frame on), not samples of a learned Gaussian. One
iteration, with ``x = LN(inputs)`` ``[N, P, Din]`` and ``s = LN(slots)`` ``[N, K, D]``:

    a = softmax over slots k of  q(s) k(x)^T / sqrt(D)           [N, K, P]   (slots compete)
    w = (a + eps) / sum over patches p of (a + eps)              weighted mean per slot
    u = w v(x)                                                   [N, K, D]
    slots = GRU(u, slots);  slots = slots + MLP(LN(slots))

Nothing here normalises across samples, so a sample's slots never depend on the others.
"""

from __future__ import annotations

import torch
from torch import nn


class SlotAttention(nn.Module):
    """Iterative attention of ``K`` slots over ``P`` inputs (see the module doc)."""

    def __init__(self, input_dim: int, slot_dim: int, num_slots: int, hidden_dim: int, eps: float = 1e-8) -> None:
        super().__init__()
        self.num_slots = num_slots
        self.slot_dim = slot_dim
        self.eps = eps
        self.initial_slots = nn.Parameter(torch.randn(num_slots, slot_dim) * slot_dim ** -0.5)
        self.norm_inputs = nn.LayerNorm(input_dim)
        self.norm_slots = nn.LayerNorm(slot_dim)
        self.to_q = nn.Linear(slot_dim, slot_dim, bias=False)
        self.to_k = nn.Linear(input_dim, slot_dim, bias=False)
        self.to_v = nn.Linear(input_dim, slot_dim, bias=False)
        self.gru = nn.GRUCell(slot_dim, slot_dim)
        self.mlp = nn.Sequential(nn.LayerNorm(slot_dim), nn.Linear(slot_dim, hidden_dim), nn.ReLU(),
                                 nn.Linear(hidden_dim, slot_dim))

    def initial(self, n: int) -> torch.Tensor:
        """The learned starting slots for ``n`` samples: ``[n, K, D]``."""
        return self.initial_slots.unsqueeze(0).expand(n, -1, -1)

    def forward(self, inputs: torch.Tensor, slots: torch.Tensor, iterations: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``inputs [N, P, Din]``, starting ``slots [N, K, D]`` -> (slots ``[N, K, D]``, the
        last iteration's attention ``[N, K, P]``, which sums to 1 over slots)."""
        x = self.norm_inputs(inputs)
        keys = self.to_k(x) * self.slot_dim ** -0.5
        values = self.to_v(x)
        n, k, d = slots.shape
        attn = None
        for _ in range(iterations):
            previous = slots
            queries = self.to_q(self.norm_slots(slots))
            attn = torch.softmax(queries @ keys.transpose(1, 2), dim=1)  # [N, K, P]
            weights = (attn + self.eps) / (attn + self.eps).sum(dim=2, keepdim=True)
            updates = weights @ values  # [N, K, D]
            slots = self.gru(updates.reshape(n * k, d), previous.reshape(n * k, d)).view(n, k, d)
            slots = slots + self.mlp(slots)
        return slots, attn


class SlotPredictor(nn.Module):
    """One pre-norm transformer block over the slots of frame t: the initial slots of frame t+1.

    ``[N, K, D] -> [N, K, D]``; self-attention lets slots account for each other (two balls
    about to meet), the MLP moves each one on. No dropout.
    """

    def __init__(self, slot_dim: int, heads: int) -> None:
        super().__init__()
        self.block = nn.TransformerEncoderLayer(slot_dim, heads, dim_feedforward=4 * slot_dim, dropout=0.0,
                                                batch_first=True, norm_first=True)

    def forward(self, slots: torch.Tensor) -> torch.Tensor:
        return self.block(slots)


class SlotDecoder(nn.Module):
    """MLP decoder of patch features from slots, with per-slot alpha masks (DINOSAUR's).

    Slot k is broadcast to every patch p and added to a learned position embedding;
    an MLP maps each ``[D]`` to a feature ``f_kp [C]`` and an alpha logit ``l_kp``:

        m_kp = softmax over slots k of l_kp          masks   [N, K, P]
        recon_p = sum_k m_kp f_kp                    recon   [N, P, C]
    """

    def __init__(self, slot_dim: int, feature_dim: int, num_patches: int, hidden_dim: int) -> None:
        super().__init__()
        self.position = nn.Parameter(torch.randn(num_patches, slot_dim) * 0.02)
        self.mlp = nn.Sequential(
            nn.Linear(slot_dim, hidden_dim), nn.ReLU(),
            nn.Linear(hidden_dim, hidden_dim), nn.ReLU(),
            nn.Linear(hidden_dim, hidden_dim), nn.ReLU(),
            nn.Linear(hidden_dim, feature_dim + 1),
        )

    def forward(self, slots: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``slots [N, K, D]`` -> (recon ``[N, P, C]``, masks ``[N, K, P]``)."""
        out = self.mlp(slots.unsqueeze(2) + self.position)  # [N, K, P, C + 1]
        features, logits = out[..., :-1], out[..., -1]
        masks = torch.softmax(logits, dim=1)
        recon = (masks.unsqueeze(-1) * features).sum(dim=1)
        return recon, masks
