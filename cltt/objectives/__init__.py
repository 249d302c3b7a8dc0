"""Contrastive objectives, one per module.

:mod:`~cltt.objectives.infonce` is the multi-positive InfoNCE used for temporal positives (three
reductions, optional decoupling, a (total, count) pair that sums across ranks);
:mod:`~cltt.objectives.ntxent` is SimCLR's two-view NT-Xent written in terms of it;
:mod:`~cltt.objectives.sequence_contrast` is CARL's frame-to-frame KL between two views of a video;
:mod:`~cltt.objectives.slot_contrast` is SlotContrast's slot-to-slot InfoNCE between consecutive frames.
"""

from cltt.objectives.infonce import Reduction, infonce_loss, multi_positive_infonce
from cltt.objectives.ntxent import nt_xent
from cltt.objectives.sequence_contrast import sequence_contrast_loss

__all__ = ["Reduction", "infonce_loss", "multi_positive_infonce", "nt_xent", "sequence_contrast_loss"]
