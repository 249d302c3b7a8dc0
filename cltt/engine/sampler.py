"""Which windows each process sees, in which order, from which position of the epoch.

The epoch's order is a permutation drawn from (seed, epoch) alone. It is cut into global
batches of B windows; with P processes, process r takes positions [r*B/P, (r+1)*B/P) of each
global batch, so P processes together see exactly the batches one process would (a 2-rank
run and a 1-process run optimise on the same global batches). Items are ``(index, epoch)``
pairs, which the windows dataset turns into the same augmentation in any worker.

``start_batch`` skips the batches an interrupted run already trained on, so a resumed epoch
continues with the next batch instead of restarting or skipping the epoch.
"""

from __future__ import annotations

from typing import Iterator

import torch
from torch.utils.data import Sampler


class EpochBatchSampler(Sampler):
    def __init__(
        self,
        num_samples: int,
        global_batch: int,
        batches_per_epoch: int,
        *,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = True,
    ):
        if global_batch % world_size:
            raise ValueError(f"global batch {global_batch} is not divisible by {world_size} processes")
        self.num_samples = num_samples
        self.global_batch = global_batch
        self.local_batch = global_batch // world_size
        self.batches_per_epoch = batches_per_epoch
        self.seed = seed
        self.rank = rank
        self.shuffle = shuffle
        self.epoch = 0
        self.start_batch = 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch = epoch
        self.start_batch = start_batch

    def order(self, epoch: int) -> torch.Tensor:
        """The epoch's permutation of sample indices (identical on every process)."""
        if not self.shuffle:
            return torch.arange(self.num_samples)
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.num_samples, generator=generator)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        order = self.order(self.epoch).tolist()
        for batch in range(self.start_batch, self.batches_per_epoch):
            first = batch * self.global_batch + self.rank * self.local_batch
            yield [(index, self.epoch) for index in order[first:first + self.local_batch]]

    def __len__(self) -> int:
        return self.batches_per_epoch - self.start_batch
