"""Task ``classes`` as the recipe sees it: no section of its own; probe.every may run it."""

from cltt.recipe.probes import TaskSection, declare_task


@declare_task("classes")
class Classes(TaskSection):
    """Clip labels read by the readouts of probe.probes."""

    runs_during_training = True
