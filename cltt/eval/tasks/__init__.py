"""Probe tasks: what ``probe.task`` measures of frozen features, one file each.

A task is a :class:`ProbeTask` subclass in a module of this package, registered by name; what
the recipe knows of it (its section ``probe.<name>.*``, whether ``probe.every`` may run it) is
declared in ``cltt/recipe/probes/tasks/<name>.py`` and taken from there:

    @register_task("phases")                         # declared: cltt/recipe/probes/tasks/phases.py
    class Phases(ProbeTask):
        '''CARL's per-frame phases: phase accuracy, progress R^2, Kendall's tau, AP@K.'''

        @staticmethod
        def run(recipe, checkpoint, state=None, cache_dir=None, on_progress=None) -> TaskReport:
            from cltt.eval.phases import probe_phases   # heavy imports inside: listing stays torch-free
            return probe_phases(recipe, checkpoint, state, cache_dir, on_progress)

A task reads and checks its own labels, if it has any (each refuses missing or bad ones in one
line saying what to give), runs on the shared cached features of the trained, random-init and
pixel encoders (:mod:`cltt.eval.features`), and returns a report with 95% intervals:
:class:`~cltt.eval.report.ProbeReport` (its ``metrics_eval.csv`` row inside) or
:class:`~cltt.eval.report.TaskReport`, written to :meth:`ProbeTask.report_file`.
A task that can run every ``probe.every`` epochs returns the trainer's callback from
:meth:`ProbeTask.training_probe`.

The recipe's choices for ``probe.task`` and its ``probe.<name>`` sections come from the
declarations; ``cltt probe --help`` and the tests enumerate :func:`registered_tasks`, and a
test checks that the two agree. A new task is its file here and its declaration.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from cltt.recipe.probes import TASK_SECTIONS, declaration
from cltt.recipe.registry import Entry, Registry

if TYPE_CHECKING:  # the engine imports torch; listing tasks must not
    from cltt.engine.trainer import EpochProbe

TASKS = Registry("probe task", "cltt.eval.tasks", "probe.task")


def register_task(name: str):
    """Class decorator: register a :class:`ProbeTask` as ``probe.task=<name>``, with the section
    and ``runs_during_training`` of its declaration in :mod:`cltt.recipe.probes`."""

    def register(cls):
        declared = declaration(TASK_SECTIONS, name, cls.__module__)
        cls.runs_during_training = declared.cls.runs_during_training
        return TASKS.register(name, declared.config)(cls)

    return register


def registered_tasks() -> dict[str, Entry]:
    """Every probe task by name."""
    return TASKS.entries()


def task_entry(name: str) -> Entry:
    """The task ``name``, or a :class:`~cltt.errors.CLTTError` naming the closest."""
    return TASKS.entry(name)


class ProbeTask:
    """Base of a registered probe task (its class docstring's first line is its ``--help`` line)."""

    name: str = ""
    config_class: Any = None
    runs_during_training: bool = False  # from the declaration: whether probe.every may run it (training_probe)
    # The smallest recipe (sections over the defaults; data.root and train.out_dir left out) on
    # which the task measures something: built-in data, a model that trains an epoch on a CPU in
    # seconds. The registry tests train it for one epoch and probe the run with ``cltt probe``.
    smallest_case: dict[str, Any] = {}

    @classmethod
    def report_file(cls) -> str:
        """The report's file name in the run dir."""
        return f"probe_{cls.name}.json"

    @staticmethod
    def run(recipe, checkpoint: Path, state: dict | None = None, cache_dir: Path | None = None,
            on_progress: Callable[[int, int], None] | None = None):
        """Probe ``checkpoint`` (its loaded ``state`` if given); features cached in ``cache_dir``
        (default the checkpoint's folder ``/features``). Returns the report, unwritten."""
        raise NotImplementedError

    @classmethod
    def training_probe(cls, recipe, run_dir: Path) -> EpochProbe:
        """The trainer's ``probe.every`` callback (only where :attr:`runs_during_training`)."""
        raise NotImplementedError(f"probe task {cls.name} does not run during training")


def probe_task(recipe, checkpoint: Path, state: dict | None = None, cache_dir: Path | None = None,
               on_progress: Callable[[int, int], None] | None = None):
    """Run ``recipe.probe.task`` on ``checkpoint``: its report, unwritten."""
    return task_entry(recipe.probe.task).cls.run(recipe, Path(checkpoint), state, cache_dir, on_progress)


def training_probe(recipe, run_dir: Path) -> EpochProbe | None:
    """The callback the trainer runs every ``probe.every`` epochs, or None without ``probe.every``.
    Building it checks the task's data (labels, splits), so a bad probe stops before training."""
    if not recipe.probe.every:
        return None
    return task_entry(recipe.probe.task).cls.training_probe(recipe, Path(run_dir))
