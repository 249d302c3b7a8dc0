"""A momentum (EMA) teacher: what BYOL and DINO share.

The teacher is a copy of the student's encoder that never gets gradients. After every
optimizer step (:meth:`Method.after_step`) it moves towards the student::

    θ_teacher ← m θ_teacher + (1 - m) θ_student
    m(step)   = end - (end - start) (cos(π step / total) + 1) / 2      (cosine, BYOL's schedule)

so m rises from ``start`` at step 0 to ``end`` (1.0: frozen) at the last step; buffers
(batch-norm statistics) are copied. The schedule is a function of the global step, and the
teacher is part of the method's state dict, so a resumed run continues it exactly.
"""

from __future__ import annotations

import copy
import math

import torch

from cltt.methods.pairs import PairMethod


def momentum_at(step: int, total_steps: int, start: float, end: float) -> float:
    """BYOL's cosine momentum schedule at global step ``step`` of ``total_steps``."""
    progress = min(max(step / max(total_steps, 1), 0.0), 1.0)
    return end - (end - start) * (math.cos(math.pi * progress) + 1) / 2


class TeacherMethod(PairMethod):
    """A pair method with an EMA copy of ``self.encoder`` in ``self.teacher``.

    Subclasses set their momentum range in their config as ``momentum_start`` and
    ``momentum_end`` (read from ``self.options``).
    """

    def __init__(self, recipe):
        super().__init__(recipe)
        self.teacher = copy.deepcopy(self.encoder)
        self.teacher.requires_grad_(False)

    @torch.no_grad()
    def teach(self, frames: torch.Tensor) -> torch.Tensor:
        """The teacher's output of ``frames [b, K, 3, S, S]`` -> ``[b, K, D]``, without a graph."""
        return self.encode_frames(frames, self.teacher)

    @torch.no_grad()
    def after_step(self, step: int, total_steps: int) -> None:
        """Move the teacher towards the student with the momentum of the step just taken."""
        momentum = momentum_at(step - 1, total_steps, self.options.momentum_start, self.options.momentum_end)
        for teacher, student in zip(self.teacher.parameters(), self.encoder.parameters()):
            teacher.mul_(momentum).add_(student, alpha=1 - momentum)
        for teacher, student in zip(self.teacher.buffers(), self.encoder.buffers()):
            teacher.copy_(student)
