"""From per-frame features to the samples a probe classifies (``probe.level``).

With ``h [N, F]`` the features of the N frames of K clips (clip k holds frames
``offsets[k] .. offsets[k+1]-1``):

    frame    one sample per frame: x_j = h_j                              M = N
    window   one sample per window of the recipe's data windows (view 0):
             x = mean_{i<W} h[offsets[k] + t + i*s]                        M = number of windows
    clip     one sample per clip: x_k = mean over the clip's frames of h    M = K

Every sample belongs to one clip (``clip [M]``), whose label and split it takes; clips too
short for one window give no window sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cltt.data.windows import WindowSpec, build_windows

LEVELS = ("frame", "window", "clip")


@dataclass
class Samples:
    features: np.ndarray  # [M, F] float32
    clip: np.ndarray  # [M] int64, position of each sample's clip in the frame set


def pool_samples(features: np.ndarray, offsets: np.ndarray, level: str, spec: WindowSpec | None = None,
                 chunk: int = 4096) -> Samples:
    """Samples at ``level`` from frame features ``[N, F]`` and clip ``offsets [K + 1]``."""
    offsets = np.asarray(offsets, dtype=np.int64)
    counts = np.diff(offsets)
    num_clips = len(counts)
    if level == "frame":
        return Samples(features, np.repeat(np.arange(num_clips, dtype=np.int64), counts))
    if level == "clip":
        sums = np.add.reduceat(features.astype(np.float64), offsets[:-1], axis=0) if len(features) else \
            np.zeros((0, features.shape[1]))
        return Samples((sums / counts[:, None]).astype(np.float32), np.arange(num_clips, dtype=np.int64))
    if level != "window":
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    if spec is None:
        raise ValueError("window level needs the recipe's WindowSpec")
    one_view = WindowSpec(spec.window_size, spec.frame_step, spec.window_stride, 0)
    table = build_windows(counts, one_view)
    steps = one_view.frame_step * np.arange(one_view.window_size, dtype=np.int64)
    first = offsets[table.clip.astype(np.int64)] + table.start.astype(np.int64)
    pooled = np.empty((len(table), features.shape[1]), np.float32)
    for begin in range(0, len(table), chunk):  # [chunk, W, F] at a time
        index = first[begin:begin + chunk, None] + steps[None, :]
        pooled[begin:begin + chunk] = features[index].mean(axis=1, dtype=np.float64)
    return Samples(pooled, table.clip.astype(np.int64))
