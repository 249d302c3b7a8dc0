"""Declarations of the readouts, one file each (see :mod:`cltt.recipe.probes`)."""
