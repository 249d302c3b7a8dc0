"""What the recipe knows of each probe task and readout, without importing them (or torch).

A built-in task is declared in ``cltt/recipe/probes/tasks/<name>.py`` and a readout in
``cltt/recipe/probes/readouts/<name>.py``: the dataclass of its section ``probe.<name>.*``
(when it has settings) and the facts the recipe checks (whether ``probe.every`` may run the
task; where a readout's rows go, which orders ``probe.probes``' default)::

    @dataclass
    class PhasesConfig: ...

    @declare_task("phases", config=PhasesConfig)
    class Phases(TaskSection):
        '''CARL's per-frame phase metrics.'''

The implementation registers under the same name in :mod:`cltt.eval.tasks` or
:mod:`cltt.eval.readouts` and takes these facts from here, so each is written once and the
recipe imports nothing above its own layer. A file in each place is a new task or readout.
"""

from __future__ import annotations

from typing import Any

from cltt.errors import CLTTError
from cltt.recipe.registry import Entry, Registry

TASK_SECTIONS = Registry("probe task", "cltt.recipe.probes.tasks", "probe.task")
READOUT_SECTIONS = Registry("readout", "cltt.recipe.probes.readouts", "probe.probes")


class TaskSection:
    """Base of a task's declaration."""

    runs_during_training: bool = False  # whether probe.every may run it (the task gives the trainer a callback)


class ReadoutSection:
    """Base of a readout's declaration."""

    order: int = 100  # where its rows go in a probe's table and report, and so in probe.probes' default


def declare_task(name: str, config: Any = None):
    """Class decorator: declare the probe task ``name`` (``probe.task=<name>``; ``config`` is the
    dataclass of its section ``probe.<name>.*``)."""
    return TASK_SECTIONS.register(name, config)


def declare_readout(name: str, config: Any = None):
    """Class decorator: declare the readout ``name`` (an entry of ``probe.probes``; ``config`` is
    the dataclass of its section ``probe.<name>.*``)."""
    return READOUT_SECTIONS.register(name, config)


def declaration(registry: Registry, name: str, implementation: str) -> Entry:
    """The declaration of ``name`` that the implementation in module ``implementation`` registers
    against, or one line saying where to add it."""
    found = registry.entries().get(name)
    if found is None:
        folder = registry.package.replace(".", "/")
        raise CLTTError(f"{registry.kind} {name!r} ({implementation}) is not declared for the recipe: add "
                        f"{folder}/{name}.py declaring it (its section dataclass, if any, goes there)")
    return found
