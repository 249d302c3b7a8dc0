"""The linear readout: least squares on standardised features to one-hot targets, the ridge
chosen on val (or on grouped folds of train) from ``probe.ridge`` (:mod:`cltt.eval.linear`)."""

from __future__ import annotations

from cltt.eval.readouts import Readout, ReadoutData, ReadoutScores, register_readout


@register_readout("linear")
class Linear(Readout):
    """Least squares to one-hot classes on standardised features, ridge from probe.ridge chosen on val."""

    summary_rank = 1

    @staticmethod
    def chosen_grid(config) -> tuple[str, str, list[float]]:
        return "ridge", "probe.ridge", config.ridge

    @staticmethod
    def score(data: ReadoutData) -> list[ReadoutScores]:
        from cltt.eval.linear import select_ridge

        x, y, train, val = data.features, data.targets, data.train, data.rows["val"]
        choice = select_ridge(x[train], y[train], x[val], y[val], data.config.ridge, data.num_classes,
                              train_groups=data.clips[train])
        return [ReadoutScores("linear", data.right(lambda s, r: choice.readout.predict(x[r])),
                              f"least squares, ridge={choice.ridge:g} ({choice.selected_by})")]
