"""Task ``slots`` as the recipe sees it: no section of its own."""

from cltt.recipe.probes import TaskSection, declare_task


@declare_task("slots")
class Slots(TaskSection):
    """SlotContrast's slot masks against ground-truth masks."""
