"""The recipe section of method ``byol`` (:mod:`cltt.methods.byol`): ``method.byol.*``."""

from __future__ import annotations

from dataclasses import dataclass

from cltt.recipe.checks import check_min, check_probability
from cltt.recipe.methods import PAIR_POSITIVES, PAIR_SHARED_KEYS, declare_method


@dataclass
class BYOLConfig:
    """``method.byol``: the predictor's hidden width and the target's momentum range."""

    predictor_hidden: int = 256  # hidden width of the online network's predictor
    momentum_start: float = 0.996  # the target's EMA momentum at the first step
    momentum_end: float = 1.0  # the target's EMA momentum at the last step (cosine in between)

    def validate(self, at: str) -> None:
        check_min(self.predictor_hidden, f"{at}.predictor_hidden", 1)
        check_probability(self.momentum_start, f"{at}.momentum_start")
        check_probability(self.momentum_end, f"{at}.momentum_end")


declare_method("byol", BYOLConfig, shared_keys=PAIR_SHARED_KEYS, supported_positives=PAIR_POSITIVES)
