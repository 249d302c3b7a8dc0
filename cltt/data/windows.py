"""Window arithmetic: which frames of which clip form each training sample.

With W = ``window_size``, s = ``frame_step``, r = ``window_stride`` and k = ``two_view_offset``:

    window(t) = [t, t+s, ..., t+(W-1)s]          frames of one view, t = 0, r, 2r, ...
    view v of sample (c, t) = window(t + v*k)    v = 0 (and v = 1 when k > 0)

A window spans ``(W-1)s + 1`` frames; a sample needs ``span + k`` frames (``span`` when k = 0)
of the same clip, so windows never cross clips. A clip of n frames yields
``max(0, floor((n - span - k) / r) + 1)`` samples; clips too short for one are skipped and
counted. Windows are two int arrays (clip, start), 8 bytes per window, however many there are.

Given the gaps in a clip's frame numbering (:func:`cltt.data.manifest.find_gaps`), the clip is
cut at each gap and windows are built on the pieces, so a window never spans missing frames:
"close in time" stays true.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cltt.errors import CLTTError


@dataclass(frozen=True)
class WindowSpec:
    window_size: int
    frame_step: int = 1
    window_stride: int = 1
    two_view_offset: int = 0

    @classmethod
    def from_recipe(cls, data) -> "WindowSpec":
        """The window arithmetic of a recipe's ``data`` section."""
        return cls(data.window_size, data.frame_step, data.window_stride, data.two_view_offset)

    @property
    def span(self) -> int:
        """Frames from the first to the last frame of one window, both included."""
        return (self.window_size - 1) * self.frame_step + 1

    @property
    def reach(self) -> int:
        """Frames a whole sample needs: its window and, with two views, the offset one."""
        return self.span + self.two_view_offset

    def windows_in_clip(self, num_frames: np.ndarray | int) -> np.ndarray:
        """How many samples a clip (or each of an array of clips) of ``num_frames`` frames yields."""
        n = np.asarray(num_frames, dtype=np.int64)
        return np.maximum(0, (n - self.reach) // self.window_stride + 1) * (n >= self.reach)

    def frame_indices(self, start: int, view: int = 0) -> np.ndarray:
        """Frame numbers (within the clip) of view ``view`` of the sample starting at ``start``."""
        first = start + view * self.two_view_offset
        return first + self.frame_step * np.arange(self.window_size)

    def describe(self) -> str:
        text = f"window_size {self.window_size}, frame_step {self.frame_step}, window_stride {self.window_stride}"
        return text + (f", two_view_offset {self.two_view_offset}" if self.two_view_offset else "")


@dataclass
class WindowTable:
    """Every sample of a frames root: ``clip[i]`` and ``start[i]`` of sample ``i``."""

    spec: WindowSpec
    clip: np.ndarray  # [num_windows] int32
    start: np.ndarray  # [num_windows] int32
    clips_skipped: int  # clips too short for one sample
    splits: int = 0  # gaps the clips were cut at

    def __len__(self) -> int:
        return len(self.clip)


def build_windows(frame_counts: np.ndarray, spec: WindowSpec, gaps=None) -> WindowTable:
    """All samples over clips of the given frame counts, clip by clip, start by start; with
    ``gaps`` (a :class:`~cltt.data.manifest.Gaps`), each clip is cut at its gaps first."""
    frame_counts = np.asarray(frame_counts, dtype=np.int64)
    piece_clip, piece_start, piece_length = _pieces(frame_counts, gaps)
    per_piece = spec.windows_in_clip(piece_length)
    total = int(per_piece.sum())
    clip = np.repeat(piece_clip, per_piece).astype(np.int32)
    first_of_piece = np.repeat(np.cumsum(per_piece) - per_piece, per_piece)
    start = (np.repeat(piece_start, per_piece)
             + (np.arange(total, dtype=np.int64) - first_of_piece) * spec.window_stride).astype(np.int32)
    per_clip = np.bincount(piece_clip, weights=per_piece, minlength=len(frame_counts))
    return WindowTable(spec, clip, start, int((per_clip == 0).sum()), len(gaps) if gaps is not None else 0)


def _pieces(frame_counts: np.ndarray, gaps) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(clip, first frame, length) of each run of frames without a gap; whole clips without gaps."""
    clips = np.arange(len(frame_counts), dtype=np.int64)
    if gaps is None or len(gaps) == 0:
        return clips, np.zeros(len(frame_counts), np.int64), frame_counts
    # cut points: the start of every clip and the frame after every gap, in (clip, frame) order
    cut_clip = np.concatenate([clips, gaps.clip])
    cut_start = np.concatenate([np.zeros(len(clips), np.int64), gaps.after + 1])
    order = np.lexsort((cut_start, cut_clip))
    cut_clip, cut_start = cut_clip[order], cut_start[order]
    next_same = np.concatenate([cut_clip[1:] == cut_clip[:-1], [False]])
    end = np.where(next_same, np.concatenate([cut_start[1:], [0]]), frame_counts[cut_clip])
    return cut_clip, cut_start, end - cut_start


def only_clips(table: WindowTable, clips: np.ndarray) -> WindowTable:
    """The samples of ``table`` whose clip is one of ``clips`` (store numbers)."""
    keep = np.isin(table.clip, clips)
    return WindowTable(table.spec, table.clip[keep], table.start[keep], table.clips_skipped, table.splits)


def require_windows(table: WindowTable, frame_counts: np.ndarray, root) -> None:
    """One clear error when no clip is long enough for a single sample."""
    if len(table) == 0:
        longest = int(np.max(frame_counts)) if len(frame_counts) else 0
        spec = table.spec
        raise CLTTError(
            f"no clip under {root} is long enough for one window: a sample needs {spec.reach} "
            f"frames ({spec.describe()}) and the longest clip has {longest}; lower "
            f"data.window_size, data.frame_step or data.two_view_offset"
        )
