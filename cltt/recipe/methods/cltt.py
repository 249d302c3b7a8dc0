"""What the recipe knows of method ``cltt`` (:mod:`cltt.methods.cltt`): it has no section of its own."""

from __future__ import annotations

from cltt.recipe.methods import declare_method

declare_method("cltt", shared_keys=("positives", "temperature", "reduction", "pairing", "decoupled"), supported_positives=("time", "both"))
