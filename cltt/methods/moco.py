"""``moco``: momentum contrast, static and temporal (MoCo v2/v3-style; Orhan, Gupta & Lake 2020).

He et al. 2020 (MoCo), Chen et al. 2020 (v2: MLP head, stronger augmentation), Chen, Xie & He
2021 (v3: symmetric loss, in-batch keys, momentum on a cosine), and the temporal MoCo of Orhan,
Gupta & Lake (NeurIPS 2020, "Self-supervised learning through the eyes of a child"), which adds
each frame's two immediate neighbours as positives. For each positive pair (a, b)
(:mod:`cltt.methods.pairs`; default ``augment``: two augmentations of a window)::

    queries  q = g(f(x))      the trained encoder (backbone f, projection head g)
    keys     k = g'(f'(x))    the momentum encoder, an EMA of f and g (no gradient)
    L = mean over queries of  ℓ(q_a, keys of b) and ℓ(q_b, keys of a)      (symmetrised)

with ℓ the softmax cross-entropy of :mod:`cltt.objectives.moco` at ``method.temperature``.
The positives of query (sample i, frame t) are the key of the same frame of the other view and,
with ``method.moco.temporal_neighbours`` r > 0, the keys of frames t-r .. t+r of the same
window (a frame at a window's edge has neighbours on one side only: frame 0 of a window of T
has 1 .. r, frame T-1 has T-1-r .. T-2; frames are ``data.frame_step`` apart). The negatives
are every other key of the global batch (other windows, and frames of the same window further
than r) and the queue.

The queue (``method.moco.queue_size`` Q rows of L2-normalised keys, a buffer, so checkpoints
hold it and a resumed run continues it exactly) is filled after every optimizer step with the
keys of both views of every sample of the global batch (2·B·P rows, gathered over processes
before they are enqueued, so two processes equal one), oldest overwritten first. Any Q works:
the write wraps around, and a step with more keys than Q keeps the newest Q. While the queue is
not full only its filled slots are negatives (none at step 1, where the batch's own keys are
the negatives); Q = 0 is MoCo v3's in-batch form. The key encoder's momentum rises from
``momentum_start`` to ``momentum_end`` on a cosine of the global step (:mod:`cltt.methods.teacher`).
Not done: MoCo v2's shuffled batch norm (the heads' batch norm sees each process's batch, as in
v3) and v3's predictor. Probes and export read the query encoder.

Embeddings per sample: ``[q_a, q_b, k_a, k_b]``, each P rows (``[b, 4P, D]``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cltt.errors import CLTTError
from cltt.methods import register_method
from cltt.methods.base import Forward
from cltt.methods.teacher import TeacherMethod
from cltt.objectives.moco import moco_terms, temporal_positives


@register_method("moco")
class MoCo(TeacherMethod):
    """Queries match momentum keys of the other view among a queue of past keys (MoCo; temporal neighbours optional)."""

    example = {"method": {"moco": {"queue_size": 100, "temporal_neighbours": 1}}}

    def __init__(self, recipe):
        super().__init__(recipe)
        size, dim = self.options.queue_size, self.encoder.out_dim
        self.register_buffer("queue", torch.zeros(size, dim))
        self.register_buffer("queue_pointer", torch.zeros((), dtype=torch.long))  # the next slot to write
        self.register_buffer("queue_filled", torch.zeros((), dtype=torch.long))  # slots holding a key
        self._pending: list[torch.Tensor] = []  # this step's gathered keys, enqueued after the step

    @classmethod
    def check_recipe(cls, recipe) -> None:
        super().check_recipe(recipe)
        cls.refuse_shared_frames(recipe)
        neighbours = recipe.method.moco.temporal_neighbours
        if neighbours and cls.pairs_per_window(recipe) < 2:
            raise CLTTError(f"method.moco.temporal_neighbours={neighbours} takes the neighbours of each frame inside a "
                            "window, but with these data a sample gives one pair of frames; set data.window_size >= 2 "
                            "with method.positives=augment, or data.two_view_offset > 0")

    @classmethod
    def negatives(cls, recipe) -> str:
        if recipe.method.moco.queue_size:
            return "batch+queue"
        return "batch+sample" if cls.pairs_per_window(recipe) > 1 else "batch"

    def forward_step(self, views: torch.Tensor, extras: dict[str, torch.Tensor]) -> Forward:
        """``views [b, V, T, 3, S, S]`` -> ``[b, 4P, D]``: queries of a and b, then keys of a and b."""
        frames = self.pair_frames(views)
        return Forward(torch.cat([self.encode_frames(frames), self.teach(frames)], dim=1))

    def loss_terms(self, embeddings, first, count, extras=None):
        """Both directions for this process's queries against every key of the global batch and the
        queue -> ``(sum over queries, queries)``; the keys wait in ``_pending`` for :meth:`after_step`."""
        samples, pairs = embeddings.shape[0], embeddings.shape[1] // 4
        q_a, q_b, k_a, k_b = embeddings.chunk(4, dim=1)
        own = slice(first * pairs, (first + count) * pairs)
        positive = temporal_positives(samples, pairs, self.options.temporal_neighbours, embeddings.device)[own]
        queue = self.queue[: int(self.queue_filled)]
        temperature = self.config.temperature
        total_ab, count_ab = moco_terms(q_a[first:first + count].flatten(0, 1), k_b.flatten(0, 1), positive, queue, temperature)
        total_ba, count_ba = moco_terms(q_b[first:first + count].flatten(0, 1), k_a.flatten(0, 1), positive, queue, temperature)
        if self.options.queue_size:
            self._pending.append(torch.cat([k_a.flatten(0, 1), k_b.flatten(0, 1)]).detach())
        return total_ab + total_ba, count_ab + count_ba

    def before_step(self, step: int, total_steps: int) -> None:
        super().before_step(step, total_steps)
        self._pending = []  # keys scored outside a training step never reach the queue

    @torch.no_grad()
    def after_step(self, step: int, total_steps: int) -> None:
        super().after_step(step, total_steps)
        for keys in self._pending:
            self.enqueue(keys)
        self._pending = []

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """Write ``keys [n, D]`` (normalised) at the pointer, wrapping around; n > Q keeps the last Q."""
        size, n = self.queue.shape[0], keys.shape[0]
        if not size or not n:
            return
        start = int(self.queue_pointer)
        if n > size:
            start, keys = (start + n - size) % size, keys[n - size:]
        slots = (start + torch.arange(keys.shape[0], device=self.queue.device)) % size
        self.queue[slots] = F.normalize(keys.float(), dim=1).to(self.queue.device)
        self.queue_pointer.fill_((int(self.queue_pointer) + n) % size)
        self.queue_filled.fill_(min(int(self.queue_filled) + n, size))

    def monitored(self, embeddings):
        """The queries (the first half of each sample's rows)."""
        return embeddings[:, : embeddings.shape[1] // 2].flatten(0, 1)
