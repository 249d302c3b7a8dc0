"""Temporal classification: each frame is classified into the time segment it comes from.

Orhan, Gupta & Lake, "Self-supervised learning through the eyes of a child", NeurIPS 2020
(TC-S: SAYCam at 5 fps, 288 s segments). With logits ``z [N, C]`` of N frames over the C
segments of the corpus, labels ``y [N]`` and label smoothing ε (Szegedy et al. 2016), the
target of frame n is ``q_nc = (1 - ε) [c = y_n] + ε / C`` and its loss

    l_n = - sum_c q_nc log softmax(z_n)_c
        = (1 - ε) (-log softmax(z_n)_{y_n}) + ε (-1/C sum_c log softmax(z_n)_c)

returned as ``(sum_n l_n, N)`` so the engine can add totals and counts over processes and
sub-batches (the loss is their ratio). Computed in float32 from ``log_softmax``, so large
logits do not overflow. Failure modes: a class that never appears in training keeps its
random row (harmless for the backbone); with ε near 1 the target is uniform and nothing is learnt.
"""

from __future__ import annotations

import torch


def segment_classification_loss(logits: torch.Tensor, labels: torch.Tensor,
                                label_smoothing: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """``logits [N, C]``, ``labels [N]`` int64 in ``0 .. C-1`` -> ``(sum of l_n, N)`` (see the module)."""
    if logits.ndim != 2 or labels.shape != logits.shape[:1]:
        raise ValueError(f"logits must be [N, C] and labels [N], got {list(logits.shape)} and {list(labels.shape)}")
    log_p = torch.log_softmax(logits.float(), dim=-1)
    true_class = -log_p.gather(1, labels[:, None]).squeeze(1)
    uniform = -log_p.mean(dim=-1)
    per_frame = (1.0 - label_smoothing) * true_class + label_smoothing * uniform
    return per_frame.sum(), torch.tensor(float(len(labels)), device=logits.device)
