"""The one interface every consumer of frames reads through.

    store = open_store("data/digits")            # a folder of clip folders, or a packed store
    store.clips, store.frame_counts              # naming, shared by every kind (FrameNames)
    image = store.read(frame, reduction)         # RGB uint8 [H, W, 3], H = height / reduction
    images = store.read_many(frames, reduction)
    reduction = store.reduction_for(112)         # the coarsest JPEG scale that still covers 112 px
    store.identity()                             # content key for caches: names, sizes, and mtimes or CRCs
    store.frame_times(clip)                      # float64 [n] seconds of clip number clip's frames
    store.times_recorded(clip)                   # recorded (timestamps.csv), or nominal from a frame rate

Frames are numbered globally, in natural order of clip names and then frame names; a window
cut from one kind of store is the same window cut from any other holding the same clips. A
frame that cannot be decoded raises :class:`~cltt.data.decode.CorruptFrameError`, which the
datasets log and skip.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np

from cltt.data.clipwriter import MARKER
from cltt.data.decode import CorruptFrameError, reduction_for
from cltt.data.manifest import FrameNames
from cltt.data.timestamps import DEFAULT_FPS, TIMESTAMPS_FILE, ClipTimes, clip_times
from cltt.recipe import DEFAULT_MAX_PIXELS


class FrameStore(ABC):
    """Named frames of one root (``root`` is the folder given as ``data.root``).

    A kind (registered with :func:`~cltt.data.stores.register_store`, which sets ``kind``)
    implements ``detect`` and ``open`` (class methods), :meth:`read`, :meth:`encoded_bytes`,
    :meth:`frame_shape`, :meth:`frame_sizes`, :meth:`clip_file` and :meth:`index_row`; the naming attributes come
    from ``names`` (:class:`FrameNames`).
    """

    kind: ClassVar[str]

    def __init__(self, root: Path, names: FrameNames):
        self.root = Path(root)
        self.names = names
        self.max_pixels = DEFAULT_MAX_PIXELS  # data.max_pixels: a frame whose header says more is corrupt
        self._reductions: dict[int, int] = {}
        self.nominal_fps = DEFAULT_FPS  # frame rate of clips with neither timestamps.csv nor an extract marker
        self._times: dict[int, ClipTimes] = {}

    # ------------------------------------------------------------------ naming

    @property
    def clips(self) -> list[str]:
        return self.names.clips

    @property
    def frame_counts(self) -> np.ndarray:
        return self.names.frame_counts

    @property
    def clip_offsets(self) -> np.ndarray:
        return self.names.clip_offsets

    @property
    def num_clips(self) -> int:
        return self.names.num_clips

    @property
    def num_frames(self) -> int:
        return self.names.num_frames

    def clip_index(self, clip: str) -> int:
        return self.names.clip_index(clip)

    def clip_of_frame(self, global_frame: int) -> int:
        return self.names.clip_of_frame(global_frame)

    def frame_name(self, global_frame: int) -> str:
        return self.names.frame_name(global_frame)

    def frame_names(self, clip: int) -> list[str]:
        return self.names.frame_names(clip)

    def frame_number(self, clip: int, frame: int) -> int:
        """Global number of frame ``frame`` (0-based, within the clip) of clip number ``clip``."""
        return int(self.clip_offsets[clip]) + frame

    def locate(self, global_frame: int) -> str:
        """Where a frame lives, for messages: ``ROOT/clip/frame.jpg``."""
        clip = self.clip_of_frame(global_frame)
        return f"{self.root}/{self.clips[clip]}/{self.frame_name(global_frame)}"

    # ------------------------------------------------------------------ pixels

    @abstractmethod
    def read(self, global_frame: int, reduction: int = 1) -> np.ndarray:
        """RGB ``uint8 [H, W, 3]`` of frame ``global_frame``, ``reduction`` (1, 2, 4, 8) times smaller."""

    def read_many(self, frames: Sequence[int], reduction: int = 1) -> list[np.ndarray]:
        """:meth:`read` of each frame, in order."""
        return [self.read(int(frame), reduction) for frame in frames]

    @abstractmethod
    def encoded_bytes(self, global_frame: int) -> bytes:
        """The frame's file bytes as extracted (JPEG or PNG), for decoding elsewhere (``data.decode: gpu``)."""

    def check(self, global_frame: int) -> None:
        """Raise :class:`CorruptFrameError` unless the frame decodes (``cltt index --verify``)."""
        self.read(global_frame)

    @abstractmethod
    def frame_shape(self, global_frame: int) -> tuple[int, int]:
        """``(height, width)`` of a frame at full size."""

    def reduction_for(self, output_size: int) -> int:
        """The reduction that decodes frames no smaller than ``output_size`` on the short side.

        Judged from the first frame that decodes (a store's frames share one size); 1 when none does.
        """
        if output_size not in self._reductions:
            reduction = 1
            for frame in range(min(self.num_frames, 16)):
                try:
                    reduction = reduction_for(min(self.frame_shape(frame)), output_size)
                except CorruptFrameError:
                    continue
                break
            self._reductions[output_size] = reduction
        return self._reductions[output_size]

    # ------------------------------------------------------------------ time

    def clip_times(self, clip: int) -> ClipTimes:
        """Times of clip number ``clip``'s frames and where they come from (:mod:`cltt.data.timestamps`):
        its ``timestamps.csv``, else nominal from its extract marker or :attr:`nominal_fps`. Cached."""
        if clip not in self._times:
            self._times[clip] = clip_times(self.frame_names(clip), self.clip_file(clip, TIMESTAMPS_FILE),
                                           self.clip_file(clip, MARKER), self.nominal_fps)
        return self._times[clip]

    def frame_times(self, clip: int) -> np.ndarray:
        """``[n]`` float64 seconds since the start of the source video, one per frame of clip
        number ``clip`` in store order; recorded or nominal, as :meth:`times_recorded` says."""
        return self.clip_times(clip).seconds

    def times_recorded(self, clip: int) -> bool:
        """True when clip number ``clip``'s times were recorded (extract, built-in data, or a
        ``timestamps.csv`` given with the frames); False when they are nominal, from a frame rate."""
        return self.clip_times(clip).recorded

    # ------------------------------------------------------------------ identity and side files

    def identity(self, clips: Sequence[int] | None = None) -> str:
        """Content key of the frames of ``clips`` (all when None): names and :meth:`frame_stamps`
        (byte sizes, and what else a kind knows cheaply of each frame's content)."""
        return self.names.content_key(clips, self.frame_stamps)

    def frame_stamps(self, first: int, last: int) -> np.ndarray:
        """``[n]`` or ``[n, k]`` int64 per frame ``first .. last - 1`` that changes when its bytes do:
        the byte sizes here; a kind adds mtimes (files rewritten in place keep their size: a
        same-size PNG) or CRCs."""
        return self.frame_sizes(first, last)

    @abstractmethod
    def frame_sizes(self, first: int, last: int) -> np.ndarray:
        """Byte sizes of the stored frames ``first .. last - 1`` (global numbers), as they are now."""

    @abstractmethod
    def clip_file(self, clip: int, name: str) -> Path:
        """Path of a clip's side file (``masks.npz``); it may not exist."""

    def root_file(self, name: str) -> Path:
        """Path of a side file of the whole root (``labels.csv``, ``boxes.csv``, ``phases.csv``)."""
        return self.root / name

    def warnings(self) -> list[str]:
        """Things about the root ``cltt index`` should point out (none by default)."""
        return []

    @abstractmethod
    def index_row(self) -> tuple[str, str]:
        """``(label, text)`` for ``cltt index``: where the index lives and how it was obtained."""

    def describe(self) -> str:
        """One line: what the store is."""
        return f"{self.kind} store {self.root}: {self.num_clips:,} clips, {self.num_frames:,} frames"
