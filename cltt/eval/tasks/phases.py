"""Task ``phases``: CARL's evaluation on per-frame phase labels (:mod:`cltt.eval.phases`)."""

from __future__ import annotations

from pathlib import Path

from cltt.eval.tasks import ProbeTask, register_task


@register_task("phases")
class Phases(ProbeTask):
    """CARL's per-frame phases: phase accuracy, progress R^2, Kendall's tau and AP@K (probe.phases.ap_k)."""

    smallest_case = {
        "data": {"synthetic": "phases", "window_size": 3, "image_size": 32, "num_workers": 0},
        "extract": {"synthetic": {"clips": 10, "frames": 12, "size": 32}},
        "model": {"backbone": "tiny_cnn", "projection_dim": 8},
        "method": {"name": "carl", "carl": {"frames": 4, "layers": 1, "heads": 2, "embedding_dim": 16}},
        "train": {"epochs": 1, "batch_size": 4, "device": "cpu"},
        "probe": {"task": "phases", "logistic_c": [1.0], "bootstrap_rounds": 100, "phases": {"ap_k": [1, 3]}},
    }

    @staticmethod
    def run(recipe, checkpoint: Path, state=None, cache_dir=None, on_progress=None):
        from cltt.eval.phases import probe_phases

        return probe_phases(recipe, checkpoint, state, cache_dir, on_progress)
