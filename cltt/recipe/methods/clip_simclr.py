"""What the recipe knows of method ``clip_simclr`` (:mod:`cltt.methods.clip_simclr`): it has no section of its own."""

from __future__ import annotations

from cltt.recipe.methods import declare_method

declare_method("clip_simclr", shared_keys=("temperature", "decoupled"))
