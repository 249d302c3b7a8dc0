"""Folds of the train split, for choosing a probe's C or ridge when there is no val split.

The logistic C (``probe.logistic_c``) and the linear ridge (``probe.ridge``) are chosen on
val. Without val samples each value is scored on a k-fold split of train that is grouped by
clip (frames of one clip never sit on both sides) and stratified by class
(scikit-learn's ``StratifiedGroupKFold``), with

    k = min(MAX_FOLDS, fewest train clips of any class)

so every fold holds out clips of every class and fits on the other clips of that class. A
plain grouped split can put all clips of a small class into one fold, whose fit then sees
one class less (scikit-learn refuses a fit on one class). When some class has a single
train clip (k < 2) it cannot be held out and fitted on at once: :func:`train_folds` gives
None and the caller takes :func:`grid_middle` and says so.
"""

from __future__ import annotations

import numpy as np

MAX_FOLDS = 3
NOT_CHOSEN = "middle of the grid: no val, and a class has 1 train clip"


def fold_count(targets: np.ndarray, groups: np.ndarray, max_folds: int = MAX_FOLDS) -> int:
    """``k``: ``max_folds`` or the fewest distinct groups (clips) that hold one class, if fewer.

    ``targets [N]`` class numbers, ``groups [N]`` clip of each sample. Below 2: no folds.
    """
    targets, groups = np.asarray(targets, dtype=np.int64), np.asarray(groups, dtype=np.int64)
    if len(targets) == 0:
        return 0
    pairs = np.unique(np.stack([targets, groups]), axis=1)  # each (class, clip) once
    return int(min(max_folds, np.unique(pairs[0], return_counts=True)[1].min()))


def train_folds(targets: np.ndarray, groups: np.ndarray | None,
                max_folds: int = MAX_FOLDS) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """``(fit_rows, score_rows)`` of each fold of a stratified grouped k-fold split of train, or
    None when a class has one group only. ``groups`` None: each sample is its own group."""
    from sklearn.model_selection import StratifiedGroupKFold

    targets = np.asarray(targets, dtype=np.int64)
    groups = np.arange(len(targets)) if groups is None else np.asarray(groups)
    k = fold_count(targets, groups, max_folds)
    if k < 2:
        return None
    return list(StratifiedGroupKFold(n_splits=k).split(np.zeros((len(targets), 1)), targets, groups))


def grid_middle(values: list[float]) -> float:
    """The value a grid falls back to when none can be chosen: its median (upper of two)."""
    ordered = sorted(set(float(v) for v in values))
    return ordered[len(ordered) // 2]
