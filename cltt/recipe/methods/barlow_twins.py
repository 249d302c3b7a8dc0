"""The recipe section of method ``barlow_twins`` (:mod:`cltt.methods.barlow_twins`): ``method.barlow_twins.*``."""

from __future__ import annotations

from dataclasses import dataclass

from cltt.recipe.checks import check_min
from cltt.recipe.methods import PAIR_POSITIVES, PAIR_SHARED_KEYS, declare_method


@dataclass
class BarlowTwinsConfig:
    """``method.barlow_twins``: λ, the weight of the off-diagonal (redundancy) term."""

    off_diagonal_weight: float = 5e-3  # λ, the weight of the off-diagonal (redundancy) term

    def validate(self, at: str) -> None:
        check_min(self.off_diagonal_weight, f"{at}.off_diagonal_weight", 0)


declare_method("barlow_twins", BarlowTwinsConfig, shared_keys=PAIR_SHARED_KEYS, supported_positives=PAIR_POSITIVES)
