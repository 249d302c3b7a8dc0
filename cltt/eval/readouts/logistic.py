"""The logistic readout: multinomial logistic regression, C chosen on val (or on grouped folds
of train) from ``probe.logistic_c`` (:mod:`cltt.eval.logistic`). Its figures and cross-entropy
losses are the ``metrics_eval.csv`` row and the trainer's ``probe.every``."""

from __future__ import annotations

from cltt.eval.readouts import Readout, ReadoutData, ReadoutScores, register_readout


@register_readout("logistic")
class Logistic(Readout):
    """Multinomial logistic regression, C from probe.logistic_c chosen on val; the metrics_eval.csv row."""

    summary_rank = 0
    writes_eval_row = True

    @staticmethod
    def chosen_grid(config) -> tuple[str, str, list[float]]:
        return "C", "probe.logistic_c", config.logistic_c

    @staticmethod
    def score(data: ReadoutData) -> list[ReadoutScores]:
        from cltt.eval.logistic import fit_logistic

        x, y, train, val = data.features, data.targets, data.train, data.rows["val"]
        logistic = fit_logistic(x[train], y[train], x[val], y[val], data.config.logistic_c, data.num_classes,
                                train_groups=data.clips[train], seed=data.seed)
        losses = data.per_split(lambda s, r: logistic.loss(x[r], y[r]))
        detail = f"C={logistic.c:g} ({logistic.selected_by})" + ("" if logistic.converged else ", not converged")
        return [ReadoutScores("logistic", data.right(lambda s, r: logistic.predict(x[r])), detail, losses)]
