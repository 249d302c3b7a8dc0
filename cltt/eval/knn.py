"""Weighted cosine k-nearest-neighbour classifier (Wu et al. 2018; DINO's ``eval_knn``).

With unit-normalised features ``u = x / ||x||``, train bank ``U [N, F]`` with classes ``y [N]``
and a query ``q``:

    s_j      = u_q . U_j                                   cosine similarity to train sample j
    N_k(q)   = the k train samples with the largest s_j
    vote_c   = sum_{j in N_k(q)} exp(s_j / T) [y_j = c]
    class(q) = argmax_c vote_c

``k = probe.knn_k``, ``T = probe.knn_temperature`` (0.07 as in both papers). Scoring the
train split against itself leaves each query out of its own neighbours (``exclude``), so
train accuracy is not trivially 1; frames of the same clip still count, so it stays an
optimistic number. Similarities are computed in float32 chunks of queries,
``[chunk, N]`` at a time.
"""

from __future__ import annotations

import numpy as np
import torch


def _unit(features: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
    return torch.nn.functional.normalize(x, dim=1)


def knn_predict(
    train_features: np.ndarray,
    train_targets: np.ndarray,
    query_features: np.ndarray,
    num_classes: int,
    k: int = 20,
    temperature: float = 0.07,
    exclude: np.ndarray | None = None,
    chunk: int = 1024,
) -> np.ndarray:
    """Class numbers ``[M]`` of ``query_features [M, F]`` by weighted vote of their k nearest
    train samples (``train_features [N, F]``, ``train_targets [N]``).

    ``exclude [M]``: the train index each query must not count as its own neighbour (-1: none).
    """
    bank = _unit(train_features)
    labels = torch.from_numpy(np.asarray(train_targets, dtype=np.int64))
    queries = _unit(query_features)
    k = min(k, len(bank) - (1 if exclude is not None else 0))
    out = np.empty(len(queries), dtype=np.int64)
    if len(queries) == 0:
        return out
    if k < 1:
        raise ValueError("kNN needs at least one train sample besides the query")
    for start in range(0, len(queries), chunk):
        sims = queries[start:start + chunk] @ bank.T  # [chunk, N]
        if exclude is not None:
            rows = torch.arange(len(sims))
            own = torch.from_numpy(np.asarray(exclude[start:start + chunk], dtype=np.int64))
            keep = own >= 0
            sims[rows[keep], own[keep]] = -torch.inf
        top, index = sims.topk(k, dim=1)  # [chunk, k]
        votes = torch.zeros(len(sims), num_classes)
        votes.scatter_add_(1, labels[index], (top / temperature).exp())
        out[start:start + chunk] = votes.argmax(dim=1).numpy()
    return out
