"""The recipe section of method ``moco`` (:mod:`cltt.methods.moco`): ``method.moco.*``."""

from __future__ import annotations

from dataclasses import dataclass

from cltt.recipe.checks import check_min, check_probability
from cltt.recipe.methods import declare_method


@dataclass
class MoCoConfig:
    """``method.moco``: the queue of negatives, temporal neighbours as positives, the key encoder's momentum.

    queue_size: keys of earlier steps kept as negatives (MoCo v2's 65,536; 0 for MoCo v3's
    in-batch form); any size works, the queue wraps around. temporal_neighbours: r > 0 makes the
    keys of the frames up to r steps away in the same window positives too (1: each frame's two
    immediate neighbours, Orhan et al.'s temporal MoCo). momentum_start/momentum_end: the key
    encoder's EMA momentum on a cosine of the global step (MoCo v3; 0.999 for both is v2's constant).
    """

    queue_size: int = 65536
    temporal_neighbours: int = 0
    momentum_start: float = 0.99
    momentum_end: float = 1.0

    def validate(self, at: str) -> None:
        check_min(self.queue_size, f"{at}.queue_size", 0)
        check_min(self.temporal_neighbours, f"{at}.temporal_neighbours", 0)
        check_probability(self.momentum_start, f"{at}.momentum_start")
        check_probability(self.momentum_end, f"{at}.momentum_end")


declare_method("moco", MoCoConfig, shared_keys=("positives", "temperature"), supported_positives=("augment", "time", "both"))
