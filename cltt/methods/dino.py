"""``dino``: self-distillation with no labels (Caron et al. 2021), with temporal positives.

The method behind the SAYCam models of Orhan & Lake. For each positive pair (a, b)
(:mod:`cltt.methods.pairs`; default ``time``) the two frames are DINO's two global crops;
``method.dino.local_crops`` N > 0 adds N small crops (``local_size`` px, area fraction in
``local_crop_scale``), alternately of frame a and frame b, seen by the student only::

    student  s = h(f(x))   for both global and every local crop       [K prototypes]
    teacher  t = h'(f'(x)) for the two global crops, EMA of f and h   (no gradient)
    L = cross-entropy of softmax((t - c) / τ_t) against log_softmax(s / τ_s) over every
        (teacher crop, other student crop) pair        (cltt.objectives.dino)

``h`` is DINO's head: an MLP ``feature -> head_hidden -> head_hidden -> bottleneck`` (GELU),
L2-normalised, then a weight-normalised linear layer to ``out_dim`` prototypes. The centre
``c`` (a buffer: in checkpoints, restored on resume) moves to the teacher's mean output over
the global batch after every step; τ_t warms up linearly from ``warmup_teacher_temperature``
over the first ``teacher_warmup_fraction`` of the run. The teacher's momentum rises from
``momentum_start`` to ``momentum_end`` on a cosine of the global step
(:mod:`cltt.methods.teacher`). ResNets and the ViTs both work; local crops need a backbone
that takes any image size (ResNets, ``tiny_cnn``). Probes read the student's backbone.

The defaults are CPU-sized (K = 1024 prototypes, hidden 512, bottleneck 128; the paper uses
65536, 2048 and 256); ``recipes/dino.yaml`` says what it changes for a 30-epoch CPU run.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cltt.data.model_input import to_model_input
from cltt.data.transforms import WindowAugment
from cltt.errors import CLTTError
from cltt.methods import register_method
from cltt.methods.base import Forward
from cltt.methods.teacher import TeacherMethod
from cltt.models.encoder import ContrastiveEncoder, encoder_from_model
from cltt.objectives.dino import dino_terms, teacher_temperature_at, updated_center


class DINOHead(nn.Module):
    """``[N, F] -> [N, K]``: MLP to a bottleneck, L2-normalised, weight-normalised prototypes."""

    def __init__(self, in_dim: int, hidden: int, bottleneck: int, out_dim: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(),
                                 nn.Linear(hidden, bottleneck))
        self.prototypes = nn.utils.parametrizations.weight_norm(nn.Linear(bottleneck, out_dim, bias=False))
        self.out_dim = out_dim

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.prototypes(F.normalize(self.mlp(features), dim=-1))


class LocalCrops:
    """Dataset extras: ``count`` small crops per sample, alternately of the pair's first and
    last frame -> ``{"local_crops": uint8 [count, 3, size, size]}`` (drawn from the sample's rng)."""

    def __init__(self, augment: WindowAugment, count: int) -> None:
        self.augment, self.count = augment, count

    def __call__(self, images: list[list[np.ndarray]], rng: np.random.Generator) -> dict[str, torch.Tensor]:
        sources = (images[0][0], images[-1][-1])
        size = self.augment.size
        if not self.count:
            return {"local_crops": torch.zeros((0, 3, size, size), dtype=torch.uint8)}
        return {"local_crops": torch.cat([self.augment([sources[j % 2]], rng) for j in range(self.count)])}


def local_size(recipe) -> int:
    """``method.dino.local_size``, or 3/7 of ``data.image_size`` (the paper's 96 of 224)."""
    return recipe.method.dino.local_size or max(8, round(recipe.data.image_size * 3 / 7))


LOCAL_CROPS_NEED_ANY_SIZE = ("method.dino.local_crops needs a backbone that takes any image size; {backbone} is built "
                             "for data.image_size. Use a ResNet (or tiny_cnn), or set method.dino.local_crops=0")


@register_method("dino")
class DINO(TeacherMethod):
    """A student matches an EMA teacher's centred, sharpened prototype scores across frames (DINO)."""

    extra_keys = ("local_crops",)
    loss_extra_keys = ()  # the crops are model input only: nothing to gather for the loss
    example = {"method": {"dino": {"out_dim": 64, "head_hidden": 32, "bottleneck": 16, "local_crops": 2,
                                   "local_size": 16, "teacher_warmup_fraction": 0.5,
                                   "warmup_teacher_temperature": 0.02}}}

    @classmethod
    def check_recipe(cls, recipe) -> None:
        super().check_recipe(recipe)
        if recipe.method.dino.local_crops and recipe.model.backbone.startswith("vit"):
            raise CLTTError(LOCAL_CROPS_NEED_ANY_SIZE.format(backbone=recipe.model.backbone))

    @classmethod
    def training_dataset(cls, recipe, store, seed: int, extras=None):
        dino = recipe.method.dino
        local = WindowAugment(dataclasses.replace(recipe.data.augment, crop_scale=list(dino.local_crop_scale)),
                              local_size(recipe))
        return super().training_dataset(recipe, store, seed, extras=LocalCrops(local, dino.local_crops))

    def build_encoder(self, recipe) -> ContrastiveEncoder:
        dino = self.options
        encoder = encoder_from_model(recipe.model, recipe.data.image_size,
                                     head=lambda features: DINOHead(features, dino.head_hidden, dino.bottleneck, dino.out_dim))
        if dino.local_crops and encoder.fixed_size:
            raise CLTTError(LOCAL_CROPS_NEED_ANY_SIZE.format(backbone=recipe.model.backbone))
        return encoder

    def __init__(self, recipe):
        super().__init__(recipe)
        self.register_buffer("center", torch.zeros(self.options.out_dim))
        self.local_count = self.options.local_crops
        self._pending: list[torch.Tensor] = []

    def teacher_temperature(self) -> float:
        options = self.options
        warmup = round(options.teacher_warmup_fraction * self.total_steps)
        return teacher_temperature_at(self.step, warmup, options.warmup_teacher_temperature, options.teacher_temperature)

    def forward_step(self, views: torch.Tensor, extras: dict[str, torch.Tensor]) -> Forward:
        """-> ``[b, 2P + N + 2P, K]``: student scores of the global crops (a, then b), of the N
        local crops, then the teacher's scores of the global crops."""
        frames = self.pair_frames(views)
        parts = [self.encode_frames(frames)]
        if self.local_count:
            parts.append(self.encode_frames(to_model_input(extras["local_crops"], views.device)))
        parts.append(self.teach(frames))
        return Forward(torch.cat(parts, dim=1))

    def pairs_per_sample(self, embeddings: torch.Tensor) -> int:
        """P, from the layout of :meth:`forward_step`: ``K = 2P + N + 2P``."""
        return (embeddings.shape[1] - self.local_count) // 4

    def loss_terms(self, embeddings, first, count, extras=None):
        n = self.local_count
        pairs = self.pairs_per_sample(embeddings)
        own = embeddings[first:first + count]
        student_global = own[:, :2 * pairs].unflatten(1, (2, pairs)).transpose(0, 1).flatten(1, 2)  # [2, c*P, K]
        teacher = own[:, 2 * pairs + n:].unflatten(1, (2, pairs)).transpose(0, 1).flatten(1, 2)
        student = student_global
        if n:
            local = own[:, 2 * pairs:2 * pairs + n].transpose(0, 1).repeat_interleave(pairs, dim=1)  # [N, c*P, K]
            student = torch.cat([student_global, local])
        self._pending.append(embeddings[:, 2 * pairs + n:].detach())  # every process's teacher scores
        return dino_terms(teacher, student, self.center, teacher_temperature=self.teacher_temperature(),
                          student_temperature=self.options.student_temperature)

    @torch.no_grad()
    def after_step(self, step: int, total_steps: int) -> None:
        super().after_step(step, total_steps)
        if self._pending:
            scores = torch.cat([p.flatten(0, 1) for p in self._pending]).unsqueeze(0)
            self.center.copy_(updated_center(self.center, scores, self.options.center_momentum))
            self._pending = []

    def monitored(self, embeddings):
        """The teacher's scores of the global crops (the last 2P rows of each sample)."""
        return embeddings[:, -2 * self.pairs_per_sample(embeddings):].flatten(0, 1)

    def export_encoder(self):
        return self.encoder, f"method {self.name}'s head scores {self.options.out_dim} prototypes and is not exported"
