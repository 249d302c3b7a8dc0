"""The recipe section of method ``dino`` (:mod:`cltt.methods.dino`): ``method.dino.*``."""

from __future__ import annotations

from dataclasses import dataclass, field

from cltt.errors import RecipeError
from cltt.recipe.checks import check_min, check_pair, check_positive, check_probability
from cltt.recipe.methods import PAIR_POSITIVES, PAIR_SHARED_KEYS, declare_method


@dataclass
class DINOConfig:
    """``method.dino``: head sizes, temperatures, centring, teacher momentum and multi-crop."""

    out_dim: int = 1024  # K prototypes
    head_hidden: int = 512  # hidden width of the DINO head's MLP
    bottleneck: int = 128  # width of the head's bottleneck before the prototypes
    student_temperature: float = 0.1  # temperature of the student's softmax
    teacher_temperature: float = 0.04  # temperature of the teacher's softmax after warmup
    warmup_teacher_temperature: float = 0.04  # the teacher's temperature at the first step
    teacher_warmup_fraction: float = 0.0  # of all steps
    center_momentum: float = 0.9  # EMA momentum of the centre subtracted from teacher outputs
    momentum_start: float = 0.996  # the teacher's EMA momentum at the first step
    momentum_end: float = 1.0  # the teacher's EMA momentum at the last step (cosine in between)
    local_crops: int = 0  # small crops per view for the student (multi-crop; 0: none)
    local_size: int = 0  # 0: 3/7 of data.image_size (96 px for 224, as in the paper)
    local_crop_scale: list[float] = field(default_factory=lambda: [0.05, 0.4])  # the local crops' area fraction range

    def validate(self, at: str) -> None:
        for name in ("out_dim", "head_hidden", "bottleneck"):
            check_min(getattr(self, name), f"{at}.{name}", 1)
        for name in ("student_temperature", "teacher_temperature", "warmup_teacher_temperature"):
            check_positive(getattr(self, name), f"{at}.{name}")
        for name in ("teacher_warmup_fraction", "center_momentum", "momentum_start", "momentum_end"):
            check_probability(getattr(self, name), f"{at}.{name}")
        check_min(self.local_crops, f"{at}.local_crops", 0)
        check_min(self.local_size, f"{at}.local_size", 0)
        check_pair(self.local_crop_scale, f"{at}.local_crop_scale", 0.0, 1.0)
        if self.local_crop_scale[0] <= 0:
            raise RecipeError(f"recipe key '{at}.local_crop_scale' must be fractions in (0, 1], got {self.local_crop_scale}")


declare_method("dino", DINOConfig, shared_keys=PAIR_SHARED_KEYS, supported_positives=PAIR_POSITIVES)
