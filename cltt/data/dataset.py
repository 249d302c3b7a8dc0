"""The windows dataset: a sample is one or two augmented views of a window of frames.

    sample = dataset[i]            # or dataset[(i, epoch)]: augmentation drawn from (seed, epoch, i)
    sample["views"]                # uint8 [V, T, 3, S, S] (float in [0, 1] with dtype="float")
    sample["index"], sample["replaced"]
    dataset.window_times(i)        # float64 [V, T] seconds of those frames in their source video

V = 2 when ``two_view_offset`` k > 0 (view 1 is window(t + k)) or when ``views=2`` is asked
for (two augmentations of the same window, SimCLR's positives); else V = 1. Each view takes
its own augmentation draw, or with ``same_draw`` all views share one (so two views of
window(t) and window(t + k) differ only in time). ``extras(frames, rng)`` may add more
per-sample tensors made from the decoded frames (DINO's local crops). T = window_size,
S = image_size. Augmentations are a pure function of (seed, epoch, index), so a resumed run and
any number of DataLoader workers see exactly the same samples.

A frame that cannot be decoded is logged with its path, and the sample is replaced by the next
window (``replaced`` counts how many were skipped), so one bad JPEG never stops an epoch.

With ``encoded=True`` (``data.decode: gpu``) nothing is decoded here: a sample holds each
frame's file bytes and its augmentation draw, for :mod:`cltt.data.device_augment` to decode
and apply on the training device (truncated and empty files are still caught and skipped).
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch.utils.data import Dataset

from cltt.data.decode import CorruptFrameError, check_encoded, header_dimensions
from cltt.data.focus import FrameBoxes, blur_outside, center_box
from cltt.data.stores.base import FrameStore
from cltt.data.transforms import WindowAugment
from cltt.data.windows import WindowSpec, build_windows, only_clips, require_windows
from cltt.errors import CLTTError
from cltt.recipe import AugmentConfig

log = logging.getLogger("cltt.data")

MAX_REPLACEMENTS = 16


def fetch_replacing_corrupt(key, size: int, seed: int, root, load, kind: str) -> dict:
    """Sample ``key`` (``index`` or ``(index, epoch)``) of a dataset of ``size`` samples.

    ``load(i, rng)`` returns sample ``i``'s tensors with ``rng`` drawn from ``(seed, epoch, i)``;
    a :class:`CorruptFrameError` is logged and the next sample (a ``kind``) taken instead, up to
    MAX_REPLACEMENTS times. Adds ``index`` (the sample served) and ``replaced`` (how many skipped).
    """
    index, epoch = key if isinstance(key, tuple) else (key, 0)
    for replaced in range(MAX_REPLACEMENTS):
        candidate = (index + replaced) % size
        try:
            sample = load(candidate, np.random.default_rng([seed, epoch, candidate]))
        except CorruptFrameError as err:
            log.warning("%s; sample %d replaced by the next %s", err, candidate, kind)
            continue
        return {**sample, "index": candidate, "replaced": replaced}
    raise CLTTError(
        f"{MAX_REPLACEMENTS} {kind}s in a row from sample {index} have corrupt frames; "
        f"run cltt index {root} --verify to list them"
    )


def gaps_to_split(store: FrameStore, mode: str):
    """The gaps windows are cut at under ``data.gaps`` (``split``), None (``ignore``), or the error (``error``)."""
    if mode not in ("split", "ignore", "error"):
        raise ValueError(f"gaps must be 'split', 'ignore' or 'error', got {mode!r}")
    if mode == "ignore":
        return None
    gaps = store.names.gaps()
    if mode == "error" and len(gaps):
        raise CLTTError(f"{len(gaps)} gap(s) in the frame numbering of {store.root}: {gaps.describe(store.names)}; "
                        "re-extract those clips, or set data.gaps=split (cut windows at gaps) or data.gaps=ignore")
    return gaps


class WindowDataset(Dataset):
    def __init__(
        self,
        store: FrameStore,
        spec: WindowSpec,
        image_size: int,
        augment: AugmentConfig,
        views: int = 1,
        seed: int = 0,
        dtype: str = "uint8",
        boxes: FrameBoxes | None = None,
        focus: str = "none",
        focus_blur_sigma: float = 6.0,
        center_box_fraction: float = 0.5,
        same_draw: bool = False,
        extras=None,
        encoded: bool = False,
        gaps: str = "split",
        clips: np.ndarray | None = None,
    ):
        if dtype not in ("uint8", "float"):
            raise ValueError(f"dtype must be 'uint8' or 'float', got {dtype!r}")
        if focus != "none" and boxes is None and focus != "boxes_or_center":
            raise CLTTError("data.object_focus=boxes needs a boxes file (data.boxes, or ROOT/boxes.csv)")
        self.store = store
        self.spec = spec
        self.table = build_windows(store.frame_counts, spec, gaps_to_split(store, gaps))
        if clips is not None:  # data.clips: only the listed clips' windows (a labelled root's train split)
            self.table = only_clips(self.table, clips)
        require_windows(self.table, store.frame_counts, store.root)
        self.image_size = image_size
        self.augment = WindowAugment(augment, image_size)
        # view v is window(t + v * two_view_offset): two augmentations of one window when k = 0
        self.num_views = 2 if spec.two_view_offset > 0 else views
        self.seed = seed
        self.dtype = dtype
        self.boxes = boxes
        self.focus = focus
        self.focus_blur_sigma = focus_blur_sigma
        self.center_box_fraction = center_box_fraction
        self.same_draw = same_draw  # one augmentation draw for every view (views differ in time only)
        self.extras = extras  # extras(frames of each view [V][T] HWC uint8, rng) -> more per-sample tensors
        self.encoded = encoded
        if encoded and (extras is not None or focus != "none"):
            raise CLTTError("data.decode=gpu decodes on the device, but this method's extra crops or data.object_focus "
                            "need the decoded frames in the workers; use data.decode=cpu")
        # boxes and crops are in original pixels; decoding at 1/reduction scales them
        self.reduction = store.reduction_for(image_size)

    def __len__(self) -> int:
        return len(self.table)

    @property
    def clips_skipped(self) -> int:
        """Clips too short for one window."""
        return self.table.clips_skipped

    def window_frames(self, index: int) -> list[list[int]]:
        """Global frame numbers of each view of sample ``index``: ``[V][T]``."""
        clip, start = int(self.table.clip[index]), int(self.table.start[index])
        offset = int(self.store.clip_offsets[clip])
        return [(offset + self.spec.frame_indices(start, view)).tolist() for view in range(self.num_views)]

    def window_times(self, index: int) -> np.ndarray:
        """Seconds of each frame of each view of sample ``index``, ``[V, T]`` float64, since the
        start of the clip's source video (:meth:`FrameStore.frame_times`; nominal where
        ``store.times_recorded(clip)`` is False). Batches do not carry them."""
        clip = int(self.table.clip[index])
        first = int(self.store.clip_offsets[clip])
        return self.store.frame_times(clip)[np.array(self.window_frames(index)) - first]

    def __getitem__(self, key) -> dict:
        return fetch_replacing_corrupt(key, len(self), self.seed, self.store.root, self._load, "window")

    def _load(self, index: int, rng: np.random.Generator) -> dict:
        per_view = self.window_frames(index)
        if self.encoded:
            return self._load_encoded(per_view, rng)
        decoded: dict[int, np.ndarray] = {}
        for frame in (f for frames in per_view for f in frames):
            if frame not in decoded:
                decoded[frame] = self._decode(frame)
        images = [[decoded[f] for f in frames] for frames in per_view]
        if self.same_draw:
            views = list(self.augment([image for view in images for image in view], rng).split(len(images[0])))
        else:
            views = [self.augment(view, rng) for view in images]
        out = torch.stack(views)
        sample = {"views": out.float().div_(255) if self.dtype == "float" else out}
        if self.extras is not None:
            sample.update(self.extras(images, rng))
        return sample

    def _load_encoded(self, per_view: list[list[int]], rng: np.random.Generator) -> dict:
        """File bytes and draws of each frame; the draws consume ``rng`` exactly as :meth:`_load` does.

        Each distinct frame is read once; its size comes from the header of those bytes.
        """
        from cltt.data.device_augment import pack_params

        files: dict[int, np.ndarray] = {}
        for frame in (f for frames in per_view for f in frames):
            if frame not in files:
                data = np.frombuffer(self.store.encoded_bytes(frame), dtype=np.uint8).copy()
                try:
                    check_encoded(data, max_pixels=self.store.max_pixels)
                except CorruptFrameError as err:  # named only on failure: locate() costs a search
                    raise CorruptFrameError(self.store.locate(frame), err.why) from None
                files[frame] = data

        def decoded_shape(frame: int) -> tuple[int, int]:  # the size the CPU path decodes at
            height, width = header_dimensions(files[frame]) or self.store.frame_shape(frame)
            return -(-height // self.reduction), -(-width // self.reduction)

        shapes = [[decoded_shape(f) for f in frames] for frames in per_view]
        if self.same_draw:
            flat = self.augment.draw([shape for view in shapes for shape in view], rng)
            draws = [flat[v * len(shapes[0]):(v + 1) * len(shapes[0])] for v in range(len(shapes))]
        else:
            draws = [self.augment.draw(view, rng) for view in shapes]
        return {"encoded": [torch.from_numpy(files[f]) for frames in per_view for f in frames],
                "params": torch.from_numpy(np.stack([[pack_params(p) for p in view] for view in draws])),
                "frames": torch.tensor(per_view, dtype=torch.int64)}

    def _decode(self, global_frame: int) -> np.ndarray:
        image = self.store.read(global_frame, self.reduction)
        if self.focus == "none":
            return image
        boxes = self.boxes.of_frame(global_frame) / self.reduction if self.boxes is not None else np.zeros((0, 4))
        if len(boxes) == 0 and self.focus == "boxes_or_center":
            boxes = center_box(image.shape[0], image.shape[1], self.center_box_fraction)
        return blur_outside(image, boxes, self.focus_blur_sigma / self.reduction)
