"""One optimizer step of a contrastive method, with optional sub-batches and many processes.

The loss of a global batch of B samples is L = (sum of every anchor's terms) / (number of
units), with every sample's embeddings in every anchor's denominator. Each process embeds
its own b = B / P samples, gathers all B embeddings (:func:`gather_rows`, gradients flow back
to their owner), scores its own anchors, and divides by the global unit count, so the summed
gradients over processes are exactly dL/dθ of the one-process computation.

Sub-batches (``train.sub_batch_size``) save memory in two ways:

    exact        GradCache (Gao et al. 2021): embed all sub-batches without a graph, compute L
                 and g = dL/dz on the whole batch, then re-embed each sub-batch with a graph
                 (the random state replayed, so dropout draws the same masks) and
                 backpropagate g's rows into it. The loss is the whole batch's; the gradients
                 are exactly dL/dθ of it for encoders whose output does not depend on the
                 other samples of a sub-batch. With BatchNorm the statistics are per sub-batch
                 (as they are per GPU under DDP), so the gradients differ from the full
                 batch's (the trainer says so); costs one extra forward pass. Batch-norm
                 running statistics are updated once.
    approximate  the loss inside each sub-batch alone, averaged: fewer negatives per anchor,
                 the lab's original behaviour, kept only as an explicit opt-in.
"""

from __future__ import annotations

import contextlib
import math

import torch

from cltt.data.model_input import to_model_input
from cltt.engine.collapse import embedding_spread
from cltt.engine.device import Placement
from cltt.engine.distributed import GradientSync, all_reduce_sum, gather_rows
from cltt.errors import CLTTError
from cltt.methods.base import Forward


class NonFiniteLoss(CLTTError):
    """The loss became NaN or infinite; nothing was applied to the weights."""


