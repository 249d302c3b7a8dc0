"""The kNN readout: a cosine vote of the ``probe.knn_k`` nearest train samples weighted by
``exp(s / probe.knn_temperature)`` (:mod:`cltt.eval.knn`); a train sample never votes for itself."""

from __future__ import annotations

import numpy as np

from cltt.eval.readouts import Readout, ReadoutData, ReadoutScores, register_readout


@register_readout("knn")
class KNN(Readout):
    """Weighted cosine vote of the probe.knn_k nearest train samples (temperature probe.knn_temperature)."""

    summary_rank = 2

    @staticmethod
    def score(data: ReadoutData) -> list[ReadoutScores]:
        from cltt.eval.knn import knn_predict

        config, space, train = data.config, data.cosine_space, data.train
        per_sample = data.right(lambda s, r: knn_predict(
            space[train], data.targets[train], space[r], data.num_classes, config.knn_k, config.knn_temperature,
            exclude=np.arange(len(train)) if s == "train" else None))
        detail = f"k={min(config.knn_k, len(train) - 1)}, T={config.knn_temperature:g}{data.cosine_note}"
        return [ReadoutScores("knn", per_sample, detail)]
