"""Task ``image_set``: the readouts of ``probe.probes`` on a labelled image set, an ImageFolder
or a CSV with groups (:mod:`cltt.eval.image_set`)."""

from __future__ import annotations

from pathlib import Path

from cltt.eval.tasks import ProbeTask, register_task


@register_task("image_set")
class ImageSet(ProbeTask):
    """Labelled images (probe.image_set.path: ROOT/<class>/*.jpg or a CSV path,label[,split][,group]); bootstrap over images or groups."""

    # The built-in clips as an ImageFolder: data.root's clip folders are the classes (which clip
    # is a frame from?); "data" is read from the folder cltt probe runs in, where the tests put it.
    smallest_case = {
        "data": {"synthetic": "bouncing-balls", "window_size": 3, "image_size": 32, "num_workers": 0},
        "extract": {"synthetic": {"clips": 4, "frames": 8, "size": 32}},
        "model": {"backbone": "tiny_cnn", "projection_dim": 16},
        "train": {"epochs": 1, "batch_size": 8, "device": "cpu"},
        "probe": {"task": "image_set", "logistic_c": [1.0], "knn_k": 3, "bootstrap_rounds": 100,
                  "image_set": {"path": "data"}},
    }

    @classmethod
    def report_file(cls) -> str:
        return "probe_image_set.json"

    @staticmethod
    def run(recipe, checkpoint: Path, state=None, cache_dir=None, on_progress=None):
        from cltt.eval.image_set import probe_image_set

        return probe_image_set(recipe, checkpoint, state, cache_dir, on_progress)
