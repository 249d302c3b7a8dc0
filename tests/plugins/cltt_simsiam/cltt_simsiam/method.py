"""``simsiam``: Simple Siamese learning (Chen & He, CVPR 2021), with temporal positives.

For each positive pair (a, b) of ``method.positives`` (time by default: a frame and a later
one), with projections ``z = g(f(x))`` and predictions ``p = q(z)``::

    L = ½ (2 - 2 cos(p_a, sg(z_b))) + ½ (2 - 2 cos(p_b, sg(z_a)))

``sg`` is the stop-gradient: unlike BYOL there is no momentum target, the other branch's own
projection is the target. ``method.simsiam.predictor_hidden`` sizes the predictor.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cltt.methods import register_method
from cltt.methods.base import Forward
from cltt.methods.pairs import PairMethod
from cltt.models.heads import ProjectionHead
from cltt.objectives.byol import regression_terms
from cltt.recipe import check_min


@dataclass
class SimSiamConfig:
    """``method.simsiam``: the predictor's hidden width."""

    predictor_hidden: int = 64

    def validate(self, at: str) -> None:
        check_min(self.predictor_hidden, f"{at}.predictor_hidden", 1)


@register_method("simsiam", config=SimSiamConfig)
class SimSiam(PairMethod):
    """Each frame's prediction matches the stop-gradient projection of the other frame (SimSiam)."""

    def __init__(self, recipe):
        super().__init__(recipe)  # builds self.encoder: backbone + projection head
        dim = self.encoder.out_dim
        self.predictor = ProjectionHead(dim, self.options.predictor_hidden, dim, batchnorm=recipe.model.head_batchnorm)

    def forward_step(self, views: torch.Tensor, extras: dict) -> Forward:
        """``[b, V, T, 3, S, S]`` -> ``[b, 4P, D]``: projections of a and b, then their predictions."""
        z = self.encode_frames(self.pair_frames(views))
        p = self.predictor(z.flatten(0, 1)).view_as(z)
        return Forward(torch.cat([z, p], dim=1))

    def loss_terms(self, embeddings, first, count, extras=None):
        """-> (sum over this process's pairs, number of pairs)."""
        z_a, z_b, p_a, p_b = (part.flatten(0, 1) for part in embeddings[first:first + count].chunk(4, dim=1))
        terms = (regression_terms(p_a, z_b) + regression_terms(p_b, z_a)) / 2
        return terms.sum(), torch.tensor(float(terms.numel()), device=terms.device)
