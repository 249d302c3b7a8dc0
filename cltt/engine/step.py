"""One optimizer step of a contrastive method, with optional sub-batches and many processes.

The loss of a global batch of B samples is L = (sum of every anchor's terms) / (number of
units), with every sample's embeddings in every anchor's denominator. Each process embeds
its own b = B / P samples, gathers all B embeddings (:func:`gather_rows`, gradients flow back
to their owner), scores its own anchors, and divides by the global unit count, so the summed
gradients over processes are exactly dL/dθ of the one-process computation.

Sub-batches (``train.sub_batch_size``) save memory in two ways:

    exact        GradCache (Gao et al. 2021): embed all sub-batches without a graph, compute L
                 and g = dL/dz on the whole batch, then re-embed each sub-batch with a graph
                 and backpropagate g's rows into it. Same loss and gradients as the full batch
                 for encoders whose output does not depend on the other samples of a sub-batch
                 (batch-norm statistics are per sub-batch, as they are per GPU under DDP);
                 costs one extra forward pass. Batch-norm running statistics are updated once.
    approximate  the loss inside each sub-batch alone, averaged: fewer negatives per anchor,
                 the lab's original behaviour, kept only as an explicit opt-in.
"""

from __future__ import annotations

import contextlib
import math

import torch

from cltt.engine.device import Placement, to_model_input
from cltt.engine.distributed import all_reduce_gradients, all_reduce_sum, gather_rows
from cltt.errors import CLTTError


class NonFiniteLoss(CLTTError):
    """The loss became NaN or infinite; nothing was applied to the weights."""


def _objective(method, embeddings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(this process's share of L to backpropagate, L itself detached) for ``[b, K, D]``."""
    everyone, first = gather_rows(embeddings)
    total, units = method.loss_terms(everyone, first, embeddings.shape[0])
    global_total, global_units = all_reduce_sum(total, units)
    units = global_units.clamp(min=1)
    return total / units, global_total / units


def _check_finite(loss: torch.Tensor) -> None:
    value = float(loss)
    if not math.isfinite(value):
        raise NonFiniteLoss(f"the loss is {value}")


@contextlib.contextmanager
def _buffers_restored(module: torch.nn.Module):
    """Undo buffer updates (batch-norm running statistics) made inside the block."""
    saved = [(buffer, buffer.detach().clone()) for buffer in module.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for buffer, value in saved:
                buffer.copy_(value)


def accumulate_gradients(
    method,
    views: torch.Tensor,
    placement: Placement,
    scaler: torch.amp.GradScaler,
    sub_batch_size: int | None = None,
    accumulation: str = "exact",
) -> float:
    """Backpropagate the loss of ``views [b, V, T, 3, S, S]`` (this process's part of the
    global batch) into ``.grad``, summed over processes. Returns the global batch loss.

    Raises :class:`NonFiniteLoss` when the loss is not finite, before the weights change
    (in approximate mode earlier sub-batches may have left gradients; the trainer stops).
    """
    x = to_model_input(views, placement.device)
    chunks = list(x.split(sub_batch_size)) if sub_batch_size else [x]
    if accumulation == "exact" and len(chunks) > 1:
        with torch.no_grad(), _buffers_restored(method), placement.autocast():
            cached = torch.cat([method.embed(chunk) for chunk in chunks])
        cached = cached.float().requires_grad_()
        objective, loss = _objective(method, cached)
        _check_finite(loss)
        scaler.scale(objective).backward()
        for chunk, grad in zip(chunks, cached.grad.split(sub_batch_size)):
            with placement.autocast():
                embeddings = method.embed(chunk)
            embeddings.backward(grad.to(embeddings.dtype))
    else:
        losses = []
        for chunk in chunks:
            with placement.autocast():
                embeddings = method.embed(chunk)
            objective, loss = _objective(method, embeddings.float())
            _check_finite(loss)
            scaler.scale(objective / len(chunks)).backward()
            losses.append(loss)
        loss = torch.stack(losses).mean()
    all_reduce_gradients(method.parameters())
    return float(loss)


def optimizer_step(method, optimizer, scaler: torch.amp.GradScaler, grad_clip: float | None) -> float | None:
    """Unscale, clip (returns the pre-clip norm), step and clear the gradients."""
    norm = None
    if grad_clip is not None:
        scaler.unscale_(optimizer)
        norm = float(torch.nn.utils.clip_grad_norm_(method.parameters(), grad_clip))
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    return norm
