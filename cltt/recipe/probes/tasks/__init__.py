"""Declarations of the probe tasks, one file each (see :mod:`cltt.recipe.probes`)."""
