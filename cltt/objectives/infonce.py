"""Multi-positive InfoNCE: the objective of contrastive learning through time.

A batch holds N embeddings ``z`` ``[N, D]`` and a group id per row ``groups`` ``[N]``. Rows that
share an id (the frames of one temporal window, the two views of one image) are positives of
each other; a row is never its own positive. With embeddings L2-normalised and a temperature τ,

    s_ij = cos(z_i, z_j) / τ
    P(i) = {j ≠ i : g_j = g_i}     positives
    N(i) = {j : g_j ≠ g_i}         negatives
    A(i) = {j ≠ i} = P(i) ∪ N(i)   everything but the anchor

Three ways to spread an anchor's loss over several positives (``reduction``):

``"l_out"`` (default; SupCon's L_out, Khosla et al. 2020, eq. 2) — one term per anchor, the mean
of the per-positive log-probabilities; the other positives stay in the denominator::

    ℓ_i = -(1/|P(i)|) Σ_{p∈P(i)} log( exp(s_ip) / Σ_{a∈A(i)} exp(s_ia) )

``"pairwise"`` — one term per positive pair, the other positives removed from the denominator
(pytorch-metric-learning's ``NTXentLoss`` with labels)::

    ℓ_ip = -log( exp(s_ip) / (exp(s_ip) + Σ_{n∈N(i)} exp(s_in)) )

``"l_in"`` (SupCon's L_in, eq. 3) — one term per anchor, the mean taken inside the log::

    ℓ_i = -log( (1/|P(i)|) Σ_{p∈P(i)} exp(s_ip) / Σ_{a∈A(i)} exp(s_ia) )

``decoupled=True`` (DCL, Yeh et al. 2022, "Decoupled contrastive learning") replaces every
denominator above by Σ_{n∈N(i)} exp(s_in): the positives leave the denominator, which removes
the negative-positive coupling that makes InfoNCE need large batches.

InfoNCE itself is van den Oord et al. 2018; NT-Xent (SimCLR, Chen et al. 2020) is the special
case of two rows per group, see :mod:`cltt.objectives.ntxent`. Using frames close in time as the
positives is Schneider et al. 2021, "Contrastive learning through time".

Why a (total, count) pair: the caller divides. Under DDP each rank sums ``total`` and ``count``
over ranks before dividing, so every anchor (or pair) weighs the same no matter how the units
fall across GPUs; a mean of per-rank means would not. :func:`infonce_loss` is the
single-process shortcut.

Failure modes, and what this code does about them:

* An anchor with no positive (a singleton group, a window of one frame) has no term: it adds
  nothing to ``total`` or ``count`` and puts no NaN into the gradient. Under ``decoupled=True`` an
  anchor with no negative (the whole batch is one group) is treated the same way. A batch in
  which nothing counts gives ``total`` = 0.0, still attached to the graph, and ``count`` = 0.
* A small temperature makes s_ij as large as 1/τ (100 at τ = 0.01); exp() of that overflows
  float32, so every sum of exponentials is a masked logsumexp. Very small τ still gives a
  spiky, badly conditioned loss: a τ below about 0.05 usually wants a lower learning rate.
* Half-precision inputs (bf16, fp16) are cast to float32 before anything else: at τ = 0.1 a bf16
  logit keeps about two significant digits, too few for a loss that differences them.
* The similarity block is [A, N] for A anchors: memory is quadratic in the batch. ``anchors``
  lets a caller compute the loss of a slice of rows against the full batch (a rank's own rows
  against all-gathered embeddings).
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
import torch.nn.functional as F

Reduction = Literal["l_out", "pairwise", "l_in"]

_REDUCTIONS = get_args(Reduction)


def _masked_logsumexp(logits: torch.Tensor, keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Row-wise log Σ_{j: keep_ij} exp(logits_ij).

    logits, keep: [A, N]. Returns (lse [A], has_any [A]). A row with nothing kept gives 0 in lse;
    the caller must discard it. Such a row is filled with finite values before the logsumexp:
    an all -inf row differentiates to exp(-inf - -inf) = NaN in the torch versions whose
    logsumexp backward does not special-case it, and NaN would survive a later ``where``.
    """
    has_any = keep.any(dim=1)
    filled = logits.masked_fill(~keep, float("-inf"))
    filled = filled.masked_fill(~has_any[:, None], 0.0)
    lse = torch.logsumexp(filled, dim=1)
    return torch.where(has_any, lse, torch.zeros_like(lse)), has_any


