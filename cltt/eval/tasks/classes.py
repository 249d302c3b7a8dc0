"""Task ``classes``: the readouts of ``probe.probes`` on clip labels (:mod:`cltt.eval.probe`)."""

from __future__ import annotations

from pathlib import Path

from cltt.eval.tasks import ProbeTask, register_task


@register_task("classes")
class Classes(ProbeTask):
    """Clip labels: the probe.probes readouts per split, bootstrap over clips; metrics_eval.csv."""

    smallest_case = {
        "data": {"synthetic": "bouncing-balls", "window_size": 3, "image_size": 32, "num_workers": 0},
        "extract": {"synthetic": {"clips": 12, "frames": 8, "size": 32}},
        "model": {"backbone": "tiny_cnn", "projection_dim": 16},
        "train": {"epochs": 1, "batch_size": 8, "device": "cpu"},
        "probe": {"task": "classes", "logistic_c": [0.1, 1.0, 10.0], "knn_k": 5, "bootstrap_rounds": 100},
    }

    @classmethod
    def report_file(cls) -> str:
        return "probe.json"  # the first task's report keeps its name

    @staticmethod
    def run(recipe, checkpoint: Path, state=None, cache_dir=None, on_progress=None):
        from cltt.eval.probe import probe_checkpoint

        return probe_checkpoint(recipe, checkpoint, state, cache_dir, on_progress)

    @classmethod
    def training_probe(cls, recipe, run_dir: Path):
        from cltt.eval.probe import ClassProbeDuringTraining

        return ClassProbeDuringTraining(recipe, run_dir)
