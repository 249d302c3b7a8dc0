"""Multinomial logistic regression on standardised features, C picked on the validation split.

Features are standardised with the train split's mean and standard deviation
(``z = (x - mean) / std``), then for each ``C`` in ``probe.logistic_c`` scikit-learn's
``LogisticRegression(C=C)`` (L2, lbfgs, multinomial) minimises

    sum_i -log softmax(z_i W + b)_{y_i}  +  ||W||^2 / (2 C)

on train, C by C in ascending order, each fit warm-started from the previous solution (the
objective is strictly convex, so the optimum does not depend on the start). The ``C`` with
the best validation accuracy wins (ties: the lower validation log
loss, then the smaller C). Without a validation split the score is the mean over a
stratified k-fold split of train grouped by clip (:mod:`cltt.eval.folds`: frames of one clip
never sit on both sides, every fold fits on every class); with a class of one train clip no
C can be chosen that way, and the middle of the grid is taken.
The winner's model, fitted on train, scores every split: accuracy and log loss
``-mean_i log p(y_i | x_i)`` (the ``*_loss`` columns of ``metrics_eval.csv``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.preprocessing import StandardScaler

from cltt.eval.folds import NOT_CHOSEN, grid_middle, train_folds
from cltt.eval.threads import blas_threads_for


@dataclass
class LogisticProbe:
    c: float
    num_classes: int
    scaler: StandardScaler
    model: LogisticRegression
    selected_by: str  # "val", "grouped k-fold on train", "only value" or folds.NOT_CHOSEN
    scores_by_c: dict[float, float] = field(default_factory=dict)  # selection accuracy per C
    converged: bool = True

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """``[M, F]`` -> ``[M, num_classes]`` class probabilities (0 for classes train lacks)."""
        proba = self.model.predict_proba(self.scaler.transform(np.asarray(features, dtype=np.float64)))
        out = np.zeros((len(features), self.num_classes))
        out[:, self.model.classes_] = proba
        return out

    def predict(self, features: np.ndarray) -> np.ndarray:
        return self.probabilities(features).argmax(axis=1)

    def loss(self, features: np.ndarray, targets: np.ndarray) -> float:
        """Mean cross-entropy ``-mean log p(y | x)`` in nats."""
        return float(log_loss(targets, self.probabilities(features), labels=np.arange(self.num_classes)))


def _fit(z: np.ndarray, targets: np.ndarray, c: float, seed: int, max_iter: int,
         start: LogisticRegression | None = None) -> tuple[LogisticRegression, bool]:
    """One fit; ``start`` (a fit at a nearby C on the same rows) warm-starts lbfgs."""
    model = LogisticRegression(C=c, max_iter=max_iter, random_state=seed, warm_start=start is not None)
    if start is not None:
        model.coef_, model.intercept_ = start.coef_.copy(), start.intercept_.copy()
    with warnings.catch_warnings(record=True) as caught, blas_threads_for(z.size):
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(z, targets)
    return model, not any(issubclass(w.category, ConvergenceWarning) for w in caught)


def fit_logistic(
    train_features: np.ndarray,
    train_targets: np.ndarray,
    val_features: np.ndarray,
    val_targets: np.ndarray,
    cs: list[float],
    num_classes: int,
    train_groups: np.ndarray | None = None,
    seed: int = 0,
    max_iter: int = 1000,
) -> LogisticProbe:
    """Fit one model per C on train and keep the one that scores best on val (shapes ``[N, F]``, ``[N]``)."""
    train_features = np.asarray(train_features, dtype=np.float64)
    scaler = StandardScaler().fit(train_features)
    z = scaler.transform(train_features)
    cs = sorted(set(float(c) for c in cs))
    models: dict[float, tuple[LogisticRegression, bool]] = {}
    scores: dict[float, float] = {}
    tie_break: dict[float, float] = {}
    if len(cs) == 1:
        selected_by = "only value"
    elif len(val_targets):
        selected_by = "val"
        previous = None
        for c in cs:  # ascending: each fit starts from the last, more regularised, solution
            models[c] = _fit(z, train_targets, c, seed, max_iter, previous)
            previous = models[c][0]
            probe = LogisticProbe(c, num_classes, scaler, models[c][0], selected_by)
            proba = probe.probabilities(val_features)
            scores[c] = float((proba.argmax(axis=1) == val_targets).mean())
            tie_break[c] = float(log_loss(val_targets, proba, labels=np.arange(num_classes)))
    elif (folds := train_folds(train_targets, train_groups)) is None:
        selected_by = NOT_CHOSEN
    else:
        selected_by = f"grouped {len(folds)}-fold on train"
        for c in cs:
            correct = []
            for fit_rows, score_rows in folds:
                model, _ = _fit(z[fit_rows], train_targets[fit_rows], c, seed, max_iter)
                correct.append(model.predict(z[score_rows]) == train_targets[score_rows])
            scores[c] = float(np.concatenate(correct).mean())
            tie_break[c] = 0.0
    if len(cs) == 1:
        best = cs[0]
    elif scores:
        best = max(cs, key=lambda c: (scores[c], -tie_break[c], -c))
    else:
        best = grid_middle(cs)
    model, converged = models[best] if best in models else _fit(z, train_targets, best, seed, max_iter)
    return LogisticProbe(best, num_classes, scaler, model, selected_by, scores, converged)
