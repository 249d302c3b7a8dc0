"""``byol``: Bootstrap Your Own Latent (Grill et al. 2020), and BYOL-TT through ``method.positives``.

For each positive pair (a, b) (:mod:`cltt.methods.pairs`; default ``time``)::

    online   z = g(f(x))  projection,  p = q(z)  prediction      (trained)
    target   t = g'(f'(x))                                       (EMA of f and g, no gradient)
    L = (2 - 2 cos(p_a, t_b)) + (2 - 2 cos(p_b, t_a))            (mean over pairs)

``f`` is the backbone, ``g`` the projection head (``model.projection_*``), ``q`` the predictor
MLP ``projection_dim -> method.byol.predictor_hidden -> projection_dim``. The target follows
the online network with momentum m rising from ``momentum_start`` to ``momentum_end`` on a
cosine of the global step (:mod:`cltt.methods.teacher`). The defaults are the CLTT papers'
(Aubret et al. 2023): predictor 128 -> 256 -> 128, momentum 0.996; ``recipes/byol.yaml`` says
what it changes for a 30-epoch CPU run. Probes and export read the online encoder.

Embeddings per sample: ``[p_a, p_b, t_a, t_b]``, each P rows (``[b, 4P, D]``).
"""

from __future__ import annotations

import torch

from cltt.methods import register_method
from cltt.methods.base import Forward
from cltt.methods.teacher import TeacherMethod
from cltt.models.heads import ProjectionHead
from cltt.objectives.byol import byol_terms


@register_method("byol")
class BYOL(TeacherMethod):
    """An online network predicts an EMA target network's projection of the other frame (BYOL-TT)."""

    def __init__(self, recipe):
        super().__init__(recipe)
        dim = self.encoder.out_dim
        self.predictor = ProjectionHead(dim, self.options.predictor_hidden, dim, batchnorm=recipe.model.head_batchnorm)

    def forward_step(self, views: torch.Tensor, extras: dict[str, torch.Tensor]) -> Forward:
        """``views [b, V, T, 3, S, S]`` -> ``[b, 4P, D]``: predictions of a and b, then targets of a and b."""
        frames = self.pair_frames(views)
        predictions = self.predictor(self.encode_frames(frames).flatten(0, 1)).view(frames.shape[0], frames.shape[1], -1)
        return Forward(torch.cat([predictions, self.teach(frames)], dim=1))

    def loss_terms(self, embeddings, first, count, extras=None):
        """Symmetrised ``2 - 2 cos`` of this process's samples -> ``(sum over pairs, pairs)``."""
        own = embeddings[first:first + count]
        p_a, p_b, t_a, t_b = (part.flatten(0, 1) for part in own.chunk(4, dim=1))
        return byol_terms(p_a, p_b, t_a, t_b)

    def monitored(self, embeddings):
        """The online predictions (the first half of each sample's rows)."""
        return embeddings[:, : embeddings.shape[1] // 2].flatten(0, 1)
