"""Task ``phases`` as the recipe sees it: its section ``probe.phases.*``."""

from __future__ import annotations

from dataclasses import dataclass, field

from cltt.recipe.checks import check_min, check_unique
from cltt.recipe.probes import TaskSection, declare_task


@dataclass
class PhasesConfig:
    """``probe.phases.*``: ``ap_k`` are the K of AP@K, the fraction of a frame's K nearest
    frames in the other videos that share its phase."""

    ap_k: list[int] = field(default_factory=lambda: [5, 10, 15])

    def validate(self, at: str) -> None:
        for k in self.ap_k:
            check_min(k, f"{at}.ap_k", 1)
        check_unique(self.ap_k, f"{at}.ap_k")


@declare_task("phases", config=PhasesConfig)
class Phases(TaskSection):
    """CARL's per-frame phase metrics."""
