"""95% intervals for probe accuracies by a bootstrap over clips, not frames.

Frames of one clip are not independent samples (they show the same object from nearby views),
so an interval that resamples frames is far too narrow. Here the unit is the clip: with test
clips ``1..n``, clip ``i`` holding ``m_i`` scored samples of which ``r_i`` are right, one
bootstrap round draws ``n`` clips with replacement (multiplicities ``w_i``) and computes

    acc* = sum_i w_i r_i / sum_i w_i m_i

the accuracy over the frames of the drawn clips (the pooled accuracy the table reports, for
the resampled clips). The interval is the 2.5th and 97.5th percentiles of ``acc*`` over
``rounds`` rounds (percentile bootstrap, Efron & Tibshirani 1993), from a generator seeded by
``seed``, so the same scores always give the same interval.

With one clip (``n = 1``) every round draws that clip, so ``acc*`` is the accuracy itself and
the interval would be ``[acc, acc]``: zero width, which reads as certainty when it is the
opposite. :func:`clip_interval` gives no interval (None) below :data:`MIN_UNITS` clips; the
probe prints ``n/a: 1 clip`` and writes ``null`` (docs/explanation/intervals.md).

    low, high = clip_interval(correct, clips)          # correct [M] bool, clips [M] any ids
"""

from __future__ import annotations

import numpy as np

ROUNDS = 2000
LEVEL = 0.95
MIN_UNITS = 2  # fewer clips give no interval: one clip resamples to itself


def clip_interval(correct: np.ndarray, clips: np.ndarray, rounds: int = ROUNDS, seed: int = 0,
                  level: float = LEVEL) -> tuple[float, float] | None:
    """The ``level`` percentile interval of the pooled accuracy, clips resampled (module doc).

    ``correct [M]``: bool or 0/1 per sample, or any per-sample score whose mean is reported (a
    retrieval metric per query); ``clips [M]`` the clip of each sample. None without samples
    and with fewer than :data:`MIN_UNITS` clips (one clip's resamples are all that clip).
    """
    if len(np.unique(np.asarray(clips))) < MIN_UNITS:
        return None
    values = bootstrap_accuracies(correct, clips, rounds, seed)
    if values is None:
        return None
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_accuracies(correct: np.ndarray, clips: np.ndarray, rounds: int = ROUNDS, seed: int = 0) -> np.ndarray | None:
    """``acc*`` of each of ``rounds`` resamples of the clips: ``[rounds]`` (None without samples)."""
    correct = np.asarray(correct, dtype=np.float64)
    if correct.size == 0:
        return None
    _, clip_index = np.unique(np.asarray(clips), return_inverse=True)
    right = np.bincount(clip_index, weights=correct)  # r_i
    scored = np.bincount(clip_index).astype(np.float64)  # m_i
    n = len(right)
    weights = np.random.default_rng(seed).multinomial(n, np.full(n, 1.0 / n), size=rounds).astype(np.float64)
    return (weights @ right) / np.maximum(weights @ scored, 1e-12)
