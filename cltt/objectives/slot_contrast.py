"""SlotContrast's slot-slot contrast (Manasyan et al., "Temporally Consistent Object-Centric
Learning by Contrasting Slots", CVPR 2025).

``slots [B, T, K, D]`` are the K slots of each of T frames of B videos (the global batch).
With ``z`` the L2-normalised slots and τ the temperature, for every t < T-1 slot k of video i
at t+1 is an anchor; its candidates are every slot of every video at t (B*K of them) and its
one positive is slot k of video i at t, so slot k must keep following the same object:

    ℓ(i, t, k) = -log  exp(<z_{i,t+1,k}, z_{i,t,k}> / τ) / Σ_{j, m} exp(<z_{i,t+1,k}, z_{j,t,m}> / τ)

The other slots of the anchor's own video at t are negatives too (they hold other objects),
so even a batch of one video contrasts. The pair ``(total, units)`` is the sum of ℓ over the
anchors of the samples asked for and their number, ``count * (T - 1) * K``, so a caller (or the
engine, over processes) divides once. Computed in float32 (half-precision slots are cast
first). A sample with T = 1 has no anchors; the caller skips the loss then.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def slot_contrast(slots: torch.Tensor, first: int, count: int, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Slot-slot InfoNCE of the anchors of samples ``first .. first+count-1`` (module doc).

    ``slots [B, T, K, D]`` of the whole (global) batch -> (sum of the anchors' terms, number of
    anchors = ``count * (T - 1) * K``). Anchor (i, t+1, k) is scored against the ``B * K``
    slots at t; its positive is (i, t, k).
    """
    num_videos, frames, k, _ = slots.shape
    z = F.normalize(slots.float(), dim=-1)
    anchors = z[first:first + count, 1:]  # [count, T-1, K, D]
    candidates = z[:, :-1]  # [B, T-1, K, D]
    logits = torch.einsum("itkd,jtmd->tikjm", anchors, candidates).reshape(frames - 1, count * k, num_videos * k)
    positives = torch.arange(first * k, (first + count) * k, device=slots.device)
    targets = positives.expand(frames - 1, -1)
    total = F.cross_entropy((logits / temperature).flatten(0, 1), targets.reshape(-1), reduction="sum")
    return total, torch.tensor(float(targets.numel()), device=slots.device)
