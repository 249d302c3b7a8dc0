"""Closed-form linear readout: least squares onto one-hot targets, the CLTT papers' protocol.

``cltt probe``'s ``linear`` row is :func:`select_ridge`: standardised features, the ridge
picked on val from ``probe.ridge``. Without a ridge the readout overfits whenever the number
of features nears the number of train samples (every CPU-sized probe); ridge 0 stays in the
grid, so the papers' plain least squares wins where it is best.

With train features ``X [N, F]`` (centred by their mean ``mu [F]``), one-hot targets
``Y [N, C]`` and ``A = [X - mu, 1] [N, F + 1]``:

    [W; b] = argmin ||A [W; b] - Y||^2 + ridge * ||W||^2        (W [F, C], b [C])
    class(x) = argmax_c  ((x - mu) W + b)_c

solved in float64 on the CPU. With ``ridge = 0`` it is the minimum-norm least-squares
solution (``numpy.linalg.lstsq``), which also covers more features than samples. Centring
leaves the fitted values unchanged and keeps the normal equations well conditioned.

Up to ``max_direct`` matrix entries (N * (F + 1)) the system is solved directly by SVD
(``lstsq``; memory 8 * N * (F + 1) bytes); beyond that through the normal equations
``(A^T A + ridge I') [W; b] = A^T Y`` accumulated in chunks (memory O(F^2)), solved with
``lstsq`` so a singular ``A^T A`` still gives the minimum-norm solution.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cltt.eval.folds import NOT_CHOSEN, grid_middle, train_folds
from cltt.eval.threads import blas_threads_for

MAX_DIRECT = 2**26  # 512 MB of float64


@dataclass
class LinearReadout:
    mean: np.ndarray  # [F] float64
    weight: np.ndarray  # [F, C] float64
    bias: np.ndarray  # [C] float64

    def scores(self, features: np.ndarray, chunk: int = 65536) -> np.ndarray:
        """``[M, F]`` -> ``[M, C]`` float64 readout values."""
        out = np.empty((len(features), self.weight.shape[1]))
        for start in range(0, len(features), chunk):
            part = np.asarray(features[start:start + chunk], dtype=np.float64) - self.mean
            out[start:start + chunk] = part @ self.weight + self.bias
        return out

    def predict(self, features: np.ndarray) -> np.ndarray:
        """``[M, F]`` -> ``[M]`` int64 class numbers (argmax of the readout)."""
        return self.scores(features).argmax(axis=1)


def fit_linear(features: np.ndarray, targets: np.ndarray, num_classes: int, ridge: float = 0.0,
               max_direct: int = MAX_DIRECT, chunk: int = 65536) -> LinearReadout:
    """Least-squares readout from ``features [N, F]`` to one-hot ``targets [N]`` (ints < num_classes)."""
    n, f = features.shape
    targets = np.asarray(targets, dtype=np.int64)
    mean = features.mean(axis=0, dtype=np.float64) if n else np.zeros(f)
    if n * (f + 1) <= max_direct:
        a = np.empty((n, f + 1))
        a[:, :f] = features - mean
        a[:, f] = 1.0
        y = np.zeros((n, num_classes))
        y[np.arange(n), targets] = 1.0
        if ridge > 0:
            a = np.vstack([a, np.hstack([np.sqrt(ridge) * np.eye(f), np.zeros((f, 1))])])
            y = np.vstack([y, np.zeros((f, num_classes))])
        with blas_threads_for(a.size):
            solution = np.linalg.lstsq(a, y, rcond=None)[0]
    else:
        gram = np.zeros((f + 1, f + 1))
        rhs = np.zeros((f + 1, num_classes))
        for start in range(0, n, chunk):
            part = features[start:start + chunk].astype(np.float64) - mean
            a = np.hstack([part, np.ones((len(part), 1))])
            gram += a.T @ a
            np.add.at(rhs.T, targets[start:start + chunk], a)
        gram[np.arange(f), np.arange(f)] += ridge
        solution = np.linalg.lstsq(gram, rhs, rcond=None)[0]
    return LinearReadout(mean, solution[:f], solution[f])


@dataclass
class RidgeChoice:
    readout: LinearReadout  # applies the standardisation itself: it takes raw features
    ridge: float
    selected_by: str  # "val", "grouped k-fold on train", "only value" or folds.NOT_CHOSEN
    scores_by_ridge: dict[float, float]


def select_ridge(train_features: np.ndarray, train_targets: np.ndarray, val_features: np.ndarray,
                 val_targets: np.ndarray, ridges: list[float], num_classes: int,
                 train_groups: np.ndarray | None = None) -> RidgeChoice:
    """The least-squares readout whose ``ridge`` (from ``ridges``) classifies val best.

    Features are standardised first with the train split's mean and standard deviation
    (``z = (x - mu) / sd``, as for the logistic probe), so one ridge grid means the same for
    every feature source: ``ridge`` is in units of squared standardised features, to compare
    with the number of train samples. Ties go to the larger ridge. Without val samples each
    ridge is scored by a stratified k-fold split of train grouped by clip (``train_groups``;
    :mod:`cltt.eval.folds`), so frames of one clip never sit on both sides; with a class of one
    train clip the middle of the grid is taken. The winner is refitted on all of train.
    """
    x = np.asarray(train_features, dtype=np.float64)
    mu = x.mean(axis=0) if len(x) else np.zeros(x.shape[1])
    sd = x.std(axis=0) if len(x) else np.ones(x.shape[1])
    sd = np.where(sd > 1e-12, sd, 1.0)

    def fit(rows_x: np.ndarray, rows_y: np.ndarray, ridge: float) -> LinearReadout:
        inner = fit_linear((rows_x - mu) / sd, rows_y, num_classes, ridge=ridge)
        return LinearReadout(mu + inner.mean * sd, inner.weight / sd[:, None], inner.bias)

    ridges = sorted(set(float(r) for r in ridges))
    scores: dict[float, float] = {}
    if len(ridges) == 1:
        selected_by = "only value"
    elif len(val_targets):
        selected_by = "val"
        for ridge in ridges:
            scores[ridge] = float((fit(x, train_targets, ridge).predict(val_features) == val_targets).mean())
    elif (folds := train_folds(train_targets, train_groups)) is None:
        selected_by = NOT_CHOSEN
    else:
        selected_by = f"grouped {len(folds)}-fold on train"
        for ridge in ridges:
            correct = [fit(x[a], train_targets[a], ridge).predict(x[b]) == train_targets[b] for a, b in folds]
            scores[ridge] = float(np.concatenate(correct).mean())
    if len(ridges) == 1:
        best = ridges[0]
    else:
        best = max(ridges, key=lambda r: (scores[r], r)) if scores else grid_middle(ridges)
    return RidgeChoice(fit(x, train_targets, best), best, selected_by, scores)
