"""Probe tasks beyond class labels, chosen by ``probe.task``; each returns a TaskReport.

    classes   cltt.eval.probe.probe_checkpoint (linear, logistic and kNN on clip labels)
    phases    cltt.eval.phases.probe_phases (CARL's phase classification, progression,
              Kendall's tau and AP@K on per-frame phase labels)
    slots     cltt.eval.slots.probe_slots (video FG-ARI and mBO of slot masks)
"""

from __future__ import annotations

import importlib
from pathlib import Path

from cltt.eval.features import Progress
from cltt.eval.report import TaskReport

TASKS = {"phases": ("cltt.eval.phases", "probe_phases"), "slots": ("cltt.eval.slots", "probe_slots")}


def probe_task(recipe, checkpoint: Path, state: dict | None = None, cache_dir: Path | None = None,
               on_progress: Progress | None = None) -> TaskReport:
    """Run ``recipe.probe.task`` (not ``classes``) on ``checkpoint``."""
    module, function = TASKS[recipe.probe.task]
    probe = getattr(importlib.import_module(module), function)
    return probe(recipe, Path(checkpoint), state=state, cache_dir=cache_dir, on_progress=on_progress)
