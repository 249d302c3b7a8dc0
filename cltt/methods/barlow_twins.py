"""``barlow_twins``: redundancy reduction (Zbontar et al. 2021), with temporal positives.

For each positive pair (a, b) (:mod:`cltt.methods.pairs`; default ``time``) the encoder gives
``z_a, z_b`` (backbone and projection head); the loss is
:func:`cltt.objectives.barlow_twins.barlow_twins_loss` of their cross-correlation over all B·P
pairs of the global batch, off-diagonal weight ``method.barlow_twins.off_diagonal_weight``
(λ = 5e-3, as in the paper, lightly and solo-learn).

The cross-correlation is a statistic of the whole global batch (each dimension standardised
over it): every process scores the gathered embeddings, exact sub-batches keep it, and
``train.accumulation: approximate`` is refused.
"""

from __future__ import annotations

from cltt.methods import register_method
from cltt.methods.base import batch_share
from cltt.methods.pairs import PairMethod
from cltt.objectives.barlow_twins import barlow_twins_loss


@register_method("barlow_twins")
class BarlowTwins(PairMethod):
    """The two frames' cross-correlation matrix is pushed to the identity (Barlow Twins)."""

    batch_statistics = True

    def loss_terms(self, embeddings, first, count, extras=None):
        z_a, z_b = (part.flatten(0, 1) for part in embeddings.chunk(2, dim=1))
        return batch_share(barlow_twins_loss(z_a, z_b, off_diagonal_weight=self.options.off_diagonal_weight), count)
