"""Probe features of any encoder: per frame, or of windows for window-only encoders (ViViT).

What an encoder offers is asked through :mod:`cltt.models.representation`. Two cases:

* A :class:`FrameRepresentation` (every frame encoder, and frame-mean window encoders: a frame
  backbone ``h`` averaged over time) keeps the frame pipeline of :mod:`cltt.eval.features`:
  for a frame-mean encoder ``f(window) = (1/T) Σ_t h(x_t)``, so the
  mean of per-frame features over a window *is* the window representation, and
  the mean over all frames of a clip is the representation of the whole clip. Every
  ``probe.level`` works and shares the frame cache.
* A :class:`WindowRepresentation` alone (ViViT) runs on windows of frames (:class:`WindowSource`):
  ``T = data.window_size`` frames ``data.frame_step`` apart, centre views, no augmentation::

      window   the recipe's windows (one view, data.window_stride apart): x = f(window)
      clip     up to WINDOWS_PER_CLIP of those windows, evenly spaced over the clip (first and last
               included): x_k = mean over them of f(window)
      frame    refused: a ViViT has no per-frame features (use probe.level=clip)

  Clips shorter than one window give no sample. Window features are cached like frame
  features (``RUN_DIR/features/``), keyed by the source, the frames and the windows.

The raw-pixel baseline is unchanged: per-frame pixels pooled at ``probe.level``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch

from cltt.data.model_input import to_model_input
from cltt.data.transforms import center_resize
from cltt.data.windows import WindowSpec, WindowTable, build_windows
from cltt.errors import CLTTError
from cltt.eval.features import (
    FeatureResult,
    FeatureSource,
    FrameSet,
    Progress,
    cached_features,
    encoder_source,
)
from cltt.eval.samples import Samples
from cltt.models.representation import FrameRepresentation, WindowRepresentation

WINDOWS_PER_CLIP = 8  # windows of a clip averaged at probe.level=clip
FRAME_LEVEL_REFUSED = ("probe.level=frame needs per-frame features and this window encoder has none; "
                       "use probe.level=clip (or window)")


def check_level(recipe) -> None:
    """Refuse, before any work, a probe level the recipe's method cannot give (its own word)."""
    from cltt.methods import method_class

    levels = method_class(recipe.method.name).probe_levels(recipe)
    if recipe.probe.level not in levels:
        raise CLTTError(f"probe.level={recipe.probe.level} is not offered by method {recipe.method.name} with "
                        f"model.backbone={recipe.model.backbone} (it has no per-frame features); "
                        f"use probe.level={' or '.join(levels)}")


@dataclass
class WindowSource(FeatureSource):
    """``encoder.represent_windows`` of windows of centre views ``[w, T, 3, S, S]``, ImageNet-normalised."""

    encoder: torch.nn.Module = field(default=None, repr=False)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    def encode_windows(self, windows: np.ndarray) -> np.ndarray:
        """uint8 centre views ``[w, T, S, S, 3]`` -> features ``[w, F]`` float32."""
        batch = torch.from_numpy(windows).permute(0, 1, 4, 2, 3)
        with torch.no_grad():
            features = self.encoder.represent_windows(to_model_input(batch, self.device))
        return features.float().cpu().numpy()


def source_for(name: str, encoder: torch.nn.Module, image_size: int, device: torch.device, identity: dict | None,
               level: str) -> FeatureSource:
    """The feature source of ``encoder`` at ``probe.level`` ``level`` (see the module docstring)."""
    if isinstance(encoder, FrameRepresentation):
        return encoder_source(name, encoder, image_size, device, identity)
    if not isinstance(encoder, WindowRepresentation):
        raise CLTTError(f"this encoder ({type(encoder).__name__}) offers neither per-frame nor window features to probe")
    if level == "frame":
        raise CLTTError(FRAME_LEVEL_REFUSED)
    return WindowSource(name=name, identity=identity, decode_size=image_size, encoder=encoder, device=device)


# --------------------------------------------------------------------------- windows


def probe_windows(frame_counts: np.ndarray, spec: WindowSpec, level: str) -> WindowTable:
    """The windows a :class:`WindowSource` encodes for ``level`` over clips of ``frame_counts``.

    ``window``: every window of the recipe (one view). ``clip``: per clip, at most
    :data:`WINDOWS_PER_CLIP` of them at evenly spaced positions, the first and the last included.
    """
    one_view = WindowSpec(spec.window_size, spec.frame_step, spec.window_stride, 0)
    table = build_windows(frame_counts, one_view)
    if level == "window":
        return table
    if level != "clip":
        raise CLTTError(FRAME_LEVEL_REFUSED if level == "frame" else f"probe.level must be window or clip, got {level!r}")
    keep = []
    counts = np.bincount(table.clip, minlength=len(frame_counts)) if len(table) else np.zeros(len(frame_counts), int)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    for clip, count in enumerate(counts):
        if count:
            chosen = np.unique(np.round(np.linspace(0, count - 1, min(WINDOWS_PER_CLIP, count))).astype(np.int64))
            keep.append(first[clip] + chosen)
    rows = np.concatenate(keep) if keep else np.zeros(0, np.int64)
    return WindowTable(one_view, table.clip[rows], table.start[rows], table.clips_skipped)


