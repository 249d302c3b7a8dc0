"""Time segments of a corpus: the classes of temporal classification (method ``tc``).

    segments = time_segments(store, seconds=288.0)
    segments.count          # N: classes over the whole corpus
    segments.of_frame       # int64 [num_frames]: the class of every frame (global numbering)
    segments.table          # int64 [N, 3]: clip number, first frame within the clip, frames
    segments.duration       # seconds the corpus lasts: the sum of its clips' spans
    segments.longest        # seconds the longest clip spans
    segments.clips          # clips with frames (each has at least one segment)

Clip c, with frame times ``t_0 < t_1 < ...`` (:meth:`FrameStore.frame_times`: recorded, else
nominal from the clip's frame rate), puts frame k into its segment ``floor((t_k - t_0) / L)``,
L = ``seconds`` (a frame within 1e-9 of a boundary counts as after it, so 0.7 s / 0.1 s is
segment 7 despite float rounding). Segments are numbered over the corpus in store order, clip
after clip, and empty ones (a pause in the recording longer than L) are skipped: clips never
share a segment and the classes are 0 .. N-1. A clip's last segment is usually shorter than L.

:class:`SegmentWindows` adds each frame's class to the samples of a windows dataset.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from cltt.data.stores.base import FrameStore
from cltt.data.timestamps import clip_span

BOUNDARY_TOLERANCE = 1e-9  # in segments: float rounding must not move a frame back across a boundary


@dataclass(frozen=True)
class TimeSegments:
    """The segments of one corpus at one length (see the module docstring)."""

    seconds: float
    of_frame: np.ndarray  # int64 [num_frames]
    table: np.ndarray  # int64 [N, 3]: clip number, first frame within the clip, frames
    duration: float
    longest: float = 0.0  # the longest clip's span, seconds

    @property
    def clips(self) -> int:
        return len(np.unique(self.table[:, 0]))

    @property
    def count(self) -> int:
        return len(self.table)


def time_segments(store: FrameStore, seconds: float) -> TimeSegments:
    """Cut every clip of ``store`` into segments of ``seconds`` and number them over the corpus."""
    of_frame = np.empty(store.num_frames, dtype=np.int64)
    rows: list[np.ndarray] = []
    duration, longest, first_class = 0.0, 0.0, 0
    for clip in range(store.num_clips):
        times = store.frame_times(clip)
        if len(times) == 0:
            continue
        start, end = clip_span(times)
        duration += end - start
        longest = max(longest, end - start)
        within = np.floor((times - times[0]) / seconds + BOUNDARY_TOLERANCE).astype(np.int64)
        present, first, counts = np.unique(within, return_index=True, return_counts=True)
        dense = np.searchsorted(present, within)  # empty segments (pauses) take no class
        offset = int(store.clip_offsets[clip])
        of_frame[offset:offset + len(times)] = first_class + dense
        rows.append(np.stack([np.full(len(present), clip), first, counts], axis=1))
        first_class += len(present)
    table = np.concatenate(rows).astype(np.int64) if rows else np.zeros((0, 3), dtype=np.int64)
    return TimeSegments(float(seconds), of_frame, table, duration, longest)


class SegmentWindows(torch.utils.data.Dataset):
    """A windows dataset whose samples also carry ``segment``: int64 ``[V, T]``, the class of
    each frame of each view (a window that crosses a boundary has frames of two classes, each
    labelled with its own). Everything else is the wrapped dataset's."""

    def __init__(self, windows, segments: TimeSegments):
        self.windows = windows
        self.segments = segments
        self.store, self.table = windows.store, windows.table  # what the trainer reads of a windows dataset

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, key) -> dict:
        sample = self.windows[key]
        frames = np.asarray(self.windows.window_frames(sample["index"]))  # the window served, after replacements
        return {**sample, "segment": torch.from_numpy(self.segments.of_frame[frames])}
