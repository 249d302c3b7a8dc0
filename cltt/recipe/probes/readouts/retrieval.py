"""Readout ``retrieval`` as the recipe sees it: its place among the readouts' rows."""

from cltt.recipe.probes import ReadoutSection, declare_readout


@declare_readout("retrieval")
class Retrieval(ReadoutSection):
    """Its settings are shared keys of the probe section (see cltt.eval.readouts.retrieval)."""

    order = 3
