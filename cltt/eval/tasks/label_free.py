"""Task ``label_free``: RankMe, alignment/uniformity, temporal retrieval and the collapse spread
of held-out frames, no labels needed (:mod:`cltt.eval.label_free`)."""

from __future__ import annotations

from pathlib import Path

from cltt.eval.tasks import ProbeTask, register_task


@register_task("label_free")
class LabelFree(ProbeTask):
    """No labels: RankMe, alignment/uniformity, temporal retrieval at time gaps, spread; bootstrap over clips."""

    smallest_case = {
        "data": {"synthetic": "rotating-objects", "window_size": 3, "image_size": 32, "num_workers": 0},
        "extract": {"synthetic": {"clips": 8, "frames": 8, "size": 32}},
        "model": {"backbone": "tiny_cnn", "projection_dim": 16},
        "train": {"epochs": 1, "batch_size": 8, "device": "cpu"},
        "probe": {"task": "label_free", "every": 1, "bootstrap_rounds": 100,
                  "label_free": {"held_out": 0.5, "gaps": [0.2, 0.5], "rankme_rounds": 20}},
    }

    @classmethod
    def report_file(cls) -> str:
        return "probe_label_free.json"

    @staticmethod
    def run(recipe, checkpoint: Path, state=None, cache_dir=None, on_progress=None):
        from cltt.eval.label_free import probe_label_free

        return probe_label_free(recipe, checkpoint, state, cache_dir, on_progress)

    @classmethod
    def training_probe(cls, recipe, run_dir: Path):
        from cltt.eval.label_free import LabelFreeDuringTraining

        return LabelFreeDuringTraining(recipe, run_dir)
