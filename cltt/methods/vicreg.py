"""``vicreg``: variance-invariance-covariance regularisation (Bardes et al. 2022), and VICReg-TT.

For each positive pair (a, b) (:mod:`cltt.methods.pairs`; default ``time``) the encoder gives
``z_a, z_b`` (backbone and projection head, ``model.projection_*``); the loss is
:func:`cltt.objectives.vicreg.vicreg_loss` over all B·P pairs of the global batch, with weights
``method.vicreg.invariance_weight`` / ``variance_weight`` / ``covariance_weight`` (25/25/1, as
in the paper and the CLTT papers' CORe50 configs).

The variance and covariance are statistics of the whole global batch: every process scores
the gathered embeddings and the engine adds up the processes' equal shares. Exact
sub-batches (GradCache) keep the same statistics; ``train.accumulation: approximate`` would
take them per sub-batch, so it is refused.
"""

from __future__ import annotations

from cltt.methods import register_method
from cltt.methods.base import batch_share
from cltt.methods.pairs import PairMethod
from cltt.objectives.vicreg import vicreg_loss


@register_method("vicreg")
class VICReg(PairMethod):
    """Invariance between the two frames, variance and decorrelation over the batch (VICReg-TT)."""

    batch_statistics = True

    def loss_terms(self, embeddings, first, count, extras=None):
        z_a, z_b = (part.flatten(0, 1) for part in embeddings.chunk(2, dim=1))
        options = self.options
        loss = vicreg_loss(z_a, z_b, invariance_weight=options.invariance_weight,
                           variance_weight=options.variance_weight, covariance_weight=options.covariance_weight)
        return batch_share(loss, count)
