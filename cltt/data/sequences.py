"""CARL's training samples: two temporally augmented views of one whole video.

    dataset = SequenceDataset(store, frames=16, region=(0.5, 1.0), image_size=64, augment=config, seed=0)
    sample = dataset[(i, epoch)]      # randomness drawn from (seed, epoch, i) alone
    sample["views"]                   # uint8 [2, T, 3, S, S]
    sample["times"]                   # int64 [2, T] frame number within the clip; -1 = padding
    sample["valid"]                   # bool  [2, T] False where a slot is padding

Sample i is clip ``i // samples_per_clip`` (every clip once per epoch by default). Each view of
a clip of n frames (Chen et al. 2022, "sequence contrastive learning"):

1. a random region of ``L = max(1, round(f n))`` consecutive frames, ``f ~ U(region)``; view 1's
   region is drawn among those sharing at least one frame with view 0's, so the two views
   overlap but (almost always) differ;
2. T = ``frames`` frames of the region, drawn without replacement and sorted by time; when
   L < T all L frames are taken and the remaining ``T - L`` slots are padding (black pixels,
   time -1, valid False), always at the end;
3. the spatial augmentation of ``data.augment`` (:class:`~cltt.data.transforms.WindowAugment`);
   with ``consistent: true`` (the default, CARL's setting) one draw per view, so all frames of
   a view share crop, flip and colours and the two views differ in time and appearance.

A frame that cannot be decoded is logged and the sample is replaced by the next one
(``replaced`` counts how many were skipped), as in :mod:`cltt.data.dataset`.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch.utils.data import Dataset

from cltt.data.dataset import fetch_replacing_corrupt
from cltt.data.stores.base import FrameStore
from cltt.data.transforms import WindowAugment
from cltt.errors import CLTTError
from cltt.recipe import AugmentConfig

log = logging.getLogger("cltt.data")

PAD_TIME = -1  # the time of a padding slot


def sample_region(rng: np.random.Generator, num_frames: int, region: tuple[float, float],
                  overlap: tuple[int, int] | None = None) -> tuple[int, int]:
    """``(start, length)`` of a region of a clip of ``num_frames`` frames covering a fraction
    ``U(region)`` of it (at least one frame). With ``overlap = (start, length)`` of another
    region, the start is drawn among those that share at least one frame with it."""
    length = int(min(num_frames, max(1, round(rng.uniform(*region) * num_frames))))
    low, high = 0, num_frames - length  # inclusive range of starts
    if overlap is not None:
        other_start, other_length = overlap
        low = max(low, other_start - length + 1)
        high = min(high, other_start + other_length - 1)
    return int(rng.integers(low, high + 1)), length


def sample_times(rng: np.random.Generator, start: int, length: int, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """``frames`` sorted frame numbers from ``start .. start+length-1`` without replacement,
    padded with :data:`PAD_TIME` when the region is shorter: ``(times [T] int64, valid [T] bool)``."""
    taken = np.arange(start, start + length) if length <= frames else \
        start + np.sort(rng.choice(length, size=frames, replace=False))
    times = np.full(frames, PAD_TIME, dtype=np.int64)
    times[:len(taken)] = taken
    return times, times != PAD_TIME


class SequenceDataset(Dataset):
    """Two views of T sorted frames of one clip per sample; see the module docstring."""

    def __init__(
        self,
        store: FrameStore,
        frames: int,
        region: tuple[float, float],
        image_size: int,
        augment: AugmentConfig,
        seed: int = 0,
        samples_per_clip: int = 1,
        clips: np.ndarray | None = None,
    ):
        if frames < 1 or samples_per_clip < 1:
            raise ValueError(f"frames and samples_per_clip must be >= 1, got {frames} and {samples_per_clip}")
        if not 0 < region[0] <= region[1] <= 1:
            raise ValueError(f"region must be fractions 0 < low <= high <= 1, got {list(region)}")
        if store.num_clips == 0:
            raise CLTTError(f"no clips under {store.root}; extract frames first")
        self.store = store
        self.frames = frames
        self.region = (float(region[0]), float(region[1]))
        self.image_size = image_size
        self.augment = WindowAugment(augment, image_size)
        self.seed = seed
        self.samples_per_clip = samples_per_clip
        # data.clips: the store numbers of the clips samples come from (all when None)
        self.clip_ids = np.arange(store.num_clips, dtype=np.int64) if clips is None else np.asarray(clips, np.int64)
        self.reduction = store.reduction_for(image_size)

    def __len__(self) -> int:
        return len(self.clip_ids) * self.samples_per_clip

    def clip_of(self, index: int) -> int:
        return int(self.clip_ids[index // self.samples_per_clip])

    def draw_times(self, index: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``times [2, T]`` int64 and ``valid [2, T]`` bool of sample ``index`` (advances ``rng``)."""
        num_frames = int(self.store.frame_counts[self.clip_of(index)])
        first = sample_region(rng, num_frames, self.region)
        second = sample_region(rng, num_frames, self.region, overlap=first)
        views = [sample_times(rng, start, length, self.frames) for start, length in (first, second)]
        return np.stack([t for t, _ in views]), np.stack([v for _, v in views])

    def __getitem__(self, key) -> dict:
        return fetch_replacing_corrupt(key, len(self), self.seed, self.store.root, self._load, "sample")

    def _load(self, index: int, rng: np.random.Generator) -> dict:
        times, valid = self.draw_times(index, rng)
        clip = self.clip_of(index)
        decoded: dict[int, np.ndarray] = {}
        views = torch.zeros((2, self.frames, 3, self.image_size, self.image_size), dtype=torch.uint8)
        for view in range(2):
            chosen = times[view][valid[view]].tolist()
            for frame in chosen:
                if frame not in decoded:
                    decoded[frame] = self.store.read(self.store.frame_number(clip, frame), self.reduction)
            views[view, :len(chosen)] = self.augment([decoded[f] for f in chosen], rng)
        return {"views": views, "times": torch.from_numpy(times), "valid": torch.from_numpy(valid)}