def pool_windows(features: np.ndarray, table: WindowTable, level: str) -> Samples:
    """Samples from window features ``[M, F]``: each window (``window``) or each clip's mean (``clip``)."""
    clips = table.clip.astype(np.int64)
    if level == "window":
        return Samples(features, clips)
    present, first = np.unique(clips, return_index=True)  # windows come clip by clip
    if not len(present):
        return Samples(np.zeros((0, features.shape[1] if features.ndim == 2 else 0), np.float32), present)
    sums = np.add.reduceat(features.astype(np.float64), first, axis=0)
    counts = np.diff(np.append(first, len(clips)))
    return Samples((sums / counts[:, None]).astype(np.float32), present)


# --------------------------------------------------------------------------- extraction


def extract_window_features(
    frames: FrameSet,
    sources: Sequence[WindowSource],
    table: WindowTable,
    cache_dir=None,
    batch_size: int = 256,
    workers: int = 2,
    on_progress: Progress | None = None,
) -> FeatureResult:
    """Features ``[len(table), F]`` of every window in ``table`` (clip numbers are positions in
    ``frames``) from each source, reused from ``cache_dir`` when fresh.

    Windows are encoded ``max(1, batch_size // T)`` at a time; a batch's frames are decoded by
    ``workers`` threads while the previous batch is encoded, and frames shared with the previous
    batch (overlapping windows) are not decoded again. ``on_progress(done, total)`` counts
    window frames.
    """
    def identity() -> dict:
        spec = table.spec
        return {**frames.identity(), "windows": {"window_size": spec.window_size, "frame_step": spec.frame_step,
                                                 "window_stride": spec.window_stride, "count": len(table),
                                                 "rows": _digest(table)}}

    return cached_features(sources, identity, len(table), cache_dir,
                           lambda todo: _compute(frames, todo, table, batch_size, max(1, workers), on_progress))


def _digest(table: WindowTable) -> str:
    return hashlib.sha256(table.clip.astype(np.int64).tobytes() + table.start.astype(np.int64).tobytes()).hexdigest()


def _compute(frames: FrameSet, sources: Sequence[WindowSource], table: WindowTable, batch_size: int, workers: int,
             on_progress: Progress | None) -> dict[str, np.ndarray]:
    length = table.spec.window_size
    if len(table) == 0:
        return {s.name: np.zeros((0, 0), np.float32) for s in sources}
    # [M, T] positions in the frame set of every window's frames
    index = (frames.offsets[table.clip.astype(np.int64)] + table.start.astype(np.int64))[:, None] \
        + table.spec.frame_step * np.arange(length, dtype=np.int64)[None, :]
    sizes = sorted({s.decode_size for s in sources})
    reduction = frames.store.reduction_for(max(sizes))

    def views(j: int) -> dict[int, np.ndarray]:
        frame = frames.read(j, reduction)
        return {size: center_resize(frame, size) for size in sizes}

    per_batch = max(1, batch_size // length)
    batches = [index[i:i + per_batch] for i in range(0, len(index), per_batch)]
    modes = [(s, s.encoder.training) for s in sources]
    for source, _ in modes:
        source.encoder.eval()
    out: dict[str, list[np.ndarray]] = {s.name: [] for s in sources}
    total, done = int(index.size), 0
    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:

            def submit(batch: np.ndarray, have: dict) -> dict[int, Future | dict]:
                return {int(j): have[int(j)] if int(j) in have else pool.submit(views, int(j)) for j in np.unique(batch)}

            pending = submit(batches[0], {})
            for i, batch in enumerate(batches):
                decoded = {j: v.result() if isinstance(v, Future) else v for j, v in pending.items()}
                if i + 1 < len(batches):
                    pending = submit(batches[i + 1], decoded)
                for source in sources:
                    windows = np.stack([[decoded[int(j)][source.decode_size] for j in row] for row in batch])
                    out[source.name].append(source.encode_windows(windows))
                done += int(batch.size)
                if on_progress is not None:
                    on_progress(done, total)
    finally:
        for source, was_training in modes:
            source.encoder.train(was_training)
    return {name: np.concatenate(parts).astype(np.float32, copy=False) for name, parts in out.items()}
