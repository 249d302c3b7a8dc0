"""Retrieval by label: do a held-out frame's nearest train frames show the same thing?

Each query (a frame of a val or test clip) ranks every train frame by cosine similarity of
the features, ``s_j = u_q . U_j`` with unit vectors ``u = x / ||x||``. With ``rel_j = 1`` where
train frame j has the query's label:

    recall@k  = 1 if any of the k most similar train frames is relevant, else 0
    AP        = (1 / sum_j rel_j) * sum over relevant ranks r of precision@r,
                precision@r = (relevant frames in the top r) / r
    mAP       = the mean of AP over queries

Queries come from clips the train split never saw, so a frame cannot find itself or its
clip's neighbours; ties in similarity are broken by train order (stable sort). A query whose
label train lacks has AP 0 and recall 0. Scores are returned per query so a caller can put a
clip bootstrap interval on their mean (:mod:`cltt.eval.bootstrap`).
"""

from __future__ import annotations

import numpy as np
import torch

RECALL_AT = (1, 5)


def retrieval_scores(train_features: np.ndarray, train_targets: np.ndarray, query_features: np.ndarray,
                     query_targets: np.ndarray, chunk: int = 512) -> dict[str, np.ndarray]:
    """``{"recall@1": [M], "recall@5": [M], "mAP": [M]}`` per query (module doc).

    ``train_features [N, F]``, ``train_targets [N]``, ``query_features [M, F]``, ``query_targets [M]``.
    """
    bank = torch.nn.functional.normalize(torch.from_numpy(np.ascontiguousarray(train_features, np.float32)), dim=1)
    queries = torch.nn.functional.normalize(torch.from_numpy(np.ascontiguousarray(query_features, np.float32)), dim=1)
    labels = torch.from_numpy(np.asarray(train_targets, np.int64))
    wanted = torch.from_numpy(np.asarray(query_targets, np.int64))
    out = {f"recall@{k}": np.zeros(len(queries)) for k in RECALL_AT}
    out["mAP"] = np.zeros(len(queries))
    ranks = torch.arange(1, len(bank) + 1, dtype=torch.float64)
    for start in range(0, len(queries), chunk):
        sims = queries[start:start + chunk] @ bank.T  # [c, N]
        order = torch.sort(sims, dim=1, descending=True, stable=True).indices
        relevant = (labels[order] == wanted[start:start + chunk, None]).double()  # [c, N] in rank order
        for k in RECALL_AT:
            out[f"recall@{k}"][start:start + chunk] = (relevant[:, :k].sum(dim=1) > 0).double().numpy()
        hits = relevant.sum(dim=1)
        precision = relevant.cumsum(dim=1) / ranks
        average = (precision * relevant).sum(dim=1) / hits.clamp(min=1)
        out["mAP"][start:start + chunk] = average.numpy()
    return out
