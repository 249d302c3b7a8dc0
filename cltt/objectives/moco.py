"""MoCo's contrastive loss: queries against momentum keys and a queue of past keys.

He et al. 2020 (MoCo), Chen et al. 2020 (v2), Chen, Xie & He 2021 (v3); temporal positives as
Orhan, Gupta & Lake 2020 ("Self-supervised learning through the eyes of a child", temporal MoCo).

N queries ``q [N, D]`` (the trained encoder), M keys ``k [M, D]`` of the current batch (the
momentum encoder, no gradient), a queue of Q earlier keys ``u [Q, D]`` and a boolean
``positive [N, M]`` saying which keys are positives of which query. With every vector
L2-normalised and a temperature τ::

    s_ij = q_i · k_j / τ            r_im = q_i · u_m / τ
    P(i) = {j : positive_ij}        every other key and every queue entry is a negative
    log Z_i = log( Σ_j exp(s_ij) + Σ_m exp(r_im) )
    ℓ_i = log Z_i - (1/|P(i)|) Σ_{p∈P(i)} s_ip                   (SupCon's L_out form)

With one positive per query this is MoCo's cross-entropy with the positive's logit as the
class: ``ℓ_i = -log( exp(s_ip) / Z_i )``. With several (a frame and its temporal neighbours)
each positive is one class of the same softmax and the loss averages their log-probabilities,
the other positives staying in the denominator. Without a queue (Q = 0) and with the other keys
of the batch as negatives it is MoCo v3's form; with a queue and the batch's keys it is MoCo v2
with the current batch's keys added to the negatives, so the loss is defined (and has negatives)
from the first step, while the queue is still empty.

:func:`moco_terms` returns ``(sum over queries with a positive, their count)``; the caller
divides (summed over processes first, so every query weighs the same under DDP).

Failure modes: a query without a positive has no term (it adds nothing to the sum or count).
A query whose only candidate is its one positive has ``ℓ_i = 0`` and no gradient: nothing to
push away from (batch size 1, one pair per sample, queue still empty or of size 0; the method
refuses that recipe when the queue is 0). The logits reach 1/τ; logsumexp keeps them finite in
float32, and half-precision inputs are cast to float32 first.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def moco_terms(queries: torch.Tensor, keys: torch.Tensor, positive: torch.Tensor,
               queue: torch.Tensor | None = None, temperature: float = 0.2) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of the MoCo terms of ``queries [N, D]`` against ``keys [M, D]`` (positives where
    ``positive [N, M]`` is true, negatives elsewhere) and ``queue [Q, D]`` (all negatives; None
    or Q = 0 for none), and the number of queries with a positive: float32 scalars."""
    if queries.dim() != 2 or keys.dim() != 2:
        raise ValueError(f"queries and keys must be [N, D] and [M, D], got {tuple(queries.shape)}, {tuple(keys.shape)}")
    if positive.shape != (queries.shape[0], keys.shape[0]):
        raise ValueError(f"positive must be [N, M] = [{queries.shape[0]}, {keys.shape[0]}], got {tuple(positive.shape)}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    q = F.normalize(queries.float(), dim=1)
    k = F.normalize(keys.detach().float(), dim=1)
    logits = q @ k.T / temperature  # [N, M]
    candidates = logits
    if queue is not None and queue.shape[0]:
        u = F.normalize(queue.detach().float(), dim=1)
        candidates = torch.cat([logits, q @ u.T / temperature], dim=1)  # [N, M + Q]
    positive = positive.to(logits.device)
    count = positive.sum(dim=1)
    mean_positive = logits.masked_fill(~positive, 0.0).sum(dim=1) / count.clamp(min=1)
    terms = torch.logsumexp(candidates, dim=1) - mean_positive
    counted = count > 0
    total = torch.where(counted, terms, torch.zeros_like(terms)).sum()
    return total, counted.sum().to(torch.float32)


def temporal_positives(samples: int, frames: int, neighbours: int, device: torch.device | None = None) -> torch.Tensor:
    """Which key is a positive of which query when both are ``[samples * frames]`` rows, sample-major.

    Query (i, t) has the key of the same frame (i, t) and, with ``neighbours`` r > 0, the keys
    (i, t') with ``|t - t'| <= r`` of the same sample: its temporal neighbours inside the window.
    A frame at a window's edge has neighbours on one side only (frame 0 of a window of 3 with
    r = 1: frames 0 and 1). Returns ``[samples * frames, samples * frames]`` bool.
    """
    sample = torch.arange(samples, device=device).repeat_interleave(frames)
    frame = torch.arange(frames, device=device).repeat(samples)
    same_sample = sample[:, None] == sample[None, :]
    return same_sample & ((frame[:, None] - frame[None, :]).abs() <= neighbours)
