"""The recipe section of method ``vicreg`` (:mod:`cltt.methods.vicreg`): ``method.vicreg.*``."""

from __future__ import annotations

from dataclasses import dataclass

from cltt.recipe.checks import check_min
from cltt.recipe.methods import PAIR_POSITIVES, PAIR_SHARED_KEYS, declare_method


@dataclass
class VICRegConfig:
    """``method.vicreg``: the weights of the three terms."""

    invariance_weight: float = 25.0  # weight of the invariance (mean squared distance) term
    variance_weight: float = 25.0  # weight of the variance (hinge on the standard deviation) term
    covariance_weight: float = 1.0  # weight of the covariance (off-diagonal) term

    def validate(self, at: str) -> None:
        for name in ("invariance_weight", "variance_weight", "covariance_weight"):
            check_min(getattr(self, name), f"{at}.{name}", 0)


declare_method("vicreg", VICRegConfig, shared_keys=PAIR_SHARED_KEYS, supported_positives=PAIR_POSITIVES)
