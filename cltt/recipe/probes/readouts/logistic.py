"""Readout ``logistic`` as the recipe sees it: its place among the readouts' rows."""

from cltt.recipe.probes import ReadoutSection, declare_readout


@declare_readout("logistic")
class Logistic(ReadoutSection):
    """Its settings are shared keys of the probe section (see cltt.eval.readouts.logistic)."""

    order = 1
