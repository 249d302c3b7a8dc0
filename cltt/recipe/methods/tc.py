"""The recipe section of method ``tc`` (:mod:`cltt.methods.tc`): ``method.tc.*``."""

from __future__ import annotations

from dataclasses import dataclass

from cltt.errors import RecipeError
from cltt.recipe.checks import check_positive
from cltt.recipe.methods import declare_method


@dataclass
class TCConfig:
    """``method.tc``: temporal classification (Orhan, Gupta & Lake, NeurIPS 2020).

    Each clip is cut into segments of ``segment_seconds`` of its frames' time (recorded
    timestamps, else the nominal frame rate); every segment of the training corpus is a class,
    and clips never share one. A corpus of fewer than 2 segments, shorter than one segment, or
    whose every clip is one segment (the classes would be the clips, not times within them) is
    refused in one line when training starts. 288 s is the paper's best SAYCam setting (at 5
    fps, on recordings far longer): on short clips, lower it. ``label_smoothing`` ε in [0, 1) mixes
    the one-hot target with the uniform one (0: plain cross-entropy).
    """

    segment_seconds: float = 288.0
    label_smoothing: float = 0.0

    def validate(self, at: str) -> None:
        check_positive(self.segment_seconds, f"{at}.segment_seconds")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise RecipeError(f"recipe key '{at}.label_smoothing' must be in [0, 1), got {self.label_smoothing}")


declare_method("tc", TCConfig)
