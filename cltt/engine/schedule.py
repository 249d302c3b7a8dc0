"""The learning-rate schedule, a pure function of the global step.

    lr(step) = lr0 * (step + 1) / W                                   step < W (linear warmup)
    lr(step) = lr0 * (m + (1 - m) * (1 + cos(pi * p)) / 2)            otherwise (cosine)
    p = (step - W) / max(1, S - W),   m = min_lr_ratio,   S = total steps

Because nothing but the step number enters, a resumed run needs no scheduler state and
continues the exact learning-rate sequence of an uninterrupted one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Schedule:
    base_lr: float
    total_steps: int
    warmup_steps: int = 0
    kind: str = "cosine"  # cosine | constant (after warmup)
    min_lr_ratio: float = 0.0

    def lr_at(self, step: int) -> float:
        """Learning rate of optimizer step ``step`` (0-based)."""
        if step < self.warmup_steps:
            return self.base_lr * (step + 1) / self.warmup_steps
        if self.kind == "constant":
            return self.base_lr
        progress = min(1.0, (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps))
        ratio = self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
        return self.base_lr * ratio

    def decay_rate(self, step: int) -> float:
        """lr(step) / lr0, the ``decay_rate`` column of metrics.csv."""
        return self.lr_at(step) / self.base_lr
