"""What the recipe knows of method ``simclr`` (:mod:`cltt.methods.simclr`): it has no section of its own."""

from __future__ import annotations

from cltt.recipe.methods import declare_method

declare_method("simclr", shared_keys=("positives", "temperature", "decoupled"), supported_positives=("augment", "time", "both"))
