"""Task ``slots``: video FG-ARI and mBO of SlotContrast's slot masks (:mod:`cltt.eval.slots`)."""

from __future__ import annotations

from pathlib import Path

from cltt.eval.tasks import ProbeTask, register_task


@register_task("slots")
class Slots(ProbeTask):
    """Slot masks against ground-truth masks: video FG-ARI and mBO over whole clips."""

    smallest_case = {
        "data": {"synthetic": "bouncing-balls", "window_size": 3, "window_stride": 2, "image_size": 32,
                 "num_workers": 0, "augment": {"jitter_p": 0.0, "grayscale_p": 0.0}},
        "extract": {"synthetic": {"clips": 4, "frames": 8, "size": 32, "max_objects": 2}},
        "model": {"backbone": "vit_t8"},
        "method": {"name": "slotcontrast", "slotcontrast": {"num_slots": 3, "slot_dim": 16, "mlp_hidden": 32,
                                                             "decoder_hidden": 32, "predictor_heads": 2}},
        "train": {"epochs": 1, "batch_size": 4, "device": "cpu"},
        "probe": {"task": "slots", "baselines": ["random_init"]},
    }

    @staticmethod
    def run(recipe, checkpoint: Path, state=None, cache_dir=None, on_progress=None):
        from cltt.eval.slots import probe_slots

        return probe_slots(recipe, checkpoint, state, cache_dir, on_progress)