def _gather_extras(extras: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Every process's rows of each extra tensor (booleans travel as bytes: gloo lacks bool)."""
    gathered = {}
    for key, value in extras.items():
        rows, _ = gather_rows(value.to(torch.uint8) if value.dtype == torch.bool else value)
        gathered[key] = rows.bool() if value.dtype == torch.bool else rows
    return gathered


def _objective(method, forward: Forward, extras: dict[str, torch.Tensor],
               local_units: torch.Tensor | None = None, spreads: list | None = None,
               terms: list | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(this process's share of L to backpropagate, L itself detached) for one forward pass.

    ``local_units`` is the global count of the local loss part when the caller knows it
    (exact accumulation counts it over all sub-batches first); else ``forward.local_units``
    is summed over processes here. ``terms``, when given, gets ``{name: value}`` of L's parts
    (the method's ``contrast_term`` and ``local_term``), which add up to L.
    """
    embeddings = forward.embeddings
    everyone, first = gather_rows(embeddings)
    loss_keys = method.loss_extra_keys
    loss_extras = extras if loss_keys is None else {key: extras[key] for key in loss_keys}
    total, units = method.loss_terms(everyone, first, embeddings.shape[0], _gather_extras(loss_extras))
    if spreads is not None:
        spreads.append(embedding_spread(method.monitored(everyone.detach())))
    global_total, global_units = all_reduce_sum(total, units)
    units = global_units.clamp(min=1)
    objective, loss = total / units, global_total / units
    parts = {method.contrast_term: loss.detach()}
    if forward.local_total is not None:
        local_total = forward.local_total.float()
        if local_units is None:
            (local_units,) = all_reduce_sum(torch.as_tensor(forward.local_units, device=local_total.device).float())
        (summed,) = all_reduce_sum(local_total)
        local_units = local_units.clamp(min=1)
        objective = objective + local_total / local_units
        loss = loss + summed / local_units
        parts[method.local_term] = (summed / local_units).detach()
    if terms is not None:
        terms.append(parts)
    return objective, loss


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


def _random_state(device: torch.device) -> tuple:
    """torch's generator states that dropout on ``device`` draws from."""
    state = (torch.get_rng_state(),)
    if device.type == "cuda":
        state += (torch.cuda.get_rng_state(device),)
    elif device.type == "mps":
        state += (torch.mps.get_rng_state(),)
    return state


def _set_random_state(state: tuple, device: torch.device) -> None:
    torch.set_rng_state(state[0])
    if device.type == "cuda":
        torch.cuda.set_rng_state(state[1], device)
    elif device.type == "mps":
        torch.mps.set_rng_state(state[1])


def _split(tensors: dict[str, torch.Tensor], size: int | None, count: int) -> list[dict[str, torch.Tensor]]:
    if not size:
        return [tensors]
    parts = {key: value.split(size) for key, value in tensors.items()}
    return [{key: parts[key][i] for key in tensors} for i in range(count)]


def accumulate_gradients(
    method,
    views: torch.Tensor,
    placement: Placement,
    scaler: torch.amp.GradScaler,
    sub_batch_size: int | None = None,
    accumulation: str = "exact",
    extras: dict[str, torch.Tensor] | None = None,
    stats: dict | None = None,
    sync: GradientSync | None = None,
) -> float:
    """Backpropagate the loss of ``views [b, V, T, 3, S, S]`` (this process's part of the
    global batch) and its per-sample ``extras`` into ``.grad``, summed over processes.
    Returns the global batch loss; ``stats``, when given, gets the embeddings' ``spread``
    (:mod:`cltt.engine.collapse`) over the global batch and the loss's parts, ``terms``
    (``{name: value}``, averaged over sub-batches in approximate mode). ``sync`` runs the forward passes and
    sums the gradients (the trainer's DDP wrapper); without one, a flat all-reduce does.

    Raises :class:`NonFiniteLoss` when the loss is not finite, before the weights change
    (in approximate mode earlier sub-batches may have left gradients; the trainer stops).
    """
    sync = sync or GradientSync(method, "flat")
    x = to_model_input(views, placement.device)
    extras = {key: value.to(placement.device) for key, value in (extras or {}).items()}
    chunks = list(x.split(sub_batch_size)) if sub_batch_size else [x]
    chunk_extras = _split(extras, sub_batch_size, len(chunks))
    spreads: list = []
    terms: list = []
    if accumulation == "exact" and len(chunks) > 1:
        states = []  # the random state before each sub-batch: its second pass draws the same dropout masks
        with torch.no_grad(), _buffers_restored(method), placement.autocast():
            passes = []
            for chunk, more in zip(chunks, chunk_extras):
                states.append(_random_state(x.device))
                passes.append(sync.forward(chunk, more))
        after = _random_state(x.device)
        cached = torch.cat([f.embeddings for f in passes]).float().requires_grad_()
        local = None
        local_units = None
        if passes[0].local_total is not None:
            local = torch.stack([f.local_total.float() for f in passes]).sum()
            (local_units,) = all_reduce_sum(torch.stack([torch.as_tensor(f.local_units, device=x.device).float()
                                                         for f in passes]).sum())
        objective, loss = _objective(method, Forward(cached, local), extras, local_units, spreads, terms)
        _check_finite(loss)
        scaler.scale(objective).backward()  # the local part was computed without a graph: only dL/dz here
        for i, (chunk, more, grad) in enumerate(zip(chunks, chunk_extras, cached.grad.split(sub_batch_size))):
            _set_random_state(states[i], x.device)
            with sync.accumulating(last=i == len(chunks) - 1):
                with placement.autocast():
                    forward = sync.forward(chunk, more)
                backward = (forward.embeddings.float() * grad).sum()  # grad carries the loss scale already
                if forward.local_total is not None:
                    backward = backward + scaler.scale(forward.local_total.float() / local_units.clamp(min=1))
                backward.backward()
        _set_random_state(after, x.device)  # the stream goes on as after one pass, as without sub-batches
    else:
        losses = []
        for i, (chunk, more) in enumerate(zip(chunks, chunk_extras)):
            with sync.accumulating(last=i == len(chunks) - 1):
                with placement.autocast():
                    forward = sync.forward(chunk, more)
                forward.embeddings = forward.embeddings.float()
                objective, loss = _objective(method, forward, more, spreads=spreads, terms=terms)
                _check_finite(loss)
                scaler.scale(objective / len(chunks)).backward()
            losses.append(loss)
        loss = torch.stack(losses).mean()
    sync.finish()
    if stats is not None:
        found = [value for value in spreads if value is not None]
        stats["spread"] = sum(found) / len(found) if found else None
        stats["terms"] = {name: float(sum(parts[name] for parts in terms)) / len(terms) for name in terms[0]} if terms else {}
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