def multi_positive_infonce(
    embeddings: torch.Tensor,
    groups: torch.Tensor,
    *,
    temperature: float = 0.1,
    reduction: Reduction = "l_out",
    decoupled: bool = False,
    anchors: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of multi-positive InfoNCE terms over the chosen anchors, and how many terms there are.

    Args:
        embeddings: [N, D], any float dtype; normalised and computed in float32 here.
        groups: [N] integer ids; rows with equal id are positives of each other (self excluded).
        temperature: τ > 0 dividing the cosine similarities.
        reduction: ``"l_out"``, ``"pairwise"`` or ``"l_in"`` (formulas in the module docstring).
        decoupled: keep only the negatives in every denominator (DCL).
        anchors: [A] int64 row indices to use as anchors (the others still serve as positives
            and negatives); default all N rows. Only the [A, N] similarity block is computed.

    Returns:
        (total, count), float32 scalars on the embeddings' device. ``total`` sums the terms of
        the anchors; ``count`` is the number of units: anchors with at least one positive (and,
        when decoupled, one negative) for ``l_out``/``l_in``, positive pairs (of such anchors)
        for ``pairwise``. The loss is ``total / count``; see :func:`infonce_loss`.
    """
    if embeddings.dim() != 2:
        raise ValueError(f"embeddings must be [N, D], got shape {tuple(embeddings.shape)}")
    num_rows = embeddings.shape[0]
    if groups.shape != (num_rows,):
        raise ValueError(f"groups must be [N] = [{num_rows}], got shape {tuple(groups.shape)}")
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")

    device = embeddings.device
    z = F.normalize(embeddings.float(), dim=1)
    groups = groups.to(device)
    row_ids = torch.arange(num_rows, device=device)
    if anchors is None:
        anchor_ids = row_ids
        z_anchor = z
    else:
        if anchors.dim() != 1:
            raise ValueError(f"anchors must be [A], got shape {tuple(anchors.shape)}")
        anchor_ids = anchors.to(device=device, dtype=torch.long)
        z_anchor = z[anchor_ids]

    logits = z_anchor @ z.T / temperature  # [A, N]
    same_group = groups[anchor_ids, None] == groups[None, :]
    is_self = anchor_ids[:, None] == row_ids[None, :]
    positive = same_group & ~is_self
    negative = ~same_group

    # Every branch below produces finite values on rows that do not count, and those rows are
    # then dropped with `where`, so neither the value nor the gradient can pick up NaN or inf.
    lse_negative, has_negative = _masked_logsumexp(logits, negative)
    num_positive = positive.sum(dim=1)
    has_positive = num_positive > 0

    if reduction == "pairwise":
        if decoupled:
            pair_terms = lse_negative[:, None] - logits
            counted = positive & has_negative[:, None]
        else:
            # log(exp(s_ip) + Σ_n exp(s_in)); an anchor without negatives has the term log 1 = 0.
            with_negatives = torch.logaddexp(logits, lse_negative[:, None])
            pair_terms = torch.where(has_negative[:, None], with_negatives, logits) - logits
            counted = positive
        total = torch.where(counted, pair_terms, torch.zeros_like(pair_terms)).sum()
        return total, counted.sum().to(torch.float32)

    if decoupled:
        log_denominator, has_denominator = lse_negative, has_negative
    else:
        log_denominator, has_denominator = _masked_logsumexp(logits, ~is_self)
    positives_per_anchor = num_positive.clamp(min=1).to(logits.dtype)
    if reduction == "l_out":
        mean_positive_logit = logits.masked_fill(~positive, 0.0).sum(dim=1) / positives_per_anchor
        anchor_terms = log_denominator - mean_positive_logit
    else:  # l_in
        lse_positive, _ = _masked_logsumexp(logits, positive)
        anchor_terms = log_denominator - (lse_positive - positives_per_anchor.log())
    counted = has_positive & has_denominator
    total = torch.where(counted, anchor_terms, torch.zeros_like(anchor_terms)).sum()
    return total, counted.sum().to(torch.float32)


def infonce_loss(embeddings: torch.Tensor, groups: torch.Tensor, **kw) -> torch.Tensor:
    """The mean multi-positive InfoNCE loss of one process: total / max(count, 1), a float32 scalar.

    Takes the keyword arguments of :func:`multi_positive_infonce`. A batch with no unit to count
    gives 0.0 (with a zero gradient) rather than NaN.
    """
    total, count = multi_positive_infonce(embeddings, groups, **kw)
    return total / count.clamp(min=1.0)
